//! The burst limits and the slot helpers every stage uses (a leaf: it uses nothing else of
//! the crate).
//!
//! A burst's packets live in slots `0..MAX_BURST`; per-slot scratch arrays of the stages
//! are indexed with [`slot`], and per-burst sets of slots are `u64` masks built with
//! [`bit`].

/// Most packets a burst holds. Workers use bursts of 32.
pub const MAX_BURST: usize = 64;

/// Number of distinct [`Output`](crate::Output)s (ports or next stages) a worker can
/// forward to.
pub const MAX_OUTPUTS: usize = 64;

const _: () = assert!(MAX_BURST.is_power_of_two() && MAX_BURST <= 64);

/// Slot index bounded to the burst arrays (a mask the compiler folds into the index: no
/// bounds-check branch, no panic path).
#[inline(always)]
pub const fn slot(i: usize) -> usize {
    i & (MAX_BURST - 1)
}

/// The mask bit of slot `i`.
#[inline(always)]
pub const fn bit(i: usize) -> u64 {
    1u64 << slot(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_bits() {
        assert_eq!(slot(3), 3);
        assert_eq!(slot(MAX_BURST + 3), 3);
        assert_eq!(bit(0), 1);
        assert_eq!(bit(63), 1 << 63);
        assert_eq!(bit(MAX_BURST + 1), 2);
    }
}
