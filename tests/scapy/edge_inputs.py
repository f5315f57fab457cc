#!/usr/bin/python3
"""Craft the traffic of story step 6 (Blackfoot) with scapy, for tests/edge.rs.

usage: edge_inputs.py OUTDIR
Writes the inputs of every port (red-1.pcap, yellow-1.pcap, internet.pcap, dx.pcap,
services.pcap) and expect.json with what each should produce.
"""
import json
import sys

from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, Raw, fragment, wrpcap
from scapy.contrib.geneve import GENEVE
from scapy.layers.ipsec import ESP, SecurityAssociation

out = sys.argv[1]
RED1, YELLOW1 = "10.0.1.10", "10.1.1.20"
RED_MAC, YELLOW_MAC = "02:00:0a:00:01:0a", "02:00:0a:01:01:14"
GW = "02:00:00:ff:00:00"
EDGE_MAC = "02:00:c6:12:ff:01"
EIP = "203.0.113.10"
NET_HOST = "192.0.2.80"
TUNNEL, CGW = "203.0.113.1", "198.51.100.1"
CUSTOMER = "172.16.5.5"
DX_HOST = "192.168.1.5"
S3 = "198.51.100.200"
OUT_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f10111213")
IN_KEY = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3")
ENDPOINT_ID = bytes.fromhex("0a1b2c3d4e5f6a7b")

exp = {"internet_out": [], "red_in": [], "yellow_in": [], "dx_out": [], "services_out": []}


def red(p):
    return Ether(src=RED_MAC, dst=GW) / p


# ---- red-1 -> outside -------------------------------------------------------
red_frames = []
# Internet gateway: UDP, TCP, ICMP echo, each SNATed to the Elastic IP.
igw = [
    IP(src=RED1, dst=NET_HOST, id=1, flags="DF") / UDP(sport=40000, dport=9000) / Raw(b"query"),
    IP(src=RED1, dst=NET_HOST, id=2, flags="DF") / TCP(sport=40001, dport=80, flags="S", seq=1000),
    IP(src=RED1, dst=NET_HOST, id=3) / ICMP(type=8, id=7, seq=1) / Raw(b"ping"),
    # An ICMP error from red-1 about a packet that came in through the NAT: the quoted
    # destination is red-1's private address and must become the Elastic IP.
    IP(src=RED1, dst=NET_HOST, id=4) / ICMP(type=3, code=3)
    / bytes(IP(src=NET_HOST, dst=RED1, id=99) / UDP(sport=53, dport=40009) / Raw(b"late answer"))[:28],
]
for p in igw:
    red_frames.append(red(p))
    q = IP(bytes(p))
    q.src = EIP
    if q.haslayer(ICMP) and q[ICMP].type == 3:
        # The quote, rebuilt with the translated address and its checksums recomputed.
        quoted = IP(src=NET_HOST, dst=EIP, id=99) / UDP(sport=53, dport=40009) / Raw(b"late answer")
        q = IP(src=EIP, dst=NET_HOST, id=4) / ICMP(type=3, code=3) / bytes(quoted)[:28]
    del q.chksum
    for l4 in (UDP, TCP):
        if q.haslayer(l4):
            del q[l4].chksum
    exp["internet_out"].append({"kind": "nat", "ip": bytes(IP(bytes(q))).hex()})
# 3000 bytes, DF clear: fragmented after SNAT.
big = IP(src=RED1, dst=NET_HOST, id=5) / UDP(sport=40002, dport=9) / Raw(bytes(range(256)) * 11 + b"x" * 164)
red_frames.append(red(big))
exp["fragmented_udp_len"] = len(big) - 20
exp["fragmented_payload"] = bytes(big[UDP].payload).hex()
# 3000 bytes, DF set: fragmentation-needed back to red-1 (MTU 1500).
red_frames.append(red(IP(src=RED1, dst=NET_HOST, id=6, flags="DF") / UDP(sport=40003, dport=9) / Raw(b"y" * 2972)))

# VPN: three sizes, encrypted to the customer gateway; 2000 bytes DF clear -> 2 fragments
# each encrypted; 2000 bytes DF set -> fragmentation-needed with the MTU that fits (1446).
vpn_inner = []
for i, n in enumerate([20, 500, 1400 - 28]):
    p = IP(src=RED1, dst=CUSTOMER, id=10 + i) / UDP(sport=41000 + i, dport=9000) / Raw(bytes([i]) * n)
    red_frames.append(red(p))
    vpn_inner.append(bytes(p).hex())
vbig = IP(src=RED1, dst=CUSTOMER, id=20) / UDP(sport=41010, dport=9000) / Raw(b"z" * 1972)
red_frames.append(red(vbig))
exp["vpn_fragmented_payload"] = bytes(vbig[UDP].payload).hex()
red_frames.append(red(IP(src=RED1, dst=CUSTOMER, id=21, flags="DF") / UDP(sport=41011, dport=9000) / Raw(b"w" * 1972)))
exp["vpn_inner"] = vpn_inner

# S3 endpoint.
s3 = IP(src=RED1, dst=S3, id=30) / TCP(sport=42000, dport=443, flags="S", seq=5)
red_frames.append(red(s3))
exp["services_out"].append(bytes(s3).hex())
wrpcap(f"{out}/red-1.pcap", red_frames)

# ---- yellow-1 -> Direct Connect; yellow has no internet gateway -------------
yellow_frames = []
for i in range(2):
    p = IP(src=YELLOW1, dst=DX_HOST, id=40 + i) / UDP(sport=43000 + i, dport=7000) / Raw(b"dx" * (i + 1))
    yellow_frames.append(Ether(src=YELLOW_MAC, dst=GW) / p)
    exp["dx_out"].append(bytes(p).hex())
yellow_frames.append(Ether(src=YELLOW_MAC, dst=GW) / IP(src=YELLOW1, dst=NET_HOST) / UDP(sport=1, dport=2))
wrpcap(f"{out}/yellow-1.pcap", yellow_frames)

# ---- internet side in --------------------------------------------------------
inet = []
def upstream(p):
    return Ether(src="02:00:00:fe:00:02", dst=EDGE_MAC) / p

back = [
    IP(src=NET_HOST, dst=EIP, id=50) / UDP(sport=9000, dport=40000) / Raw(b"answer"),
    IP(src=NET_HOST, dst=EIP, id=51) / TCP(sport=80, dport=40001, flags="SA", seq=9, ack=1001),
    IP(src=NET_HOST, dst=EIP, id=52) / ICMP(type=0, id=7, seq=1) / Raw(b"ping"),
    # A router on the way says our SNATed TCP packet was too big: the quote's source is the
    # Elastic IP and must become red-1's address.
    IP(src="192.0.2.1", dst=EIP, id=53) / ICMP(type=3, code=4, nexthopmtu=1280)
    / bytes(IP(src=EIP, dst=NET_HOST, id=2, flags="DF") / TCP(sport=40001, dport=80, flags="S", seq=1000))[:28],
]
for p in back:
    inet.append(upstream(p))
    q = IP(bytes(p))
    q.dst = RED1
    if q.haslayer(ICMP) and q[ICMP].type == 3:
        quoted = IP(src=RED1, dst=NET_HOST, id=2, flags="DF") / TCP(sport=40001, dport=80, flags="S", seq=1000)
        q = IP(src="192.0.2.1", dst=RED1, id=53) / ICMP(type=3, code=4, nexthopmtu=1280) / bytes(quoted)[:28]
    del q.chksum
    for l4 in (UDP, TCP):
        if q.haslayer(l4):
            del q[l4].chksum
    if q.haslayer(ICMP):
        del q[ICMP].chksum
    exp["red_in"].append({"kind": "nat", "ip": bytes(IP(bytes(q))).hex()})
inet.append(upstream(IP(src=NET_HOST, dst="203.0.113.99") / UDP(sport=1, dport=2)))  # no_elastic_ip

# ESP from the customer gateway (our inbound SA is its outbound).
cgw_sa = SecurityAssociation(ESP, spi=8193, crypt_algo="AES-GCM", crypt_key=IN_KEY,
                             tunnel_header=IP(src=CGW, dst=TUNNEL))
def esp(inner, seq):
    return bytes(cgw_sa.encrypt(inner, seq_num=seq))

for seq in (1, 2, 3):
    inner = IP(src=CUSTOMER, dst=RED1, id=60 + seq) / UDP(sport=9000, dport=41000) / Raw(b"from the data centre %d" % seq)
    inet.append(upstream(IP(esp(inner, seq))))
    exp["red_in"].append({"kind": "vpn", "ip": bytes(inner).hex()})
replayed = IP(src=CUSTOMER, dst=RED1, id=62) / UDP(sport=9000, dport=41000) / Raw(b"from the data centre 2")
inet.append(upstream(IP(esp(replayed, 2))))                                    # esp_replay
bad = bytearray(esp(IP(src=CUSTOMER, dst=RED1) / UDP(sport=9000, dport=41000) / Raw(b"tampered"), 4))
bad[-1] ^= 0x01
inet.append(upstream(IP(bytes(bad))))                                          # esp_auth_failed
other_sa = SecurityAssociation(ESP, spi=9999, crypt_algo="AES-GCM", crypt_key=IN_KEY,
                               tunnel_header=IP(src=CGW, dst=TUNNEL))
inet.append(upstream(IP(bytes(other_sa.encrypt(IP(src=CUSTOMER, dst=RED1) / UDP(), seq_num=1)))))  # unknown_spi
inet.append(upstream(IP(esp(IP(src="10.99.0.1", dst=RED1) / UDP(sport=1, dport=2), 5))))      # vpn_policy (source)
inet.append(upstream(IP(esp(IP(src=CUSTOMER, dst=YELLOW1) / UDP(sport=1, dport=2), 6))))      # vpn_policy (destination)
wrpcap(f"{out}/internet.pcap", inet)

# ---- Direct Connect side in --------------------------------------------------
dx = []
for i in range(2):
    p = IP(src=DX_HOST, dst=YELLOW1, id=70 + i) / UDP(sport=7000, dport=43000 + i) / Raw(b"back" * (i + 1))
    dx.append(Ether(src="02:dc:00:00:00:01", dst=EDGE_MAC) / Dot1Q(vlan=101) / p)
    exp["yellow_in"].append(bytes(p).hex())
dx.append(Ether(src="02:dc:00:00:00:01", dst=EDGE_MAC) / Dot1Q(vlan=555) / IP(src=DX_HOST, dst=YELLOW1) / UDP())  # unknown_vlan
dx.append(Ether(src="02:dc:00:00:00:01", dst=EDGE_MAC) / IP(src=DX_HOST, dst=YELLOW1) / UDP())                    # unknown_vlan
wrpcap(f"{out}/dx.pcap", dx)

# ---- services side in (S3 front end answers) -------------------------------
def from_s3(vni, src_vpc, endpoint_id, inner):
    opts = bytes.fromhex("fff00101") + src_vpc.to_bytes(4, "big") + bytes.fromhex("01080102") + endpoint_id
    return (Ether(src="02:00:c6:12:fe:01", dst=EDGE_MAC) / IP(src="198.18.254.1", dst="198.18.255.1", flags="DF", ttl=64)
            / UDP(sport=50001, dport=6081, chksum=0) / GENEVE(vni=vni, proto=0x0800, optionlen=len(opts) // 4, options=opts) / inner)

s3_answer = IP(src=S3, dst=RED1, id=80) / TCP(sport=443, dport=42000, flags="SA", seq=1, ack=6)
services = [from_s3(101, 101, ENDPOINT_ID, s3_answer)]
exp["red_in"].append({"kind": "s3", "ip": bytes(s3_answer).hex()})
services.append(from_s3(101, 101, bytes.fromhex("00000000deadbeef"), IP(src=S3, dst=RED1) / TCP()))   # unknown_endpoint
services.append(from_s3(102, 102, ENDPOINT_ID, IP(src=S3, dst=YELLOW1) / TCP()))                       # endpoint_mismatch
wrpcap(f"{out}/services.pcap", services)

exp["drops"] = {
    "esp_replay": 1, "esp_auth_failed": 1, "unknown_spi": 1, "vpn_policy": 2, "no_elastic_ip": 1,
    "unknown_vlan": 2, "unknown_endpoint": 1, "endpoint_mismatch": 1, "no_route": 1,
}
json.dump(exp, open(f"{out}/expect.json", "w"), indent=1)
