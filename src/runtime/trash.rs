//! The trash can: `vpcemu run --trash PATH [--trash-limit N]` writes the packets the cards
//! and the runtime drop into a pcapng file, each with the comment
//! `reason=<drop reason> stage=<stage> card=<card>` and, as its interface, the port it
//! came in by (`fabric` for a packet that crossed the in-process fabric).
//!
//! - Workers ([`TrashBin::offer`]): per drop reason at most N packets a second (a GCRA
//!   limit shared by the workers, `pipeline::RateLimit`, N at once); a packet over the
//!   limit is only counted. One that passes is copied (up to [`SNAPLEN`] bytes) into a
//!   record taken from a pool of preallocated records and pushed onto a bounded lock-free
//!   queue (`crossbeam_queue::ArrayQueue`); with no free record it is counted
//!   `queue_full`. Nothing allocates, locks or waits.
//! - The control core ([`TrashWriter::drain`], every tick) pops the records, writes them
//!   as Enhanced Packet Blocks and returns them to the pool.
//! - A packet is written as the stage that dropped it left it: an Ethernet frame, or the
//!   bare IPv4 packet the edge's stages work on after `decap` (its own interface of link
//!   type raw IP, named after the same port), so that readers dissect both.
//! - `stage` is the timed stage that dropped the packet, or `runtime` for drops outside
//!   the stages (a frame longer than its output port takes, a device that did not take
//!   it, a chained frame that could not be copied). Drops counted outside any burst
//!   (`fabric_loop`, a fragment that found no room) are counted, not kept.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use pipeline::{DropReason, RateLimit, StageId};

/// Bytes kept of a dropped packet (the jumbo mbuf's data room: every packet whole).
pub const SNAPLEN: usize = 9216;
/// Records in flight between the workers and the control core.
pub const RECORDS: usize = 512;
/// Default `--trash-limit`: packets per drop reason per second.
pub const DEFAULT_LIMIT: u32 = 100;

/// One dropped packet on its way to the file.
#[derive(Debug)]
pub struct Record {
    /// Interface: the port index, or the number of ports for the fabric.
    pub interface: u16,
    /// The card index (`u16::MAX`: none).
    pub card: u16,
    pub reason: DropReason,
    pub stage: Option<StageId>,
    /// TSC when it was taken.
    pub tsc: u64,
    pub original_len: u32,
    pub data: Vec<u8>,
}

/// What the workers and the control core share.
#[derive(Debug)]
pub struct TrashBin {
    full: ArrayQueue<Box<Record>>,
    free: ArrayQueue<Box<Record>>,
    limits: Vec<RateLimit>,
    limited: Vec<AtomicU64>,
    queue_full: AtomicU64,
}

/// Totals at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrashTotals {
    /// Packets written.
    pub written: u64,
    /// Packets over `--trash-limit`: counted only.
    pub limited: u64,
    /// Packets that found no free record (the control core behind): counted only.
    pub queue_full: u64,
}

impl TrashBin {
    /// A bin of [`RECORDS`] records (allocated now) letting `limit` packets per reason
    /// per second through, with time in ticks of a `tsc_hz` clock.
    pub fn new(limit: u32, tsc_hz: u64) -> Arc<TrashBin> {
        let full = ArrayQueue::new(RECORDS);
        let free = ArrayQueue::new(RECORDS);
        for _ in 0..RECORDS {
            let r = Record {
                interface: 0,
                card: u16::MAX,
                reason: DropReason::NoVerdict,
                stage: None,
                tsc: 0,
                original_len: 0,
                data: Vec::with_capacity(SNAPLEN),
            };
            // A fresh queue of RECORDS places: cannot be full.
            let _ = free.push(Box::new(r));
        }
        Arc::new(TrashBin {
            full,
            free,
            limits: DropReason::ALL.iter().map(|_| RateLimit::new(limit, limit, tsc_hz)).collect(),
            limited: DropReason::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            queue_full: AtomicU64::new(0),
        })
    }

    /// Worker side: keep a copy of `data`, dropped for `reason` by `stage` of card `card`,
    /// which came in by `interface`, at `tsc`. Never blocks or allocates.
    #[inline]
    pub fn offer(&self, interface: u16, card: u16, reason: DropReason, stage: Option<StageId>, data: &[u8], tsc: u64) {
        let i = reason.index();
        if !self.limits.get(i).is_some_and(|l| l.allow(tsc)) {
            if let Some(n) = self.limited.get(i) {
                n.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let Some(mut r) = self.free.pop() else {
            self.queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let kept = &data[..data.len().min(SNAPLEN)];
        r.data.clear();
        r.data.extend_from_slice(kept);
        r.interface = interface;
        r.card = card;
        r.reason = reason;
        r.stage = stage;
        r.tsc = tsc;
        r.original_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if let Err(r) = self.full.push(r) {
            // Cannot happen: as many places as records. Keep the record anyway.
            let _ = self.free.push(r);
            self.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn limited(&self) -> u64 {
        self.limited.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

/// Worker side, before a burst is drained: offer every packet a stage or the runtime
/// dropped so far (taken out of the burst and freed; the burst still counts it), as
/// having come in by `interface` to card `card`.
#[inline]
pub fn keep_dropped<B: wire::PacketBuf>(bin: &TrashBin, burst: &mut pipeline::Burst<B>, interface: u16, card: u16) {
    let mut m = burst.dropped_mask();
    if m == 0 {
        return;
    }
    let tsc = crate::dpdk::rdtsc();
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        m &= m - 1;
        let stage = burst.dropped_by(i);
        if let (Some(pipeline::Verdict::Drop(reason)), Some(p)) = (burst.verdict(i), burst.take_dropped(i)) {
            bin.offer(interface, card, reason, stage, p.data(), tsc);
        }
    }
}

/// The control core's end: the pcapng file.
pub struct TrashWriter {
    bin: Arc<TrashBin>,
    path: PathBuf,
    out: BufWriter<File>,
    cards: Vec<String>,
    interfaces: usize,
    /// Wall-clock microseconds and TSC at the same moment, and the TSC rate.
    epoch_us: u64,
    epoch_tsc: u64,
    tsc_hz: u64,
    written: u64,
    /// `block` holds the section header and interfaces, not written yet.
    pending_head: bool,
    block: Vec<u8>,
}

impl std::fmt::Debug for TrashWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrashWriter").field("path", &self.path).field("written", &self.written).finish()
    }
}

/// Whether `data` is a bare IPv4 packet (header version 4, length at least 20, total
/// length the data's) rather than an Ethernet frame (whose first byte would be a
/// multicast destination MAC, and whose length seldom matches).
pub fn is_bare_ipv4(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] >> 4 == 4 && data[0] & 0x0f >= 5 && usize::from(u16::from_be_bytes([data[2], data[3]])) == data.len()
}

/// The packet comment.
pub fn comment(reason: DropReason, stage: Option<StageId>, card: &str) -> String {
    format!("reason={} stage={} card={card}", reason.name(), stage.map_or("runtime", StageId::name))
}

impl TrashWriter {
    /// Write into `file` (at `path`) the section header and one interface per name of
    /// `interfaces` (the ports in order, then `fabric`); `cards` names the card indexes.
    /// Errors writing come back from [`drain`](Self::drain) and [`finish`](Self::finish).
    pub fn create(
        path: &Path,
        file: File,
        bin: Arc<TrashBin>,
        interfaces: &[String],
        cards: Vec<String>,
        tsc_now: u64,
        tsc_hz: u64,
    ) -> TrashWriter {
        let mut head = Vec::new();
        // A section header and interface names of ports: nothing that can overflow.
        let _ = wire::pcapng::emit_section_header(&mut head, "vpcemu");
        // Interfaces 0..n: Ethernet; n..2n: the same ports, bare IP packets.
        for linktype in [wire::pcapng::LINKTYPE_ETHERNET, wire::pcapng::LINKTYPE_RAW] {
            for name in interfaces {
                let _ = wire::pcapng::emit_interface(&mut head, name, linktype, SNAPLEN as u32);
            }
        }
        let epoch_us =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        let mut block = Vec::with_capacity(SNAPLEN + 256);
        block.extend_from_slice(&head);
        TrashWriter {
            bin,
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            cards,
            interfaces: interfaces.len(),
            epoch_us,
            epoch_tsc: tsc_now,
            tsc_hz,
            written: 0,
            pending_head: true,
            block,
        }
    }

    /// Write every record the workers queued; returns how many.
    pub fn drain(&mut self) -> io::Result<usize> {
        if self.pending_head {
            self.out.write_all(&self.block)?;
            self.pending_head = false;
        }
        let mut n = 0;
        while let Some(r) = self.bin.full.pop() {
            let result = self.write(&r);
            // Back to the pool whatever happened: a full pool cannot be.
            let _ = self.bin.free.push(r);
            result?;
            n += 1;
        }
        Ok(n)
    }

    fn write(&mut self, r: &Record) -> io::Result<()> {
        let card = self.cards.get(usize::from(r.card)).map_or("none", String::as_str);
        let text = comment(r.reason, r.stage, card);
        let since = r.tsc.saturating_sub(self.epoch_tsc);
        let ts_us = self.epoch_us + if self.tsc_hz == 0 { 0 } else { (since as u128 * 1_000_000 / self.tsc_hz as u128) as u64 };
        let n = self.interfaces as u32;
        let mut interface = u32::from(r.interface).min(n.saturating_sub(1));
        if is_bare_ipv4(&r.data) {
            interface += n;
        }
        self.block.clear();
        wire::pcapng::emit_packet(&mut self.block, interface, ts_us, &r.data, r.original_len, Some(&text))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        self.out.write_all(&self.block)?;
        self.written += 1;
        Ok(())
    }

    /// Write what is left (after the workers stopped), flush, and return the totals.
    pub fn finish(mut self) -> io::Result<TrashTotals> {
        self.drain()?;
        self.out.flush()?;
        Ok(TrashTotals {
            written: self.written,
            limited: self.bin.limited(),
            queue_full: self.bin.queue_full.load(Ordering::Relaxed),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_per_reason_then_counted_and_written_as_pcapng() {
        let bin = TrashBin::new(3, 1_000_000);
        for i in 0..5u8 {
            bin.offer(1, 0, DropReason::NoRoute, Some(StageId::Route), &[i; 60], 10);
        }
        bin.offer(2, 9, DropReason::MtuExceeded, None, &vec![7; SNAPLEN + 10], 10);
        // A second later the limit lets 3 more through.
        for _ in 0..4 {
            bin.offer(0, 1, DropReason::NoRoute, Some(StageId::Route), &[1; 60], 1_000_010);
        }
        let dir = std::env::temp_dir().join(format!("vpcemu-trash-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pcapng");
        let names: Vec<String> = ["red-1", "underlay", "internet", "fabric"].iter().map(|s| s.to_string()).collect();
        let file = File::create(&path).unwrap();
        let cards = vec!["host-a".into(), "edge-1".into()];
        let mut w = TrashWriter::create(&path, file, Arc::clone(&bin), &names, cards, 0, 1_000_000);
        assert_eq!(w.drain().unwrap(), 7);
        let totals = w.finish().unwrap();
        assert_eq!(totals, TrashTotals { written: 7, limited: 3, queue_full: 0 });
        let file = std::fs::read(&path).unwrap();
        let blocks = wire::pcapng::blocks(&file).unwrap();
        assert_eq!(blocks.iter().filter(|(t, _)| *t == wire::pcapng::IDB).count(), 8, "Ethernet and raw IP per port");
        let packets: Vec<_> = blocks.iter().filter(|(t, _)| *t == wire::pcapng::EPB).collect();
        assert_eq!(packets.len(), 7);
        let comments: Vec<String> = packets
            .iter()
            .map(|(_, body)| {
                let caplen = u32::from_le_bytes(body[12..16].try_into().unwrap()) as usize;
                let opts = wire::pcapng::options(body, 20, caplen).unwrap();
                String::from_utf8(opts[0].1.to_vec()).unwrap()
            })
            .collect();
        assert_eq!(comments[0], "reason=no_route stage=route card=host-a");
        assert_eq!(comments[3], "reason=mtu_exceeded stage=runtime card=none");
        assert_eq!(comments[4], "reason=no_route stage=route card=edge-1");
        // The jumbo one is cut at the snap length, its original length kept.
        let (_, big) = packets[3];
        assert_eq!(u32::from_le_bytes(big[12..16].try_into().unwrap()) as usize, SNAPLEN);
        assert_eq!(u32::from_le_bytes(big[16..20].try_into().unwrap()) as usize, SNAPLEN + 10);
        assert_eq!(u32::from_le_bytes(big[0..4].try_into().unwrap()), 2, "its interface");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bare_ipv4_or_ethernet() {
        let mut ip = vec![0x45, 0, 0, 28];
        ip.resize(28, 0);
        assert!(is_bare_ipv4(&ip));
        ip.push(0); // padded: not its total length
        assert!(!is_bare_ipv4(&ip));
        let mut eth = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        eth.extend_from_slice(&ip[..28]);
        assert!(!is_bare_ipv4(&eth));
        assert!(!is_bare_ipv4(&[0x45; 10]));
    }

    #[test]
    fn a_full_queue_is_counted_never_waited_on() {
        let bin = TrashBin::new(u32::MAX, 1_000);
        for _ in 0..RECORDS + 5 {
            bin.offer(0, 0, DropReason::Malformed, None, &[0; 10], 0);
        }
        assert_eq!(bin.queue_full.load(Ordering::Relaxed), 5);
        assert_eq!(bin.full.len(), RECORDS);
    }
}
