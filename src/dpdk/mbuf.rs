//! Owned packet mbufs and fixed-size bursts of them.
//!
//! `Mbuf` owns one single-segment `rte_mbuf` and frees it on drop. Its data accessors
//! and `wire::PacketBuf` implementation are pointer arithmetic on the mbuf's own fields
//! (`buf_addr`, `data_off`, `data_len`, `pkt_len`, `buf_len`), inlined, with no FFI call
//! per packet. Ports receive into small mbufs, so a long frame may arrive as a chain:
//! [`Mbuf::linearized`] copies it into one jumbo mbuf before any stage sees it (a chained
//! mbuf would expose only its first segment).

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use wire::{BufError, PacketBuf};

use super::ffi;

/// Why [`Mbuf::linearized`] could not copy a chain into one mbuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linearize {
    /// The pool had no free mbuf.
    NoBuffer,
    /// The packet is longer than one mbuf of the pool.
    TooLong,
    /// The segment lengths do not add up to the packet length.
    Inconsistent,
}

/// An owned packet mbuf. `Send` (it can move to another lcore) but not `Sync`.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<ffi::rte_mbuf>);

// SAFETY: an mbuf we own is referenced by nobody else (refcnt 1, not in any ring);
// moving that ownership to another thread is how DPDK pipelines hand packets between
// lcores. Freeing from any lcore is MT-safe (mempool put).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Take ownership of a raw mbuf.
    ///
    /// # Safety
    /// `p` is NULL or a valid mbuf that the caller owns and will not use again.
    #[inline]
    pub unsafe fn from_raw(p: *mut ffi::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(p).map(Mbuf)
    }

    /// Give up ownership, returning the raw pointer (for a TX burst).
    #[inline]
    pub fn into_raw(self) -> *mut ffi::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    #[inline]
    fn m(&self) -> &ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf; shared access for the lifetime of &self.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn m_mut(&mut self) -> &mut ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf exclusively; unique access for &mut self.
        unsafe { self.0.as_mut() }
    }

    /// True when the mbuf is one segment holding the whole packet (`pkt_len == data_len`;
    /// a driver's replay can hand over a lone first segment of a longer packet).
    #[inline]
    pub fn is_whole(&self) -> bool {
        let m = self.m();
        m.nb_segs == 1 && m.pkt_len == u32::from(m.data_len)
    }

    /// The number of segments.
    #[inline]
    pub fn segments(&self) -> u16 {
        self.m().nb_segs
    }

    /// The whole packet of this chain of segments, copied into one mbuf from `pool`.
    pub fn linearized(&self, pool: &super::Mempool) -> Result<Mbuf, Linearize> {
        let total = self.pkt_len() as usize;
        let mut out = pool.alloc().ok_or(Linearize::NoBuffer)?;
        out.m_mut().port = self.port();
        let dst = out.append(total).map_err(|_| Linearize::TooLong)?;
        let mut at = 0usize;
        let mut seg: *const ffi::rte_mbuf = self.0.as_ptr();
        // At most nb_segs segments, so a corrupt `next` cannot loop forever.
        for _ in 0..self.m().nb_segs {
            if seg.is_null() {
                break;
            }
            // SAFETY: `seg` is the head (owned by self) or a `next` link of the chain self
            // owns: DPDK keeps every segment valid until the head is freed, which cannot
            // happen while `&self` is borrowed.
            let m = unsafe { &*seg };
            let len = usize::from(m.data_len);
            let end = at.checked_add(len).filter(|e| *e <= total).ok_or(Linearize::Inconsistent)?;
            // SAFETY: buf_addr + data_off points at data_len bytes of this segment's buffer
            // (DPDK's invariant data_off + data_len <= buf_len), alive as argued above.
            let src = unsafe { std::slice::from_raw_parts(m.buf_addr.cast::<u8>().add(usize::from(m.data_off)), len) };
            dst.get_mut(at..end).ok_or(Linearize::Inconsistent)?.copy_from_slice(src);
            at = end;
            seg = m.next;
        }
        if at == total { Ok(out) } else { Err(Linearize::Inconsistent) }
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.m().pkt_len
    }

    /// The input port the driver recorded.
    #[inline]
    pub fn port(&self) -> u16 {
        self.m().port
    }

    /// Reference count (1 for an mbuf nobody else holds).
    pub fn refcnt(&self) -> u16 {
        // SAFETY: valid owned mbuf; the shim reads the refcnt field atomically.
        unsafe { ffi::vpcemu_mbuf_refcnt_read(self.0.as_ptr()) }
    }

    #[inline]
    fn buf_len(&self) -> usize {
        usize::from(self.m().buf_len)
    }

    #[inline]
    fn data_off(&self) -> usize {
        usize::from(self.m().data_off)
    }

    #[inline]
    fn data_len(&self) -> usize {
        usize::from(self.m().data_len)
    }

    /// Replace the data with `bytes` (from the standard headroom). Fails when it does not fit.
    pub fn set_data(&mut self, bytes: &[u8]) -> Result<(), BufError> {
        let len = self.data_len();
        self.trim(len)?;
        self.append(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }
}

impl Mbuf {
    /// The data's first byte and its length.
    #[inline(always)]
    fn span(&self) -> (*mut u8, usize) {
        let m = self.m();
        // SAFETY: buf_addr points to buf_len bytes owned by this mbuf; DPDK keeps
        // data_off + data_len <= buf_len, and our mutators maintain it, so the offset stays
        // within the buffer.
        (unsafe { m.buf_addr.cast::<u8>().add(usize::from(m.data_off)) }, usize::from(m.data_len))
    }

    /// Grow the data by `n` bytes at the front (`prepend`) or the end (`append`) and
    /// return them.
    #[inline(always)]
    fn grow(&mut self, n: usize, front: bool) -> Result<&mut [u8], BufError> {
        if front && n > self.data_off() {
            return Err(BufError::NoHeadroom);
        }
        if !front && n > self.tailroom() {
            return Err(BufError::NoTailroom);
        }
        // n <= data_off or tailroom, and data_len + n <= buf_len <= u16::MAX.
        let n16 = n as u16;
        let old = self.data_len();
        let m = self.m_mut();
        if front {
            m.data_off -= n16;
        }
        m.data_len += n16;
        m.pkt_len += u32::from(n16);
        let data = self.data_mut();
        Ok(if front { &mut data[..n] } else { &mut data[old..] })
    }

    /// Remove `n` bytes from the front (`adj`) or the end (`trim`) of the data.
    #[inline(always)]
    fn cut(&mut self, n: usize, front: bool) -> Result<(), BufError> {
        if n > self.data_len() {
            return Err(BufError::TooShort);
        }
        // n <= data_len <= u16::MAX.
        let n16 = n as u16;
        let m = self.m_mut();
        if front {
            m.data_off += n16;
        }
        m.data_len -= n16;
        m.pkt_len -= u32::from(n16);
        Ok(())
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let (p, n) = self.span();
        // SAFETY: `span` is the mbuf's data (within its buffer). The slice borrows self,
        // so it cannot outlive the mbuf.
        unsafe { std::slice::from_raw_parts(p, n) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let (p, n) = self.span();
        // SAFETY: as in `data`, and we hold the only reference to this mbuf (refcnt 1 for
        // packets vpcemu owns), so the bytes are not aliased.
        unsafe { std::slice::from_raw_parts_mut(p, n) }
    }

    #[inline]
    fn len(&self) -> usize {
        self.data_len()
    }

    #[inline]
    fn headroom(&self) -> usize {
        self.data_off()
    }

    #[inline]
    fn tailroom(&self) -> usize {
        self.buf_len().saturating_sub(self.data_off() + self.data_len())
    }

    // Always: a few field updates, called per packet by the stages (out of line in the
    // ESP stage's profile otherwise).
    #[inline(always)]
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        self.grow(n, true)
    }

    #[inline]
    fn adj(&mut self, n: usize) -> Result<(), BufError> {
        self.cut(n, true)
    }

    #[inline]
    fn trim(&mut self, n: usize) -> Result<(), BufError> {
        // Nothing to remove (a frame without Ethernet padding, the common case): the
        // mbuf's lengths are not written.
        if n == 0 {
            return Ok(());
        }
        self.cut(n, false)
    }

    // Always: a few field updates, called per packet by the stages (out of line in the
    // ESP stage's profile otherwise).
    #[inline(always)]
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        self.grow(n, false)
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody uses it after this.
        unsafe { ffi::vpcemu_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// Most packets a burst holds: the pipeline's [`pipeline::MAX_BURST`], defined there once.
pub const MAX_BURST: usize = pipeline::MAX_BURST;

/// A fixed-size, owning burst of mbufs: what `rx_burst` fills and `tx_burst` drains.
/// Whatever it still holds when dropped is freed.
pub struct MbufBurst {
    bufs: [MaybeUninit<Mbuf>; MAX_BURST],
    len: usize,
}

impl Default for MbufBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MbufBurst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBurst").field("len", &self.len).finish()
    }
}

impl MbufBurst {
    pub const fn new() -> Self {
        MbufBurst { bufs: [const { MaybeUninit::uninit() }; MAX_BURST], len: 0 }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    #[inline]
    pub fn room(&self) -> usize {
        MAX_BURST - self.len
    }

    /// The packets, in order.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: bufs[..len] are initialised Mbufs (the invariant of this type).
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice, with unique access through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.bufs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Add a packet; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == MAX_BURST {
            return Err(m);
        }
        self.bufs[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Take the last packet out.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: bufs[len] was initialised and is now outside the live range, so it is
        // read out exactly once.
        Some(unsafe { self.bufs[self.len].assume_init_read() })
    }

    /// Take every packet out, in order.
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        let n = self.len;
        self.len = 0;
        // SAFETY: bufs[..n] were initialised; len is now 0, so each is read exactly once
        // (an iterator dropped early leaks the rest rather than double-freeing — only
        // possible if the caller leaks it, and then they are still counted in use).
        self.bufs[..n].iter().map(|b| unsafe { b.assume_init_read() })
    }

    /// Raw slot pointer for an rx burst into the free space.
    #[inline]
    pub(crate) fn spare_ptr(&mut self) -> *mut *mut ffi::rte_mbuf {
        // Mbuf is repr(transparent) over NonNull<rte_mbuf>, layout-identical to *mut rte_mbuf.
        self.bufs[self.len..].as_mut_ptr().cast::<*mut ffi::rte_mbuf>()
    }

    /// Record that `n` more slots were filled by the driver.
    ///
    /// # Safety
    /// The `n` slots after the live range hold valid, non-NULL, owned mbufs.
    #[inline]
    pub(crate) unsafe fn assume_filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= MAX_BURST);
        self.len += n;
    }

    /// Raw pointer to the first packet, for a tx burst.
    #[inline]
    pub(crate) fn as_raw_ptr(&mut self) -> *mut *mut ffi::rte_mbuf {
        self.bufs.as_mut_ptr().cast::<*mut ffi::rte_mbuf>()
    }

    /// Forget the first `n` packets (the driver took them) and move the rest down.
    ///
    /// # Safety
    /// The first `n` live packets now belong to someone else and must not be freed.
    #[inline]
    pub(crate) unsafe fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        let p = self.bufs.as_mut_ptr();
        // SAFETY: slots n..len are initialised and inside the array; ptr::copy handles the
        // overlap. It is a plain move: the first n (owned elsewhere now) are not dropped,
        // and the moved-from tail beyond the new len is treated as uninitialised.
        unsafe { std::ptr::copy(p.add(n), p, self.len - n) };
        self.len -= n;
    }

    /// Free every packet still held; returns how many.
    #[inline]
    pub fn free_all(&mut self) -> usize {
        let n = self.len;
        if n > 0 {
            // SAFETY: bufs[..n] are owned, valid mbufs; after the bulk free we set len to
            // 0 so none is freed twice. n <= 64 fits in u32.
            unsafe {
                ffi::rte_pktmbuf_free_bulk(self.as_raw_ptr(), n as u32);
            }
            self.len = 0;
        }
        n
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.free_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbuf_field_offsets_match_c() {
        // The Rust view of struct rte_mbuf must agree with the C compiler's.
        // SAFETY: the shim functions return constants.
        unsafe {
            assert_eq!(std::mem::offset_of!(ffi::rte_mbuf, buf_addr), ffi::vpcemu_mbuf_off_buf_addr());
            assert_eq!(std::mem::offset_of!(ffi::rte_mbuf, data_off), ffi::vpcemu_mbuf_off_data_off());
            assert_eq!(std::mem::offset_of!(ffi::rte_mbuf, pkt_len), ffi::vpcemu_mbuf_off_pkt_len());
            assert_eq!(std::mem::offset_of!(ffi::rte_mbuf, data_len), ffi::vpcemu_mbuf_off_data_len());
            assert_eq!(std::mem::offset_of!(ffi::rte_mbuf, buf_len), ffi::vpcemu_mbuf_off_buf_len());
            assert_eq!(std::mem::size_of::<ffi::rte_mbuf>(), ffi::vpcemu_mbuf_size());
        }
    }

    /// A fake single-segment mbuf over a Vec, for tests without the EAL. It must never be
    /// dropped as an `Mbuf` (that would hand it to the mempool): callers `into_raw` it.
    struct Fake {
        raw: Box<ffi::rte_mbuf>,
        _storage: Vec<u8>,
    }

    impl Fake {
        fn new(buf_len: u16, headroom: u16, data: &[u8]) -> Fake {
            let mut storage = vec![0u8; usize::from(buf_len)];
            let off = usize::from(headroom);
            storage[off..off + data.len()].copy_from_slice(data);
            let mut raw = Box::new(ffi::rte_mbuf::default());
            raw.buf_addr = storage.as_mut_ptr().cast();
            raw.buf_len = buf_len;
            raw.data_off = headroom;
            raw.data_len = data.len() as u16;
            raw.pkt_len = data.len() as u32;
            raw.nb_segs = 1;
            Fake { raw, _storage: storage }
        }

        fn mbuf(&mut self) -> Mbuf {
            // SAFETY: points at a live rte_mbuf whose buffer is _storage; the test gives it
            // back with into_raw and never drops it as an Mbuf.
            unsafe { Mbuf::from_raw(&mut *self.raw) }.unwrap()
        }
    }

    #[test]
    fn packetbuf_on_mbuf_fields_bounds() {
        let mut f = Fake::new(64, 8, &[1, 2, 3, 4]);
        let mut m = f.mbuf();
        assert_eq!(m.data(), &[1, 2, 3, 4]);
        assert_eq!((m.headroom(), m.tailroom(), m.len()), (8, 52, 4));
        assert_eq!(m.prepend(9), Err(BufError::NoHeadroom));
        m.prepend(2).unwrap().copy_from_slice(&[9, 9]);
        assert_eq!(m.data(), &[9, 9, 1, 2, 3, 4]);
        assert_eq!(m.pkt_len(), 6);
        assert_eq!(m.adj(7), Err(BufError::TooShort));
        m.adj(2).unwrap();
        assert_eq!(m.data(), &[1, 2, 3, 4]);
        assert_eq!(m.append(53), Err(BufError::NoTailroom));
        m.append(52).unwrap().fill(7);
        assert_eq!((m.len(), m.tailroom()), (56, 0));
        assert_eq!(m.trim(57), Err(BufError::TooShort));
        m.trim(55).unwrap();
        assert_eq!(m.data(), &[1]);
        m.set_data(&[5; 10]).unwrap();
        assert_eq!(m.data(), &[5; 10]);
        assert!(m.set_data(&[0; 57]).is_err());
        assert!(m.is_whole());
        let _ = m.into_raw();
    }

    #[test]
    fn burst_push_pop_consume_front() {
        let mut fakes: Vec<Fake> = (0..5u8).map(|i| Fake::new(32, 0, &[i])).collect();
        let mut b = MbufBurst::new();
        for f in &mut fakes {
            b.push(f.mbuf()).unwrap();
        }
        assert_eq!(b.len(), 5);
        assert_eq!(b.as_slice().iter().map(|m| m.data()[0]).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        // The driver took the first two.
        // SAFETY: test: the first two fakes are simply forgotten by the burst.
        unsafe { b.consume_front(2) };
        assert_eq!(b.as_slice().iter().map(|m| m.data()[0]).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(b.pop().map(|m| m.data()[0]), Some(4));
        let rest: Vec<u8> = b.drain().map(|m| {
            let v = m.data()[0];
            let _ = m.into_raw();
            v
        }).collect();
        assert_eq!(rest, vec![2, 3]);
        assert!(b.is_empty());
        // A full burst gives the packet back.
        let mut many: Vec<Fake> = (0..MAX_BURST + 1).map(|_| Fake::new(16, 0, &[0])).collect();
        let mut full = MbufBurst::new();
        for f in many.iter_mut().take(MAX_BURST) {
            full.push(f.mbuf()).unwrap();
        }
        let extra = many[MAX_BURST].mbuf();
        let back = full.push(extra).unwrap_err();
        let _ = back.into_raw();
        for m in full.drain() {
            let _ = m.into_raw();
        }
    }

    #[test]
    fn burst_is_pointer_array() {
        assert_eq!(std::mem::size_of::<Mbuf>(), std::mem::size_of::<*mut ffi::rte_mbuf>());
        assert_eq!(std::mem::size_of::<Option<Mbuf>>(), std::mem::size_of::<*mut ffi::rte_mbuf>());
        let b = MbufBurst::new();
        assert!(b.is_empty());
        assert_eq!(b.room(), MAX_BURST);
    }
}
