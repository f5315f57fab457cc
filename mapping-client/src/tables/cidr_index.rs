//! The CIDRs of the VPCs in a card's view, indexed: which VPCs hold an address, at a cost
//! that does not depend on how many VPCs there are.
//!
//! One hash map keyed by the prefix (length and network) gives the VNIs of the VPCs with
//! exactly that CIDR (sorted: two VPCs may share a CIDR, as every account's default VPC is
//! 172.31.0.0/16), and a 33-bit set says which prefix lengths are in use. A lookup masks
//! the address once per length in use, longest first, and probes the map: VPC CIDRs are
//! /16 to /28, so at most 13 probes, and one in a world whose VPCs share a prefix length,
//! whether it has one VPC or thousands. A change (a VPC entering or leaving the view, or
//! its CIDR changing) touches one key.
//!
//! The representation is canonical (no empty entries, sorted VNIs), so two indexes of the
//! same VPCs are equal (`==`) however they were built: what lets [`super::Tables`] keep its
//! contract that deltas and rebuilds agree.

use std::net::Ipv4Addr;

use hashbrown::HashMap;

use crate::net::Cidr;

/// VPC CIDRs -> VNIs. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrIndex {
    /// [`key`] -> the VNIs with that CIDR, sorted, never empty.
    by_prefix: HashMap<u64, Vec<u32>>,
    /// Distinct CIDRs per prefix length.
    per_len: [u32; 33],
    /// Bit `l` set when some CIDR has prefix length `l`.
    lengths: u64,
}

impl Default for CidrIndex {
    fn default() -> Self {
        CidrIndex { by_prefix: HashMap::new(), per_len: [0; 33], lengths: 0 }
    }
}

#[inline(always)]
fn key(len: u32, net: u32) -> u64 {
    (u64::from(len) << 32) | u64::from(net)
}

#[inline(always)]
fn mask(len: u32) -> u32 {
    u32::MAX.checked_shl(32 - len).unwrap_or(0)
}

impl CidrIndex {
    /// Adds VPC `vni` with `cidr` (nothing if it is there already).
    pub fn insert(&mut self, cidr: Cidr, vni: u32) {
        let len = u32::from(cidr.prefix_len());
        let vnis = self.by_prefix.entry(key(len, cidr.network_u32())).or_default();
        if let Err(at) = vnis.binary_search(&vni) {
            vnis.insert(at, vni);
            if vnis.len() == 1 {
                self.count(len, true);
            }
        }
    }

    /// Removes VPC `vni` with `cidr` (nothing if it is not there).
    pub fn remove(&mut self, cidr: Cidr, vni: u32) {
        let len = u32::from(cidr.prefix_len());
        let k = key(len, cidr.network_u32());
        let Some(vnis) = self.by_prefix.get_mut(&k) else {
            return;
        };
        if let Ok(at) = vnis.binary_search(&vni) {
            vnis.remove(at);
            if vnis.is_empty() {
                self.by_prefix.remove(&k);
                self.count(len, false);
            }
        }
    }

    fn count(&mut self, len: u32, up: bool) {
        let Some(n) = self.per_len.get_mut(len as usize) else {
            return;
        };
        *n = if up { n.saturating_add(1) } else { n.saturating_sub(1) };
        if *n == 0 {
            self.lengths &= !(1 << len);
        } else {
            self.lengths |= 1 << len;
        }
    }

    /// A VPC other than `own` whose CIDR holds `ip`: of the most specific such CIDR, the
    /// smallest VNI. One probe per prefix length in use.
    #[inline]
    pub fn other_than(&self, own: u32, ip: Ipv4Addr) -> Option<u32> {
        let ip = u32::from(ip);
        let mut lengths = self.lengths;
        while lengths != 0 {
            let len = 63 - lengths.leading_zeros();
            lengths &= !(1 << len);
            if let Some(vnis) = self.by_prefix.get(&key(len, ip & mask(len))) {
                // Sorted and distinct: `own` is at most one of the first two.
                if let Some(&vni) = vnis.iter().take(2).find(|&&v| v != own) {
                    return Some(vni);
                }
            }
        }
        None
    }

    /// The (CIDR, VNI) pairs held (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (Cidr, u32)> + '_ {
        self.by_prefix.iter().flat_map(|(&k, vnis)| {
            let cidr = Cidr::new(Ipv4Addr::from(k as u32), (k >> 32) as u8).ok();
            vnis.iter().filter_map(move |&v| cidr.map(|c| (c, v)))
        })
    }

    /// Number of (CIDR, VNI) pairs held.
    pub fn len(&self) -> usize {
        self.by_prefix.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn most_specific_other_vpc_smallest_vni_first() {
        let mut x = CidrIndex::default();
        x.insert(c("10.0.0.0/16"), 101);
        x.insert(c("10.0.0.0/16"), 105);
        x.insert(c("10.0.4.0/24"), 107);
        x.insert(c("10.1.0.0/16"), 102);
        assert_eq!(x.len(), 4);
        // Own VPC only: nothing else.
        assert_eq!(x.other_than(102, ip("10.1.2.3")), None);
        assert_eq!(x.other_than(101, ip("10.1.2.3")), Some(102));
        // Two VPCs share 10.0.0.0/16: the other one of them.
        assert_eq!(x.other_than(101, ip("10.0.9.9")), Some(105));
        assert_eq!(x.other_than(105, ip("10.0.9.9")), Some(101));
        assert_eq!(x.other_than(1, ip("10.0.9.9")), Some(101));
        // Inside the /24 too: the /24 is more specific.
        assert_eq!(x.other_than(101, ip("10.0.4.1")), Some(107));
        assert_eq!(x.other_than(107, ip("10.0.4.1")), Some(101));
        assert_eq!(x.other_than(101, ip("8.8.8.8")), None);
        // Removing is exact, and what is not there is ignored.
        x.remove(c("10.0.0.0/16"), 101);
        x.remove(c("10.0.0.0/16"), 101);
        x.remove(c("10.9.0.0/16"), 101);
        assert_eq!(x.other_than(107, ip("10.0.4.1")), Some(105));
        x.remove(c("10.0.4.0/24"), 107);
        assert_eq!(x.other_than(105, ip("10.0.4.1")), None);
        // Inserting twice holds once.
        x.insert(c("10.1.0.0/16"), 102);
        assert_eq!(x.len(), 2);
        // The default route and host routes are prefixes like the others.
        x.insert(c("0.0.0.0/0"), 9);
        x.insert(c("192.0.2.1/32"), 8);
        assert_eq!(x.other_than(1, ip("192.0.2.1")), Some(8));
        assert_eq!(x.other_than(8, ip("192.0.2.1")), Some(9));
        assert_eq!(x.other_than(9, ip("192.0.2.2")), None);
    }

    #[test]
    fn same_vpcs_same_index_whatever_the_order() {
        let pairs = [("10.0.0.0/16", 3), ("10.0.0.0/16", 1), ("10.0.0.0/20", 2), ("172.31.0.0/16", 4)];
        let mut a = CidrIndex::default();
        for (cidr, v) in pairs {
            a.insert(c(cidr), v);
        }
        let mut b = CidrIndex::default();
        b.insert(c("10.5.0.0/16"), 9);
        for (cidr, v) in pairs.iter().rev() {
            b.insert(c(cidr), *v);
        }
        assert_ne!(a, b);
        b.remove(c("10.5.0.0/16"), 9);
        assert_eq!(a, b);
        let mut all: Vec<(Cidr, u32)> = a.iter().collect();
        all.sort();
        let mut want: Vec<(Cidr, u32)> = pairs.iter().map(|(s, v)| (c(s), *v)).collect();
        want.sort();
        assert_eq!(all, want);
        for (cidr, v) in pairs {
            a.remove(c(cidr), v);
        }
        assert!(a.is_empty());
        assert_eq!(a, CidrIndex::default());
    }

    /// The scan the index replaces: every VPC, the first one found other than `own` that
    /// holds `ip`. Any one of several may be found; the index answers the most specific,
    /// smallest VNI, which is one of them.
    fn scan(vpcs: &[(Cidr, u32)], own: u32, ip: Ipv4Addr) -> Option<u32> {
        vpcs.iter().find(|(c, v)| *v != own && c.contains(ip)).map(|(_, v)| *v)
    }

    fn rule(vpcs: &[(Cidr, u32)], own: u32, ip: Ipv4Addr) -> Option<u32> {
        vpcs.iter()
            .filter(|(c, v)| *v != own && c.contains(ip))
            .min_by_key(|(c, v)| (std::cmp::Reverse(c.prefix_len()), *v))
            .map(|(_, v)| *v)
    }

    /// CIDRs in a small space (10.0.0.0/14 at lengths 14 to 28), so that they overlap,
    /// nest and repeat.
    fn cidr() -> impl Strategy<Value = Cidr> {
        (14u8..=28, any::<u32>()).prop_map(|(len, bits)| {
            let net = (0x0a00_0000 | (bits & 0x0003_ffff)) & mask(u32::from(len));
            Cidr::new(Ipv4Addr::from(net), len).unwrap()
        })
    }

    proptest! {
        /// On random worlds changed at random (VPCs added, removed, their CIDR changed),
        /// the index answers what the scan over the VPCs answers.
        #[test]
        fn answers_as_the_scan(
            ops in proptest::collection::vec((0u32..40, proptest::option::of(cidr())), 1..120),
            probes in proptest::collection::vec((0u32..42, any::<u32>()), 64),
        ) {
            // The VPCs of the view: VNI -> CIDR, as Tables holds them.
            let mut vpcs: std::collections::BTreeMap<u32, Cidr> = Default::default();
            let mut x = CidrIndex::default();
            for (vni, change) in ops {
                if let Some(old) = vpcs.remove(&vni) {
                    x.remove(old, vni);
                }
                if let Some(cidr) = change {
                    vpcs.insert(vni, cidr);
                    x.insert(cidr, vni);
                }
                let list: Vec<(Cidr, u32)> = vpcs.iter().map(|(v, c)| (*c, *v)).collect();
                prop_assert_eq!(x.len(), list.len());
                for &(own, bits) in &probes {
                    // Half the probes inside the space the CIDRs are drawn from.
                    let ip = Ipv4Addr::from(if bits & 1 == 0 { 0x0a00_0000 | (bits >> 14) } else { bits });
                    let got = x.other_than(own, ip);
                    prop_assert_eq!(got.is_some(), scan(&list, own, ip).is_some());
                    prop_assert_eq!(got, rule(&list, own, ip));
                }
            }
            // Built at once from the final VPCs: the same index.
            let mut fresh = CidrIndex::default();
            for (v, c) in &vpcs {
                fresh.insert(*c, *v);
            }
            prop_assert_eq!(fresh, x);
        }
    }
}
