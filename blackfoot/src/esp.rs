//! ESP tunnel mode (RFC 4303) with AES-128-GCM (RFC 4106): the VPN side of the edge,
//! sans-I/O over [`PacketBuf`].
//!
//! # Wire layout
//!
//! [`encrypt`] turns the inner IPv4 packet in the buffer into this outer IPv4 packet, in
//! place (36 bytes prepended, padding, trailer and ICV appended):
//!
//! ```text
//! outer IPv4 (20) | SPI (4) | seq (4) | IV (8) | ciphertext | ICV (16)
//!                                               '-> inner IPv4 packet | padding 1, 2, 3, ...
//!                                                   | pad length (1) | next header = 4 (1)
//! ```
//!
//! * AES-GCM nonce = salt (4 bytes of key material, [`SaConfig::salt`]) || IV (8);
//!   AAD = SPI || sequence number (8 bytes, no extended sequence numbers; RFC 4106 section 5).
//! * Padding: the fewest bytes 1, 2, 3, ... that make inner length + 2 a multiple of 4
//!   (RFC 4303 section 2.4; GCM is a stream mode, so 4 is the only alignment).
//! * Outer IPv4 header (RFC 4301 section 5.1.2.1): version 4, IHL 5, DSCP **copied from
//!   the inner header**, ECN 0 (Not-ECT: RFC 6040's compatibility mode, which is right
//!   whatever the peer's decapsulator does with ECN), total length, identification = the
//!   low 16 bits of the ESP sequence number (unique per packet for 65536 packets, without
//!   a second shared counter), DF **copied from the inner header** (RFC 4301 section 8.1
//!   "copy DF"), MF 0, offset 0, TTL 64, protocol 50, header checksum, source = the edge's
//!   tunnel address, destination = the customer gateway. No Ethernet: the caller adds it.
//!
//! # Sequence numbers and IVs
//!
//! An [`OutboundSa`] counts packets in an [`AtomicU64`]: several workers may share one SA
//! through an `Arc`, and `fetch_add` hands each packet its own number. The first packet
//! gets 1. Numbers are 32 bits (no ESN): once the counter passes `u32::MAX` the SA is
//! exhausted and every further packet is dropped with
//! [`DropReason::EspSeqExhausted`] (a rekey is needed); it never wraps.
//!
//! The explicit IV is the 64-bit counter value, big-endian (so `0x00000000_<seq>`).
//! RFC 4106 section 3.1 asks only that the IV never repeat under a key, and suggests a
//! counter; as the sequence number never repeats, neither does the nonce.
//!
//! # Receiving
//!
//! [`decrypt`] gets the ESP packet (the caller removed Ethernet and the outer IPv4 header
//! and found the [`InboundSa`] by [`parse_spi`]). In this order:
//!
//! 1. lengths: the ESP header, IV, at least the 2 trailer bytes and the ICV, ciphertext a
//!    multiple of 4 — else [`DropReason::Malformed`]; SPI of the SA — else
//!    [`DropReason::UnknownSpi`];
//! 2. anti-replay check ([`ReplayWindow::check`]) — [`DropReason::EspReplay`];
//! 3. ICV check and decryption — [`DropReason::EspAuthFailed`];
//! 4. anti-replay update ([`ReplayWindow::update`]): only authentic packets move the
//!    window, so forgeries cannot push real traffic out of it;
//! 5. trailer: padding must be 1, 2, 3, ... — else [`DropReason::Malformed`]; next header
//!    must be 4 (IPv4) — else [`DropReason::Unsupported`] (this covers dummy packets,
//!    next header 59, which RFC 4303 says to discard);
//! 6. the inner IPv4 header must be whole, version 4, with a total length equal to the
//!    decrypted payload — else [`DropReason::Malformed`];
//! 7. header and IV are removed at the front, padding, trailer and ICV at the end: the
//!    buffer then holds exactly the inner IPv4 packet.
//!
//! # Anti-replay window
//!
//! [`ReplayWindow`] tracks the [`REPLAY_WINDOW`] (1024) sequence numbers ending at the
//! highest authentic one, in a ring of 64-bit words with one spare word (RFC 6479): moving
//! the window clears whole words and never shifts bits. A packet older than the window,
//! already seen, or numbered 0 is refused.
//!
//! Nothing here allocates or panics on packet data; no function takes a lock.

use core::sync::atomic::{AtomicU64, Ordering};
use std::net::Ipv4Addr;

use mapping_client::topology::SaConfig;
use pipeline::DropReason;
use wire::esp::{
    self as wesp, Trailer, GCM_ALIGN, GCM_ICV_LEN, GCM_IV_LEN, NEXT_HEADER_IPV4, TRAILER_LEN,
};
use wire::ipv4::{self, Protocol};
use wire::PacketBuf;

use crate::aead::{Aead, AeadJob, KeyError, RingAesGcm, NONCE_LEN, TAG_LEN};

/// Bytes [`encrypt`] puts in front of the inner packet: outer IPv4, ESP header, IV.
pub const HEAD_LEN: usize = ipv4::HEADER_LEN + wesp::HEADER_LEN + GCM_IV_LEN;
/// The most bytes [`encrypt`] adds to a packet: [`HEAD_LEN`], 3 bytes of padding, the
/// trailer and the ICV (57).
pub const ESP_OVERHEAD_MAX: usize = HEAD_LEN + (GCM_ALIGN - 1) + TRAILER_LEN + GCM_ICV_LEN;
/// TTL of the outer header.
pub const OUTER_TTL: u8 = 64;
/// Sequence numbers (and packets) the anti-replay window covers.
pub const REPLAY_WINDOW: usize = 1024;

/// Words of the replay bitmap: the window plus one spare word (RFC 6479).
const REPLAY_WORDS: usize = REPLAY_WINDOW / 64 + 1;
/// Bytes of the ESP header and IV, removed by [`decrypt`].
const ESP_HEAD_LEN: usize = wesp::HEADER_LEN + GCM_IV_LEN;

/// Length of the outer IPv4 packet [`encrypt`] makes of an inner packet of `inner_len`
/// bytes: [`HEAD_LEN`] + the inner packet, padding and trailer rounded up to 4 + the ICV
/// (saturating near `usize::MAX`, where no packet lives).
#[inline]
pub const fn tunnel_len(inner_len: usize) -> usize {
    let encrypted = inner_len.saturating_add(TRAILER_LEN + GCM_ALIGN - 1) & !(GCM_ALIGN - 1);
    encrypted.saturating_add(HEAD_LEN + GCM_ICV_LEN)
}

/// The largest inner packet length whose [`tunnel_len`] fits in `mtu` (1446 for 1500).
/// 0 when `mtu` < 56, where nothing fits (an empty payload needs 56 bytes).
#[inline]
pub const fn max_inner_for_mtu(mtu: usize) -> usize {
    // tunnel_len(n) = HEAD_LEN + ICV + round_up_4(n + 2).
    let room = mtu.saturating_sub(HEAD_LEN + GCM_ICV_LEN);
    (room & !(GCM_ALIGN - 1)).saturating_sub(TRAILER_LEN)
}

/// The SPI of an ESP packet (the IPv4 payload), for the SA lookup. `None` for fewer than
/// the 8 header bytes or for SPI 0 (reserved, never sent).
#[inline]
pub fn parse_spi(esp: &[u8]) -> Option<u32> {
    if esp.len() < wesp::HEADER_LEN {
        return None;
    }
    let spi = u32::from_be_bytes(esp.get(..4)?.try_into().ok()?);
    (spi != 0).then_some(spi)
}

/// The sending side of an SA: shared by all workers (through an `Arc`), so its only
/// mutable state is the atomic sequence counter.
pub struct OutboundSa<A: Aead> {
    spi: u32,
    salt: [u8; 4],
    aead: A,
    local: Ipv4Addr,
    remote: Ipv4Addr,
    /// The number the next packet gets; past `u32::MAX` the SA is exhausted.
    next_seq: AtomicU64,
    /// The outer header's checksum words that are the same for every packet of the SA
    /// (TTL and protocol, the addresses: [`fixed_sum`]) plus the version and IHL word (0x4500): what the fast path adds the
    /// packet's four varying words to.
    head_sum: u32,
    /// The [`HEAD_LEN`] bytes [`encrypt`] prepends, with what is the same for every packet
    /// of the SA filled in (version and IHL, TTL, protocol, addresses, SPI) and zeros where
    /// a packet's fields go (DSCP, total length, identification, DF, checksum, sequence
    /// number, IV): one copy and a few patched fields per packet.
    head: [u8; HEAD_LEN],
}

impl<A: Aead> OutboundSa<A> {
    /// An SA from its configuration, the edge's tunnel address `local`, the customer
    /// gateway `remote`, and a cipher keyed with `config.key`. The first packet gets
    /// sequence number 1.
    pub fn new(config: &SaConfig, local: Ipv4Addr, remote: Ipv4Addr, aead: A) -> Self {
        OutboundSa {
            spi: config.spi,
            salt: config.salt,
            aead,
            local,
            remote,
            next_seq: AtomicU64::new(1),
            head_sum: fixed_sum(local, remote) + 0x4500,
            head: head_template(config.spi, local, remote),
        }
    }

    /// Set the number the next packet gets (tests, or resuming an SA). Values above
    /// `u32::MAX` make the SA exhausted.
    pub fn with_next_seq(self, next: u64) -> Self {
        self.next_seq.store(next, Ordering::Relaxed);
        self
    }

    /// Security parameters index.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The edge's tunnel address (outer source).
    pub fn local(&self) -> Ipv4Addr {
        self.local
    }

    /// The customer gateway (outer destination).
    pub fn remote(&self) -> Ipv4Addr {
        self.remote
    }

    /// The cipher.
    pub fn aead(&self) -> &A {
        &self.aead
    }

    /// The number the next packet would get (above `u32::MAX`: exhausted).
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }

    /// True once the SA has no sequence number left.
    pub fn is_exhausted(&self) -> bool {
        self.next_seq() > u64::from(u32::MAX)
    }

    /// Take the next sequence number. Uniqueness comes from `fetch_add` alone (no other
    /// memory is published through the counter, hence `Relaxed`). The load first keeps
    /// an exhausted counter from moving, so it can never wrap.
    #[inline]
    fn take_seq(&self) -> Result<u32, DropReason> {
        if self.is_exhausted() {
            return Err(DropReason::EspSeqExhausted);
        }
        let n = self.next_seq.fetch_add(1, Ordering::Relaxed);
        u32::try_from(n).map_err(|_| DropReason::EspSeqExhausted)
    }

    /// Take the next `n` sequence numbers with one atomic add (a burst's packets, which
    /// then take them from the block in order, [`encrypt_prepare_from`]); past
    /// `u32::MAX` the block holds fewer, none once the SA is exhausted. Numbers a burst
    /// does not use are lost (a gap the receiver's window accepts).
    pub fn take_seqs(&self, n: u32) -> SeqBlock {
        if self.is_exhausted() || n == 0 {
            return SeqBlock::default();
        }
        let first = self.next_seq.fetch_add(u64::from(n), Ordering::Relaxed);
        SeqBlock { next: first, end: (first + u64::from(n)).min(u64::from(u32::MAX) + 1) }
    }
}

/// Sequence numbers taken at once ([`OutboundSa::take_seqs`]): `next..end`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqBlock {
    next: u64,
    end: u64,
}

impl SeqBlock {
    /// The next number of the block; once it is used up, the SA is exhausted.
    #[inline]
    fn take(&mut self) -> Result<u32, DropReason> {
        let n = u32::try_from(self.next).ok().filter(|_| self.next < self.end).ok_or(DropReason::EspSeqExhausted)?;
        self.next += 1;
        Ok(n)
    }
}

impl OutboundSa<RingAesGcm> {
    /// [`OutboundSa::new`] with a [`RingAesGcm`] keyed from `config`.
    pub fn with_ring(
        config: &SaConfig,
        local: Ipv4Addr,
        remote: Ipv4Addr,
    ) -> Result<Self, KeyError> {
        Ok(Self::new(config, local, remote, RingAesGcm::new(&config.key)?))
    }
}

impl<A: Aead> core::fmt::Debug for OutboundSa<A> {
    /// Never prints key material.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &self.spi)
            .field("aead", &self.aead.name())
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}

/// The receiving side of an SA: owned by one worker (the replay window is not shared).
pub struct InboundSa<A: Aead> {
    spi: u32,
    salt: [u8; 4],
    aead: A,
    replay: ReplayWindow,
}

impl<A: Aead> InboundSa<A> {
    /// An SA from its configuration and a cipher keyed with `config.key`.
    pub fn new(config: &SaConfig, aead: A) -> Self {
        InboundSa { spi: config.spi, salt: config.salt, aead, replay: ReplayWindow::new() }
    }

    /// Security parameters index.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The cipher.
    pub fn aead(&self) -> &A {
        &self.aead
    }

    /// The anti-replay window.
    pub fn replay(&self) -> &ReplayWindow {
        &self.replay
    }
}

impl InboundSa<RingAesGcm> {
    /// [`InboundSa::new`] with a [`RingAesGcm`] keyed from `config`.
    pub fn with_ring(config: &SaConfig) -> Result<Self, KeyError> {
        Ok(Self::new(config, RingAesGcm::new(&config.key)?))
    }
}

impl<A: Aead> core::fmt::Debug for InboundSa<A> {
    /// Never prints key material.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &self.spi)
            .field("aead", &self.aead.name())
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

/// Why [`ReplayWindow::check`] refused a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayError {
    /// Sequence number 0: never sent (the first packet is 1).
    Zero,
    /// Left of the window: more than [`REPLAY_WINDOW`] - 1 below the highest seen.
    TooOld,
    /// Already received.
    Duplicate,
}

/// The anti-replay window of RFC 4303 section 3.4.3, as a bitmap of RFC 6479: the
/// [`REPLAY_WINDOW`] numbers ending at the highest authentic sequence number, in a ring
/// of `u64` words plus one spare word. No allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest authentic sequence number (0: none yet).
    top: u32,
    /// Bit `seq % 64` of word `(seq / 64) % REPLAY_WORDS`: `seq` was received.
    bitmap: [u64; REPLAY_WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow").field("top", &self.top).finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// An empty window: nothing received yet.
    pub const fn new() -> Self {
        ReplayWindow { top: 0, bitmap: [0; REPLAY_WORDS] }
    }

    /// The highest sequence number [`update`](Self::update) has seen (0: none).
    pub fn top(&self) -> u32 {
        self.top
    }

    #[inline]
    fn slot(seq: u32) -> (usize, u64) {
        let word = (seq / 64) as usize % REPLAY_WORDS;
        (word, 1u64 << (seq % 64))
    }

    #[inline]
    fn is_set(&self, seq: u32) -> bool {
        let (word, bit) = Self::slot(seq);
        self.bitmap.get(word).is_some_and(|w| w & bit != 0)
    }

    /// May a packet numbered `seq` be accepted? Call before decrypting; it changes
    /// nothing.
    #[inline]
    pub fn check(&self, seq: u32) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if seq > self.top {
            return Ok(());
        }
        if (self.top - seq) as usize >= REPLAY_WINDOW {
            return Err(ReplayError::TooOld);
        }
        if self.is_set(seq) {
            return Err(ReplayError::Duplicate);
        }
        Ok(())
    }

    /// Record `seq` as received: call after the packet authenticated. A number ahead of
    /// the window moves the window (clearing the words it enters); one the window no
    /// longer covers, or 0, changes nothing.
    #[inline]
    pub fn update(&mut self, seq: u32) {
        if seq == 0 {
            return;
        }
        if seq > self.top {
            let old_block = self.top / 64;
            let new_block = seq / 64;
            let diff = (new_block - old_block) as usize;
            if diff >= REPLAY_WORDS {
                self.bitmap = [0; REPLAY_WORDS];
            } else {
                for i in 1..=diff {
                    let word = (old_block as usize + i) % REPLAY_WORDS;
                    if let Some(w) = self.bitmap.get_mut(word) {
                        *w = 0;
                    }
                }
            }
            self.top = seq;
        } else if (self.top - seq) as usize >= REPLAY_WINDOW {
            return;
        }
        let (word, bit) = Self::slot(seq);
        if let Some(w) = self.bitmap.get_mut(word) {
            *w |= bit;
        }
    }
}

/// Padding, pad length and next header (IPv4) for each pad length GCM's 4-byte alignment
/// can need, each followed by zeros to 5 bytes (they fall in the ICV).
const TRAILERS: [[u8; 5]; GCM_ALIGN] = [[0, 4, 0, 0, 0], [1, 1, 4, 0, 0], [1, 2, 2, 4, 0], [1, 2, 3, 3, 4]];
const _: () = assert!(NEXT_HEADER_IPV4.0 == 4 && TRAILER_LEN + GCM_ICV_LEN >= 5);

/// The outer header's TTL, protocol and address words summed (the ones' complement sum
/// before folding), the part of its checksum every packet of an SA shares.
fn fixed_sum(src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
    let ttl_proto = u32::from(OUTER_TTL) << 8 | u32::from(Protocol::ESP.0);
    let (s, d) = (u32::from(src), u32::from(dst));
    ttl_proto + (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff)
}

/// The bytes of an SA's [`OutboundSa::head`]: outer IPv4 header, ESP header and IV with
/// every per-packet field zero.
fn head_template(spi: u32, src: Ipv4Addr, dst: Ipv4Addr) -> [u8; HEAD_LEN] {
    let mut h = [0u8; HEAD_LEN];
    h[0] = 0x45;
    h[8] = OUTER_TTL;
    h[9] = Protocol::ESP.0;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    h[20..24].copy_from_slice(&spi.to_be_bytes());
    h
}

/// The outer IPv4 header of the module docs: version 4, IHL 5, `dscp` with ECN 0,
/// `total_len`, `ident`, DF as `df`, TTL [`OUTER_TTL`], ESP, `src` to `dst`, and its
/// checksum summed from those fields (straight-line: no pass over the bytes).
#[cfg(test)]
fn outer_header(dscp: u8, df: bool, total_len: u16, ident: u16, src: Ipv4Addr, dst: Ipv4Addr) -> [u8; ipv4::HEADER_LEN] {
    outer_header_from(fixed_sum(src, dst), dscp, df, total_len, ident, src, dst)
}

/// [`outer_header`] with the TTL, protocol and address words already summed (`fixed`,
/// [`fixed_sum`] of `src` and `dst`): per packet only the four words that vary are added.
#[cfg(test)]
fn outer_header_from(fixed: u32, dscp: u8, df: bool, total_len: u16, ident: u16, src: Ipv4Addr, dst: Ipv4Addr) -> [u8; ipv4::HEADER_LEN] {
    let ver_tos = 0x4500u16 | u16::from(dscp & 0x3f) << 2;
    let flags: u16 = if df { 0x4000 } else { 0 };
    let ttl_proto = u16::from(OUTER_TTL) << 8 | u16::from(Protocol::ESP.0);
    // Four words of at most 0xffff on top of `fixed` (itself under 5 * 0x10000): no
    // overflow; two folds bring any such sum to 16 bits.
    let mut sum = fixed + u32::from(ver_tos) + u32::from(total_len) + u32::from(ident) + u32::from(flags);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    let checksum = !(sum as u16);
    let mut h = [0u8; ipv4::HEADER_LEN];
    h[0..2].copy_from_slice(&ver_tos.to_be_bytes());
    h[2..4].copy_from_slice(&total_len.to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    h[6..8].copy_from_slice(&flags.to_be_bytes());
    h[8..10].copy_from_slice(&ttl_proto.to_be_bytes());
    h[10..12].copy_from_slice(&checksum.to_be_bytes());
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    h
}

#[inline]
fn nonce(salt: &[u8; 4], iv: &[u8; GCM_IV_LEN]) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    let (s, i) = n.split_at_mut(4);
    s.copy_from_slice(salt);
    i.copy_from_slice(iv);
    n
}

/// Wrap the inner IPv4 packet in `buf` (from its IPv4 header to its total length, nothing
/// after) into an ESP tunnel-mode packet of `sa`, in place; see the module docs for the
/// layout. On success `buf` holds the outer IPv4 packet, [`tunnel_len`] bytes.
///
/// Errors, all before the buffer or the SA changes: [`DropReason::Malformed`] when the
/// buffer does not hold exactly one IPv4 packet; [`DropReason::MtuExceeded`] when the
/// outer packet would pass 65535 bytes; [`DropReason::NoRoom`] without [`HEAD_LEN`]
/// bytes of headroom and the padding, trailer and ICV in tailroom;
/// [`DropReason::EspSeqExhausted`] when the SA has no sequence number left.
pub fn encrypt<B: PacketBuf, A: Aead>(buf: &mut B, sa: &OutboundSa<A>) -> Result<(), DropReason> {
    let plan = encrypt_prepare(buf, sa)?;
    let job = plan.job(buf.data_mut()).ok_or(DropReason::NoRoom)?;
    *job.tag = sa.aead.seal(&job.nonce, job.aad, job.data);
    Ok(())
}

/// What [`encrypt_prepare`] left to the cipher: the nonce and the length of the bytes to
/// encrypt (inner packet, padding, trailer), which end [`GCM_ICV_LEN`] bytes before the
/// end of the buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealPlan {
    nonce: [u8; NONCE_LEN],
    plaintext_len: usize,
}

impl SealPlan {
    /// The cipher's job in `data`: a buffer's bytes that end with the ESP packet
    /// [`encrypt_prepare`] made (headers prepended since, e.g. Ethernet, may come before
    /// it). `None` if `data` is too short to hold it.
    #[inline]
    pub fn job<'a>(&self, data: &'a mut [u8]) -> Option<AeadJob<'a>> {
        let start = data.len().checked_sub(ESP_HEAD_LEN + self.plaintext_len + GCM_ICV_LEN)?;
        job(data.get_mut(start..)?, self.nonce, self.plaintext_len)
    }
}

/// [`encrypt`] up to the cipher: on success `buf` holds the outer IPv4 packet with the
/// inner packet, padding and trailer still in clear and the ICV unset; sealing the
/// [`SealPlan::job`] (alone or in a burst, [`Aead::seal_burst`]) finishes it. Same errors,
/// before the buffer or the SA changes.
pub fn encrypt_prepare<B: PacketBuf, A: Aead>(buf: &mut B, sa: &OutboundSa<A>) -> Result<SealPlan, DropReason> {
    prepare_with(buf, sa, &[], || sa.take_seq())
}

/// [`encrypt_prepare`] with the sequence number from `seqs`, taken for the burst
/// ([`OutboundSa::take_seqs`]) instead of one atomic add per packet; a packet refused
/// before it takes its number leaves it to the next.
#[inline]
pub fn encrypt_prepare_from<B: PacketBuf, A: Aead>(
    buf: &mut B,
    sa: &OutboundSa<A>,
    seqs: &mut SeqBlock,
) -> Result<SealPlan, DropReason> {
    prepare_with(buf, sa, &[], || seqs.take())
}

/// [`encrypt_prepare`] (with the sequence number from `seqs` when given, as
/// [`encrypt_prepare_from`]) that also puts `link` (a link header, e.g. Ethernet) in
/// front of the outer IPv4 header, in the same prepend: the buffer ends as
/// [`encrypt_prepare`] then prepending `link` would leave it, with one room check and
/// one move of the data start instead of two. Refused with [`DropReason::NoRoom`],
/// before anything changes, without [`HEAD_LEN`] + `L` bytes of headroom.
#[inline]
pub fn encrypt_prepare_linked<B: PacketBuf, A: Aead, const L: usize>(
    buf: &mut B,
    sa: &OutboundSa<A>,
    seqs: Option<&mut SeqBlock>,
    link: &[u8; L],
) -> Result<SealPlan, DropReason> {
    match seqs {
        Some(seqs) => prepare_with(buf, sa, link, || seqs.take()),
        None => prepare_with(buf, sa, link, || sa.take_seq()),
    }
}

/// [`encrypt_prepare`]'s work, the ESP stage's per-packet pass before the cipher: the
/// inner header's first 8 bytes read once, the SA's [`OutboundSa::head`] copied with the
/// packet's fields patched in (the checksum summed from [`OutboundSa::head_sum`] and those
/// fields), the trailer from a table. Tested equal to [`prepare_reference`], the general
/// form, bytes, plan and refusals.
#[inline(always)]
fn prepare_with<B: PacketBuf, A: Aead, const L: usize>(
    buf: &mut B,
    sa: &OutboundSa<A>,
    link: &[u8; L],
    take_seq: impl FnOnce() -> Result<u32, DropReason>,
) -> Result<SealPlan, DropReason> {
    let inner_len = buf.len();
    // What `ipv4::Packet::new_checked`, the version and the total length against the
    // buffer refuse (all `Malformed`): fewer than 20 bytes, a version other than 4, an IHL
    // under 20 bytes or past the packet, a total length other than the buffer's.
    let (tos, flags) = {
        let h: &[u8; 8] = buf.data().get(..8).and_then(|h| h.try_into().ok()).ok_or(DropReason::Malformed)?;
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if inner_len < ipv4::HEADER_LEN || h[0] >> 4 != 4 || ihl < ipv4::HEADER_LEN || ihl > inner_len || total != inner_len {
            return Err(DropReason::Malformed);
        }
        // DSCP with ECN 0; DF alone of the flags.
        (h[1] & 0xfc, h[6] & 0x40)
    };
    let outer_len = u16::try_from(tunnel_len(inner_len)).map_err(|_| DropReason::MtuExceeded)?;
    let pad = wesp::pad_len(inner_len, GCM_ALIGN);
    let tail_len = pad + TRAILER_LEN + GCM_ICV_LEN;
    if buf.headroom() < L + HEAD_LEN || buf.tailroom() < tail_len {
        return Err(DropReason::NoRoom);
    }
    let seq = take_seq()?;
    let ident = seq as u16;
    // `head_sum` is under 6 * 0x10000; four words of at most 0xffff on top: no overflow,
    // and two folds bring the sum to 16 bits.
    let mut sum = sa.head_sum + u32::from(tos) + u32::from(outer_len) + u32::from(ident) + (u32::from(flags) << 8);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    let checksum = !(sum as u16);

    // Padding 1, 2, 3 (GCM_ALIGN 4: at most 3 bytes), pad length, next header, written
    // after the inner packet as one fixed-size copy of 5 bytes from a table: what it
    // writes past the trailer is in the ICV, which the cipher writes.
    let tail = buf.append(tail_len).map_err(|_| DropReason::NoRoom)?;
    let trailer = TRAILERS.get(pad).ok_or(DropReason::NoRoom)?;
    tail.get_mut(..trailer.len()).ok_or(DropReason::NoRoom)?.copy_from_slice(trailer);
    let head = buf.prepend(L + HEAD_LEN).map_err(|_| DropReason::NoRoom)?;
    let (link_part, head) = head.split_at_mut(L);
    link_part.copy_from_slice(link);
    let head: &mut [u8; HEAD_LEN] = head.try_into().map_err(|_| DropReason::NoRoom)?;
    // The SA's bytes (stored long before: no store-forwarding stall), then the packet's.
    *head = sa.head;
    let seq_be = seq.to_be_bytes();
    head[1] = tos;
    head[2..4].copy_from_slice(&outer_len.to_be_bytes());
    head[4..6].copy_from_slice(&ident.to_be_bytes());
    head[6] = flags;
    head[10..12].copy_from_slice(&checksum.to_be_bytes());
    head[24..28].copy_from_slice(&seq_be);
    // The IV: the 64-bit counter value, its high half zero (in the template).
    head[32..36].copy_from_slice(&seq_be);
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&sa.salt);
    nonce[8..].copy_from_slice(&seq_be);
    Ok(SealPlan { nonce, plaintext_len: inner_len + pad + TRAILER_LEN })
}

/// The general form [`prepare_with`] replaced (kept for the tests: the same bytes, plan
/// and refusals): the inner header parsed by [`ipv4::Packet`], the outer header built by
/// [`outer_header_from`], each field copied on its own.
#[cfg(test)]
fn prepare_reference<B: PacketBuf, A: Aead, const L: usize>(
    buf: &mut B,
    sa: &OutboundSa<A>,
    link: &[u8; L],
    take_seq: impl FnOnce() -> Result<u32, DropReason>,
) -> Result<SealPlan, DropReason> {
    let inner_len = buf.len();
    let (dscp, df) = {
        let ip = ipv4::Packet::new_checked(buf.data()).map_err(|_| DropReason::Malformed)?;
        if ip.version() != 4 || usize::from(ip.total_len()) != inner_len {
            return Err(DropReason::Malformed);
        }
        (ip.dscp(), ip.dont_frag())
    };
    let outer_len = u16::try_from(tunnel_len(inner_len)).map_err(|_| DropReason::MtuExceeded)?;
    let pad = wesp::pad_len(inner_len, GCM_ALIGN);
    let tail_len = pad + TRAILER_LEN + GCM_ICV_LEN;
    if buf.headroom() < L + HEAD_LEN || buf.tailroom() < tail_len {
        return Err(DropReason::NoRoom);
    }
    let seq = take_seq()?;
    let iv = u64::from(seq).to_be_bytes();

    // Outer IPv4 header, built whole on the stack (the prepended bytes hold garbage).
    let outer = outer_header_from(fixed_sum(sa.local, sa.remote), dscp, df, outer_len, seq as u16, sa.local, sa.remote);

    // Padding 1, 2, 3 (GCM_ALIGN 4: at most 3 bytes), pad length, next header, written
    // after the inner packet as one fixed-size copy of 5 bytes from a table (a copy of
    // pad + 2 bytes would be a memcpy call, and bytes built on the stack a store-forwarding
    // stall): what it writes past the trailer is in the ICV, which the cipher writes.
    let tail = buf.append(tail_len).map_err(|_| DropReason::NoRoom)?;
    let trailer = TRAILERS.get(pad).ok_or(DropReason::NoRoom)?;
    tail.get_mut(..trailer.len()).ok_or(DropReason::NoRoom)?.copy_from_slice(trailer);
    let head = buf.prepend(L + HEAD_LEN).map_err(|_| DropReason::NoRoom)?;
    let (link_part, head) = head.split_at_mut(L);
    link_part.copy_from_slice(link);
    let (ip_part, esp_part) = head.split_at_mut(ipv4::HEADER_LEN);
    ip_part.copy_from_slice(&outer);
    let (spi_seq, iv_part) = esp_part.split_at_mut(wesp::HEADER_LEN);
    let (spi_part, seq_part) = spi_seq.split_at_mut(4);
    spi_part.copy_from_slice(&sa.spi.to_be_bytes());
    seq_part.copy_from_slice(&seq.to_be_bytes());
    iv_part.copy_from_slice(&iv);
    Ok(SealPlan { nonce: nonce(&sa.salt, &iv), plaintext_len: inner_len + pad + TRAILER_LEN })
}

/// Check, decrypt and unwrap the ESP packet in `buf` (from the SPI to the end of the ICV)
/// with `sa`; see the module docs for the steps and their drop reasons. On success `buf`
/// holds exactly the inner IPv4 packet. On failure the buffer keeps its length but its
/// content is unspecified (a failed open may leave garbage), and the replay window moved
/// only if the packet authenticated.
pub fn decrypt<B: PacketBuf, A: Aead>(
    buf: &mut B,
    sa: &mut InboundSa<A>,
) -> Result<(), DropReason> {
    let plan = decrypt_check(buf.data(), sa)?;
    let job = plan.job(buf.data_mut()).ok_or(DropReason::Malformed)?;
    let ok = sa.aead.open(&job.nonce, job.aad, job.data, job.tag);
    decrypt_finish(buf, sa, plan, ok)
}

/// What [`decrypt_check`] found: the packet's sequence number and nonce, and the length
/// of its ciphertext.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenPlan {
    seq: u32,
    nonce: [u8; NONCE_LEN],
    ciphertext_len: usize,
}

impl OpenPlan {
    /// The cipher's job in `data`, the ESP packet [`decrypt_check`] passed (from the SPI
    /// to the end of the ICV). `None` if `data` is not that long.
    #[inline]
    pub fn job<'a>(&self, data: &'a mut [u8]) -> Option<AeadJob<'a>> {
        job(data, self.nonce, self.ciphertext_len)
    }
}

/// The cipher's job in `esp`, an ESP packet from the SPI to the end of the ICV with
/// `body_len` bytes to encrypt or decrypt: AAD = SPI || sequence number, the body, the
/// ICV as the tag. `None` unless `esp` is exactly that long.
#[inline(always)]
fn job(esp: &mut [u8], nonce: [u8; NONCE_LEN], body_len: usize) -> Option<AeadJob<'_>> {
    if esp.len() != ESP_HEAD_LEN + body_len + GCM_ICV_LEN {
        return None;
    }
    // In bounds: the length was just checked.
    let (head, rest) = esp.split_at_mut(ESP_HEAD_LEN);
    let (data, icv) = rest.split_at_mut(body_len);
    let tag: &mut [u8; TAG_LEN] = icv.try_into().ok()?;
    Some(AeadJob { nonce, aad: head.get(..wesp::HEADER_LEN)?, data, tag, ok: false })
}

/// Steps 1 and 2 of [`decrypt`] on the ESP packet `esp`: lengths, SPI, anti-replay check.
/// Changes nothing.
pub fn decrypt_check<A: Aead>(esp: &[u8], sa: &InboundSa<A>) -> Result<OpenPlan, DropReason> {
    let packet = wesp::Packet::new_checked(esp).map_err(|_| DropReason::Malformed)?;
    let (spi, seq) = (packet.spi(), packet.sequence_number());
    let layout = packet.layout(GCM_IV_LEN, GCM_ICV_LEN).map_err(|_| DropReason::Malformed)?;
    let ciphertext_len = layout.ciphertext.len();
    if spi != sa.spi {
        return Err(DropReason::UnknownSpi);
    }
    sa.replay.check(seq).map_err(|_| DropReason::EspReplay)?;
    let iv: &[u8; GCM_IV_LEN] = esp
        .get(wesp::HEADER_LEN..ESP_HEAD_LEN)
        .and_then(|v| v.try_into().ok())
        .ok_or(DropReason::Malformed)?;
    Ok(OpenPlan { seq, nonce: nonce(&sa.salt, iv), ciphertext_len })
}

/// Steps 3 to 7 of [`decrypt`] once the cipher opened the [`OpenPlan::job`] (`authentic`:
/// the tag verified): the anti-replay window is checked again (a burst may hold the same
/// number twice) and updated, then the trailer and inner header are checked and the
/// buffer cut to the inner packet.
pub fn decrypt_finish<B: PacketBuf, A: Aead>(
    buf: &mut B,
    sa: &mut InboundSa<A>,
    plan: OpenPlan,
    authentic: bool,
) -> Result<(), DropReason> {
    if !authentic {
        return Err(DropReason::EspAuthFailed);
    }
    sa.replay.check(plan.seq).map_err(|_| DropReason::EspReplay)?;
    sa.replay.update(plan.seq);
    let (payload_len, total) = {
        let data = buf.data();
        let total = data.len();
        let ciphertext =
            data.get(ESP_HEAD_LEN..ESP_HEAD_LEN + plan.ciphertext_len).ok_or(DropReason::Malformed)?;
        let trailer = Trailer::parse(ciphertext).map_err(|_| DropReason::Malformed)?;
        if trailer.next_header != NEXT_HEADER_IPV4 {
            return Err(DropReason::Unsupported);
        }
        let inner = ciphertext.get(..trailer.payload_len).ok_or(DropReason::Malformed)?;
        let ip = ipv4::Packet::new_checked(inner).map_err(|_| DropReason::Malformed)?;
        if ip.version() != 4 || usize::from(ip.total_len()) != inner.len() {
            return Err(DropReason::Malformed);
        }
        (trailer.payload_len, total)
    };
    let tail = total.checked_sub(ESP_HEAD_LEN + payload_len).ok_or(DropReason::Malformed)?;
    buf.trim(tail).map_err(|_| DropReason::Malformed)?;
    buf.adj(ESP_HEAD_LEN).map_err(|_| DropReason::Malformed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_of_sequence_numbers_is_one_add_and_stops_at_exhaustion() {
        let sa = OutboundSa::with_ring(&config(), Ipv4Addr::new(203, 0, 113, 1), Ipv4Addr::new(198, 51, 100, 1)).unwrap();
        let mut b = sa.take_seqs(3);
        assert_eq!(sa.next_seq(), 4);
        assert_eq!([b.take(), b.take(), b.take(), b.take()], [Ok(1), Ok(2), Ok(3), Err(DropReason::EspSeqExhausted)]);
        let sa = sa.with_next_seq(u64::from(u32::MAX) - 1);
        let mut b = sa.take_seqs(5);
        assert_eq!([b.take(), b.take(), b.take()], [Ok(u32::MAX - 1), Ok(u32::MAX), Err(DropReason::EspSeqExhausted)]);
        assert!(sa.is_exhausted());
        assert_eq!(sa.take_seqs(2), SeqBlock::default());
        assert_eq!(sa.take_seq(), Err(DropReason::EspSeqExhausted));
    }

    #[test]
    fn the_outer_header_is_what_the_field_setters_make() {
        for (dscp, df, len, id, src, dst) in [
            (0u8, true, 120u16, 1u16, [203, 0, 113, 1], [198, 51, 100, 1]),
            (46, false, 1500, 0xffff, [255, 255, 255, 255], [0, 0, 0, 0]),
            (63, true, 56, 0x8001, [10, 0, 0, 1], [172, 16, 255, 254]),
        ] {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let mut want = [0u8; ipv4::HEADER_LEN];
            let mut ip = ipv4::Packet::new_unchecked(&mut want[..]);
            ip.set_version(4);
            ip.set_header_len(ipv4::HEADER_LEN as u8);
            ip.set_dscp(dscp);
            ip.set_total_len(len);
            ip.set_ident(id);
            ip.set_dont_frag(df);
            ip.set_ttl(OUTER_TTL);
            ip.set_protocol(Protocol::ESP);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
            ip.fill_checksum();
            let got = outer_header(dscp, df, len, id, src, dst);
            assert_eq!(got, want, "dscp {dscp} df {df} len {len} id {id}");
            assert!(wire::checksum::ipv4_header_ok(&got));
        }
    }
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::sync::Arc;
    use wire::TestBuffer;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    // The vector of wire::esp's tests, made by scapy 2.5:
    // SecurityAssociation(ESP, spi=0x1001, crypt_algo='AES-GCM',
    //   crypt_key=bytes(range(16)) + bytes.fromhex('cafebabe'),
    //   tunnel_header=IP(src='203.0.113.1', dst='198.51.100.1'))
    //   .encrypt(IP(src='10.0.1.10', dst='172.16.0.5', id=16)/ICMP(type=8, id=3, seq=1)
    //   /Raw(b'vpn!'), seq_num=1, iv=bytes.fromhex('0000000000000001'))
    // scapy's outer header has id 1, no DF, TTL 64: what encrypt writes for sequence 1.
    const SCAPY_GCM: &str = "45000058000100004032143dcb007101c633640100001001000000010000000000000001f70519b94a6f51f4db1a02b34c7fa83d7f788145b1f75beffeb61ff5019d471a8585b5f87985ff59aea80fb1a3f80c719ea7a018";
    const SCAPY_INNER: &str = "45000020001000004001c3ae0a00010aac1000050800136a0003000176706e21";

    const LOCAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

    fn config() -> SaConfig {
        let mut key = [0u8; 16];
        for (i, k) in key.iter_mut().enumerate() {
            *k = i as u8;
        }
        SaConfig { spi: 0x1001, key, salt: [0xca, 0xfe, 0xba, 0xbe] }
    }

    fn out_sa() -> OutboundSa<RingAesGcm> {
        OutboundSa::with_ring(&config(), LOCAL, REMOTE).unwrap()
    }

    fn in_sa() -> InboundSa<RingAesGcm> {
        InboundSa::with_ring(&config()).unwrap()
    }

    /// An inner IPv4 packet: header with a valid checksum and `payload`.
    fn inner_packet(payload: &[u8], dscp: u8, df: bool, ident: u16) -> Vec<u8> {
        let mut p = vec![0u8; 20 + payload.len()];
        {
            let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
            ip.set_version(4);
            ip.set_header_len(20);
            ip.set_dscp(dscp);
            ip.set_total_len((20 + payload.len()) as u16);
            ip.set_ident(ident);
            ip.set_dont_frag(df);
            ip.set_ttl(63);
            ip.set_protocol(Protocol::UDP);
            ip.set_src_addr(Ipv4Addr::new(10, 0, 1, 10));
            ip.set_dst_addr(Ipv4Addr::new(172, 16, 0, 5));
            ip.fill_checksum();
        }
        p[20..].copy_from_slice(payload);
        p
    }

    fn buffer(bytes: &[u8]) -> TestBuffer {
        TestBuffer::from_slice_with_room(bytes, 128, 64)
    }

    /// Encrypt `inner` with `sa` and return the outer IPv4 packet.
    fn seal(inner: &[u8], sa: &OutboundSa<RingAesGcm>) -> Vec<u8> {
        let mut b = buffer(inner);
        encrypt(&mut b, sa).unwrap();
        b.data().to_vec()
    }

    /// Decrypt the ESP part of an outer IPv4 packet.
    fn open(outer: &[u8], sa: &mut InboundSa<RingAesGcm>) -> Result<Vec<u8>, DropReason> {
        let mut b = buffer(&outer[20..]);
        decrypt(&mut b, sa).map(|()| b.data().to_vec())
    }

    #[test]
    fn encrypt_matches_scapy_byte_for_byte() {
        let sa = out_sa();
        assert_eq!(seal(&hex(SCAPY_INNER), &sa), hex(SCAPY_GCM));
        assert_eq!(sa.next_seq(), 2);
    }

    #[test]
    fn decrypt_scapy_packet() {
        let mut sa = in_sa();
        assert_eq!(parse_spi(&hex(SCAPY_GCM)[20..]), Some(0x1001));
        assert_eq!(open(&hex(SCAPY_GCM), &mut sa), Ok(hex(SCAPY_INNER)));
        assert_eq!(sa.replay().top(), 1);
    }

    #[test]
    fn outer_header_fields() {
        let sa = out_sa().with_next_seq(0x1_2345);
        let inner = inner_packet(b"hello", 46, true, 7);
        let outer = seal(&inner, &sa);
        assert_eq!(outer.len(), tunnel_len(inner.len()));
        let ip = ipv4::Packet::new_checked(&outer[..]).unwrap();
        assert_eq!(ip.version(), 4);
        assert_eq!(ip.header_len(), 20);
        assert_eq!(ip.dscp(), 46, "DSCP copied");
        assert_eq!(ip.ecn(), 0);
        assert_eq!(ip.total_len() as usize, outer.len());
        assert_eq!(ip.ident(), 0x2345, "low 16 bits of the sequence number");
        assert!(ip.dont_frag(), "DF copied");
        assert!(!ip.more_frags() && ip.frag_offset() == 0 && !ip.reserved_flag());
        assert_eq!(ip.ttl(), 64);
        assert_eq!(ip.protocol(), Protocol::ESP);
        assert_eq!((ip.src_addr(), ip.dst_addr()), (LOCAL, REMOTE));
        assert!(ip.verify_checksum());
        let esp = wesp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((esp.spi(), esp.sequence_number()), (0x1001, 0x1_2345));
        assert_eq!(esp.gcm_iv().unwrap(), 0x1_2345u64.to_be_bytes());
        // Without DF inside, none outside; DSCP 0 stays 0.
        let outer = seal(&inner_packet(b"x", 0, false, 7), &sa);
        let ip = ipv4::Packet::new_checked(&outer[..]).unwrap();
        assert!(!ip.dont_frag());
        assert_eq!(ip.dscp(), 0);
        assert!(ip.verify_checksum());
    }

    #[test]
    fn padding_for_every_residue() {
        let sa = out_sa();
        for n in 0..8usize {
            let inner = inner_packet(&vec![0x5a; n], 0, false, 1);
            let outer = seal(&inner, &sa);
            assert_eq!(outer.len(), tunnel_len(inner.len()));
            assert_eq!((outer.len() - 20 - 8 - 8 - 16) % 4, 0);
            // Decrypt by hand to see the trailer.
            let mut esp = outer[20..].to_vec();
            let (header, iv, ct, icv) = {
                let (h, rest) = esp.split_at_mut(8);
                let (iv, rest) = rest.split_at_mut(8);
                let l = rest.len();
                let (ct, icv) = rest.split_at_mut(l - 16);
                (
                    h.to_vec(),
                    <[u8; 8]>::try_from(&*iv).unwrap(),
                    ct,
                    <[u8; 16]>::try_from(&*icv).unwrap(),
                )
            };
            assert!(sa.aead().open(&nonce(&config().salt, &iv), &header, ct, &icv));
            let pad = wesp::pad_len(inner.len(), 4);
            assert_eq!(&ct[..inner.len()], &inner[..]);
            let expect: Vec<u8> = (1..=pad as u8).chain([pad as u8, 4]).collect();
            assert_eq!(&ct[inner.len()..], &expect[..], "inner {}", inner.len());
        }
    }

    #[test]
    fn lengths_and_mtu() {
        assert_eq!(ESP_OVERHEAD_MAX, 57);
        assert_eq!(tunnel_len(20), 20 + 8 + 8 + 24 + 16);
        assert_eq!(max_inner_for_mtu(1500), 1446);
        assert_eq!(tunnel_len(1446), 1500);
        assert_eq!(tunnel_len(1447), 1504);
        assert_eq!(max_inner_for_mtu(0), 0);
        assert_eq!(max_inner_for_mtu(55), 0);
        assert_eq!(tunnel_len(0), 56);
        assert_eq!(max_inner_for_mtu(56), 2);
        assert_eq!(max_inner_for_mtu(59), 2);
        assert_eq!(max_inner_for_mtu(60), 6);
        for mtu in 56..10_000 {
            let m = max_inner_for_mtu(mtu);
            assert!(tunnel_len(m) <= mtu, "{mtu}");
            assert!(tunnel_len(m + 1) > mtu, "{mtu}");
        }
        for n in 0..70_000 {
            assert_eq!(tunnel_len(n), 20 + wesp::gcm_packet_len(n), "{n}");
            assert!(tunnel_len(n) - n <= ESP_OVERHEAD_MAX);
        }
        assert!(tunnel_len(usize::MAX) >= usize::MAX - 3);
    }

    #[test]
    fn replayed_packet_is_refused() {
        let out = out_sa();
        let mut sa = in_sa();
        let outer = seal(&inner_packet(b"once", 0, false, 1), &out);
        assert!(open(&outer, &mut sa).is_ok());
        assert_eq!(open(&outer, &mut sa), Err(DropReason::EspReplay));
    }

    #[test]
    fn forged_icv_does_not_move_the_window() {
        let out = out_sa();
        let mut sa = in_sa();
        let inner = inner_packet(b"payload", 0, false, 1);
        let p1 = seal(&inner, &out);
        let p2 = seal(&inner, &out);
        assert!(open(&p1, &mut sa).is_ok());
        let before = sa.replay().clone();
        let mut forged = p2.clone();
        *forged.last_mut().unwrap() ^= 0x01;
        assert_eq!(open(&forged, &mut sa), Err(DropReason::EspAuthFailed));
        assert_eq!(sa.replay(), &before);
        // A forgery far ahead does not move it either.
        let mut far = p2.clone();
        far[24..28].copy_from_slice(&100_000u32.to_be_bytes());
        assert_eq!(open(&far, &mut sa), Err(DropReason::EspAuthFailed));
        assert_eq!(sa.replay().top(), 1);
        // The real packet 2 is still welcome.
        assert_eq!(open(&p2, &mut sa), Ok(inner));
        assert_eq!(sa.replay().top(), 2);
    }

    #[test]
    fn every_bit_flip_is_refused() {
        // Sequence 1000: no single flip makes it 0 (which the replay check refuses).
        let out = out_sa().with_next_seq(1000);
        let p = seal(&inner_packet(b"bits", 0, false, 1), &out);
        for bit in (20 * 8)..(p.len() * 8) {
            let mut sa = in_sa();
            let mut q = p.clone();
            q[bit / 8] ^= 1 << (bit % 8);
            let r = open(&q, &mut sa);
            let expect =
                if bit < 24 * 8 { DropReason::UnknownSpi } else { DropReason::EspAuthFailed };
            assert_eq!(r, Err(expect), "bit {bit}");
            assert_eq!(sa.replay().top(), 0);
        }
    }

    #[test]
    fn spi_mismatch() {
        let out = out_sa();
        let p = seal(&inner_packet(b"spi", 0, false, 1), &out);
        let mut other = InboundSa::with_ring(&SaConfig { spi: 0x1002, ..config() }).unwrap();
        assert_eq!(open(&p, &mut other), Err(DropReason::UnknownSpi));
        assert_eq!(parse_spi(&[0, 0, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(parse_spi(&[0, 0, 0x10, 0x01, 0, 0, 0]), None);
        assert_eq!(parse_spi(&[0, 0, 0x10, 0x01, 0, 0, 0, 1]), Some(0x1001));
    }

    #[test]
    fn sequence_exhaustion_never_wraps() {
        let sa = out_sa().with_next_seq(u64::from(u32::MAX));
        let inner = inner_packet(b"last", 0, false, 1);
        let last = seal(&inner, &sa);
        let esp = wesp::Packet::new_checked(&last[20..]).unwrap();
        assert_eq!(esp.sequence_number(), u32::MAX);
        assert!(sa.is_exhausted());
        for _ in 0..100 {
            let mut b = buffer(&inner);
            assert_eq!(encrypt(&mut b, &sa), Err(DropReason::EspSeqExhausted));
            assert_eq!(b.data(), &inner[..], "buffer untouched");
        }
        assert_eq!(sa.next_seq(), u64::from(u32::MAX) + 1, "counter stays put");
        let mut rx = in_sa();
        assert_eq!(open(&last, &mut rx), Ok(inner));
        assert_eq!(rx.replay().top(), u32::MAX);
    }

    #[test]
    fn shared_sa_never_reuses_a_number() {
        let sa = Arc::new(out_sa());
        let inner = inner_packet(&[1; 100], 0, false, 1);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let sa = Arc::clone(&sa);
                let inner = inner.clone();
                std::thread::spawn(move || {
                    (0..500)
                        .map(|_| {
                            let p = seal(&inner, &sa);
                            wesp::Packet::new_checked(&p[20..]).unwrap().sequence_number()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for h in handles {
            for s in h.join().unwrap() {
                assert!(seen.insert(s), "sequence {s} used twice");
            }
        }
        assert_eq!(seen.len(), 2000);
        assert_eq!(seen.iter().copied().min(), Some(1));
        assert_eq!(seen.iter().copied().max(), Some(2000));
    }

    #[test]
    fn truncated_at_every_length() {
        let out = out_sa();
        let p = seal(&inner_packet(&[0xAB; 61], 0, false, 1), &out);
        let esp = &p[20..];
        for len in 0..esp.len() {
            let mut sa = in_sa();
            let mut b = buffer(&esp[..len]);
            let r = decrypt(&mut b, &mut sa);
            assert!(r.is_err(), "length {len}");
            assert_eq!(sa.replay().top(), 0);
            if len < 8 + 8 + 4 + 16 || (len - 32) % 4 != 0 {
                assert_eq!(r, Err(DropReason::Malformed), "length {len}");
            }
        }
        // And arbitrary garbage of every length up to 200, with a matching SPI.
        for len in 0..200usize {
            let mut bytes: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            if len >= 4 {
                bytes[..4].copy_from_slice(&0x1001u32.to_be_bytes());
            }
            let mut b = buffer(&bytes);
            assert!(decrypt(&mut b, &mut in_sa()).is_err());
        }
    }

    /// Seal a hand-made plaintext (inner | padding | trailer) as packet `seq`.
    fn seal_raw(plaintext: &[u8], seq: u32) -> Vec<u8> {
        let cfg = config();
        let aead = RingAesGcm::new(&cfg.key).unwrap();
        let mut esp = Vec::new();
        esp.extend(cfg.spi.to_be_bytes());
        esp.extend(seq.to_be_bytes());
        let iv = u64::from(seq).to_be_bytes();
        esp.extend(iv);
        let mut ct = plaintext.to_vec();
        let tag = aead.seal(&nonce(&cfg.salt, &iv), &esp[..8], &mut ct);
        esp.extend(ct);
        esp.extend(tag);
        esp
    }

    #[test]
    fn authentic_but_bad_contents() {
        let inner = inner_packet(b"ab", 0, false, 1); // 22 bytes: 0 padding
        let run = |plain: Vec<u8>, seq: u32, sa: &mut InboundSa<RingAesGcm>| {
            let mut b = buffer(&seal_raw(&plain, seq));
            decrypt(&mut b, sa)
        };
        let mut sa = in_sa();
        let with = |tail: &[u8]| [inner.clone(), tail.to_vec()].concat();
        // Bad padding content (RFC 4303 2.4) -> malformed, but the seq counts as seen.
        let inner21 = inner_packet(b"a", 0, false, 1);
        let bad_pad = [inner21.clone(), vec![2, 1, 4]].concat();
        assert_eq!(run(bad_pad, 1, &mut sa), Err(DropReason::Malformed));
        assert_eq!(sa.replay().top(), 1);
        assert_eq!(run([inner21.clone(), vec![1, 1, 4]].concat(), 2, &mut sa).map(|_| ()), Ok(()));
        // A pad length past the start.
        assert_eq!(run(vec![0, 0, 9, 4], 3, &mut sa), Err(DropReason::Malformed));
        // Next header not IPv4 (UDP; and 59, a dummy packet).
        assert_eq!(run(with(&[0, 17]), 4, &mut sa), Err(DropReason::Unsupported));
        assert_eq!(run(vec![1, 2, 2, 59], 5, &mut sa), Err(DropReason::Unsupported));
        // Inner total length too long, too short; not version 4; shorter than a header.
        let mut long = inner.clone();
        long[3] += 4;
        assert_eq!(run([long, vec![0, 4]].concat(), 6, &mut sa), Err(DropReason::Malformed));
        let mut short = inner.clone();
        short[3] -= 1;
        assert_eq!(run([short, vec![0, 4]].concat(), 7, &mut sa), Err(DropReason::Malformed));
        let mut v6 = inner.clone();
        v6[0] = 0x65;
        assert_eq!(run([v6, vec![0, 4]].concat(), 8, &mut sa), Err(DropReason::Malformed));
        let stub = vec![0x45, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 4];
        assert_eq!(run(stub, 9, &mut sa), Err(DropReason::Malformed));
        // The good one, for contrast.
        let mut b = buffer(&seal_raw(&with(&[0, 4]), 10));
        assert_eq!(decrypt(&mut b, &mut sa), Ok(()));
        assert_eq!(b.data(), &inner[..]);
        assert_eq!(sa.replay().top(), 10);
    }

    #[test]
    fn encrypt_refusals_leave_buffer_and_sa_alone() {
        let sa = out_sa();
        let inner = inner_packet(&[3; 10], 0, false, 1); // 30 bytes: 0 padding, 18 after
                                                         // Headroom one short.
        let mut b = TestBuffer::from_slice_with_room(&inner, HEAD_LEN - 1, 64);
        assert_eq!(encrypt(&mut b, &sa), Err(DropReason::NoRoom));
        assert_eq!(b.data(), &inner[..]);
        // Tailroom one short.
        let mut b = TestBuffer::from_slice_with_room(&inner, 64, 17);
        assert_eq!(encrypt(&mut b, &sa), Err(DropReason::NoRoom));
        assert_eq!(b.data(), &inner[..]);
        // Exactly enough.
        let mut b = TestBuffer::from_slice_with_room(&inner, HEAD_LEN, 18);
        assert_eq!(encrypt(&mut b, &sa), Ok(()));
        assert_eq!(b.len(), tunnel_len(30));
        // Not one IPv4 packet: trailing bytes, truncated, version 6, empty.
        let mut trailing = inner.clone();
        trailing.push(0);
        let mut v6 = inner.clone();
        v6[0] = 0x65;
        for bad in [trailing, inner[..29].to_vec(), v6, vec![]] {
            let mut b = buffer(&bad);
            assert_eq!(encrypt(&mut b, &sa), Err(DropReason::Malformed));
            assert_eq!(b.data(), &bad[..]);
        }
        assert_eq!(sa.next_seq(), 2, "only the successful packet took a number");
        // An inner packet of 65535 bytes makes an outer one too long for IPv4.
        let mut big = vec![0u8; 65535];
        big[..20].copy_from_slice(&inner_packet(&[], 0, false, 1)[..]);
        big[2..4].copy_from_slice(&65535u16.to_be_bytes());
        let mut b = TestBuffer::from_slice_with_room(&big, 64, 64);
        assert_eq!(encrypt(&mut b, &sa), Err(DropReason::MtuExceeded));
        // The largest that fits.
        let n = max_inner_for_mtu(65535);
        assert_eq!(tunnel_len(n), 65532);
        let mut p = vec![0u8; n];
        p[..20].copy_from_slice(&inner_packet(&[], 0, false, 1)[..]);
        p[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        let mut b = TestBuffer::from_slice_with_room(&p, 64, 64);
        assert_eq!(encrypt(&mut b, &sa), Ok(()));
        assert_eq!(b.len(), tunnel_len(n));
        let mut rx = in_sa();
        let mut b2 = TestBuffer::from_slice_with_room(&b.data()[20..], 0, 0);
        assert_eq!(decrypt(&mut b2, &mut rx), Ok(()));
        assert_eq!(b2.data(), &p[..]);
    }

    // ---- replay window ----

    #[test]
    fn window_in_order() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(0), Err(ReplayError::Zero));
        for s in 1..=5000u32 {
            assert_eq!(w.check(s), Ok(()), "{s}");
            w.update(s);
            assert_eq!(w.check(s), Err(ReplayError::Duplicate), "{s}");
        }
        assert_eq!(w.top(), 5000);
        assert_eq!(w.check(5000 - 1023), Err(ReplayError::Duplicate));
        assert_eq!(w.check(5000 - 1024), Err(ReplayError::TooOld));
        assert_eq!(w.check(0), Err(ReplayError::Zero));
    }

    #[test]
    fn window_out_of_order_and_edges() {
        let mut w = ReplayWindow::new();
        w.update(2000);
        // Just inside the left edge, then just outside.
        assert_eq!(w.check(2000 - 1023), Ok(()));
        assert_eq!(w.check(2000 - 1024), Err(ReplayError::TooOld));
        assert_eq!(w.check(1), Err(ReplayError::TooOld));
        // Out of order within the window, each once.
        for s in [1990, 1500, 977, 1999, 1234] {
            assert_eq!(w.check(s), Ok(()), "{s}");
            w.update(s);
        }
        for s in [1990, 1500, 977, 1999, 1234, 2000] {
            assert_eq!(w.check(s), Err(ReplayError::Duplicate), "{s}");
        }
        assert_eq!(w.check(1991), Ok(()));
        // Moving by one pushes 977 out on the left.
        w.update(2001);
        assert_eq!(w.check(977), Err(ReplayError::TooOld));
        assert_eq!(w.check(978), Ok(()));
        assert_eq!(w.check(1990), Err(ReplayError::Duplicate));
        // A late update of a number left of the window changes nothing.
        let before = w.clone();
        w.update(500);
        assert_eq!(w, before);
        w.update(0);
        assert_eq!(w, before);
    }

    #[test]
    fn window_far_jump_clears() {
        let mut w = ReplayWindow::new();
        for s in 1..=1024 {
            w.update(s);
        }
        // Ahead by more than the window: everything before is forgotten (too old).
        w.update(1024 + 5000);
        assert_eq!(w.top(), 6024);
        for s in (6024 - 1023)..6024 {
            assert_eq!(w.check(s), Ok(()), "{s}");
        }
        assert_eq!(w.check(6024), Err(ReplayError::Duplicate));
        // Ahead by exactly one ring of words: slots reused, bits must be clear.
        let mut w = ReplayWindow::new();
        for s in 1..=64 * 17 {
            w.update(s);
        }
        w.update(64 * 17 + 64 * 17);
        for s in (64 * 34 - 1023)..(64 * 34) {
            assert_eq!(w.check(s), Ok(()), "{s}");
        }
        // Just under a ring ahead: the stale words in the window were cleared.
        let mut w = ReplayWindow::new();
        for s in 1..=1100 {
            w.update(s);
        }
        w.update(1100 + 1000);
        for s in 1101..2100 {
            assert_eq!(w.check(s), Ok(()), "{s}");
        }
        for s in (2100 - 1023)..=1100 {
            assert_eq!(w.check(s), Err(ReplayError::Duplicate), "{s}");
        }
        // The top of the number space.
        let mut w = ReplayWindow::new();
        w.update(u32::MAX);
        assert_eq!(w.check(u32::MAX), Err(ReplayError::Duplicate));
        assert_eq!(w.check(u32::MAX - 1023), Ok(()));
        assert_eq!(w.check(u32::MAX - 1024), Err(ReplayError::TooOld));
    }

    /// The reference: every number seen, and the highest.
    #[derive(Default)]
    struct Model {
        seen: HashSet<u32>,
        top: u32,
    }

    impl Model {
        fn check(&self, s: u32) -> bool {
            s != 0
                && !self.seen.contains(&s)
                && (s > self.top || self.top - s < REPLAY_WINDOW as u32)
        }
        fn update(&mut self, s: u32) {
            self.seen.insert(s);
            self.top = self.top.max(s);
        }
    }

    /// Sequence numbers as a peer with loss, reordering, replays and jumps sends them:
    /// an offset from the current top, mostly small.
    fn op() -> impl Strategy<Value = (i64, bool)> {
        let delta = prop_oneof![
            4 => -70i64..70,
            3 => -1100i64..1100,
            1 => -3000i64..5000,
            1 => Just(0i64),
            1 => Just(-1023i64),
            1 => Just(-1024i64),
            1 => Just(1024i64),
            1 => Just(64i64 * 17),
        ];
        // true: the packet authenticates (update after a passing check).
        (delta, prop::bool::weighted(0.9))
    }

    proptest! {
        #[test]
        fn window_matches_model(start in prop_oneof![Just(0u32), any::<u32>(), Just(u32::MAX - 3000)],
                                ops in prop::collection::vec(op(), 1..600)) {
            let mut w = ReplayWindow::new();
            let mut m = Model::default();
            if start != 0 {
                w.update(start);
                m.update(start);
            }
            for (delta, authentic) in ops {
                let s = (i64::from(m.top) + delta).clamp(0, i64::from(u32::MAX)) as u32;
                let ok = w.check(s).is_ok();
                prop_assert_eq!(ok, m.check(s), "seq {} top {}", s, m.top);
                if ok && authentic {
                    w.update(s);
                    m.update(s);
                }
                prop_assert_eq!(w.top(), m.top);
            }
        }

        #[test]
        /// The linked prepare (link header in the same prepend, the outer checksum from the
        /// SA's fixed sum) leaves the buffer, plan and SA exactly as the general path does:
        /// encrypt_prepare (or _from a block) then a separate prepend of the link header,
        /// and refuses what it refuses, with the same reason, leaving buffer and SA alone.
        #[test]
        fn linked_prepare_is_prepare_then_link(
            payload in prop::collection::vec(any::<u8>(), 0..1600),
            dscp in 0u8..64, df: bool, ident: u16,
            local: [u8; 4], remote: [u8; 4],
            seq in prop_oneof![1u64..100, Just(u64::from(u32::MAX)), Just(u64::from(u32::MAX) + 1)],
            headroom in prop_oneof![Just(HEAD_LEN + 13), Just(HEAD_LEN + 14), Just(HEAD_LEN), 0usize..200],
            tail_extra in prop_oneof![Just(0usize), Just(1usize), 0usize..64],
            tail_short: bool, mangle in 0usize..4, block: bool, link: [u8; 14],
        ) {
            let mut inner = inner_packet(&payload, dscp, df, ident);
            match mangle {
                1 => inner[0] = 0x65,
                2 => inner.push(0),
                _ => {}
            }
            let need_tail = tunnel_len(inner.len()) - HEAD_LEN - inner.len();
            let tailroom = if tail_short { need_tail.saturating_sub(1 + tail_extra % 3) } else { need_tail + tail_extra };
            let (local, remote) = (Ipv4Addr::from(local), Ipv4Addr::from(remote));
            let sa_a = OutboundSa::with_ring(&config(), local, remote).unwrap().with_next_seq(seq);
            let sa_b = OutboundSa::with_ring(&config(), local, remote).unwrap().with_next_seq(seq);
            let mut a = TestBuffer::from_slice_with_room(&inner, headroom, tailroom);
            let mut b = TestBuffer::from_slice_with_room(&inner, headroom, tailroom);
            let (mut block_a, mut block_b) = (sa_a.take_seqs(2), sa_b.take_seqs(2));
            // The general path: prepare, then the link header in front on its own.
            let want = if block { encrypt_prepare_from(&mut a, &sa_a, &mut block_a) } else { encrypt_prepare(&mut a, &sa_a) };
            let want = want.and_then(|plan| {
                a.prepend(14).map_err(|_| DropReason::NoRoom)?.copy_from_slice(&link);
                Ok(plan)
            });
            let before = (sa_b.next_seq(), block_b);
            let got = encrypt_prepare_linked(&mut b, &sa_b, block.then_some(&mut block_b), &link);
            if (HEAD_LEN..HEAD_LEN + 14).contains(&headroom) {
                // Room for the ESP headers but not the link header too: the general path
                // fails at the link header (NoRoom, or earlier for another reason after
                // taking a number); the linked one refuses it first, changing nothing.
                // (A malformed or too long packet is refused as such by both, first.)
                prop_assert!(want.is_err());
                match want {
                    Err(DropReason::Malformed | DropReason::MtuExceeded) => prop_assert_eq!(got, want),
                    _ => prop_assert_eq!(got, Err(DropReason::NoRoom)),
                }
                prop_assert_eq!(b.data(), &inner[..]);
                prop_assert_eq!((sa_b.next_seq(), block_b), before);
                return Ok(());
            }
            match (want, got) {
                (Ok(w), Ok(g)) => {
                    prop_assert_eq!(w, g);
                    prop_assert_eq!(a.data(), b.data());
                    prop_assert_eq!(a.headroom(), b.headroom());
                    let outer = ipv4::Packet::new_checked(&b.data()[14..]).unwrap();
                    prop_assert!(outer.verify_checksum());
                    prop_assert_eq!((outer.src_addr(), outer.dst_addr()), (local, remote));
                }
                (Err(w), Err(g)) => {
                    prop_assert_eq!(w, g);
                    prop_assert_eq!(b.data(), &inner[..]);
                    prop_assert_eq!(a.data(), &inner[..]);
                    prop_assert_eq!(block_a, block_b);
                    prop_assert_eq!(sa_a.next_seq(), sa_b.next_seq());
                }
                (w, g) => prop_assert!(false, "general {:?}, linked {:?}", w, g),
            }
        }

        /// The per-packet pass (SA template copied and patched, the inner header's first 8
        /// bytes read once) leaves the buffer, plan and SA exactly as the general form
        /// does, and refuses what it refuses with the same reason: across SAs (SPI, salt,
        /// addresses), every length from the smallest header to past the 65535-byte outer
        /// limit (all four paddings), any byte in the inner header's first 8 (version,
        /// IHL, DSCP with ECN, total length, flags with MF and offset bits), short headroom
        /// or tailroom, sequence numbers up to exhaustion, with or without a link header.
        #[test]
        fn prepare_is_the_general_form(
            len in prop_oneof![0usize..120, 0usize..1600, Just(65535usize - 57), Just(65535usize - 56), 65470usize..65536],
            first8: [u8; 8], keep in 0usize..4, fill: u8,
            spi: u32, salt: [u8; 4], local: [u8; 4], remote: [u8; 4],
            seq in prop_oneof![1u64..100, any::<u32>().prop_map(u64::from), Just(u64::from(u32::MAX) + 1)],
            headroom in prop_oneof![Just(HEAD_LEN + 14), Just(HEAD_LEN + 13), Just(HEAD_LEN), Just(HEAD_LEN - 1), 0usize..200],
            tail_extra in prop_oneof![Just(0usize), Just(1usize), 0usize..64],
            tail_short: bool, link: Option<[u8; 14]>,
        ) {
            // An inner packet of `len` bytes: a valid header (keep 0), or with the first 8
            // bytes random but the version and total length kept right (1) or all random
            // (2), or a valid header with only the flags byte random (3).
            let mut inner: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(fill) ^ fill).collect();
            let n = inner.len().min(8);
            match keep {
                0 | 3 if len >= 20 => {
                    let valid = inner_packet(&inner[20..], first8[1] >> 2, first8[6] & 0x40 != 0, 7);
                    inner = valid;
                    if keep == 3 {
                        inner[6] = first8[6];
                    }
                }
                1 => {
                    inner[..n].copy_from_slice(&first8[..n]);
                    if n > 0 {
                        inner[0] = 0x40 | (first8[0] & 0x0f);
                    }
                    if n >= 4 {
                        inner[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                    }
                }
                _ => inner[..n].copy_from_slice(&first8[..n]),
            }
            let need_tail = tunnel_len(inner.len()) - HEAD_LEN - inner.len();
            let tailroom = if tail_short { need_tail.saturating_sub(1 + tail_extra % 3) } else { need_tail + tail_extra };
            let cfg = SaConfig { spi, key: config().key, salt };
            let (local, remote) = (Ipv4Addr::from(local), Ipv4Addr::from(remote));
            let sa_a = OutboundSa::with_ring(&cfg, local, remote).unwrap().with_next_seq(seq);
            let sa_b = OutboundSa::with_ring(&cfg, local, remote).unwrap().with_next_seq(seq);
            let mut a = TestBuffer::from_slice_with_room(&inner, headroom, tailroom);
            let mut b = TestBuffer::from_slice_with_room(&inner, headroom, tailroom);
            let (want, got) = match link {
                Some(l) => (
                    prepare_reference(&mut a, &sa_a, &l, || sa_a.take_seq()),
                    prepare_with(&mut b, &sa_b, &l, || sa_b.take_seq()),
                ),
                None => (
                    prepare_reference(&mut a, &sa_a, &[], || sa_a.take_seq()),
                    prepare_with(&mut b, &sa_b, &[], || sa_b.take_seq()),
                ),
            };
            prop_assert_eq!(got, want);
            prop_assert_eq!(a.data(), b.data());
            prop_assert_eq!((a.headroom(), a.tailroom()), (b.headroom(), b.tailroom()));
            prop_assert_eq!(sa_a.next_seq(), sa_b.next_seq());
            if got.is_ok() {
                // Not vacuous: a sealed-to-be packet with a good outer header.
                let outer = ipv4::Packet::new_checked(&b.data()[link.map_or(0, |_| 14)..]).unwrap();
                prop_assert!(outer.verify_checksum());
                prop_assert_eq!(parse_spi(outer.payload()), (spi != 0).then_some(spi));
            }
        }

        fn round_trip(payload in prop::collection::vec(any::<u8>(), 0..2000),
                      dscp in 0u8..64, df: bool, ident: u16, seq in 1u64..=u64::from(u32::MAX)) {
            let inner = inner_packet(&payload, dscp, df, ident);
            let sa = out_sa().with_next_seq(seq);
            let mut b = TestBuffer::with_room(HEAD_LEN, inner.len() + 64);
            b.append(inner.len()).unwrap().copy_from_slice(&inner);
            encrypt(&mut b, &sa).unwrap();
            prop_assert_eq!(b.len(), tunnel_len(inner.len()));
            prop_assert_eq!(b.headroom(), 0);
            let outer = ipv4::Packet::new_checked(b.data()).unwrap();
            prop_assert!(outer.verify_checksum());
            prop_assert_eq!(outer.total_len() as usize, b.len());
            prop_assert_eq!((outer.dscp(), outer.dont_frag()), (dscp, df));
            prop_assert_eq!(parse_spi(outer.payload()), Some(0x1001));
            // The receiver strips the outer header the way the caller would.
            b.adj(20).unwrap();
            let mut rx = in_sa();
            prop_assert_eq!(decrypt(&mut b, &mut rx), Ok(()));
            prop_assert_eq!(b.data(), &inner[..]);
            prop_assert_eq!(u64::from(rx.replay().top()), seq);
        }

        #[test]
        fn decrypt_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), spi_ok: bool) {
            let mut bytes = bytes;
            if spi_ok && bytes.len() >= 4 {
                bytes[..4].copy_from_slice(&0x1001u32.to_be_bytes());
            }
            let mut b = buffer(&bytes);
            let mut sa = in_sa();
            prop_assert!(decrypt(&mut b, &mut sa).is_err());
            prop_assert_eq!(sa.replay().top(), 0);
        }

        #[test]
        fn encrypt_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300),
                                head in 0usize..64, tail in 0usize..64) {
            let sa = out_sa();
            let mut b = TestBuffer::from_slice_with_room(&bytes, head, tail);
            let _ = encrypt(&mut b, &sa);
        }
    }
}
