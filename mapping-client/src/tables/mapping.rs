//! The exact-match tables keyed by (VNI, IPv4): the mapping table (-> [`Location`]) and
//! the edge's Elastic IP table (private address -> Elastic IP), one generic
//! [`ExactTable`].
//!
//! An open-addressing table of our own: one flat array of 24-byte slots (the packed `u64`
//! key `vni << 32 | ip` and the 16-byte location side by side), any number of them (not
//! only powers of two), linear probing that wraps at the last slot, hashed by one
//! 64x64->128-bit multiply folded to 64 bits, the home slot picked by multiply-shift range
//! reduction (`hash * slots >> 64`, the high bits of the hash). A hit therefore reads one cache line (two when the slot, or the
//! short run of probed slots, straddles a line boundary), and there is no separate control
//! array to read first.
//!
//! * **Empty slots** hold the key [`EMPTY`] (`u64::MAX`: VNI `0xffff_ffff`, address
//!   255.255.255.255). That one real key, should anyone map it, lives out of line in
//!   `special`.
//! * **Load factor** at most 13/16, growing by half (or to what a `reserve` needs): there
//!   is always an empty slot, so every probe sequence ends (at a match or at an empty slot)
//!   within one pass. Expected probe lengths at 13/16 are about 3 slots for a hit and 15
//!   for a miss; right after a growth the load is 0.54, after a `reserve` up to 0.81.
//! * **Removal** by backward shift (no tombstones): the run after the hole is compacted,
//!   so probe lengths never degrade under churn, and every op stays O(1) amortised.
//! * **Memory**: 24 bytes per slot and 0.54..0.81 mappings per slot, i.e. 29.5 to 44 bytes
//!   per mapping for one version (1 M mappings reserved: 1.23 M slots, 29.5 bytes).
//!
//! # Burst lookups: touching before probing
//!
//! [`MappingTable::lookup_burst`] works in batches of [`BURST`] keys, in two passes:
//!
//! 1. hash every key to its home slot and *load* the slot's first and last words (its key
//!    and the location's last field: together every cache line the slot spans), folding
//!    them into an accumulator handed to [`std::hint::black_box`] so the loads are kept.
//!    These loads depend on nothing but the key, and there is no data-dependent branch
//!    among them, so the out-of-order core issues the batch's cache and TLB misses
//!    together (memory-level parallelism) instead of one probe after the other;
//! 2. probe every key from its home slot, now mostly hitting L1.
//!
//! This is a software prefetch made of ordinary loads: safe code, no intrinsics.
//!
//! A caller with work to overlap the misses with (the Nitro card's route and verify-recv
//! stages, which learn their keys one packet at a time) instead hashes each key once as
//! soon as it knows it ([`ExactTable::home_of`]), prefetches that slot
//! ([`ExactTable::slot_at`], `pipeline::prefetch`), and later probes from that home
//! ([`ExactTable::get_homed`]): the probe alone, no second hash, no touch pass.

use std::fmt;
use std::hint::black_box;
use std::net::Ipv4Addr;

use super::Location;
use crate::{EniId, MacAddr, SubnetId};

/// Keys resolved per inner batch of [`MappingTable::lookup_burst`]: the DPDK burst size.
pub const BURST: usize = 32;

/// The key of an empty slot (and of the one real key kept out of line, in `special`).
const EMPTY: u64 = u64::MAX;

/// Smallest table (in bytes: a core's L2 cache here) whose burst lookups touch every
/// home slot first.
const TOUCH_MIN_BYTES: usize = 512 << 10;

/// Smallest non-zero number of slots.
const MIN_SLOTS: usize = 16;

/// What an empty slot's location holds (never read as an answer).
const NO_LOCATION: Location = Location {
    pa: Ipv4Addr::UNSPECIFIED,
    eni: EniId(0),
    mac: MacAddr([0; 6]),
    subnet: SubnetId(0),
};

/// A value an [`ExactTable`] holds next to its key.
pub trait SlotValue: Copy + PartialEq {
    /// What an empty slot holds (never read as an answer).
    const VACANT: Self;
    /// A word of the value's last bytes: the burst lookup's touch pass loads it with the
    /// key so that every cache line of the slot is read.
    fn tail_word(&self) -> u64;
}

impl SlotValue for Location {
    const VACANT: Location = NO_LOCATION;
    #[inline(always)]
    fn tail_word(&self) -> u64 {
        u64::from(self.subnet.0)
    }
}

impl SlotValue for Ipv4Addr {
    const VACANT: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    #[inline(always)]
    fn tail_word(&self) -> u64 {
        u64::from(u32::from(*self))
    }
}

/// One slot of an [`ExactTable`]: a key and its value side by side. Opaque: callers only
/// get a reference to one ([`ExactTable::slot_at`]) to prefetch it.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Slot<V> {
    key: u64,
    loc: V,
}

const _: () = assert!(std::mem::size_of::<Slot<Location>>() == 24);
const _: () = assert!(std::mem::size_of::<Slot<Ipv4Addr>>() == 16);

impl<V: SlotValue> Slot<V> {
    const EMPTY: Slot<V> = Slot { key: EMPTY, loc: V::VACANT };
}

/// One key and where its probe starts in one [`ExactTable`] ([`ExactTable::home_of`]):
/// the key packed and hashed once, carried from a prefetch to
/// [`ExactTable::get_homed`] (which needs nothing else).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Home {
    key: u64,
    slot: usize,
}

impl Home {
    /// No key yet: what [`ExactTable::home_of_new`] compares the first key of a burst with
    /// (it holds the one key kept out of line, whose lookup never reads a slot).
    pub const NONE: Home = Home { key: EMPTY, slot: usize::MAX };
}

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

/// Slots needed to hold `n` mappings within the 13/16 load factor (0 for none).
fn slots_for(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    n.saturating_mul(16).div_ceil(13).max(MIN_SLOTS)
}

/// The slot a hash picks among `slots`: multiply-shift range reduction, always below
/// `slots` (0 for none).
#[inline(always)]
fn reduce(hash: u64, slots: usize) -> usize {
    ((u128::from(hash) * slots as u128) >> 64) as usize
}

/// The slot after `i` among `slots` (wrapping to 0 after the last).
#[inline(always)]
fn next(i: usize, slots: usize) -> usize {
    if i + 1 >= slots {
        0
    } else {
        i + 1
    }
}

/// How many slots after `from` `to` is, probing forward with wrap-around among `slots`
/// (both below `slots`).
#[inline(always)]
fn distance(from: usize, to: usize, slots: usize) -> usize {
    if to >= from {
        to - from
    } else {
        to + slots - from
    }
}

/// (VNI, address) -> [`Location`]. See the module documentation.
pub type MappingTable = ExactTable<Location>;

/// (VNI, private address) -> Elastic IP: the edge's SNAT table (16-byte slots).
pub type ElasticIpTable = ExactTable<Ipv4Addr>;

/// (VNI, address) -> `V`, open addressing. See the module documentation.
#[derive(Clone)]
pub struct ExactTable<V> {
    /// At least [`MIN_SLOTS`] of them, or none.
    slots: Vec<Slot<V>>,
    /// Mappings held, `special` included.
    len: usize,
    /// The value of the key [`EMPTY`], which cannot live in a slot.
    special: Option<V>,
}

impl<V> Default for ExactTable<V> {
    fn default() -> Self {
        ExactTable { slots: Vec::new(), len: 0, special: None }
    }
}

impl<V: SlotValue> ExactTable<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes room for `additional` more mappings without rehashing.
    pub fn reserve(&mut self, additional: usize) {
        let want = slots_for(self.len.saturating_add(additional));
        if want > self.slots.len() {
            self.rehash(want);
        }
    }

    /// Heap bytes held by the table (every slot, empty or not).
    pub fn allocation_size(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<V>>()
    }

    /// The home slot of `key`.
    #[inline(always)]
    fn home(&self, key: u64) -> usize {
        reduce(hash(key), self.slots.len())
    }

    /// The home of (`vni`, `ip`) in this table: hashed once, for [`slot_at`](Self::slot_at)
    /// (what to prefetch) and [`get_homed`](Self::get_homed).
    #[inline(always)]
    pub fn home_of(&self, vni: u32, ip: Ipv4Addr) -> Home {
        let key = pack(vni, ip);
        Home { key, slot: self.home(key) }
    }

    /// [`home_of`](Self::home_of) (`vni`, `ip`), or `None` when that is the key of `prev`
    /// (a home from this table, or [`Home::NONE`]), whose home it is then: a packet with
    /// the same key as the one before it is neither hashed nor prefetched again.
    #[inline(always)]
    pub fn home_of_new(&self, prev: Home, vni: u32, ip: Ipv4Addr) -> Option<Home> {
        let key = pack(vni, ip);
        (key != prev.key).then(|| Home { key, slot: self.home(key) })
    }

    /// The slot at `home` (`None` for an empty table), to prefetch (slot and its end) some
    /// work ahead of [`get_homed`](Self::get_homed).
    #[inline(always)]
    pub fn slot_at(&self, home: Home) -> Option<&Slot<V>> {
        self.slots.get(home.slot)
    }

    /// Probes from `i` (the home slot of `key`, not [`EMPTY`]).
    #[inline(always)]
    fn probe(&self, key: u64, i: usize) -> Option<V> {
        self.probe_ref(key, i).copied()
    }

    /// [`probe`](Self::probe), answering the slot's value in place.
    #[inline(always)]
    fn probe_ref(&self, key: u64, mut i: usize) -> Option<&V> {
        // Ends: a load factor below one leaves an empty slot (and `get` fails only on an
        // empty table, which `lookup_*` check first).
        let n = self.slots.len();
        loop {
            let s = self.slots.get(i)?;
            if s.key == key {
                return Some(&s.loc);
            }
            if s.key == EMPTY {
                return None;
            }
            i = next(i, n);
        }
    }

    #[inline]
    pub fn get(&self, vni: u32, ip: Ipv4Addr) -> Option<V> {
        let key = pack(vni, ip);
        if key == EMPTY {
            return self.special;
        }
        self.probe(key, self.home(key))
    }

    /// The slot holding `key` (not [`EMPTY`]), or the empty slot ending its probe run.
    fn find_slot(&self, key: u64) -> Result<usize, usize> {
        let mut i = self.home(key);
        let n = self.slots.len();
        loop {
            match self.slots.get(i).map(|s| s.key) {
                Some(k) if k == key => return Ok(i),
                Some(EMPTY) | None => return Err(i),
                Some(_) => i = next(i, n),
            }
        }
    }

    /// Moves every mapping to a table of `slots` slots (above `len`).
    fn rehash(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Slot::EMPTY; slots]);
        for s in old.into_iter().filter(|s| s.key != EMPTY) {
            if let Err(i) = self.find_slot(s.key) {
                if let Some(dst) = self.slots.get_mut(i) {
                    *dst = s;
                }
            }
        }
    }

    /// Inserts or replaces; returns the previous location.
    pub fn insert(&mut self, vni: u32, ip: Ipv4Addr, loc: V) -> Option<V> {
        let key = pack(vni, ip);
        if key == EMPTY {
            let old = self.special.replace(loc);
            if old.is_none() {
                self.len += 1;
            }
            return old;
        }
        if !self.slots.is_empty() {
            if let Ok(i) = self.find_slot(key) {
                return self
                    .slots
                    .get_mut(i)
                    .map(|s| std::mem::replace(&mut s.loc, loc));
            }
        }
        // A new key: grow first if it would pass the load factor.
        let need = slots_for(self.len + 1);
        if need > self.slots.len() {
            self.rehash(need.max(self.slots.len().saturating_add(self.slots.len() / 2)));
        }
        if let Err(i) = self.find_slot(key) {
            if let Some(s) = self.slots.get_mut(i) {
                *s = Slot { key, loc };
                self.len += 1;
            }
        }
        None
    }

    pub fn remove(&mut self, vni: u32, ip: Ipv4Addr) -> Option<V> {
        let key = pack(vni, ip);
        if key == EMPTY {
            let old = self.special.take();
            if old.is_some() {
                self.len -= 1;
            }
            return old;
        }
        if self.slots.is_empty() {
            return None;
        }
        let mut hole = self.find_slot(key).ok()?;
        let old = self.slots.get(hole)?.loc;
        self.len -= 1;
        // Backward shift: pull up every later slot of the run whose home is not in
        // (hole, slot] (cyclically), so that no probe run has a gap.
        let n = self.slots.len();
        let mut j = next(hole, n);
        while let Some(&s) = self.slots.get(j) {
            if s.key == EMPTY {
                break;
            }
            let home = self.home(s.key);
            if distance(home, j, n) >= distance(hole, j, n) {
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = s;
                }
                hole = j;
            }
            j = next(j, n);
        }
        if let Some(h) = self.slots.get_mut(hole) {
            *h = Slot::EMPTY;
        }
        Some(old)
    }

    /// Looks up `min(keys.len(), out.len())` keys, writing `out[i]` for `keys[i]`.
    pub fn lookup_burst(&self, keys: &[(u32, Ipv4Addr)], out: &mut [Option<V>]) {
        if self.slots.is_empty() {
            for (o, &(vni, ip)) in out.iter_mut().zip(keys) {
                *o = self.get(vni, ip);
            }
            return;
        }
        let n = self.slots.len();
        for (keys, out) in keys.chunks(BURST).zip(out.chunks_mut(BURST)) {
            // Pass 1: hash, and touch the home slot's first and last word (see the module
            // docs).
            let mut homes = [0usize; BURST];
            for (&(vni, ip), h) in keys.iter().zip(&mut homes) {
                *h = reduce(hash(pack(vni, ip)), n);
            }
            // A loop of loads alone, so that the whole batch fits the out-of-order window.
            // Pointless for a table the size of a core's L2 cache: skipped.
            if self.slots.len() * std::mem::size_of::<Slot<V>>() >= TOUCH_MIN_BYTES {
                let mut touched = 0u64;
                for &home in homes.iter().take(keys.len()) {
                    if let Some(s) = self.slots.get(home) {
                        touched = touched.wrapping_add(s.key ^ s.loc.tail_word());
                    }
                }
                black_box(touched);
            }
            // Pass 2: probe.
            for ((o, &(vni, ip)), &home) in out.iter_mut().zip(keys).zip(&homes) {
                let key = pack(vni, ip);
                *o = if key == EMPTY {
                    self.special
                } else {
                    self.probe(key, home)
                };
            }
        }
    }

    /// The value of the key of `home` (from [`home_of`](Self::home_of) on this table,
    /// prefetched some work ahead), in place: the probe alone. A home from another table
    /// (or an older version of this one) can only make the answer `None`: a probe answers
    /// `Some` only from a slot holding the key, and ends at the first empty slot.
    #[inline(always)]
    pub fn get_homed(&self, home: Home) -> Option<&V> {
        if home.key == EMPTY {
            self.special.as_ref()
        } else {
            self.probe_ref(home.key, home.slot)
        }
    }

    /// Every mapping, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Ipv4Addr, V)> + '_ {
        let special = self.special.map(|loc| {
            let (vni, ip) = unpack(EMPTY);
            (vni, ip, loc)
        });
        self.slots
            .iter()
            .filter(|s| s.key != EMPTY)
            .map(|s| {
                let (vni, ip) = unpack(s.key);
                (vni, ip, s.loc)
            })
            .chain(special)
    }
}

impl<V: SlotValue> PartialEq for ExactTable<V> {
    fn eq(&self, other: &ExactTable<V>) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(vni, ip, loc)| other.get(vni, ip) == Some(loc))
    }
}

impl<V: SlotValue> Eq for ExactTable<V> {}

impl<V> fmt::Debug for ExactTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactTable")
            .field("len", &self.len)
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

    /// A xorshift64 generator: the tests' reproducible random keys.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
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

    /// Random inserts and removes (clustered keys, the empty-slot key among them) against
    /// `std::collections::HashMap`, through every read path, across growth and shrinkage.
    #[test]
    fn matches_a_hash_map() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut t = MappingTable::default();
        let mut model = std::collections::HashMap::new();
        let key = |r: u64| -> (u32, Ipv4Addr) {
            if r % 97 == 0 {
                (u32::MAX, Ipv4Addr::BROADCAST)
            } else {
                ((r >> 20) as u32 % 3, Ipv4Addr::from((r as u32) % 3000))
            }
        };
        for step in 0..60_000u32 {
            let r = next();
            let (vni, ip) = key(r >> 8);
            // Mostly inserts early on, mostly removes in the middle third.
            let insert = match step / 20_000 {
                1 => r % 4 == 0,
                _ => r % 4 != 0,
            };
            if insert {
                assert_eq!(
                    t.insert(vni, ip, loc(step)),
                    model.insert((vni, ip), loc(step))
                );
            } else {
                assert_eq!(t.remove(vni, ip), model.remove(&(vni, ip)));
            }
            assert_eq!(t.len(), model.len());
            if step % 1000 == 0 {
                let keys: Vec<_> = (0..200).map(|_| key(next() >> 8)).collect();
                let mut out = vec![None; keys.len()];
                t.lookup_burst(&keys, &mut out);
                for (k, o) in keys.iter().zip(&out) {
                    assert_eq!(*o, model.get(k).copied());
                    assert_eq!(t.get(k.0, k.1), model.get(k).copied());
                }
                assert_eq!(t.iter().count(), model.len());
                for (vni, ip, l) in t.iter() {
                    assert_eq!(model.get(&(vni, ip)), Some(&l));
                }
            }
        }
        assert!(t.allocation_size() >= t.len() * 24);
        // Equality is by content, not layout.
        let mut u = MappingTable::default();
        u.reserve(10 * t.len());
        for (vni, ip, l) in t.iter().collect::<Vec<_>>().into_iter().rev() {
            u.insert(vni, ip, l);
        }
        assert!(t == u);
        u.insert(1, Ipv4Addr::from(123_456), loc(1));
        assert!(t != u);
    }

    /// Small tables (16 to 36 slots: not powers of two once grown, and runs that wrap past
    /// the last slot) under random inserts and removes against a `HashMap`: every read
    /// path agrees, and probe runs wrapped around the end (checked, so that the wrap logic
    /// of the probe and of backward-shift removal is exercised).
    #[test]
    fn wrapping_runs_match_a_hash_map() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut wrapped = 0usize;
        let mut sizes = std::collections::BTreeSet::new();
        for round in 0..3000u32 {
            let mut t = MappingTable::default();
            let mut model = std::collections::HashMap::new();
            // At most 14, 20 or 30 keys: tables of 16 up to 24, 36 or 54 slots.
            let universe = [14u64, 20, 30][round as usize % 3];
            for step in 0..200u32 {
                let r = next();
                let (vni, ip) = (7, Ipv4Addr::from((r % universe) as u32));
                if (r >> 32) % 3 != 0 {
                    assert_eq!(t.insert(vni, ip, loc(step)), model.insert((vni, ip), loc(step)));
                } else {
                    assert_eq!(t.remove(vni, ip), model.remove(&(vni, ip)));
                }
                assert_eq!(t.len(), model.len());
                for (i, s) in t.slots.iter().enumerate() {
                    if s.key != EMPTY && i < t.home(s.key) {
                        wrapped += 1;
                    }
                }
                for k in 0..universe as u32 {
                    let key = (vni, Ipv4Addr::from(k));
                    assert_eq!(t.get(key.0, key.1), model.get(&key).copied(), "round {round} step {step}");
                }
            }
            sizes.insert(t.slots.len());
            let keys: Vec<_> = (0..universe as u32).map(|k| (7, Ipv4Addr::from(k))).collect();
            let mut out = vec![None; keys.len()];
            t.lookup_burst(&keys, &mut out);
            for (k, o) in keys.iter().zip(&out) {
                assert_eq!(*o, model.get(k).copied());
            }
        }
        assert!(wrapped > 1000, "runs wrapped {wrapped} times");
        assert!(sizes.contains(&24) && sizes.contains(&36), "{sizes:?}");
    }

    /// 1 M mappings reserved take 1.23 M slots (load 13/16), not 2^21.
    #[test]
    fn reserve_sizes_to_the_load_factor() {
        let mut t = MappingTable::default();
        t.reserve(1_000_000);
        assert_eq!(t.allocation_size(), 1_230_770 * 24);
        for i in 0..1_000_000u32 {
            t.insert(1, Ipv4Addr::from(i), loc(i));
        }
        assert_eq!(t.allocation_size(), 1_230_770 * 24, "no growth up to what was reserved");
        t.insert(2, Ipv4Addr::from(0), loc(0));
        assert_eq!(t.allocation_size(), 1_846_155 * 24, "then by half");
        assert_eq!(t.get(1, Ipv4Addr::from(999_999)), Some(loc(999_999)));
    }

    /// The homed lookup (homes from `home_of`) answers as `get` and `lookup_burst`,
    /// across growth, removals and the out-of-line key; a home from another table never
    /// gives a wrong `Some`.
    #[test]
    fn homed_lookups_match_get() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut t = MappingTable::default();
        let key = |r: u64| -> (u32, Ipv4Addr) {
            if r % 101 == 0 {
                (u32::MAX, Ipv4Addr::BROADCAST)
            } else {
                ((r >> 24) as u32 % 4, Ipv4Addr::from((r as u32) % 10_000))
            }
        };
        let mut hits = 0usize;
        for round in 0..40u32 {
            for _ in 0..2_000 {
                let r = next();
                if r % 5 == 0 {
                    t.remove(key(r >> 8).0, key(r >> 8).1);
                } else {
                    t.insert(key(r >> 8).0, key(r >> 8).1, loc(round));
                }
            }
            let keys: Vec<_> = (0..100).map(|_| key(next() >> 8)).collect();
            let homes: Vec<_> = keys.iter().map(|&(v, ip)| t.home_of(v, ip)).collect();
            let mut out = vec![None; keys.len()];
            for (o, &h) in out.iter_mut().zip(&homes) {
                *o = t.get_homed(h).copied();
            }
            let mut general = vec![None; keys.len()];
            t.lookup_burst(&keys, &mut general);
            assert_eq!(out, general);
            for (k, o) in keys.iter().zip(&out) {
                assert_eq!(*o, t.get(k.0, k.1));
                hits += usize::from(o.is_some());
            }
            // Homes of a smaller table: answers are the right one or None.
            let mut small = MappingTable::default();
            small.insert(1, Ipv4Addr::LOCALHOST, loc(1));
            let wrong: Vec<_> = keys.iter().map(|&(v, ip)| small.home_of(v, ip)).collect();
            for (o, &h) in out.iter_mut().zip(&wrong) {
                *o = t.get_homed(h).copied();
            }
            for (k, o) in keys.iter().zip(&out) {
                assert!(o.is_none() || *o == t.get(k.0, k.1));
            }
        }
        assert!(hits > 1000, "{hits} hits");
        // One key at a time, in place: the same answers; a repeated key keeps its home.
        let mut prev = Home::NONE;
        for r in 0..1_000u64 {
            let (v, ip) = if r % 3 == 0 { key(next() >> 8) } else { unpack(prev.key) };
            let home = t.home_of_new(prev, v, ip);
            assert_eq!(home.is_none(), pack(v, ip) == prev.key);
            prev = home.unwrap_or(prev);
            if pack(v, ip) != EMPTY {
                assert_eq!(prev, t.home_of(v, ip));
            }
            assert_eq!(t.get_homed(prev).copied(), t.get(v, ip));
        }
    }

    #[test]
    fn empty_table() {
        let t = MappingTable::default();
        assert_eq!(t.get(0, Ipv4Addr::UNSPECIFIED), None);
        assert_eq!(t.get(u32::MAX, Ipv4Addr::BROADCAST), None);
        let mut out = [Some(loc(1)); 2];
        t.lookup_burst(
            &[(1, Ipv4Addr::LOCALHOST), (u32::MAX, Ipv4Addr::BROADCAST)],
            &mut out,
        );
        assert_eq!(out, [None, None]);
        assert_eq!(t.allocation_size(), 0);
        assert_eq!(t, MappingTable::default());
    }

    /// The Elastic IP table (16-byte slots): big enough for the burst lookup's touch pass,
    /// every answer as `get` gives it, before and after removals.
    #[test]
    fn elastic_ip_table_burst_lookups() {
        let mut t = ElasticIpTable::default();
        let eip = |i: u32| Ipv4Addr::from(0xcb00_0000 + i);
        let key = |i: u32| (101 + i % 3, Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..40_000u32 {
            let (vni, ip) = key(i);
            assert_eq!(t.insert(vni, ip, eip(i)), None);
        }
        assert!(t.allocation_size() >= TOUCH_MIN_BYTES, "the touch pass runs");
        for i in (0..40_000u32).step_by(2) {
            let (vni, ip) = key(i);
            assert_eq!(t.remove(vni, ip), Some(eip(i)));
        }
        let keys: Vec<_> = (0..41_000u32).map(key).collect();
        let mut out = vec![None; keys.len()];
        t.lookup_burst(&keys, &mut out);
        for (i, o) in out.iter().enumerate() {
            let i = i as u32;
            let want = (i % 2 == 1 && i < 40_000).then(|| eip(i));
            assert_eq!(*o, want, "{i}");
            assert_eq!(t.get(key(i).0, key(i).1), want, "{i}");
        }
    }
}
