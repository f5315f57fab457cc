//! A burst of packets moving through the stages, each with its verdict.
//!
//! Contract:
//! - A [`Burst`] holds up to [`MAX_BURST`] buffers in fixed inline slots; it never
//!   allocates. Slot indices are stable for the life of the burst: a stage addresses
//!   packet `i` and the runtime finds it in slot `i` after every stage.
//! - A packet is *live* until a stage decides it: [`forward`](Burst::forward) to an
//!   [`Output`], [`drop`](Burst::drop) with a [`DropReason`], or [`take`](Burst::take)
//!   (the stage moved the buffer elsewhere: [`Verdict::Consumed`]). A verdict is final:
//!   deciding a packet that is not live is refused (returns `false`), never a panic.
//!   Stages only see live packets ([`live_indices`](Burst::live_indices),
//!   [`for_each_live`](Burst::for_each_live)).
//! - The runtime empties the burst with [`drain`](Burst::drain) (slot order) or
//!   [`drain_grouped`](Burst::drain_grouped) (forwards grouped by output, for one TX call
//!   per port). Draining counts every packet exactly once into the worker's [`Counters`]:
//!   per output, consumed, or per drop reason; a packet still live at drain time is
//!   dropped as [`DropReason::NoVerdict`]. The burst is then empty and reusable.
//!   [`drain_grouped_within`](Burst::drain_grouped_within) also drops, as
//!   [`DropReason::MtuExceeded`], a forwarded packet longer than its output carries.
//!
//! Verdicts are the stage's local tally: nothing is counted while stages run, the counts
//! are added to [`Counters`] once per burst, at drain.

use arrayvec::ArrayVec;

use crate::counters::Counters;
use crate::drop::DropReason;
use crate::limits::{bit, MAX_BURST};
use crate::output::Output;
use crate::stage_id::StageId;

/// What happens to a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Send it to this output.
    Forward(Output),
    /// A stage took the buffer out of the burst (into another burst, a queue, or turned
    /// it into a reply sent elsewhere); the burst no longer owns it.
    Consumed,
    /// Free it, counting the reason.
    Drop(DropReason),
}

/// Up to [`MAX_BURST`] packets and their verdicts. See the [module documentation](self).
pub struct Burst<B> {
    pkts: [Option<B>; MAX_BURST],
    verdicts: [Verdict; MAX_BURST],
    len: usize,
    /// Bit i: slot i holds a packet no stage has decided yet.
    live: u64,
    /// Bit i: slot i was dropped.
    dropped: u64,
    /// Bit o: some packet is forwarded to output o.
    outputs: u64,
    /// Bit i: slot i was forwarded (to any output).
    forwarded: u64,
    /// The stage that dropped slot i, when a timed stage did ([`note_drops`](Self::note_drops)).
    drop_stage: [Option<StageId>; MAX_BURST],
}

impl<B> Default for Burst<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> core::fmt::Debug for Burst<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Burst")
            .field("len", &self.len)
            .field("live", &format_args!("{:#x}", self.live))
            .field("dropped", &format_args!("{:#x}", self.dropped))
            .finish()
    }
}

impl<B> Burst<B> {
    /// An empty burst (build it once per worker and reuse it).
    pub fn new() -> Self {
        Burst {
            pkts: core::array::from_fn(|_| None),
            verdicts: [Verdict::Consumed; MAX_BURST],
            len: 0,
            live: 0,
            dropped: 0,
            outputs: 0,
            forwarded: 0,
            drop_stage: [None; MAX_BURST],
        }
    }

    /// Add a received packet as live; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, pkt: B) -> Result<usize, B> {
        let i = self.len;
        match self.pkts.get_mut(i) {
            Some(slot) => {
                *slot = Some(pkt);
                self.live |= bit(i);
                self.len = i + 1;
                Ok(i)
            }
            None => Err(pkt),
        }
    }

    /// Add received packets as live, in order, as many as fit: the rest stay in `pkts`.
    /// Returns how many were added. What [`push`](Self::push) does for each, with the
    /// live mask and the length written once (the runtime's receive path).
    #[inline]
    pub fn push_all<I: Iterator<Item = B>>(&mut self, pkts: &mut I) -> usize {
        let start = self.len;
        let mut end = start;
        for slot in self.pkts.iter_mut().skip(start) {
            let Some(p) = pkts.next() else { break };
            *slot = Some(p);
            end += 1;
        }
        let added = end - start;
        // Bits start..end (`added` is at most MAX_BURST = 64: the shift of 64 is split).
        let run = if added == 0 { 0 } else { u64::MAX >> (64 - added) };
        self.live |= run << (start & 63);
        self.len = end;
        added
    }

    /// Number of slots used (live or decided).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no slot is used.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when no more packets fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == MAX_BURST
    }

    /// Number of live packets.
    #[inline]
    pub fn live_count(&self) -> usize {
        self.live.count_ones() as usize
    }

    /// Bit i set: packet i is live.
    #[inline]
    pub fn live_mask(&self) -> u64 {
        self.live
    }

    /// Bit i set: packet i was dropped.
    #[inline]
    pub fn dropped_mask(&self) -> u64 {
        self.dropped
    }

    /// True when packet `i` is live.
    #[inline]
    pub fn is_live(&self, i: usize) -> bool {
        i < MAX_BURST && self.live & bit(i) != 0
    }

    /// The indices of the live packets, ascending. The iterator is a copy of the live set
    /// taken now, so the stage may decide packets while iterating.
    #[inline]
    pub fn live_indices(&self) -> LiveIndices {
        LiveIndices(self.live)
    }

    /// Packet `i` if its slot holds one (live or decided and not taken).
    #[inline]
    pub fn get(&self, i: usize) -> Option<&B> {
        self.pkts.get(i).and_then(Option::as_ref)
    }

    /// Packet `i`, writable, if its slot holds one.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut B> {
        self.pkts.get_mut(i).and_then(Option::as_mut)
    }

    /// The verdict of packet `i`; `None` while it is live or if the slot is unused.
    #[inline]
    pub fn verdict(&self, i: usize) -> Option<Verdict> {
        if i < self.len && self.live & bit(i) == 0 {
            self.verdicts.get(i).copied()
        } else {
            None
        }
    }

    /// Decide live packet `i`. Returns `false` (and changes nothing) if it is not live.
    #[inline]
    pub fn decide(&mut self, i: usize, v: Verdict) -> bool {
        if !self.is_live(i) {
            return false;
        }
        let b = bit(i);
        self.live &= !b;
        match v {
            Verdict::Forward(o) => {
                self.outputs |= 1u64 << o.index();
                self.forwarded |= b;
            }
            Verdict::Drop(_) => {
                self.dropped |= b;
                if let Some(s) = self.drop_stage.get_mut(i) {
                    *s = None;
                }
            }
            Verdict::Consumed => {}
        }
        if let Some(slot) = self.verdicts.get_mut(i) {
            *slot = v;
        }
        true
    }

    /// Forward live packet `i` to `out`.
    #[inline]
    pub fn forward(&mut self, i: usize, out: Output) -> bool {
        self.decide(i, Verdict::Forward(out))
    }

    /// Drop live packet `i` for `reason`.
    #[inline]
    pub fn drop(&mut self, i: usize, reason: DropReason) -> bool {
        self.decide(i, Verdict::Drop(reason))
    }

    /// Record that `stage` dropped the packets of `mask` (called by
    /// [`run_timed`](crate::run_timed) for the packets a stage dropped).
    #[inline]
    pub fn note_drops(&mut self, mask: u64, stage: StageId) {
        let mut m = mask & self.dropped;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            if let Some(s) = self.drop_stage.get_mut(i) {
                *s = Some(stage);
            }
        }
    }

    /// The stage that dropped packet `i`, if a timed stage did (`None` for a packet
    /// dropped outside a stage, or not dropped).
    #[inline]
    pub fn dropped_by(&self, i: usize) -> Option<StageId> {
        if i < self.len && self.dropped & bit(i) != 0 {
            self.drop_stage.get(i).copied().flatten()
        } else {
            None
        }
    }

    /// Take dropped packet `i`'s buffer out of the burst (to look at it before it is
    /// freed). Its verdict stays: draining still counts it as dropped, once.
    #[inline]
    pub fn take_dropped(&mut self, i: usize) -> Option<B> {
        if i < self.len && self.dropped & bit(i) != 0 {
            self.pkts.get_mut(i).and_then(Option::take)
        } else {
            None
        }
    }

    /// Take live packet `i` out of the burst; its verdict becomes [`Verdict::Consumed`].
    #[inline]
    pub fn take(&mut self, i: usize) -> Option<B> {
        if !self.decide(i, Verdict::Consumed) {
            return None;
        }
        self.pkts.get_mut(i).and_then(Option::take)
    }

    /// Run `f` on every live packet in slot order; `Some(verdict)` decides it, `None`
    /// leaves it live for the next stage.
    #[inline]
    pub fn for_each_live<F>(&mut self, mut f: F)
    where
        F: FnMut(usize, &mut B) -> Option<Verdict>,
    {
        for i in self.live_indices() {
            let v = match self.pkts.get_mut(i) {
                Some(Some(p)) => f(i, p),
                _ => None,
            };
            if let Some(v) = v {
                self.decide(i, v);
            }
        }
    }

    /// Run `f` on every live packet of `mask` in slot order: `Ok(out)` forwards it to
    /// `out`, `Err(reason)` drops it (a packet whose buffer is gone stays live). For a
    /// stage that decides every packet it looks at: the burst's masks are written once,
    /// after the loop, rather than once a packet as [`Burst::decide`] does.
    #[inline]
    pub fn decide_each<F>(&mut self, mask: u64, mut f: F)
    where
        F: FnMut(usize, &mut B) -> Result<Output, DropReason>,
    {
        self.decide_or_pass(mask, |i, p| f(i, p).map(Some))
    }

    /// [`Burst::decide_each`] for a stage that may also leave a packet live for a later
    /// stage: `Ok(Some(out))` forwards it, `Ok(None)` leaves it live, `Err(reason)` drops
    /// it.
    #[inline]
    pub fn decide_or_pass<F>(&mut self, mask: u64, mut f: F)
    where
        F: FnMut(usize, &mut B) -> Result<Option<Output>, DropReason>,
    {
        let (mut forwarded, mut dropped, mut outputs) = (0u64, 0u64, 0u64);
        let mut m = mask & self.live;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let Some(Some(p)) = self.pkts.get_mut(i) else { continue };
            let v = match f(i, p) {
                Ok(None) => continue,
                Ok(Some(o)) => {
                    forwarded |= bit(i);
                    outputs |= 1u64 << o.index();
                    Verdict::Forward(o)
                }
                Err(reason) => {
                    dropped |= bit(i);
                    if let Some(s) = self.drop_stage.get_mut(i) {
                        *s = None;
                    }
                    Verdict::Drop(reason)
                }
            };
            if let Some(slot) = self.verdicts.get_mut(i) {
                *slot = v;
            }
        }
        self.live &= !(forwarded | dropped);
        self.forwarded |= forwarded;
        self.dropped |= dropped;
        self.outputs |= outputs;
    }

    /// The live packets, all writable at once, as `(index, &mut packet)` in slot order:
    /// for a stage that hands several packets to one call (a cipher's burst).
    #[inline]
    pub fn live_mut(&mut self) -> impl Iterator<Item = (usize, &mut B)> + '_ {
        let live = self.live;
        self.pkts
            .iter_mut()
            .enumerate()
            .filter(move |(i, _)| live & bit(*i) != 0)
            .filter_map(|(i, p)| p.as_mut().map(|p| (i, p)))
    }

    /// Iterate over the live packets as `(index, &packet)`.
    #[inline]
    pub fn iter_live(&self) -> impl Iterator<Item = (usize, &B)> + '_ {
        self.live_indices().filter_map(move |i| self.get(i).map(|p| (i, p)))
    }

    /// Empty the burst in slot order, handing every buffer still in it to `f` with its
    /// verdict (live ones as `Drop(NoVerdict)`), and count every packet into `counters`.
    pub fn drain<F>(&mut self, counters: &mut Counters, mut f: F)
    where
        F: FnMut(B, Verdict),
    {
        self.decide_leftovers();
        let n = self.len;
        for (slot, &v) in self.pkts.iter_mut().zip(self.verdicts.iter()).take(n) {
            count(counters, v, 1);
            if let Some(p) = slot.take() {
                f(p, v);
            }
        }
        counters.add_burst(n as u64);
        self.reset();
    }

    /// Empty the burst, handing the forwarded packets to `tx` once per distinct output (in
    /// ascending output order) and the others to `rest`, and count them into `counters`.
    ///
    /// `tx` must remove from the vector every buffer the device took (e.g. drain the
    /// first `sent` elements). Buffers it leaves there are dropped as
    /// [`DropReason::TxFull`]: counted and handed to `rest` with that verdict.
    pub fn drain_grouped<T, R>(&mut self, counters: &mut Counters, tx: T, rest: R)
    where
        T: FnMut(Output, &mut ArrayVec<B, MAX_BURST>),
        R: FnMut(B, Verdict),
    {
        self.drain_grouped_inner(counters, |_| usize::MAX, |_| 0, tx, rest);
    }

    /// [`drain_grouped`](Self::drain_grouped) for outputs that carry packets of at most
    /// `max_len(output)` bytes (a port's largest frame): a forwarded packet longer than
    /// that is not offered to `tx` but dropped as [`DropReason::MtuExceeded`] (counted and
    /// handed to `rest` with that verdict), so that a device which refuses it cannot hold
    /// back the packets after it. One length compare per forwarded packet.
    pub fn drain_grouped_within<L, T, R>(
        &mut self,
        counters: &mut Counters,
        max_len: L,
        tx: T,
        rest: R,
    ) where
        B: wire::PacketBuf,
        L: Fn(Output) -> usize,
        T: FnMut(Output, &mut ArrayVec<B, MAX_BURST>),
        R: FnMut(B, Verdict),
    {
        self.drain_grouped_inner(counters, max_len, |p: &B| p.len(), tx, rest);
    }

    fn drain_grouped_inner<L, N, T, R>(
        &mut self,
        counters: &mut Counters,
        max_len: L,
        len: N,
        mut tx: T,
        mut rest: R,
    ) where
        L: Fn(Output) -> usize,
        N: Fn(&B) -> usize,
        T: FnMut(Output, &mut ArrayVec<B, MAX_BURST>),
        R: FnMut(B, Verdict),
    {
        self.decide_leftovers();
        let n = self.len;
        let mut outputs = self.outputs;
        // Only the forwarded slots are offered (their bits, not every slot's verdict); with
        // one output every one of them goes to it, without comparing verdicts.
        let one_output = outputs.count_ones() == 1;
        // Forwarded slots whose buffer a group took (the last loop skips them).
        let mut grouped = 0u64;
        let mut group: ArrayVec<B, MAX_BURST> = ArrayVec::new();
        while outputs != 0 {
            let o = outputs.trailing_zeros() as usize;
            outputs &= outputs - 1;
            let Some(out) = Output::new(o) else { break };
            let max = max_len(out);
            let mut too_long = 0u64;
            let mut m = self.forwarded;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                if !one_output && self.verdicts.get(i) != Some(&Verdict::Forward(out)) {
                    continue;
                }
                grouped |= bit(i);
                if let Some(p) = self.pkts.get_mut(i).and_then(Option::take) {
                    if len(&p) > max {
                        too_long += 1;
                        rest(p, Verdict::Drop(DropReason::MtuExceeded));
                        continue;
                    }
                    // Cannot fail: at most n <= MAX_BURST packets per group.
                    let _ = group.try_push(p);
                }
            }
            counters.add_drops(DropReason::MtuExceeded, too_long);
            let offered = group.len() as u64;
            if offered != 0 {
                tx(out, &mut group);
            }
            let unsent = group.len() as u64;
            counters.add_output(out, offered - unsent.min(offered));
            counters.add_drops(DropReason::TxFull, unsent);
            for p in group.drain(..) {
                rest(p, Verdict::Drop(DropReason::TxFull));
            }
        }
        // Every other used slot: dropped, consumed, or (cannot happen) forwarded to an
        // output no group took.
        let used = if n >= MAX_BURST { u64::MAX } else { (1u64 << n) - 1 };
        let mut m = used & !grouped;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let (Some(slot), Some(&v)) = (self.pkts.get_mut(i), self.verdicts.get(i)) else { continue };
            match v {
                Verdict::Forward(_) => {
                    // Only reached if no group took a forwarded packet: cannot happen, but
                    // never lose a buffer.
                    if let Some(p) = slot.take() {
                        count(counters, v, 1);
                        rest(p, v);
                    }
                }
                _ => {
                    count(counters, v, 1);
                    if let Some(p) = slot.take() {
                        rest(p, v);
                    }
                }
            }
        }
        counters.add_burst(n as u64);
        self.reset();
    }

    /// Mark every still-live packet `Drop(NoVerdict)`.
    fn decide_leftovers(&mut self) {
        for i in self.live_indices() {
            self.drop(i, DropReason::NoVerdict);
        }
    }

    fn reset(&mut self) {
        self.len = 0;
        self.live = 0;
        self.dropped = 0;
        self.outputs = 0;
        self.forwarded = 0;
    }
}

#[inline]
fn count(counters: &mut Counters, v: Verdict, n: u64) {
    match v {
        Verdict::Forward(o) => counters.add_output(o, n),
        Verdict::Consumed => counters.add_consumed(n),
        Verdict::Drop(r) => counters.add_drops(r, n),
    }
}

/// Indices of the live packets at the time it was made, ascending.
#[derive(Clone, Copy, Debug)]
pub struct LiveIndices(u64);

impl Iterator for LiveIndices {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for LiveIndices {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_OUTPUTS;
    use wire::{PacketBuf, TestBuffer};

    fn out(i: usize) -> Output {
        Output::new(i).unwrap()
    }

    fn burst_of(n: u8) -> Burst<TestBuffer> {
        let mut b = Burst::new();
        for i in 0..n {
            assert_eq!(b.push(TestBuffer::from_slice(&[i])), Ok(i as usize));
        }
        b
    }

    #[test]
    fn push_until_full() {
        let mut b = burst_of(MAX_BURST as u8);
        assert!(b.is_full());
        assert_eq!(b.live_count(), MAX_BURST);
        assert_eq!(b.live_mask(), u64::MAX);
        assert!(b.push(TestBuffer::from_slice(&[0xff])).is_err());
        assert_eq!(Output::new(MAX_OUTPUTS), None);
    }

    #[test]
    fn push_all_is_push_of_each() {
        let bufs = |r: core::ops::Range<u8>| r.map(|i| TestBuffer::from_slice(&[i])).collect::<Vec<_>>();
        // Onto an empty burst, onto one with a decided slot, up to full and beyond, nothing.
        for (before, n) in [(0u8, 5usize), (3, 7), (0, 64), (10, 60), (64, 3), (7, 0), (1, 63)] {
            let (mut a, mut b) = (burst_of(before), burst_of(before));
            if before > 1 {
                a.drop(1, DropReason::Malformed);
                b.drop(1, DropReason::Malformed);
            }
            let mut it = bufs(100..100 + n as u8).into_iter();
            let added = a.push_all(&mut it);
            let rest: Vec<_> = it.map(|p| p.data()[0]).collect();
            let mut pushed = 0;
            let mut refused = Vec::new();
            for p in bufs(100..100 + n as u8) {
                match b.push(p) {
                    Ok(_) => pushed += 1,
                    Err(p) => refused.push(p.data()[0]),
                }
            }
            assert_eq!((added, rest), (pushed, refused), "{before} + {n}");
            assert_eq!((a.len(), a.live_mask(), a.dropped_mask()), (b.len(), b.live_mask(), b.dropped_mask()), "{before} + {n}");
            for i in 0..MAX_BURST {
                assert_eq!(a.get(i).map(|p| p.data()[0]), b.get(i).map(|p| p.data()[0]), "slot {i}");
            }
        }
    }

    #[test]
    fn verdicts_are_final_and_live_shrinks() {
        let mut b = burst_of(5);
        assert!(b.forward(0, out(3)));
        assert!(b.drop(1, DropReason::Malformed));
        let taken = b.take(2).unwrap();
        assert_eq!(taken.data(), &[2]);
        assert!(!b.forward(0, out(4)), "a verdict is final");
        assert!(!b.drop(2, DropReason::NoRoute));
        assert!(!b.forward(9, out(1)), "unused slot");
        assert!(!b.forward(1000, out(1)), "out of range");
        assert_eq!(b.verdict(0), Some(Verdict::Forward(out(3))));
        assert_eq!(b.verdict(1), Some(Verdict::Drop(DropReason::Malformed)));
        assert_eq!(b.verdict(2), Some(Verdict::Consumed));
        assert_eq!(b.verdict(3), None);
        assert_eq!(b.live_indices().collect::<Vec<_>>(), [3, 4]);
        assert_eq!(b.iter_live().map(|(i, p)| (i, p.data()[0])).collect::<Vec<_>>(), [(3, 3), (4, 4)]);
        assert_eq!(b.dropped_mask(), 0b10);
        assert!(b.get(2).is_none());
        assert!(b.get(1).is_some());
    }

    #[test]
    fn stage_mutates_live_packets() {
        let mut b = burst_of(4);
        b.for_each_live(|i, p| {
            p.data_mut()[0] += 10;
            match i {
                1 => Some(Verdict::Drop(DropReason::NotIpv4)),
                _ => None,
            }
        });
        // A second stage sees only the survivors.
        let mut seen = Vec::new();
        b.for_each_live(|i, p| {
            seen.push((i, p.data()[0]));
            p.prepend(1).ok()?.copy_from_slice(&[0xee]);
            Some(Verdict::Forward(out(i % 2)))
        });
        assert_eq!(seen, [(0, 10), (2, 12), (3, 13)]);
        assert_eq!(b.get(3).unwrap().data(), &[0xee, 13]);
        assert_eq!(b.live_count(), 0);
    }

    #[test]
    fn decide_each_is_for_each_live_deciding_every_packet_of_its_mask() {
        // Slots 1 and 4 decided before; the stage looks at the live ones of 0b111_0111.
        let prepare = || {
            let mut b = burst_of(7);
            b.drop(1, DropReason::Malformed);
            b.forward(4, out(2));
            b
        };
        let decide = |i: usize, p: &mut TestBuffer| -> Result<Output, DropReason> {
            p.data_mut()[0] += 10;
            match i {
                2 => Err(DropReason::NoRoom),
                _ => Ok(out(i % 3)),
            }
        };
        let mask = 0b111_0111;
        let (mut a, mut b) = (prepare(), prepare());
        a.decide_each(mask, decide);
        b.for_each_live(|i, p| {
            if mask & bit(i) == 0 {
                return None;
            }
            Some(match decide(i, p) {
                Ok(o) => Verdict::Forward(o),
                Err(r) => Verdict::Drop(r),
            })
        });
        assert_eq!(a.live_mask(), 1 << 3, "slot 3 is outside the mask: still live");
        assert_eq!((a.live_mask(), a.dropped_mask(), a.outputs, a.forwarded), (b.live_mask(), b.dropped_mask(), b.outputs, b.forwarded));
        for i in 0..7 {
            assert_eq!(a.verdict(i), b.verdict(i), "slot {i}");
        }
        assert_eq!(a.verdict(2), Some(Verdict::Drop(DropReason::NoRoom)));
        assert_eq!(a.verdict(6), Some(Verdict::Forward(out(0))));
        assert_eq!(a.get(5).unwrap().data(), &[15]);
        assert_eq!(a.get(3).unwrap().data(), &[3], "not looked at");
        // A drop is the stage's to name, as with decide.
        a.note_drops(1 << 2, StageId::Vlan);
        assert_eq!(a.dropped_by(2), Some(StageId::Vlan));
        let (mut ca, mut cb) = (Counters::new(), Counters::new());
        let (mut ga, mut gb) = (Vec::new(), Vec::new());
        a.drain(&mut ca, |p, v| ga.push((p.data()[0], v)));
        b.drain(&mut cb, |p, v| gb.push((p.data()[0], v)));
        assert_eq!(ga, gb);
        assert_eq!((ca.output(out(0)), ca.output(out(2)), ca.drops(DropReason::NoRoom)), (2, 2, 1));
    }

    #[test]
    fn decide_or_pass_leaves_the_passed_packets_live() {
        let mut b = burst_of(5);
        b.drop(1, DropReason::Malformed);
        b.decide_or_pass(0b1_1111, |i, p| {
            p.data_mut()[0] += 10;
            match i {
                0 => Ok(Some(out(1))),
                2 => Ok(None),
                3 => Err(DropReason::NoRoom),
                _ => Ok(None),
            }
        });
        assert_eq!(b.live_mask(), 0b1_0100, "passed on: still live, for a later stage");
        assert_eq!((b.verdict(0), b.verdict(3)), (Some(Verdict::Forward(out(1))), Some(Verdict::Drop(DropReason::NoRoom))));
        assert_eq!((b.verdict(2), b.verdict(4)), (None, None));
        assert_eq!(b.get(2).unwrap().data(), &[12], "looked at, and its change kept");
        assert_eq!(b.get(1).unwrap().data(), &[1], "decided before: not looked at");
        // A later stage decides what was passed; every packet is counted once.
        b.forward(2, out(0));
        b.drop(4, DropReason::NoRoute);
        let mut c = Counters::new();
        let mut n = 0;
        b.drain(&mut c, |_, _| n += 1);
        assert_eq!((n, c.output(out(1)), c.output(out(0)), c.drops(DropReason::NoRoom), c.drops(DropReason::NoRoute)), (5, 1, 1, 1, 1));
    }

    #[test]
    fn drain_counts_every_packet_once() {
        let mut c = Counters::new();
        let mut b = burst_of(6);
        b.forward(0, out(1));
        b.forward(1, out(2));
        b.drop(2, DropReason::SpoofedSource);
        let _ = b.take(3);
        b.forward(4, out(1));
        // 5 left live: a pipeline bug, counted as no_verdict.
        let mut got = Vec::new();
        b.drain(&mut c, |p, v| got.push((p.data()[0], v)));
        assert_eq!(
            got,
            [
                (0, Verdict::Forward(out(1))),
                (1, Verdict::Forward(out(2))),
                (2, Verdict::Drop(DropReason::SpoofedSource)),
                (4, Verdict::Forward(out(1))),
                (5, Verdict::Drop(DropReason::NoVerdict)),
            ]
        );
        assert_eq!(c.output(out(1)), 2);
        assert_eq!(c.output(out(2)), 1);
        assert_eq!(c.consumed(), 1);
        assert_eq!(c.drops(DropReason::SpoofedSource), 1);
        assert_eq!(c.drops(DropReason::NoVerdict), 1);
        assert_eq!(c.bursts(), 1);
        assert_eq!(c.packets(), 6);
        assert!(b.is_empty());
        assert_eq!(b.live_count(), 0);
        // Reusable.
        assert_eq!(b.push(TestBuffer::from_slice(&[7])), Ok(0));
        assert_eq!(b.live_mask(), 1);
    }

    #[test]
    fn dropped_packets_name_their_stage_and_can_be_taken_out() {
        let mut c = Counters::new();
        let mut b = burst_of(4);
        b.drop(0, DropReason::NoRoute);
        b.drop(1, DropReason::Malformed);
        b.forward(2, out(1));
        b.note_drops(0b0110, StageId::Route); // slot 2 was not dropped: not named
        assert_eq!(b.dropped_by(0), None, "dropped outside a stage");
        assert_eq!(b.dropped_by(1), Some(StageId::Route));
        assert_eq!(b.dropped_by(2), None);
        assert!(b.take_dropped(2).is_none(), "forwarded, not dropped");
        assert!(b.take_dropped(3).is_none(), "live");
        assert_eq!(b.take_dropped(1).map(|p| p.data().to_vec()), Some(vec![1]));
        assert!(b.take_dropped(1).is_none(), "taken once");
        let mut rest = Vec::new();
        b.drain(&mut c, |p, v| rest.push((p.data()[0], v)));
        assert_eq!(rest.len(), 3, "the taken packet is not handed out again");
        assert_eq!((c.drops(DropReason::Malformed), c.drops(DropReason::NoRoute)), (1, 1), "still counted once");
        // A reused slot does not keep the old stage.
        let _ = b.push(TestBuffer::from_slice(&[9]));
        let _ = b.push(TestBuffer::from_slice(&[9]));
        b.drop(1, DropReason::NoVerdict);
        assert_eq!(b.dropped_by(1), None);
    }

    #[test]
    fn drain_grouped_by_output_with_tx_full() {
        let mut c = Counters::new();
        let mut b = burst_of(7);
        for (i, o) in [(0, 5), (1, 2), (2, 5), (4, 2), (5, 5)] {
            b.forward(i, out(o));
        }
        b.drop(3, DropReason::NoMapping);
        let _ = b.take(6);
        let mut txed = Vec::new();
        let mut rest = Vec::new();
        b.drain_grouped(
            &mut c,
            |o, pkts| {
                let ids: Vec<u8> = pkts.iter().map(|p| p.data()[0]).collect();
                txed.push((o.index(), ids));
                // Port 5 takes only 2 of its 3 packets.
                let sent = if o.index() == 5 { 2 } else { pkts.len() };
                pkts.drain(..sent);
            },
            |p, v| rest.push((p.data()[0], v)),
        );
        assert_eq!(txed, [(2, vec![1, 4]), (5, vec![0, 2, 5])]);
        assert_eq!(
            rest,
            [(5, Verdict::Drop(DropReason::TxFull)), (3, Verdict::Drop(DropReason::NoMapping))]
        );
        assert_eq!(c.output(out(2)), 2);
        assert_eq!(c.output(out(5)), 2);
        assert_eq!(c.drops(DropReason::TxFull), 1);
        assert_eq!(c.drops(DropReason::NoMapping), 1);
        assert_eq!(c.consumed(), 1);
        assert_eq!(c.packets(), 7);
        assert!(b.is_empty());
    }

    #[test]
    fn drain_grouped_within_drops_what_an_output_cannot_carry() {
        let mut c = Counters::new();
        let mut b: Burst<TestBuffer> = Burst::new();
        for len in [100usize, 1600, 200, 1514, 1515, 9000] {
            let _ = b.push(TestBuffer::from_slice(&vec![len as u8; len]));
        }
        // Output 1 carries 1514-byte frames, output 2 anything.
        for (i, o) in [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 2)] {
            b.forward(i, out(o));
        }
        let (mut txed, mut rest) = (Vec::new(), Vec::new());
        b.drain_grouped_within(
            &mut c,
            |o| if o.index() == 1 { 1514 } else { usize::MAX },
            |o, pkts| {
                txed.push((o.index(), pkts.iter().map(|p| p.len()).collect::<Vec<_>>()));
                pkts.clear();
            },
            |p, v| rest.push((p.len(), v)),
        );
        assert_eq!(txed, [(1, vec![100, 200, 1514]), (2, vec![9000])]);
        let mtu = Verdict::Drop(DropReason::MtuExceeded);
        assert_eq!(rest, [(1600, mtu), (1515, mtu)]);
        assert_eq!(c.drops(DropReason::MtuExceeded), 2);
        assert_eq!(c.drops(DropReason::TxFull), 0);
        assert_eq!((c.output(out(1)), c.output(out(2))), (3, 1));
        assert_eq!(c.packets(), 6);
        // Nothing fits: tx is not called for that output.
        let _ = b.push(TestBuffer::from_slice(&[0; 50]));
        b.forward(0, out(3));
        b.drain_grouped_within(&mut c, |_| 10, |_, _| panic!("offered nothing"), |_, _| ());
        assert_eq!(c.drops(DropReason::MtuExceeded), 3);
    }

    /// What one packet of a generated burst becomes before the drain.
    #[derive(Clone, Copy, Debug)]
    enum Fate {
        Live,
        Forward(usize),
        Drop,
        Consumed,
        TakenDropped,
    }

    fn fate() -> impl proptest::strategy::Strategy<Value = Fate> {
        use proptest::prelude::*;
        prop_oneof![
            1 => Just(Fate::Live),
            8 => (0usize..4).prop_map(Fate::Forward),
            1 => Just(Fate::Drop),
            1 => Just(Fate::Consumed),
            1 => Just(Fate::TakenDropped),
        ]
    }

    /// The drain before the forwarded-slot masks (every slot's verdict compared per
    /// output, then every slot visited again), on a model of the burst: per slot its
    /// packet id and length (`None`: taken) and its verdict. Returns the TX calls, the
    /// rest calls and the counters.
    #[allow(clippy::type_complexity)]
    fn reference_drain(
        slots: &mut [(Option<(u8, usize)>, Verdict)],
        outputs: u64,
        max_len: &dyn Fn(Output) -> usize,
        takes: &dyn Fn(Output, usize) -> usize,
    ) -> (Vec<(usize, Vec<u8>)>, Vec<(u8, Verdict)>, Counters) {
        let mut c = Counters::new();
        let (mut txed, mut rest) = (Vec::new(), Vec::new());
        let mut outputs = outputs;
        while outputs != 0 {
            let o = outputs.trailing_zeros() as usize;
            outputs &= outputs - 1;
            let out = Output::new(o).unwrap();
            let mut group = Vec::new();
            let mut too_long = 0;
            for (p, v) in slots.iter_mut() {
                if *v == Verdict::Forward(out) {
                    if let Some((id, len)) = p.take() {
                        if len > max_len(out) {
                            too_long += 1;
                            rest.push((id, Verdict::Drop(DropReason::MtuExceeded)));
                            continue;
                        }
                        group.push(id);
                    }
                }
            }
            c.add_drops(DropReason::MtuExceeded, too_long);
            if !group.is_empty() {
                txed.push((o, group.clone()));
            }
            let sent = takes(out, group.len()).min(group.len());
            c.add_output(out, sent as u64);
            c.add_drops(DropReason::TxFull, (group.len() - sent) as u64);
            for id in &group[sent..] {
                rest.push((*id, Verdict::Drop(DropReason::TxFull)));
            }
        }
        for (p, v) in slots.iter_mut() {
            match v {
                Verdict::Forward(_) => {
                    if let Some((id, _)) = p.take() {
                        count(&mut c, *v, 1);
                        rest.push((id, *v));
                    }
                }
                _ => {
                    count(&mut c, *v, 1);
                    if let Some((id, _)) = p.take() {
                        rest.push((id, *v));
                    }
                }
            }
        }
        c.add_burst(slots.len() as u64);
        (txed, rest, c)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..proptest::prelude::ProptestConfig::default() })]

        /// The drain that visits only the forwarded slots (and, with one output, compares
        /// no verdict) hands out, refuses and counts exactly what the drain that compared
        /// every slot's verdict did: any mix of live, forwarded (to 1 to 4 outputs, some
        /// too long for theirs), dropped, consumed and taken-dropped packets, any TX that
        /// takes only part of a group.
        #[test]
        fn drain_equals_the_verdict_scan(
            fates in proptest::collection::vec(fate(), 0..=MAX_BURST),
            lens in proptest::collection::vec(1usize..40, MAX_BURST),
            limits in proptest::collection::vec(10usize..40, 4),
            takes in proptest::collection::vec(0usize..70, 4),
        ) {
            let mut b: Burst<TestBuffer> = Burst::new();
            let mut model = Vec::new();
            for (i, f) in fates.iter().enumerate() {
                let len = lens[i];
                let _ = b.push(TestBuffer::from_slice(&vec![i as u8; len]));
                let (p, v) = match *f {
                    Fate::Live => (Some((i as u8, len)), Verdict::Drop(DropReason::NoVerdict)),
                    Fate::Forward(o) => {
                        b.forward(i, out(o + 1));
                        (Some((i as u8, len)), Verdict::Forward(out(o + 1)))
                    }
                    Fate::Drop => {
                        b.drop(i, DropReason::NoMapping);
                        (Some((i as u8, len)), Verdict::Drop(DropReason::NoMapping))
                    }
                    Fate::Consumed => {
                        let _ = b.take(i);
                        (None, Verdict::Consumed)
                    }
                    Fate::TakenDropped => {
                        b.drop(i, DropReason::Malformed);
                        let _ = b.take_dropped(i);
                        (None, Verdict::Drop(DropReason::Malformed))
                    }
                };
                model.push((p, v));
            }
            let outputs = b.outputs;
            let max_len = |o: Output| limits[o.index() - 1];
            let take = |o: Output, n: usize| takes[o.index() - 1].min(n);
            let (want_tx, want_rest, want_c) = reference_drain(&mut model, outputs, &max_len, &take);
            let (mut c, mut txed, mut rest) = (Counters::new(), Vec::new(), Vec::new());
            b.drain_grouped_within(
                &mut c,
                max_len,
                |o, pkts| {
                    txed.push((o.index(), pkts.iter().map(|p| p.data()[0]).collect::<Vec<u8>>()));
                    let n = take(o, pkts.len());
                    pkts.drain(..n);
                },
                |p, v| rest.push((p.data()[0], v)),
            );
            proptest::prop_assert_eq!(txed, want_tx);
            proptest::prop_assert_eq!(rest, want_rest);
            proptest::prop_assert!(c == want_c, "counters differ");
            proptest::prop_assert!(b.is_empty());
        }
    }
}
