//! Software prefetch: ask the CPU to bring a cache line in while the worker does other
//! work, as VPP's dual and quad loops do (prefetch the next packets' headers and their
//! table slots while working on these).
//!
//! This module holds the only `unsafe` of the workspace outside `src/dpdk/`: one call of
//! the x86_64 prefetch intrinsic. Everything is taken by reference, so only addresses of
//! live objects are ever prefetched. On other architectures the functions do nothing.

/// Prefetch the cache line holding the start of `r` into every cache level (a hint: the
/// CPU may ignore it; it never faults and changes no value).
#[inline(always)]
pub fn prefetch<T: ?Sized>(r: &T) {
    prefetch_addr((r as *const T).cast::<u8>());
}

/// Prefetch the first and the last cache line of `r` (a small value that may straddle a
/// line boundary, such as a 24-byte table slot).
#[inline(always)]
pub fn prefetch_ends<T>(r: &T) {
    let p = (r as *const T).cast::<u8>();
    prefetch_addr(p);
    prefetch_addr(p.wrapping_add(core::mem::size_of::<T>().saturating_sub(1)));
}

/// Prefetch the cache line holding `s[i]`, if there is one.
#[inline(always)]
pub fn prefetch_index<T>(s: &[T], i: usize) {
    if let Some(r) = s.get(i) {
        prefetch(r);
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch_addr(p: *const u8) {
    use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: a prefetch is a hint that never faults, whatever the address (an invalid or
    // unmapped one is ignored by the CPU), and reads or writes no memory the program can
    // observe; `p` here is moreover the address of a live reference.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch_addr(_p: *const u8) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_changes_nothing() {
        let v: Vec<u64> = (0..1024).collect();
        for i in [0, 511, 1023, 1024, usize::MAX] {
            prefetch_index(&v, i);
        }
        prefetch(&v[..]);
        prefetch(&v[7]);
        prefetch_ends(&v[1023]);
        prefetch_ends(&());
        assert_eq!(v.iter().sum::<u64>(), 1023 * 1024 / 2);
    }
}
