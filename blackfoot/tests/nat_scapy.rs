//! 1:1 NAT against scapy (Debian's `python3-scapy`, run by `/usr/bin/python3`): an
//! implementation nobody here wrote computes every checksum.
//!
//! For each case scapy builds the same packet twice, once with the address before
//! translation and once with the address after it (in the outer header and, for ICMP
//! errors, in the quoted packet, which scapy builds whole so its transport checksum covers
//! the whole quoted datagram, then cuts to the quoted length). Every checksum is left to
//! scapy (`chksum=None`), so the second packet is what a correct NAT must produce. Our
//! [`snat`] / [`dnat`] turns the first into the second byte for byte, and the inverse
//! translation turns it back.
//!
//! Cases: TCP (with IP and TCP options), UDP, UDP with checksum 0, ICMP echo request and
//! reply, ICMP port unreachable quoting UDP (whole quote, 28 bytes, checksum 0), ICMP
//! fragmentation needed quoting TCP (28, 60 and 548 bytes: the TCP checksum is inside the
//! longer quotes), time exceeded, parameter problem, a quote with IP options, and every
//! fragment of fragmented UDP, TCP and ICMP datagrams (scapy's `fragment`).
//!
//! Skipped, with the reason printed, only when `/usr/bin/python3` cannot import scapy.

use std::net::Ipv4Addr;
use std::process::Command;

use blackfoot::nat::{destination, dnat, snat, source};

const PYTHON: &str = "/usr/bin/python3";

/// Prints `CASE name op from to before_hex after_hex` lines.
const SCRIPT: &str = r#"
from scapy.all import IP, TCP, UDP, ICMP, Raw, IPOption_Router_Alert, fragment
from scapy.compat import raw

PRIV, EIP = '10.0.1.10', '52.95.110.1'
PEER, ROUTER = '203.0.113.5', '198.51.100.1'
n = 0

def case(name, op, frm, to, make):
    global n
    a, b = make(frm), make(to)
    if not isinstance(a, list):
        a, b = [a], [b]
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        print('CASE', '%s-%d' % (name, i), op, frm, to, raw(x).hex(), raw(y).hex())
        n += 1

def snat(name, make):
    case(name, 'snat', PRIV, EIP, make)

def dnat(name, make):
    case(name, 'dnat', EIP, PRIV, make)

def quote(pkt, length=None):
    b = raw(pkt)
    return Raw(b if length is None else b[:length])

payload = bytes((i * 7) & 0xff for i in range(3000))

# Outbound: the instance's packets, source private -> Elastic IP.
snat('tcp', lambda a: IP(src=a, dst=PEER, id=1, flags='DF', ttl=64)
     / TCP(sport=40000, dport=443, flags='PA', seq=1000, ack=2000) / Raw(b'GET / HTTP/1.1\r\n\r\n'))
snat('tcp-options', lambda a: IP(src=a, dst=PEER, id=2, options=[IPOption_Router_Alert()])
     / TCP(sport=40001, dport=22, flags='S', options=[('MSS', 1460), ('SAckOK', b''), ('WScale', 7)]))
snat('udp', lambda a: IP(src=a, dst=PEER, id=3) / UDP(sport=53000, dport=53) / Raw(b'\x12\x34\x01\x00' + b'q' * 29))
snat('udp-no-checksum', lambda a: IP(src=a, dst=PEER, id=4) / UDP(sport=53001, dport=53, chksum=0) / Raw(b'zero'))
snat('udp-odd', lambda a: IP(src=a, dst=PEER, id=5) / UDP(sport=1, dport=2) / Raw(b'odd'))
snat('icmp-echo', lambda a: IP(src=a, dst=PEER, id=6) / ICMP(type=8, id=0x4242, seq=7) / Raw(b'vpcemu-ping-data'))
# The instance answers a traceroute probe it received (destination was the private address).
snat('icmp-port-unreachable-udp', lambda a: IP(src=a, dst=PEER, id=7) / ICMP(type=3, code=3)
     / quote(IP(src=PEER, dst=a, id=99, ttl=57) / UDP(sport=33434, dport=33435) / Raw(b'x' * 32)))
snat('icmp-port-unreachable-udp-28', lambda a: IP(src=a, dst=PEER, id=8) / ICMP(type=3, code=3)
     / quote(IP(src=PEER, dst=a, id=99, ttl=57) / UDP(sport=33434, dport=33436) / Raw(b'x' * 32), 28))
snat('icmp-port-unreachable-udp-no-checksum', lambda a: IP(src=a, dst=PEER, id=9) / ICMP(type=3, code=3)
     / quote(IP(src=PEER, dst=a, id=98) / UDP(sport=33434, dport=33437, chksum=0) / Raw(b'x' * 32), 28))
snat('icmp-parameter-problem-tcp', lambda a: IP(src=a, dst=PEER, id=10) / ICMP(type=12, code=0, ptr=20)
     / quote(IP(src=PEER, dst=a, id=97) / TCP(sport=443, dport=40000, flags='A') / Raw(b'y' * 40), 48))
snat('udp-fragments', lambda a: fragment(IP(src=a, dst=PEER, id=777) / UDP(sport=5000, dport=6000)
     / Raw(payload), fragsize=1480))
snat('tcp-fragments', lambda a: fragment(IP(src=a, dst=PEER, id=778, options=[IPOption_Router_Alert()])
     / TCP(sport=40002, dport=443, flags='PA') / Raw(payload[:2000]), fragsize=1000))
snat('icmp-echo-fragments', lambda a: fragment(IP(src=a, dst=PEER, id=779) / ICMP(type=8, id=1, seq=2)
     / Raw(payload[:1800]), fragsize=1000))

# Inbound: the peer's answers and the routers' errors, destination Elastic IP -> private.
dnat('tcp', lambda a: IP(src=PEER, dst=a, id=11, flags='DF') / TCP(sport=443, dport=40000, flags='A', seq=2000, ack=1019)
     / Raw(b'HTTP/1.1 200 OK\r\n\r\n'))
dnat('udp', lambda a: IP(src=PEER, dst=a, id=12) / UDP(sport=53, dport=53000) / Raw(b'\x12\x34\x81\x80' + b'a' * 40))
dnat('udp-no-checksum', lambda a: IP(src=PEER, dst=a, id=13) / UDP(sport=53, dport=53001, chksum=0) / Raw(b'zero'))
dnat('icmp-echo-reply', lambda a: IP(src=PEER, dst=a, id=14) / ICMP(type=0, id=0x4242, seq=7) / Raw(b'vpcemu-ping-data'))
for length in (28, 60, 548):
    dnat('icmp-frag-needed-tcp-%d' % length, lambda a: IP(src=ROUTER, dst=a, id=15)
         / ICMP(type=3, code=4, nexthopmtu=1400)
         / quote(IP(src=a, dst=PEER, flags='DF', id=0x1234, ttl=63)
                 / TCP(sport=40000, dport=443, flags='PA', seq=1000, ack=2000) / Raw(b'x' * 1400), length))
dnat('icmp-time-exceeded-udp', lambda a: IP(src=ROUTER, dst=a, id=16) / ICMP(type=11, code=0)
     / quote(IP(src=a, dst=PEER, ttl=1, id=0x4321) / UDP(sport=33434, dport=33434) / Raw(b'trace'), 28))
dnat('icmp-unreachable-quote-options', lambda a: IP(src=ROUTER, dst=a, id=17) / ICMP(type=3, code=1)
     / quote(IP(src=a, dst=PEER, options=[IPOption_Router_Alert()]) / UDP(sport=9, dport=9) / Raw(b'opt'), 32))
dnat('udp-fragments', lambda a: fragment(IP(src=PEER, dst=a, id=780) / UDP(sport=6000, dport=5000)
     / Raw(payload), fragsize=576))

print('COUNT', n)
"#;

fn parse_hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn nat_matches_scapy() {
    let probe = Command::new(PYTHON).args(["-c", "import scapy.all"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            println!(
                "SKIP: {PYTHON} cannot import scapy (apt-get install -y python3-scapy): {}",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            );
            return;
        }
        Err(e) => {
            println!("SKIP: cannot run {PYTHON}: {e}");
            return;
        }
    }
    let out = Command::new(PYTHON).args(["-c", SCRIPT]).output().unwrap();
    assert!(out.status.success(), "scapy script failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();

    let mut checked = 0;
    let mut announced = None;
    for line in stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["CASE", name, op, from, to, before, after] => {
                let from: Ipv4Addr = from.parse().unwrap();
                let to: Ipv4Addr = to.parse().unwrap();
                let (before, after) = (parse_hex(before), parse_hex(after));
                let nat = if *op == "snat" { snat } else { dnat };
                let mut p = before.clone();
                nat(&mut p, from, to).unwrap_or_else(|e| panic!("{name}: {op} failed: {e:?}"));
                assert_eq!(hex(&p), hex(&after), "{name}: {op} {from} -> {to} differs from scapy");
                nat(&mut p, to, from).unwrap_or_else(|e| panic!("{name}: inverse failed: {e:?}"));
                assert_eq!(hex(&p), hex(&before), "{name}: the inverse is not the identity");
                let translated = if *op == "snat" { source(&after) } else { destination(&after) };
                assert_eq!(translated, Some(to), "{name}");
                checked += 1;
            }
            ["COUNT", n] => announced = Some(n.parse::<usize>().unwrap()),
            _ => {}
        }
    }
    assert_eq!(announced, Some(checked));
    assert!(checked >= 30, "only {checked} cases");
    println!("{checked} packets translated exactly as scapy rebuilds them");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
