//! [`Output`]: where a forwarded packet goes (a leaf of the crate's vocabulary).

use crate::limits::MAX_OUTPUTS;

/// A named place a forwarded packet goes: a port, a fabric link or a next-stage index.
/// The runtime assigns the numbers and their names; the stages carry them in their
/// configuration. Always `< MAX_OUTPUTS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Output(u8);

impl Output {
    /// Output number `index`, if `index < MAX_OUTPUTS`.
    #[inline]
    pub const fn new(index: usize) -> Option<Output> {
        if index < MAX_OUTPUTS {
            Some(Output(index as u8))
        } else {
            None
        }
    }

    /// The output's number.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}
