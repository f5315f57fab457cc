//! The buffer trait every stage works through.
//!
//! A packet buffer is one contiguous data region inside a larger allocation, with
//! room before it (headroom, for prepending headers) and after it (tailroom).
//! Implementations: [`TestBuffer`] here (a `Vec` with headroom) and the DPDK mbuf in
//! the root crate (pointer arithmetic on the mbuf fields, no FFI call).
//!
//! Contract: every method is bounds-checked; a request that does not fit returns a
//! [`BufError`] and leaves the buffer unchanged. Nothing here panics.

use core::fmt;

/// Why a buffer operation was refused. The buffer is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufError {
    /// `prepend` asked for more than the headroom.
    NoHeadroom,
    /// `append` asked for more than the tailroom.
    NoTailroom,
    /// `adj` or `trim` asked to remove more than the data length.
    TooShort,
}

impl fmt::Display for BufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BufError::NoHeadroom => "not enough headroom",
            BufError::NoTailroom => "not enough tailroom",
            BufError::TooShort => "buffer shorter than the bytes to remove",
        })
    }
}

impl std::error::Error for BufError {}

/// A packet buffer: a contiguous data region with headroom and tailroom.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Length of the packet data in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the packet holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes free in front of the data.
    fn headroom(&self) -> usize;
    /// Bytes free after the data.
    fn tailroom(&self) -> usize;
    /// Grow the data by `n` bytes at the front (the new bytes keep whatever the
    /// buffer held there) and return them.
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError>;
    /// Remove `n` bytes from the front of the data.
    fn adj(&mut self, n: usize) -> Result<(), BufError>;
    /// Remove `n` bytes from the end of the data (`n` = 0 changes nothing and cannot fail:
    /// callers trim what padding there is without testing for none).
    fn trim(&mut self, n: usize) -> Result<(), BufError>;
    /// Grow the data by `n` bytes at the end and return them.
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError>;
}

/// A plain heap buffer with headroom, for tests, fuzzing and benchmarks.
#[derive(Clone, PartialEq, Eq)]
pub struct TestBuffer {
    storage: Vec<u8>,
    start: usize,
    end: usize,
}

impl TestBuffer {
    /// Default headroom, the same as DPDK's `RTE_PKTMBUF_HEADROOM`.
    pub const DEFAULT_HEADROOM: usize = 128;

    /// An empty buffer with `headroom` bytes in front and `capacity` bytes for data.
    pub fn with_room(headroom: usize, capacity: usize) -> Self {
        TestBuffer { storage: vec![0; headroom + capacity], start: headroom, end: headroom }
    }

    /// A buffer holding `bytes`, with `headroom` in front and `tailroom` after.
    pub fn from_slice_with_room(bytes: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut storage = vec![0; headroom + bytes.len() + tailroom];
        storage[headroom..headroom + bytes.len()].copy_from_slice(bytes);
        TestBuffer { storage, start: headroom, end: headroom + bytes.len() }
    }

    /// A buffer holding `bytes` with the default headroom and 256 bytes of tailroom.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::from_slice_with_room(bytes, Self::DEFAULT_HEADROOM, 256)
    }
}

impl fmt::Debug for TestBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBuffer")
            .field("headroom", &self.start)
            .field("len", &(self.end - self.start))
            .field("tailroom", &(self.storage.len() - self.end))
            .finish()
    }
}

impl PacketBuf for TestBuffer {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.storage.len() - self.end
    }
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > self.start {
            return Err(BufError::NoHeadroom);
        }
        self.start -= n;
        Ok(&mut self.storage[self.start..self.start + n])
    }
    fn adj(&mut self, n: usize) -> Result<(), BufError> {
        if n > self.end - self.start {
            return Err(BufError::TooShort);
        }
        self.start += n;
        Ok(())
    }
    fn trim(&mut self, n: usize) -> Result<(), BufError> {
        if n > self.end - self.start {
            return Err(BufError::TooShort);
        }
        self.end -= n;
        Ok(())
    }
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > self.storage.len() - self.end {
            return Err(BufError::NoTailroom);
        }
        let old = self.end;
        self.end += n;
        Ok(&mut self.storage[old..self.end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adj_trim_append_bounds() {
        let mut b = TestBuffer::from_slice_with_room(&[1, 2, 3, 4], 4, 2);
        assert_eq!(b.len(), 4);
        assert_eq!(b.prepend(5), Err(BufError::NoHeadroom));
        assert_eq!(b.data(), &[1, 2, 3, 4]);
        b.prepend(2).map(|h| h.copy_from_slice(&[9, 8])).unwrap();
        assert_eq!(b.data(), &[9, 8, 1, 2, 3, 4]);
        assert_eq!(b.headroom(), 2);
        assert_eq!(b.adj(7), Err(BufError::TooShort));
        b.adj(2).unwrap();
        assert_eq!(b.data(), &[1, 2, 3, 4]);
        assert_eq!(b.append(3), Err(BufError::NoTailroom));
        b.append(2).map(|t| t.copy_from_slice(&[5, 6])).unwrap();
        assert_eq!(b.data(), &[1, 2, 3, 4, 5, 6]);
        assert_eq!(b.tailroom(), 0);
        assert_eq!(b.trim(7), Err(BufError::TooShort));
        b.trim(6).unwrap();
        assert!(b.is_empty());
    }
}
