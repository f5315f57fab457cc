//! Longest-prefix match over the few prefixes of one VPC.
//!
//! A VPC routes its own CIDR, its peers' CIDRs and its VPN, Direct Connect and endpoint
//! prefixes: a handful, tens at most (AWS allows 50 routes per table by default). For that
//! size the fastest structure is the plainest: the prefixes sorted longest first, kept as
//! `(network, mask)` pairs in one contiguous array, scanned until the first match. One
//! cache line holds eight prefixes; the scan has no pointer chasing and no allocation.
//!
//! A burst's destinations mostly share a prefix, so [`PrefixTable::get_hinted`] tries the
//! prefix the previous lookup matched first: when it holds the address and no longer
//! prefix of the table lies inside it (`alone`, known when the table is built), it is the
//! longest match and the scan is skipped.

use std::net::Ipv4Addr;

use crate::net::Cidr;

/// Prefixes with a target each; [`PrefixTable::lookup`] returns the longest match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixTable<T> {
    /// `(network, mask)`, longest prefix first.
    keys: Vec<(u32, u32)>,
    targets: Vec<T>,
    /// Per prefix: no longer prefix of the table lies inside it, so a match of this one
    /// is the longest match.
    alone: Vec<bool>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable {
            keys: Vec::new(),
            targets: Vec::new(),
            alone: Vec::new(),
        }
    }
}

impl<T: Copy> PrefixTable<T> {
    /// Builds the table. When the same prefix is given twice, the first one given wins.
    pub fn new(entries: impl IntoIterator<Item = (Cidr, T)>) -> Self {
        let mut entries: Vec<(Cidr, T)> = entries.into_iter().collect();
        // Stable: equal prefixes keep their given order, so `dedup` keeps the first.
        entries.sort_by(|a, b| {
            b.0.prefix_len()
                .cmp(&a.0.prefix_len())
                .then(a.0.network_u32().cmp(&b.0.network_u32()))
        });
        entries.dedup_by(|later, first| later.0 == first.0);
        let keys = entries
            .iter()
            .map(|(c, _)| (c.network_u32(), c.mask()))
            .collect::<Vec<(u32, u32)>>();
        let alone = alone(&keys);
        let targets = entries.into_iter().map(|(_, t)| t).collect();
        PrefixTable { keys, targets, alone }
    }

    /// The target of the longest prefix holding `ip`.
    #[inline]
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<T> {
        self.get(ip).copied()
    }

    /// [`lookup`](Self::lookup) by reference: a caller that matches on the target reads
    /// its fields where they are, instead of a copy the compiler may assemble on the stack
    /// from pieces (whose field loads then wait for a failed store forwarding).
    #[inline]
    pub fn get(&self, ip: Ipv4Addr) -> Option<&T> {
        let ip = u32::from(ip);
        let i = self.keys.iter().position(|&(net, mask)| ip & mask == net)?;
        self.targets.get(i)
    }

    /// [`get`](Self::get), trying the prefix at `*hint` (the index the previous call left
    /// there; any value is safe) before scanning; leaves the index of the match in `*hint`.
    #[inline]
    pub fn get_hinted(&self, ip: Ipv4Addr, hint: &mut usize) -> Option<&T> {
        let ip = u32::from(ip);
        if let (Some(&(net, mask)), Some(true)) = (self.keys.get(*hint), self.alone.get(*hint).copied()) {
            if ip & mask == net {
                return self.targets.get(*hint);
            }
        }
        let i = self.keys.iter().position(|&(net, mask)| ip & mask == net)?;
        *hint = i;
        self.targets.get(i)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The prefixes and targets, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = (Cidr, T)> + '_ {
        self.keys
            .iter()
            .zip(&self.targets)
            .filter_map(|(&(net, mask), &t)| {
                Cidr::new(Ipv4Addr::from(net), mask.count_ones() as u8)
                    .ok()
                    .map(|c| (c, t))
            })
    }
}

/// Prefixes (longest first) beyond which [`alone`] gives up: a bigger table is always
/// scanned (the check is quadratic).
const ALONE_MAX: usize = 256;

/// Per prefix of `keys` (`(network, mask)`, longest first): whether no earlier (longer or
/// equal) prefix lies inside it.
fn alone(keys: &[(u32, u32)]) -> Vec<bool> {
    if keys.len() > ALONE_MAX {
        return vec![false; keys.len()];
    }
    keys.iter()
        .enumerate()
        .map(|(k, &(net, mask))| {
            !keys.iter().take(k).any(|&(longer, _)| longer & mask == net)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_wins_first_given_wins_ties() {
        let c = |s: &str| s.parse::<Cidr>().unwrap();
        let t = PrefixTable::new([
            (c("10.0.0.0/16"), 1),
            (c("10.0.5.0/24"), 2),
            (c("0.0.0.0/0"), 3),
            (c("10.0.5.0/24"), 4),
        ]);
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(Ipv4Addr::new(10, 0, 5, 1)), Some(2));
        assert_eq!(t.lookup(Ipv4Addr::new(10, 0, 6, 1)), Some(1));
        assert_eq!(t.lookup(Ipv4Addr::new(11, 0, 0, 1)), Some(3));
        let empty: PrefixTable<u8> = PrefixTable::new([]);
        assert_eq!(empty.lookup(Ipv4Addr::new(1, 1, 1, 1)), None);
        assert_eq!(t.get(Ipv4Addr::new(10, 0, 5, 1)), Some(&2));
        assert_eq!(empty.get(Ipv4Addr::new(1, 1, 1, 1)), None);
        assert_eq!(
            t.iter().map(|(c, _)| c.prefix_len()).collect::<Vec<_>>(),
            [24, 16, 0]
        );
    }

    /// The hinted lookup answers as the scan does whatever the hint, and a hint on a
    /// prefix with a longer one inside it is not trusted.
    #[test]
    fn hinted_matches_the_scan() {
        let prefixes = ["10.0.0.0/16", "10.0.5.0/24", "10.1.0.0/16", "10.0.5.128/25", "0.0.0.0/0"];
        let t = PrefixTable::new(prefixes.iter().zip(1..).map(|(p, t)| (p.parse::<Cidr>().unwrap(), t)));
        let ips = [
            Ipv4Addr::new(10, 0, 5, 1), Ipv4Addr::new(10, 0, 5, 200), Ipv4Addr::new(10, 0, 6, 1),
            Ipv4Addr::new(10, 1, 0, 9), Ipv4Addr::new(11, 0, 0, 1), Ipv4Addr::new(10, 0, 5, 129),
        ];
        for start in [0, 1, 2, 3, 4, 5, usize::MAX] {
            let mut hint = start;
            for _ in 0..2 {
                for ip in ips {
                    assert_eq!(t.get_hinted(ip, &mut hint), t.get(ip), "{ip} from {start}");
                }
            }
        }
        // The /16 holding the /24 and /25 and the default route are never alone.
        let mut hint = 0;
        assert_eq!(t.get_hinted(Ipv4Addr::new(10, 0, 6, 1), &mut hint), Some(&1));
        assert_eq!(t.get_hinted(Ipv4Addr::new(10, 0, 5, 1), &mut hint), Some(&2));
        let empty: PrefixTable<u8> = PrefixTable::new([]);
        assert_eq!(empty.get_hinted(Ipv4Addr::new(1, 1, 1, 1), &mut hint), None);
    }
}
