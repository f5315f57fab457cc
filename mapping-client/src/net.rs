//! Small address types: an IPv4 prefix ([`Cidr`]) and an Ethernet address ([`MacAddr`]).
//!
//! They stand in for `wire`'s `Ipv4Cidr` / `EthernetAddress` until that crate settles;
//! both are `Copy`, parse with [`FromStr`] (strictly: a malformed string is an error,
//! never a guess) and print in the same form they parse.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Why an address string did not parse. The message names what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddrParseError(pub &'static str);

/// An IPv4 prefix: a network address whose host bits are zero, and a length `0..=32`.
///
/// Ordering is by network address, then length, which is what the loader uses to look for
/// overlaps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    net: u32,
    len: u8,
}

impl Cidr {
    /// The prefix `addr/len`. Fails if `len > 32` or if `addr` has host bits set.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Cidr, AddrParseError> {
        if len > 32 {
            return Err(AddrParseError("prefix length must be 0..=32"));
        }
        let net = u32::from(addr);
        if net & !mask(len) != 0 {
            return Err(AddrParseError("host bits are set: not a network address"));
        }
        Ok(Cidr { net, len })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.net)
    }

    /// The network address as a host-order integer.
    pub fn network_u32(&self) -> u32 {
        self.net
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The netmask as a host-order integer (`/24` -> `0xffff_ff00`).
    pub fn mask(&self) -> u32 {
        mask(self.len)
    }

    /// The last address of the prefix (the subnet broadcast address).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.net | !self.mask())
    }

    /// The number of addresses in the prefix (`2^(32 - len)`).
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }

    /// The address `n` places after the network address, if it is inside the prefix.
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        (u64::from(n) < self.size()).then(|| Ipv4Addr::from(self.net.wrapping_add(n)))
    }

    /// Whether `ip` is inside the prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.net
    }

    /// Whether `other` lies entirely inside this prefix.
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.len >= self.len && other.net & self.mask() == self.net
    }

    /// Whether the two prefixes share at least one address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

impl FromStr for Cidr {
    type Err = AddrParseError;

    /// `a.b.c.d/len`, with the host bits zero.
    fn from_str(s: &str) -> Result<Cidr, AddrParseError> {
        const EXPECTED: &str = "expected a.b.c.d/len";
        let (addr, len) = s.split_once('/').ok_or(AddrParseError(EXPECTED))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| AddrParseError(EXPECTED))?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddrParseError(EXPECTED));
        }
        let len: u8 = len.parse().map_err(|_| AddrParseError(EXPECTED))?;
        Cidr::new(addr, len)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.len)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A 48-bit Ethernet (MAC) address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The address AWS-style cards give an ENI that names none: `02:00:a:b:c:d` for
    /// `ip = a.b.c.d` (locally administered, unicast).
    pub fn from_ip(ip: Ipv4Addr) -> MacAddr {
        let [a, b, c, d] = ip.octets();
        MacAddr([0x02, 0x00, a, b, c, d])
    }

    /// The six bytes, in wire order.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Whether the group bit (least significant bit of the first octet) is clear.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0
    }

    /// Whether every byte is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for MacAddr {
    type Err = AddrParseError;

    /// Six colon-separated pairs of hex digits, `02:00:0a:00:01:0a`.
    fn from_str(s: &str) -> Result<MacAddr, AddrParseError> {
        const EXPECTED: &str = "expected six colon-separated hex pairs, like 02:00:0a:00:01:0a";
        // Exactly `hh:hh:hh:hh:hh:hh`: read byte by byte (the etcd watcher parses one per
        // instance record it reads).
        let hex = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let b = s.as_bytes();
        if b.len() != 17 {
            return Err(AddrParseError(EXPECTED));
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && b[at - 1] != b':' {
                return Err(AddrParseError(EXPECTED));
            }
            let (Some(hi), Some(lo)) = (hex(b[at]), hex(b[at + 1])) else {
                return Err(AddrParseError(EXPECTED));
            };
            *byte = hi << 4 | lo;
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parse_and_relations() {
        let vpc: Cidr = "10.0.0.0/16".parse().unwrap();
        let sub: Cidr = "10.0.1.0/24".parse().unwrap();
        assert_eq!(vpc.to_string(), "10.0.0.0/16");
        assert!(vpc.contains_cidr(&sub));
        assert!(!sub.contains_cidr(&vpc));
        assert!(vpc.overlaps(&sub) && sub.overlaps(&vpc));
        assert!(sub.contains(Ipv4Addr::new(10, 0, 1, 255)));
        assert!(!sub.contains(Ipv4Addr::new(10, 0, 2, 0)));
        assert_eq!(sub.broadcast(), Ipv4Addr::new(10, 0, 1, 255));
        assert_eq!(sub.nth(3), Some(Ipv4Addr::new(10, 0, 1, 3)));
        assert_eq!(sub.nth(256), None);
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        for bad in [
            "10.0.0.1/16",
            "10.0.0.0/33",
            "10.0.0.0",
            "10.0.0/8",
            "10.0.0.0/-1",
            "x/8",
            "10.0.0.0/ 8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mac_parse_print_derive() {
        let m: MacAddr = "02:00:0A:00:01:0a".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:0a:00:01:0a");
        assert_eq!(MacAddr::from_ip(Ipv4Addr::new(10, 0, 1, 10)), m);
        assert!(m.is_unicast());
        assert!(!"01:00:5e:00:00:01".parse::<MacAddr>().unwrap().is_unicast());
        for bad in [
            "02:00:0a:00:01",
            "02:00:0a:00:01:0a:00",
            "2:00:0a:00:01:0a",
            "02-00-0a-00-01-0a",
            "zz:00:0a:00:01:0a",
            "02:00:0a:00:01:0a:",
            "02:00:0a:00:01::a",
            "+2:00:0a:00:01:0a",
            "0200:0a:00:01:0a:",
            "02:00:0a:00:01:0\u{e9}",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
