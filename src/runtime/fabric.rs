//! The in-process fabric's switch, generic over the packet buffer and the TX sink (so
//! that it runs on `wire::TestBuffer` in tests as on mbufs in the workers).
//!
//! The worker switches every packet that crosses the fabric on its outer destination PA
//! (and finds the sending card of a packet leaving the process by its outer source PA).
//! [`CardsByPa`] answers in one hash probe, whatever the number of cards in the process
//! (up to [`SCAN_MAX`] cards, a scan of their PAs in one or two cache lines, cheaper than
//! hashing, answers instead); it is built once per worker at setup (the cards of a process
//! do not change while it runs). [`Switch::hop`] carries one hop: a copy to the fabric
//! capture, packets for a PA not run here out of the sending card's `underlay:` port, the
//! rest back to the worker sorted by receiving card.

use std::net::Ipv4Addr;

use arrayvec::ArrayVec;
use hashbrown::HashMap;
use pipeline::{Counters, DropReason, MAX_BURST};
use wire::PacketBuf;

/// Where a worker sends a group of packets for one port. What the sink does not take stays
/// in `pkts` (the caller frees and counts it).
pub trait TxSink<B> {
    fn send(&mut self, pkts: &mut ArrayVec<B, MAX_BURST>);
}

/// Bytes of a frame beyond its IP packet that a port takes: Ethernet header and one 802.1Q
/// tag (the DX side tags its frames).
pub const L2_OVERHEAD: usize = 18;

/// The longest frame port `out` takes (`usize::MAX`: no limit known, or not a port).
#[inline]
pub fn max_frame(port_mtu: &[Option<u16>], out: usize) -> usize {
    port_mtu.get(out).copied().flatten().map_or(usize::MAX, |mtu| usize::from(mtu) + L2_OVERHEAD)
}

/// Send `pkts` to `sink`, a port that takes frames of at most `max` bytes: longer ones are
/// freed as `mtu_exceeded` (never offered: a device that refuses one would hold back those
/// after it), what the sink does not take as `tx_full`. `pkts` is empty afterwards.
/// Returns how many were sent.
#[inline]
pub fn send_counted<B: PacketBuf, S: TxSink<B>>(
    sink: &mut S,
    max: usize,
    pkts: &mut ArrayVec<B, MAX_BURST>,
    counters: &mut Counters,
) -> u64 {
    let before = pkts.len();
    if pkts.iter().any(|m| m.len() > max) {
        pkts.retain(|m| m.len() <= max);
        counters.add_drops(DropReason::MtuExceeded, (before - pkts.len()) as u64);
    }
    let offered = pkts.len();
    sink.send(pkts);
    let unsent = pkts.len();
    counters.add_drops(DropReason::TxFull, unsent as u64);
    pkts.clear();
    (offered - unsent) as u64
}

/// The outer IPv4 address at `at` of an encapsulated frame ([`OUTER_SRC`] or
/// [`OUTER_DST`]).
#[inline]
fn outer_addr(frame: &[u8], at: usize) -> Option<Ipv4Addr> {
    let b: [u8; 4] = frame.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// The outer source and destination addresses of an encapsulated frame (adjacent: read
/// as one 8-byte word).
#[inline(always)]
fn outer_pas(frame: &[u8]) -> (Option<Ipv4Addr>, Option<Ipv4Addr>) {
    const _: () = assert!(OUTER_DST == OUTER_SRC + 4);
    match frame.get(OUTER_SRC..OUTER_SRC + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
        Some(b) => {
            let w = u64::from_be_bytes(b);
            (Some(Ipv4Addr::from((w >> 32) as u32)), Some(Ipv4Addr::from(w as u32)))
        }
        // Shorter than both: each on its own (the source may still be there).
        None => (outer_addr(frame, OUTER_SRC), outer_addr(frame, OUTER_DST)),
    }
}

/// Where the outer source and destination PAs sit in an encapsulated frame.
const OUTER_SRC: usize = wire::vpc::offset::IP_SRC;
const OUTER_DST: usize = wire::vpc::offset::IP_DST;

/// A worker's ports as the switch sends to them: one sink per port and each port's MTU
/// (the largest IP packet it carries; `None` or missing: no limit known).
pub struct Ports<'a, S> {
    pub tx: &'a mut [S],
    pub mtu: &'a [Option<u16>],
}

/// The fabric's switch of one worker: the cards of the process by PA, each card's
/// `underlay:` port, the fabric capture port.
#[derive(Debug, Clone)]
pub struct Switch {
    by_pa: CardsByPa,
    underlay: Vec<Option<usize>>,
    capture: Option<usize>,
}

impl Switch {
    /// The switch of cards given as (PA, `underlay:` port), in card order, with the fabric
    /// capture port `capture`.
    pub fn new(cards: impl IntoIterator<Item = (Ipv4Addr, Option<usize>)>, capture: Option<usize>) -> Switch {
        let (pas, underlay): (Vec<Ipv4Addr>, Vec<Option<usize>>) = cards.into_iter().unzip();
        Switch { by_pa: CardsByPa::new(pas), underlay, capture }
    }

    /// Carry one hop of the packets in `fabric` (sent by card `from`, whose stages ran
    /// last): a copy of each (made by `copy`; none free is `no_buffer`) to the capture port,
    /// one TX burst; packets for a PA not run here out of their sender's `underlay:` port
    /// (`send_out_of_process`); the others returned with their receiving card,
    /// sorted by card. `fabric` is empty afterwards.
    #[inline]
    pub fn hop<B: PacketBuf, S: TxSink<B>>(
        &self,
        fabric: &mut ArrayVec<B, MAX_BURST>,
        from: usize,
        ports: Ports<'_, S>,
        copy: impl FnMut(&B) -> Option<B>,
        counters: &mut Counters,
    ) -> ArrayVec<(usize, B), MAX_BURST> {
        self.hop_with(fabric, from, ports, copy, counters, true)
    }

    /// [`hop`](Self::hop), with its fast paths (`fast`) or without them (the general path
    /// the tests hold them equal to).
    fn hop_with<B: PacketBuf, S: TxSink<B>>(
        &self,
        fabric: &mut ArrayVec<B, MAX_BURST>,
        from: usize,
        mut ports: Ports<'_, S>,
        mut copy: impl FnMut(&B) -> Option<B>,
        counters: &mut Counters,
        fast: bool,
    ) -> ArrayVec<(usize, B), MAX_BURST> {
        let mut by_card: ArrayVec<(usize, B), MAX_BURST> = ArrayVec::new();
        // The common case of a card alone in its process (or sending out of it only): no
        // copy and no packet run here. The whole burst leaves as it is, without being
        // moved packet by packet into another vector first; with one sender (what a card's
        // burst is), in one group, its sender found in the same pass.
        if fast && self.capture.is_none() {
            let away = match self.by_pa.only().filter(|_| from == 0) {
                // A card alone in its process, whose stages ran last: every frame's sender
                // is that card (its PA is the outer source, or no card's is and the sender
                // is `from`), so only the destinations are looked at.
                Some(only) => {
                    let away = !fabric.iter().any(|m| outer_addr(m.data(), OUTER_DST).map(u32::from) == Some(only));
                    if away && !fabric.is_empty() {
                        self.send_group(fabric, 0, &mut ports, counters);
                    }
                    away
                }
                None => {
                    let (mut away, mut sender, mut one_sender) = (true, None, true);
                    for m in fabric.iter() {
                        let (src, dst) = outer_pas(m.data());
                        if dst.and_then(|pa| self.by_pa.get(pa)).is_some() {
                            away = false;
                            break;
                        }
                        let card = src.and_then(|pa| self.by_pa.get(pa)).unwrap_or(from);
                        one_sender &= *sender.get_or_insert(card) == card;
                    }
                    if away {
                        match sender {
                            Some(card) if one_sender => self.send_group(fabric, card, &mut ports, counters),
                            Some(_) => self.send_out_of_process(fabric, from, &mut ports, counters, fast),
                            None => {}
                        }
                    }
                    away
                }
            };
            if away {
                fabric.clear();
                return by_card;
            }
        }
        let mut out_of_process: ArrayVec<B, MAX_BURST> = ArrayVec::new();
        let mut captured: ArrayVec<B, MAX_BURST> = ArrayVec::new();
        for m in fabric.drain(..) {
            if self.capture.is_some() {
                match copy(&m) {
                    // Cannot overflow: one burst's packets at most.
                    Some(c) => {
                        let _ = captured.try_push(c);
                    }
                    None => counters.add_drops(DropReason::NoBuffer, 1),
                }
            }
            match self.card_at(&m, OUTER_DST) {
                Some(card) => {
                    let _ = by_card.try_push((card, m));
                }
                None => {
                    let _ = out_of_process.try_push(m);
                }
            }
        }
        if let Some(sink) = self.capture.and_then(|cap| ports.tx.get_mut(cap)) {
            // One TX burst for the copies; what the capture port refuses is freed.
            sink.send(&mut captured);
        }
        captured.clear();
        if !out_of_process.is_empty() {
            self.send_out_of_process(&mut out_of_process, from, &mut ports, counters, fast);
        }
        // Already in card order (one card, the common case): not sorted again.
        if !fast || by_card.windows(2).any(|w| w[0].0 > w[1].0) {
            sort_by_card(&mut by_card);
        }
        by_card
    }

    /// Packets for PAs not run in this process leave by the physical (`underlay:`) port of
    /// the card that sent them (found by the outer source PA; `from`, the card whose
    /// stages ran last, if none matches), or are dropped `no_route` if it has none.
    fn send_out_of_process<B: PacketBuf, S: TxSink<B>>(
        &self,
        pkts: &mut ArrayVec<B, MAX_BURST>,
        from: usize,
        ports: &mut Ports<'_, S>,
        counters: &mut Counters,
        fast: bool,
    ) {
        let sender = |m: &B| self.card_at(m, OUTER_SRC).unwrap_or(from);
        // One sender for the whole burst (the common case): it leaves in one group as it
        // is, without being sorted and regrouped.
        if let Some(first) = pkts.first().filter(|_| fast).map(sender) {
            if pkts.iter().skip(1).all(|m| sender(m) == first) {
                self.send_group(pkts, first, ports, counters);
                return;
            }
        }
        let mut by_sender: ArrayVec<(usize, B), MAX_BURST> = ArrayVec::new();
        for m in pkts.drain(..) {
            // Cannot overflow: at most one burst's packets.
            let _ = by_sender.try_push((sender(&m), m));
        }
        sort_by_card(&mut by_sender);
        let mut group: ArrayVec<B, MAX_BURST> = ArrayVec::new();
        let mut it = by_sender.drain(..).peekable();
        while let Some((card, m)) = it.next() {
            let _ = group.try_push(m);
            while it.peek().is_some_and(|(c, _)| *c == card) {
                if let Some((_, m)) = it.next() {
                    let _ = group.try_push(m);
                }
            }
            self.send_group(&mut group, card, ports, counters);
        }
    }

    /// The card of this process whose PA is the frame's outer address at `at`
    /// ([`OUTER_SRC`] or [`OUTER_DST`]), if any.
    #[inline]
    fn card_at<B: PacketBuf>(&self, m: &B, at: usize) -> Option<usize> {
        outer_addr(m.data(), at).and_then(|pa| self.by_pa.get(pa))
    }

    /// Send `group`, packets sent by card `card`, out of that card's `underlay:` port (or
    /// drop them `no_route` if it has none). `group` is empty afterwards.
    #[inline]
    fn send_group<B: PacketBuf, S: TxSink<B>>(
        &self,
        group: &mut ArrayVec<B, MAX_BURST>,
        card: usize,
        ports: &mut Ports<'_, S>,
        counters: &mut Counters,
    ) {
        let n = group.len() as u64;
        match self.underlay.get(card).copied().flatten() {
            Some(port) => match ports.tx.get_mut(port) {
                Some(sink) => {
                    send_counted(sink, max_frame(ports.mtu, port), group, counters);
                }
                None => counters.add_drops(DropReason::TxFull, n),
            },
            None => counters.add_drops(DropReason::NoRoute, n),
        }
        group.clear();
    }
}

/// Sorts `(card, packet)` pairs by card, keeping each card's packets in the order they came
/// (a flow's packets must not be reordered by the hop). Insertion sort: stable, without the
/// allocation `slice::sort_by_key` makes past 20 elements, and at most one burst's pairs.
fn sort_by_card<B>(v: &mut [(usize, B)]) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && v[j - 1].0 > v[j].0 {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Card index (in the worker's card list) by PA. With two cards of the same PA (a topology
/// the loader refuses), the first one wins.
#[derive(Debug, Default, Clone)]
pub struct CardsByPa {
    /// Every card's PA in card order, when there are at most [`SCAN_MAX`] (else empty).
    few: Vec<u32>,
    by_pa: HashMap<u32, usize>,
}

/// Most cards whose PAs [`CardsByPa::get`] scans instead of hashing.
pub const SCAN_MAX: usize = 16;

impl CardsByPa {
    /// The table of cards whose PAs are `pas`, in card order.
    pub fn new(pas: impl IntoIterator<Item = Ipv4Addr>) -> CardsByPa {
        let pas: Vec<u32> = pas.into_iter().map(u32::from).collect();
        let mut by_pa = HashMap::new();
        if pas.len() > SCAN_MAX {
            for (i, &pa) in pas.iter().enumerate() {
                by_pa.entry(pa).or_insert(i);
            }
            return CardsByPa { few: Vec::new(), by_pa };
        }
        CardsByPa { few: pas, by_pa }
    }

    /// The PA of the only card, when there is one card.
    #[inline]
    pub fn only(&self) -> Option<u32> {
        match self.few.as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    }

    /// The index of the card at `pa`, if it runs in this process.
    #[inline]
    pub fn get(&self, pa: Ipv4Addr) -> Option<usize> {
        let pa = u32::from(pa);
        match self.few.as_slice() {
            // A card alone in its process (the usual worker): one compare.
            [only] => (*only == pa).then_some(0),
            // More than SCAN_MAX cards (or none: the map is empty too).
            [] => self.by_pa.get(&pa).copied(),
            few => few.iter().position(|&p| p == pa),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use wire::TestBuffer;

    /// A port that takes at most `room` packets per call and keeps them.
    #[derive(Default)]
    struct Port {
        room: usize,
        sent: Vec<Vec<u8>>,
    }

    impl TxSink<TestBuffer> for Port {
        fn send(&mut self, pkts: &mut ArrayVec<TestBuffer, MAX_BURST>) {
            let n = pkts.len().min(self.room);
            self.sent.extend(pkts.drain(..n).map(|b| b.data().to_vec()));
        }
    }

    fn port(room: usize) -> Port {
        Port { room, sent: Vec::new() }
    }

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const EDGE: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);
    const ELSEWHERE: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 9);

    /// An encapsulated frame of `len` bytes from PA `src` to PA `dst`, tagged `tag`.
    fn frame(src: Ipv4Addr, dst: Ipv4Addr, tag: u8, len: usize) -> TestBuffer {
        let mut f = vec![tag; len.max(34)];
        f[26..30].copy_from_slice(&src.octets());
        f[30..34].copy_from_slice(&dst.octets());
        TestBuffer::from_slice(&f)
    }

    fn burst(frames: impl IntoIterator<Item = TestBuffer>) -> ArrayVec<TestBuffer, MAX_BURST> {
        frames.into_iter().collect()
    }

    /// Cards A (underlay port 0), B (none) and the edge (port 1); the capture is port 2.
    fn switch(capture: Option<usize>) -> Switch {
        Switch::new([(A, Some(0)), (B, None), (EDGE, Some(1))], capture)
    }

    /// The first `n` cards of [`switch`]'s.
    fn switch_of(n: usize, capture: Option<usize>) -> Switch {
        Switch::new([(A, Some(0)), (B, None), (EDGE, Some(1))].into_iter().take(n), capture)
    }

    #[test]
    fn in_process_packets_come_back_sorted_by_card() {
        let mut tx = [port(64), port(64), port(64)];
        let mut counters = Counters::new();
        let mut fabric = burst([frame(A, EDGE, 1, 60), frame(EDGE, B, 2, 60), frame(B, A, 3, 60), frame(A, EDGE, 4, 60)]);
        let back = switch(None).hop(&mut fabric, 0, Ports { tx: &mut tx, mtu: &[] }, |_| None, &mut counters);
        assert!(fabric.is_empty());
        let got: Vec<(usize, u8)> = back.iter().map(|(c, b)| (*c, b.data()[0])).collect();
        // By card, each card's packets in the order they came.
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [0, 1, 2, 2]);
        assert_eq!((got[0].1, got[1].1), (3, 2));
        assert_eq!((got[2].1, got[3].1), (1, 4));
        assert!(tx.iter().all(|p| p.sent.is_empty()), "nothing left the process");
        assert_eq!(counters.drops(DropReason::NoBuffer) + counters.drops(DropReason::NoRoute), 0);
    }

    #[test]
    fn the_capture_gets_a_copy_of_every_packet() {
        let mut tx = [port(64), port(64), port(64)];
        let mut counters = Counters::new();
        let mut fabric = burst([frame(A, EDGE, 1, 60), frame(A, ELSEWHERE, 2, 60)]);
        let copy = |b: &TestBuffer| Some(TestBuffer::from_slice(b.data()));
        let back = switch(Some(2)).hop(&mut fabric, 0, Ports { tx: &mut tx, mtu: &[] }, copy, &mut counters);
        assert_eq!(back.len(), 1);
        let tags: Vec<u8> = tx[2].sent.iter().map(|f| f[0]).collect();
        assert_eq!(tags, [1, 2], "both copies, in fabric order");
        assert_eq!(tx[0].sent.len(), 1, "the packet for another process left by A's underlay");

        // No buffer for a copy: counted, the packet still goes on.
        let mut fabric = burst([frame(A, EDGE, 1, 60)]);
        let back = switch(Some(2)).hop(&mut fabric, 0, Ports { tx: &mut tx, mtu: &[] }, |_| None, &mut counters);
        assert_eq!((back.len(), counters.drops(DropReason::NoBuffer)), (1, 1));
    }

    #[test]
    fn packets_for_other_processes_leave_by_the_senders_underlay() {
        let mut tx = [port(64), port(64), port(64)];
        let mut counters = Counters::new();
        // From the edge (port 1), from A (port 0), from B (no underlay: no_route), and from
        // an unknown PA: the card whose stages ran last (`from` = the edge) sends it.
        let mut fabric = burst([
            frame(EDGE, ELSEWHERE, 1, 60),
            frame(A, ELSEWHERE, 2, 60),
            frame(B, ELSEWHERE, 3, 60),
            frame(ELSEWHERE, ELSEWHERE, 4, 60),
        ]);
        let back = switch(None).hop(&mut fabric, 2, Ports { tx: &mut tx, mtu: &[] }, |_| None, &mut counters);
        assert!(back.is_empty());
        assert_eq!(tx[0].sent.iter().map(|f| f[0]).collect::<Vec<_>>(), [2]);
        let mut edge: Vec<u8> = tx[1].sent.iter().map(|f| f[0]).collect();
        edge.sort_unstable();
        assert_eq!(edge, [1, 4]);
        assert_eq!(counters.drops(DropReason::NoRoute), 1);
        // A frame too short to hold an outer header goes the same way as an unknown PA.
        let mut fabric = burst([TestBuffer::from_slice(&[7; 20])]);
        let back = switch(None).hop(&mut fabric, 1, Ports { tx: &mut tx, mtu: &[] }, |_| None, &mut counters);
        assert!(back.is_empty());
        assert_eq!(counters.drops(DropReason::NoRoute), 2, "card B has no underlay port");
    }

    #[test]
    fn the_underlay_port_limits_and_refusals_are_counted() {
        // Port 0 carries 100-byte IP packets (118-byte frames) and takes one packet a call.
        let mut tx = [port(1), port(64)];
        let mtus = [Some(100), None];
        let mut counters = Counters::new();
        let mut fabric = burst([frame(A, ELSEWHERE, 1, 118), frame(A, ELSEWHERE, 2, 119), frame(A, ELSEWHERE, 3, 60)]);
        let back = switch(None).hop(&mut fabric, 0, Ports { tx: &mut tx, mtu: &mtus }, |_| None, &mut counters);
        assert!(back.is_empty());
        assert_eq!(tx[0].sent.len(), 1);
        assert_eq!(counters.drops(DropReason::MtuExceeded), 1);
        assert_eq!(counters.drops(DropReason::TxFull), 1);
        // The underlay port is not among the sinks: tx_full.
        let mut none: [Port; 0] = [];
        let mut fabric = burst([frame(A, ELSEWHERE, 1, 60)]);
        let _ = switch(None).hop(&mut fabric, 0, Ports { tx: &mut none, mtu: &[] }, |_| None, &mut counters);
        assert_eq!(counters.drops(DropReason::TxFull), 2);
    }

    #[test]
    fn send_counted_reports_what_left() {
        let mut p = port(2);
        let mut counters = Counters::new();
        let mut pkts = burst([frame(A, B, 1, 50), frame(A, B, 2, 50), frame(A, B, 3, 50), frame(A, B, 4, 80)]);
        let sent = send_counted(&mut p, max_frame(&[Some(60)], 0), &mut pkts, &mut counters);
        assert_eq!((sent, pkts.len()), (2, 0));
        assert_eq!((counters.drops(DropReason::MtuExceeded), counters.drops(DropReason::TxFull)), (1, 1));
        assert_eq!(max_frame(&[Some(1500)], 0), 1518);
        assert_eq!(max_frame(&[None], 0), usize::MAX);
        assert_eq!(max_frame(&[], 3), usize::MAX);
    }

    #[test]
    fn finds_each_card_and_nothing_else() {
        let pas = [Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 255, 1), Ipv4Addr::new(198, 18, 0, 2)];
        let t = CardsByPa::new(pas);
        assert_eq!(t.get(Ipv4Addr::new(198, 18, 0, 1)), Some(0));
        assert_eq!(t.get(Ipv4Addr::new(198, 18, 255, 1)), Some(1));
        assert_eq!(t.get(Ipv4Addr::new(198, 18, 0, 2)), Some(2));
        assert_eq!(t.get(Ipv4Addr::new(198, 18, 0, 3)), None);
        assert_eq!(CardsByPa::new([]).get(Ipv4Addr::new(198, 18, 0, 1)), None);
    }

    /// A frame between two of the test's PAs (or elsewhere), tagged, of a length around the
    /// test MTUs.
    fn any_frame() -> impl Strategy<Value = TestBuffer> {
        let pa = prop_oneof![Just(A), Just(B), Just(EDGE), Just(ELSEWHERE)];
        (pa.clone(), pa, any::<u8>(), prop_oneof![Just(60usize), Just(1518), Just(1519), Just(9100)])
            .prop_map(|(s, d, tag, len)| frame(s, d, tag, len))
    }

    proptest! {
        /// The fast paths of a hop (no capture and nothing for this process: the burst
        /// leaves whole; one sender: no regrouping; a card alone: its destinations only;
        /// cards already in order: no sort) send, return and count exactly what the
        /// general path does, with one, two or three cards in the process.
        #[test]
        fn hop_fast_paths_equal_the_general_path(
            frames in proptest::collection::vec(any_frame(), 0..=MAX_BURST),
            one_sender in any::<bool>(),
            away in any::<bool>(),
            from in 0usize..3,
            cards in 1usize..=3,
            capture in proptest::option::of(Just(2usize)),
            rooms in (0usize..=MAX_BURST, 0usize..=MAX_BURST),
            mtus in (proptest::option::of(Just(1500u16)), proptest::option::of(Just(9000u16))),
        ) {
            // Half the cases: every frame from A (one sender), as a card alone sends; half:
            // every frame for a PA not run here (the burst may leave whole).
            let frames: Vec<TestBuffer> = frames
                .into_iter()
                .map(|f| {
                    let mut d = f.data().to_vec();
                    if one_sender {
                        d[26..30].copy_from_slice(&A.octets());
                    }
                    if away {
                        d[30..34].copy_from_slice(&ELSEWHERE.octets());
                    }
                    TestBuffer::from_slice(&d)
                })
                .collect();
            let mtu = [mtus.0, mtus.1];
            let run = |fast: bool| {
                let mut tx = [port(rooms.0), port(rooms.1), port(MAX_BURST)];
                let mut counters = Counters::new();
                let mut fabric = burst(frames.iter().map(|f| TestBuffer::from_slice(f.data())));
                let copy = |m: &TestBuffer| Some(TestBuffer::from_slice(m.data()));
                let back = switch_of(cards, capture).hop_with(&mut fabric, from, Ports { tx: &mut tx, mtu: &mtu }, copy, &mut counters, fast);
                let back: Vec<(usize, Vec<u8>)> = back.into_iter().map(|(c, m)| (c, m.data().to_vec())).collect();
                let sent: Vec<Vec<Vec<u8>>> = tx.into_iter().map(|p| p.sent).collect();
                (fabric.is_empty(), back, sent, counters)
            };
            let (general, fast) = (run(false), run(true));
            prop_assert!(fast.0 && general.0);
            prop_assert_eq!(&fast.1, &general.1);
            prop_assert_eq!(&fast.2, &general.2);
            prop_assert_eq!(&fast.3, &general.3);
        }

        /// A hop reorders no card's packets: those coming back for a card, and those leaving
        /// by a sender's port, keep the order they had in the burst (fast and general path).
        #[test]
        fn hop_keeps_each_cards_packets_in_order(
            ends in proptest::collection::vec((0usize..4, 0usize..4), 0..=MAX_BURST),
            fast in any::<bool>(),
        ) {
            let pas = [A, B, EDGE, ELSEWHERE];
            // Tags are the frames' places in the burst.
            let frames = ends.iter().enumerate().map(|(i, &(s, d))| frame(pas[s], pas[d], i as u8, 60));
            let mut tx = [port(MAX_BURST), port(MAX_BURST), port(MAX_BURST)];
            let mut counters = Counters::new();
            let mut fabric = burst(frames);
            let back = switch(None).hop_with(&mut fabric, 0, Ports { tx: &mut tx, mtu: &[] }, |_| None, &mut counters, fast);
            let increasing = |tags: &[u8]| tags.windows(2).all(|w| w[0] < w[1]);
            for card in 0..3 {
                let tags: Vec<u8> = back.iter().filter(|(c, _)| *c == card).map(|(_, m)| m.data()[0]).collect();
                prop_assert!(increasing(&tags), "card {} got {:?}", card, tags);
            }
            for (i, p) in tx.iter().enumerate() {
                let tags: Vec<u8> = p.sent.iter().map(|f| f[0]).collect();
                prop_assert!(increasing(&tags), "port {} sent {:?}", i, tags);
            }
            prop_assert!(back.windows(2).all(|w| w[0].0 <= w[1].0), "by card");
        }

        /// On random card lists (PAs drawn from a small range, so some repeat), the table
        /// answers what the scan it replaces answered: the first card with that PA.
        #[test]
        fn answers_as_the_scan(
            pas in proptest::collection::vec(0u32..96, 0..80),
            probes in proptest::collection::vec(0u32..100, 50),
        ) {
            let pas: Vec<Ipv4Addr> = pas.into_iter().map(|p| Ipv4Addr::from(0xc612_0000 + p)).collect();
            let t = CardsByPa::new(pas.iter().copied());
            for p in probes {
                let pa = Ipv4Addr::from(0xc612_0000 + p);
                prop_assert_eq!(t.get(pa), pas.iter().position(|c| *c == pa));
            }
        }
    }
}
