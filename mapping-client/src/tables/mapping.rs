//! The exact-match mapping table: (VNI, IPv4) -> [`Location`].
//!
//! A `hashbrown::HashTable` of 24-byte slots (the packed `u64` key and the 16-byte
//! location), hashed by one 64x64->128-bit multiply folded to 64 bits: the key is
//! `vni << 32 | ip`, so every key bit reaches both the bucket index (low bits) and the
//! 7-bit tag hashbrown keeps in its control bytes (high bits). With hashbrown's 7/8 load
//! factor and power-of-two bucket counts, one mapping costs 25 bytes per bucket (slot and
//! control byte) times 1.14..2.3 buckets per mapping: 29 to 57 bytes.
//!
//! # Burst lookups and prefetching
//!
//! [`MappingTable::lookup_burst`] hashes the whole burst first (a pass of pure arithmetic
//! with no loads), then probes every key with its precomputed hash through
//! `HashTable::find`. hashbrown exposes no prefetch, and issuing one ourselves would need
//! `unsafe` and the table's internal layout, which this crate does not use; instead the
//! probes of a burst are independent of each other, so the CPU's out-of-order window
//! overlaps their cache misses (the second pass starts its loads back to back, without
//! waiting on a hash computed in between).

use std::fmt;
use std::net::Ipv4Addr;

use hashbrown::hash_table::{Entry, HashTable};

use super::Location;

/// Keys resolved per inner batch of [`MappingTable::lookup_burst`]: the DPDK burst size.
pub const BURST: usize = 32;

#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    loc: Location,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 24);

/// The packed key: VNI in the high half, the address in the low half.
#[inline(always)]
pub(crate) fn pack(vni: u32, ip: Ipv4Addr) -> u64 {
    (u64::from(vni) << 32) | u64::from(u32::from(ip))
}

#[inline(always)]
pub(crate) fn unpack(key: u64) -> (u32, Ipv4Addr) {
    ((key >> 32) as u32, Ipv4Addr::from(key as u32))
}

/// Folded multiply: the two halves of `key * K` xor-ed together.
#[inline(always)]
fn hash(key: u64) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let full = u128::from(key ^ (key >> 32).rotate_left(17)) * u128::from(K);
    (full as u64) ^ ((full >> 64) as u64)
}

/// (VNI, address) -> [`Location`]. See the module documentation.
#[derive(Clone, Default)]
pub struct MappingTable {
    table: HashTable<Slot>,
}

impl MappingTable {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Makes room for `additional` more mappings without rehashing.
    pub fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional, |s| hash(s.key));
    }

    /// Heap bytes held by the table (slots and control bytes).
    pub fn allocation_size(&self) -> usize {
        self.table.allocation_size()
    }

    #[inline]
    pub fn get(&self, vni: u32, ip: Ipv4Addr) -> Option<Location> {
        let key = pack(vni, ip);
        self.table.find(hash(key), |s| s.key == key).map(|s| s.loc)
    }

    /// Inserts or replaces; returns the previous location.
    pub fn insert(&mut self, vni: u32, ip: Ipv4Addr, loc: Location) -> Option<Location> {
        let key = pack(vni, ip);
        match self
            .table
            .entry(hash(key), |s| s.key == key, |s| hash(s.key))
        {
            Entry::Occupied(mut e) => Some(std::mem::replace(&mut e.get_mut().loc, loc)),
            Entry::Vacant(e) => {
                e.insert(Slot { key, loc });
                None
            }
        }
    }

    pub fn remove(&mut self, vni: u32, ip: Ipv4Addr) -> Option<Location> {
        let key = pack(vni, ip);
        match self.table.find_entry(hash(key), |s| s.key == key) {
            Ok(e) => Some(e.remove().0.loc),
            Err(_) => None,
        }
    }

    /// Looks up `min(keys.len(), out.len())` keys, writing `out[i]` for `keys[i]`.
    pub fn lookup_burst(&self, keys: &[(u32, Ipv4Addr)], out: &mut [Option<Location>]) {
        for (keys, out) in keys.chunks(BURST).zip(out.chunks_mut(BURST)) {
            let mut packed = [0u64; BURST];
            let mut hashes = [0u64; BURST];
            for ((&(vni, ip), p), h) in keys.iter().zip(&mut packed).zip(&mut hashes) {
                *p = pack(vni, ip);
                *h = hash(*p);
            }
            for ((o, &key), &h) in out
                .iter_mut()
                .zip(packed.iter().take(keys.len()))
                .zip(&hashes)
            {
                *o = self.table.find(h, |s| s.key == key).map(|s| s.loc);
            }
        }
    }

    /// Every mapping, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Ipv4Addr, Location)> + '_ {
        self.table.iter().map(|s| {
            let (vni, ip) = unpack(s.key);
            (vni, ip, s.loc)
        })
    }
}

impl PartialEq for MappingTable {
    fn eq(&self, other: &MappingTable) -> bool {
        self.len() == other.len()
            && self.table.iter().all(|s| {
                let (vni, ip) = unpack(s.key);
                other.get(vni, ip) == Some(s.loc)
            })
    }
}

impl Eq for MappingTable {}

impl fmt::Debug for MappingTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappingTable")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EniId, MacAddr, SubnetId};

    fn loc(n: u32) -> Location {
        Location {
            pa: Ipv4Addr::from(0xc612_0000 + n),
            eni: EniId(n),
            mac: MacAddr([2, 0, 0, 0, 0, n as u8]),
            subnet: SubnetId(n as u16),
        }
    }

    #[test]
    fn insert_get_remove_burst() {
        let mut t = MappingTable::default();
        for i in 0..1000u32 {
            assert_eq!(t.insert(7, Ipv4Addr::from(0x0a00_0000 + i), loc(i)), None);
        }
        assert_eq!(
            t.insert(7, Ipv4Addr::from(0x0a00_0005), loc(99)),
            Some(loc(5))
        );
        assert_eq!(t.get(7, Ipv4Addr::from(0x0a00_0005)), Some(loc(99)));
        assert_eq!(t.get(8, Ipv4Addr::from(0x0a00_0005)), None);
        assert_eq!(t.remove(7, Ipv4Addr::from(0x0a00_0006)), Some(loc(6)));
        assert_eq!(t.remove(7, Ipv4Addr::from(0x0a00_0006)), None);
        let keys: Vec<_> = (0..100u32)
            .map(|i| (7, Ipv4Addr::from(0x0a00_0000 + i)))
            .collect();
        let mut out = vec![None; 100];
        t.lookup_burst(&keys, &mut out);
        for (i, o) in out.iter().enumerate() {
            let want = match i {
                5 => Some(loc(99)),
                6 => None,
                _ => Some(loc(i as u32)),
            };
            assert_eq!(*o, want, "{i}");
        }
        let mut short = vec![None; 3];
        t.lookup_burst(&keys, &mut short);
        assert_eq!(short, vec![Some(loc(0)), Some(loc(1)), Some(loc(2))]);
        // A longer `out` keeps its tail.
        let mut long = vec![Some(loc(77)); 40];
        t.lookup_burst(&keys[..33], &mut long);
        assert_eq!(long[32], Some(loc(32)));
        assert!(long[33..].iter().all(|o| *o == Some(loc(77))));
    }
}
