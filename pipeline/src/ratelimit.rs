//! A rate limit that the workers of a card share: on average at most `rate` events a
//! second, at most `burst` at once. Lock-free and never blocking: an event that passes
//! costs one compare-and-swap on one shared word (retried only when another worker passed
//! an event in between), a refused one a load. Nothing here reads a clock: time comes in as
//! an argument, in ticks of the caller's clock (`ticks_per_sec` given at construction; the
//! TSC in the runtime).
//!
//! The algorithm is GCRA (the generic cell rate algorithm of ITU-T I.371), which lets
//! through exactly what a token bucket of `burst` tokens refilled at `rate` a second lets
//! through, with a single word of state: the theoretical arrival time `tat` of the next
//! event. With `T = ticks_per_sec / rate` ticks per event, an event at `now` passes when
//! `max(tat, now) - now <= (burst - 1) * T`, and then moves `tat` to `max(tat, now) + T`.

use core::sync::atomic::{AtomicU64, Ordering};

/// A shared GCRA rate limit. See the [module documentation](self).
#[derive(Debug)]
pub struct RateLimit {
    /// Theoretical arrival time of the next event, in ticks.
    tat: AtomicU64,
    /// Ticks per event (T); 0: no limit.
    interval: u64,
    /// How far ahead of `now` `tat` may be: (burst - 1) * T.
    tolerance: u64,
    /// Nothing passes (a rate or burst of 0).
    closed: bool,
}

impl RateLimit {
    /// At most `rate_per_sec` events a second, `burst` at once, with time in ticks of a
    /// clock running at `ticks_per_sec`. A rate or burst of 0 lets nothing through; a rate
    /// above `ticks_per_sec` is one event a tick.
    pub const fn new(rate_per_sec: u32, burst: u32, ticks_per_sec: u64) -> RateLimit {
        let rate = rate_per_sec as u64;
        let interval = if rate == 0 {
            0
        } else if ticks_per_sec / rate == 0 {
            1
        } else {
            ticks_per_sec / rate
        };
        let tolerance = interval.saturating_mul(if burst == 0 { 0 } else { burst as u64 - 1 });
        RateLimit { tat: AtomicU64::new(0), interval, tolerance, closed: rate == 0 || burst == 0 }
    }

    /// No limit: every event passes (tests, and cards that should never be limited).
    pub const fn unlimited() -> RateLimit {
        RateLimit { tat: AtomicU64::new(0), interval: 0, tolerance: 0, closed: false }
    }

    /// May an event happen at `now` (ticks)? Counts it when it may.
    #[inline]
    pub fn allow(&self, now: u64) -> bool {
        if self.closed {
            return false;
        }
        if self.interval == 0 {
            return true;
        }
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            if start - now > self.tolerance {
                return false;
            }
            let next = start.saturating_add(self.interval);
            match self.tat.compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// How many of `n` events at `now` pass.
    fn passed(l: &RateLimit, now: u64, n: usize) -> usize {
        (0..n).filter(|_| l.allow(now)).count()
    }

    #[test]
    fn burst_then_rate() {
        // 10 a second, 4 at once, a clock of 1000 ticks a second: one event per 100 ticks.
        let l = RateLimit::new(10, 4, 1000);
        assert_eq!(passed(&l, 5_000, 10), 4, "the burst");
        assert_eq!(passed(&l, 5_099, 10), 0, "nothing until a period has passed");
        assert_eq!(passed(&l, 5_100, 10), 1);
        assert_eq!(passed(&l, 5_350, 10), 2, "two more periods, two more events");
        // Idle for a long time: a full burst again, never more.
        assert_eq!(passed(&l, 1_000_000, 10), 4);
        // Over one second at a steady 1000 events a second: 10 pass (+ the burst).
        let mut n = 0;
        for t in 0..1000 {
            n += passed(&l, 2_000_000 + t, 1);
        }
        assert_eq!(n, 4 + 9);
    }

    #[test]
    fn closed_and_unlimited() {
        let l = RateLimit::new(0, 10, 1000);
        assert_eq!(passed(&l, 1, 5), 0);
        let l = RateLimit::new(10, 0, 1000);
        assert_eq!(passed(&l, 1, 5), 0);
        let l = RateLimit::unlimited();
        assert_eq!(passed(&l, 0, 1000), 1000);
        // A rate above the clock: one event a tick.
        let l = RateLimit::new(5000, 1, 1000);
        assert_eq!(passed(&l, 7, 3), 1);
        assert_eq!(passed(&l, 8, 3), 1);
        // Time going backwards (another core's clock a little behind) lets nothing extra through.
        let l = RateLimit::new(10, 2, 1000);
        assert_eq!(passed(&l, 10_000, 5), 2);
        assert_eq!(passed(&l, 9_000, 5), 0);
    }

    #[test]
    fn shared_by_threads() {
        // 4 threads at the same instant share one burst of 100.
        let l = Arc::new(RateLimit::new(1, 100, 1_000_000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || passed(&l, 42, 1000))
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 100);
    }
}
