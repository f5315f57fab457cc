//! Counters a worker publishes for the control core, without locks.
//!
//! The worker owns plain totals and stores them into its own cache-line aligned block of
//! atomics once per burst with `Relaxed` stores; the control core reads them with
//! `Relaxed` loads. No ordering with other memory is needed: each counter is a single
//! monotonic value read for display, and a torn *set* (rx from one burst, tx from the
//! next) is harmless. After the worker is joined, `rte_eal_wait_lcore` orders its last
//! stores before the control core's final read.

use std::sync::atomic::{AtomicU64, Ordering};

/// One worker's counters for one pipeline.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    pub tx_dropped: AtomicU64,
    pub bursts: AtomicU64,
    /// Packets received up to and including the first busy burst.
    pub first_rx: AtomicU64,
    /// TSC after the first and after the latest burst that moved packets.
    pub first_tsc: AtomicU64,
    pub last_tsc: AtomicU64,
}

/// Plain copy of [`WorkerCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub rx: u64,
    pub tx: u64,
    pub tx_dropped: u64,
    pub bursts: u64,
    pub first_rx: u64,
    pub first_tsc: u64,
    pub last_tsc: u64,
}

impl WorkerCounters {
    #[inline]
    pub fn publish(&self, s: &CountersSnapshot) {
        self.rx.store(s.rx, Ordering::Relaxed);
        self.tx.store(s.tx, Ordering::Relaxed);
        self.tx_dropped.store(s.tx_dropped, Ordering::Relaxed);
        self.bursts.store(s.bursts, Ordering::Relaxed);
        self.first_rx.store(s.first_rx, Ordering::Relaxed);
        self.first_tsc.store(s.first_tsc, Ordering::Relaxed);
        self.last_tsc.store(s.last_tsc, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            rx: self.rx.load(Ordering::Relaxed),
            tx: self.tx.load(Ordering::Relaxed),
            tx_dropped: self.tx_dropped.load(Ordering::Relaxed),
            bursts: self.bursts.load(Ordering::Relaxed),
            first_rx: self.first_rx.load(Ordering::Relaxed),
            first_tsc: self.first_tsc.load(Ordering::Relaxed),
            last_tsc: self.last_tsc.load(Ordering::Relaxed),
        }
    }
}

impl CountersSnapshot {
    /// Packets per second the worker moved between its first and latest busy burst.
    pub fn pps(&self, tsc_hz: u64) -> f64 {
        let cycles = self.last_tsc.saturating_sub(self.first_tsc);
        if cycles == 0 || tsc_hz == 0 {
            return 0.0;
        }
        // The first burst's packets were handled before first_tsc was taken.
        let pkts = self.rx.saturating_sub(self.first_rx);
        pkts as f64 * tsc_hz as f64 / cycles as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_and_rate() {
        let c = WorkerCounters::default();
        let s = CountersSnapshot {
            rx: 3200,
            tx: 3200,
            tx_dropped: 0,
            bursts: 100,
            first_rx: 32,
            first_tsc: 1000,
            last_tsc: 1000 + 99 * 100,
        };
        c.publish(&s);
        assert_eq!(c.snapshot(), s);
        // 3168 packets in 9900 cycles at 1 GHz.
        let pps = c.snapshot().pps(1_000_000_000);
        assert!((pps - 3168.0 * 1e9 / 9900.0).abs() < 1.0, "{pps}");
        assert_eq!(CountersSnapshot::default().pps(1), 0.0);
        assert_eq!(std::mem::align_of::<WorkerCounters>(), 64);
    }
}
