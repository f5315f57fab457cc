//! In-process ports: a pair of bounded lock-free queues of mbufs that a worker polls like
//! a DPDK port. The demo uses them as instance vNICs so that it can send one packet at a
//! time from the control core and read what came out, with live mapping changes between
//! steps; the fabric capture can use one too.

use crossbeam_queue::ArrayQueue;

use crate::dpdk::{Mbuf, MbufBurst};

/// Capacity of each direction.
pub const SOFT_PORT_DEPTH: usize = 4096;

/// A software port: `to_worker` is its RX side (what a worker receives), `from_worker`
/// its TX side (what a worker sends).
#[derive(Debug)]
pub struct SoftPort {
    to_worker: ArrayQueue<Mbuf>,
    from_worker: ArrayQueue<Mbuf>,
}

impl Default for SoftPort {
    fn default() -> Self {
        SoftPort { to_worker: ArrayQueue::new(SOFT_PORT_DEPTH), from_worker: ArrayQueue::new(SOFT_PORT_DEPTH) }
    }
}

impl SoftPort {
    /// Queue a packet for a worker to receive; gives it back when the queue is full.
    pub fn inject(&self, m: Mbuf) -> Result<(), Mbuf> {
        self.to_worker.push(m)
    }

    /// Take a packet a worker sent.
    pub fn collect(&self) -> Option<Mbuf> {
        self.from_worker.pop()
    }

    /// Worker side: receive up to `max` packets.
    #[inline]
    pub fn rx_burst(&self, burst: &mut MbufBurst, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(m) = self.to_worker.pop() else { break };
            if let Err(m) = burst.push(m) {
                // The burst is full: put it back at the end (order among later packets of
                // this port is kept because max <= burst room in practice).
                let _ = self.to_worker.push(m);
                break;
            }
            n += 1;
        }
        n
    }

    /// Worker side: send one packet; gives it back when the queue is full.
    #[inline]
    pub fn tx(&self, m: Mbuf) -> Result<(), Mbuf> {
        self.from_worker.push(m)
    }

    /// Packets waiting in either direction (dropped with the port).
    pub fn queued(&self) -> usize {
        self.to_worker.len() + self.from_worker.len()
    }
}
