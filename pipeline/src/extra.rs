//! Packets a stage makes beyond the burst it was given: the second and later fragments of
//! a packet cut for a smaller MTU, an ICMP error built in a fresh buffer. Buffers come
//! from [`Extra::alloc`] (the worker's pool in the runtime) and go out through
//! [`Extra::send`] after the burst's own packets of the same pass. An implementation that
//! cannot take a packet frees and counts it itself: a stage never waits and never
//! allocates beyond the buffer it asks for.

use crate::output::Output;

/// Where a stage gets extra buffers and sends the packets it made in them.
pub trait Extra<B> {
    /// A fresh, empty buffer (with the pool's usual headroom), or `None` when the pool is
    /// exhausted.
    fn alloc(&mut self) -> Option<B>;
    /// Send `pkt` to `out`.
    fn send(&mut self, pkt: B, out: Output);
}

/// [`Extra`] over plain vectors, for tests and benchmarks: `alloc` calls a closure,
/// `send` keeps what was sent.
pub struct VecExtra<B, F: FnMut() -> Option<B>> {
    /// Makes the buffers.
    pub make: F,
    /// What was sent, in order.
    pub sent: Vec<(B, Output)>,
}

impl<B, F: FnMut() -> Option<B>> VecExtra<B, F> {
    /// An empty sink around `make`.
    pub fn new(make: F) -> Self {
        VecExtra { make, sent: Vec::new() }
    }
}

impl<B, F: FnMut() -> Option<B>> Extra<B> for VecExtra<B, F> {
    fn alloc(&mut self) -> Option<B> {
        (self.make)()
    }
    fn send(&mut self, pkt: B, out: Output) {
        self.sent.push((pkt, out));
    }
}
