//! Pools of packet mbufs, sized for vpcemu's largest packet in one segment.

use std::ffi::CString;
use std::ptr::NonNull;

use super::error::{DpdkError, Result, rte_errno, strerror};
use super::ffi;
use super::mbuf::Mbuf;

/// Data bytes after the headroom of a jumbo mbuf: a 9001-byte inner packet (the VPC MTU)
/// with the 58-byte VPC encapsulation, or with ESP and its outer headers, fits in one
/// segment, rounded up to 9216 (what NICs call a 9K jumbo buffer).
pub const MBUF_DATA_SIZE: u16 = 9216;

/// Data bytes after the headroom of an RX mbuf (DPDK's default 2048): a 1500-byte frame
/// with room to spare. Ports receive into these; a longer frame arrives chained (scatter
/// RX) and the runtime copies it into one jumbo mbuf. Small mbufs keep the memory a port
/// touches per packet small (an RX ring of 9.6 KB buffers costs net_pcap's replay and the
/// caches about a third of the packet rate at 16k distinct frames, measured).
pub const RX_DATA_SIZE: u16 = 2048;

/// Headroom in front of received data (`RTE_PKTMBUF_HEADROOM`), where encapsulation goes.
pub fn mbuf_headroom() -> u16 {
    // SAFETY: returns a compile-time constant through the shim.
    unsafe { ffi::vpcemu_pktmbuf_headroom() }
}

/// A pool of packet mbufs (`rte_pktmbuf_pool_create`). Freed on drop, which must come
/// after every mbuf taken from it has been freed.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<ffi::rte_mempool>,
    name: String,
    data_size: u16,
}

// SAFETY: a pktmbuf pool uses DPDK's multi-producer/multi-consumer ring ops and per-lcore
// caches: get and put are safe from any lcore concurrently, and the pool pointer itself
// never changes. Non-EAL threads bypass the cache and use the ring, also MT-safe.
unsafe impl Send for Mempool {}
// SAFETY: see above; every method takes &self and calls MT-safe DPDK functions.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Create a pool of `n` jumbo mbufs ([`MBUF_DATA_SIZE`]) with a per-lcore cache of
    /// `cache` (at most 512).
    pub fn new(name: &str, n: u32, cache: u32) -> Result<Mempool> {
        Mempool::with_data_size(name, n, cache, MBUF_DATA_SIZE)
    }

    /// Create a pool of `n` mbufs of `data_size` bytes after the standard headroom.
    pub fn with_data_size(name: &str, n: u32, cache: u32, data_size: u16) -> Result<Mempool> {
        let data_room = mbuf_headroom().saturating_add(data_size);
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.to_string()))?;
        // SAFETY: the EAL is initialised (a pool can only be made after Eal::init, and
        // rte_pktmbuf_pool_create checks that itself); cname is a valid C string that the
        // call copies. SOCKET_ID_ANY (-1) lets DPDK choose.
        let p = unsafe { ffi::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache.min(512), 0, data_room, -1) };
        match NonNull::new(p) {
            Some(ptr) => Ok(Mempool { ptr, name: name.to_string(), data_size }),
            None => {
                let code = rte_errno();
                Err(DpdkError::Mempool { name: name.to_string(), code, message: strerror(code) })
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Data bytes of each mbuf after the standard headroom.
    pub fn data_size(&self) -> u16 {
        self.data_size
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Mbufs currently taken from the pool (not in the ring nor in any lcore cache).
    pub fn in_use(&self) -> u32 {
        // SAFETY: ptr is a live pool; the count functions only read it.
        unsafe { ffi::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Mbufs available.
    pub fn available(&self) -> u32 {
        // SAFETY: as in `in_use`.
        unsafe { ffi::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Allocate one mbuf (reset, empty, with the standard headroom).
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: ptr is a live pktmbuf pool; the returned mbuf is either NULL or a fresh
        // mbuf that nobody else references, whose ownership moves into `Mbuf`.
        unsafe { Mbuf::from_raw(ffi::vpcemu_pktmbuf_alloc(self.ptr.as_ptr())) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the pool is live and owned by this value; callers free every mbuf first
        // (the runtime checks in_use() == 0 before dropping).
        unsafe { ffi::rte_mempool_free(self.ptr.as_ptr()) }
    }
}
