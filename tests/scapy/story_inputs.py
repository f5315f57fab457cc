#!/usr/bin/python3
"""Craft the story's traffic with scapy, for tests/story.rs.

usage: story_inputs.py OUTDIR
Writes red-1.pcap, green-1.pcap, yellow-1.pcap, underlay-b.pcap and malformed-*.pcap, plus
expect.json with what each input should produce.
"""
import json
import sys

from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, wrpcap
from scapy.contrib.geneve import GENEVE

out = sys.argv[1]
RED1, YELLOW1, GREEN1 = "10.0.1.10", "10.1.1.20", "10.2.1.30"
RED_MAC, YELLOW_MAC, GREEN_MAC = "02:00:0a:00:01:0a", "02:00:0a:01:01:14", "02:00:0a:02:01:1e"
GW = "02:00:00:ff:00:00"  # whatever the card answers; the card does not check the destination MAC

# red-1 -> yellow-1 over the peering: ICMP, UDP, TCP, sizes up to a 9001-byte inner packet.
red = [Ether(src=RED_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=RED_MAC, psrc=RED1, pdst="10.0.1.1")]
delivered = []
for i, size in enumerate([0, 18, 100, 1000, 1472, 4000, 8973]):
    p = Ether(src=RED_MAC, dst=GW) / IP(src=RED1, dst=YELLOW1, id=i, flags="DF") / ICMP(seq=i) / Raw(b"r" * size)
    red.append(p)
    delivered.append(bytes(p[IP]).hex())
for i in range(3):
    p = Ether(src=RED_MAC, dst=GW) / IP(src=RED1, dst=YELLOW1) / UDP(sport=5000 + i, dport=9000) / Raw(b"q" * (10 + i))
    red.append(p)
    delivered.append(bytes(p[IP]).hex())
p = Ether(src=RED_MAC, dst=GW) / IP(src=RED1, dst=YELLOW1) / TCP(sport=40000, dport=80, flags="S", seq=7)
red.append(p)
delivered.append(bytes(p[IP]).hex())
# red-1 -> an address of yellow nobody has: no mapping.
red.append(Ether(src=RED_MAC, dst=GW) / IP(src=RED1, dst="10.1.1.99") / ICMP())
wrpcap(f"{out}/red-1.pcap", red)

# green-1 -> yellow-1: not peered (3); green-1 forging yellow-1's source (2) and red-1's MAC (1).
green = [Ether(src=GREEN_MAC, dst=GW) / IP(src=GREEN1, dst=YELLOW1) / ICMP(seq=i) for i in range(3)]
green += [Ether(src=GREEN_MAC, dst=GW) / IP(src=YELLOW1, dst=YELLOW1) / ICMP(seq=i) for i in range(2)]
green += [Ether(src=RED_MAC, dst=GW) / IP(src=GREEN1, dst="10.2.1.31") / ICMP()]
wrpcap(f"{out}/green-1.pcap", green)

# Forged Geneve on host-b's underlay port: red-1 claimed from a PA where it does not live.
def geneve(src_pa, vni, src_vpc, inner):
    opt = bytes.fromhex("fff00101") + src_vpc.to_bytes(4, "big")
    return (Ether(src="02:00:c6:12:00:63", dst="02:00:c6:12:00:02") / IP(src=src_pa, dst="198.18.0.2", flags="DF", ttl=64)
            / UDP(sport=50000, dport=6081, chksum=0) / GENEVE(vni=vni, proto=0x0800, optionlen=2, options=opt) / inner)

inner = IP(src=RED1, dst=YELLOW1) / ICMP() / Raw(b"forged")
underlay = [geneve("198.18.0.99", 102, 101, inner) for _ in range(2)]
# The right PA but a VPC that is not peered with yellow claiming red's address space.
underlay.append(geneve("198.18.0.1", 102, 103, IP(src=GREEN1, dst=YELLOW1) / ICMP()))
wrpcap(f"{out}/underlay-b.pcap", underlay)

json.dump({
    "delivered_to_yellow": delivered,
    "drops": {"no_route": 3, "spoofed_source": 3, "unknown_sender": 3, "no_mapping": 1},
    "arp_replies": 1,
}, open(f"{out}/expect.json", "w"))
