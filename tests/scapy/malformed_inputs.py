#!/usr/bin/python3
"""Malformed traffic for tests/robustness.rs: every truncation of valid frames, bad IHL,
bad total lengths, runts, non-IPv4, bad Geneve option lengths.

usage: malformed_inputs.py OUTDIR   (writes instance.pcap and underlay.pcap)
"""
import sys

from scapy.all import conf, ARP, ICMP, IP, IPv6, UDP, Dot1Q, Ether, Raw, wrpcap
from scapy.contrib.geneve import GENEVE

out = sys.argv[1]
conf.verb = 0
RED_MAC, GW = "02:00:0a:00:01:0a", "02:00:00:ff:00:00"

good = Ether(src=RED_MAC, dst=GW) / IP(src="10.0.1.10", dst="10.1.1.20") / UDP(sport=1, dport=2) / Raw(b"x" * 20)
arp = Ether(src=RED_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=RED_MAC, psrc="10.0.1.10", pdst="10.0.1.1")
inst = []
for frame in (bytes(good), bytes(arp)):
    inst += [Raw(frame[:n]) for n in range(0, len(frame))]      # every truncation, runts included
g = bytearray(bytes(good)); g[14] = 0x43; inst.append(Raw(bytes(g)))   # IHL 3
g = bytearray(bytes(good)); g[14] = 0x4f; inst.append(Raw(bytes(g)))   # IHL 15 > packet
g = bytearray(bytes(good)); g[16:18] = (9999).to_bytes(2, "big"); inst.append(Raw(bytes(g)))  # total length too long
g = bytearray(bytes(good)); g[16:18] = (10).to_bytes(2, "big"); inst.append(Raw(bytes(g)))    # shorter than header
g = bytearray(bytes(good)); g[14] = 0x65; inst.append(Raw(bytes(g)))   # version 6 in an IPv4 EtherType
g = bytearray(bytes(good)); g[24] ^= 0xff; inst.append(Raw(bytes(g)))  # bad header checksum
inst.append(Ether(src=RED_MAC, dst=GW) / IPv6() / UDP())
inst.append(Ether(src=RED_MAC, dst=GW) / Dot1Q(vlan=5) / IP(src="10.0.1.10", dst="10.1.1.20"))
inst.append(Raw(b"\xff" * 60))
wrpcap(f"{out}/instance.pcap", inst, linktype=1)

def geneve(optlen, options, inner, proto=0x0800):
    return (Ether(src="02:00:c6:12:00:01", dst="02:00:c6:12:00:02") / IP(src="198.18.0.1", dst="198.18.0.2", flags="DF")
            / UDP(sport=50000, dport=6081, chksum=0) / GENEVE(vni=102, proto=proto, optionlen=optlen, options=options) / inner)

inner = IP(src="10.0.1.10", dst="10.1.1.20") / ICMP()
valid = bytes(geneve(2, bytes.fromhex("fff0010100000065"), inner))
und = [Raw(valid[:n]) for n in range(0, len(valid))]               # every truncation
und.append(geneve(2, bytes.fromhex("fff0010700000065"), inner))     # option length past the header
und.append(geneve(1, bytes.fromhex("fff00101"), inner))             # option cut short
und.append(geneve(3, bytes.fromhex("fff0010100000065ffff"), inner)) # opt_len beyond the data
und.append(geneve(0, b"", inner))                                   # no source-VPC option
und.append(geneve(2, bytes.fromhex("fff0010100000065"), Raw(b"\x60" + b"\x00" * 39)))  # inner not IPv4
g = bytearray(valid); g[58] = 0x4f; und.append(Raw(bytes(g)))       # inner IHL past the packet
g = bytearray(valid); g[24] ^= 0xff; und.append(Raw(bytes(g)))     # outer header checksum
wrpcap(f"{out}/underlay.pcap", und, linktype=1)
print(len(inst), len(und))
