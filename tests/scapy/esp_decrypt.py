#!/usr/bin/python3
"""Decrypt every ESP packet of a pcap with scapy, for tests/edge.rs.

usage: esp_decrypt.py PCAP SPI KEYHEX
Prints one JSON list: per ESP packet with that SPI, {"seq": n, "inner": hex of the inner
IPv4 packet} or {"seq": n, "error": "..."} when scapy cannot decrypt or authenticate it.
"""
import json
import sys

from scapy.all import IP, rdpcap
from scapy.layers.ipsec import ESP, SecurityAssociation

pcap, spi, key = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
out = []
for frame in rdpcap(pcap):
    if IP not in frame or frame[IP].proto != 50:
        continue
    ip = frame[IP]
    sa = SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=key,
                             tunnel_header=IP(src=ip.src, dst=ip.dst))
    seq = ip[ESP].seq
    try:
        inner = sa.decrypt(IP(bytes(ip)))
        out.append({"seq": seq, "inner": bytes(inner).hex()})
    except Exception as e:  # noqa: BLE001 - report every failure to the test
        out.append({"seq": seq, "error": str(e)})
print(json.dumps(out))
