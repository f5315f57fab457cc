//! Clocks: where stage timing gets its cycle counts.
//!
//! Contract: the stages read no clock themselves (sans-I/O): they are given a [`Clock`].
//! The runtime's workers use [`TscClock`] (one `rdtsc`, here so that micro-benchmarks time
//! with the same read without building the DPDK layer); tests use [`StepClock`]. [`NullClock`] turns timing off at compile time:
//! its [`Clock::ENABLED`] is `false`, so [`run_timed`](crate::run_timed) monomorphised for it
//! contains no clock read, no division and no histogram update.

use core::cell::Cell;

/// A monotonic cycle counter, read once before and once after a stage per burst.
pub trait Clock {
    /// `false` compiles timing out of every code path generic over this clock.
    const ENABLED: bool = true;

    /// Current time in cycles (TSC ticks for the runtime's clock).
    fn now(&self) -> u64;
}

/// Timing off: never read, costs nothing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NullClock;

impl Clock for NullClock {
    const ENABLED: bool = false;

    #[inline(always)]
    fn now(&self) -> u64 {
        0
    }
}

/// Reads the TSC (one `rdtsc`, not serialising: the cheap read a worker makes per burst).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn rdtsc() -> u64 {
    safe_arch::read_timestamp_counter()
}

/// The TSC as a [`Clock`]: what the workers and the micro-benchmarks time stages with.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TscClock;

#[cfg(target_arch = "x86_64")]
impl Clock for TscClock {
    #[inline(always)]
    fn now(&self) -> u64 {
        rdtsc()
    }
}

/// The median of measurements (the upper one of an even count; 0 for none), sorting them
/// in place.
pub fn median(mut v: impl AsMut<[f64]>) -> f64 {
    let v = v.as_mut();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// A deterministic clock for tests: every read returns the current value and then
/// advances it by `step`.
#[derive(Debug, Default, Clone)]
pub struct StepClock {
    now: Cell<u64>,
    step: Cell<u64>,
}

impl StepClock {
    /// Starts at `start`, advancing `step` cycles per read.
    pub fn new(start: u64, step: u64) -> Self {
        StepClock { now: Cell::new(start), step: Cell::new(step) }
    }

    /// Change the advance per read.
    pub fn set_step(&self, step: u64) {
        self.step.set(step);
    }

    /// Move the clock forward without reading it.
    pub fn advance(&self, cycles: u64) {
        self.now.set(self.now.get().wrapping_add(cycles));
    }
}

impl Clock for StepClock {
    #[inline]
    fn now(&self) -> u64 {
        let t = self.now.get();
        self.now.set(t.wrapping_add(self.step.get()));
        t
    }
}

/// The measured TSC frequency, to turn cycles into nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscHz(pub u64);

impl TscHz {
    /// `cycles` in nanoseconds; 0 when the frequency is unknown (0 Hz).
    #[inline]
    pub fn cycles_to_ns(self, cycles: u64) -> f64 {
        if self.0 == 0 {
            0.0
        } else {
            cycles as f64 * 1e9 / self.0 as f64
        }
    }

    /// `ms` milliseconds in cycles (saturating).
    pub fn ms_to_cycles(self, ms: u64) -> u64 {
        (u128::from(self.0) * u128::from(ms) / 1000).min(u128::from(u64::MAX)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const _: () = assert!(!NullClock::ENABLED && StepClock::ENABLED);

    #[test]
    fn median_of_measurements() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0][..]), 3.0, "the upper one of an even count");
        assert_eq!(median(Vec::new()), 0.0);
        let mut v = vec![f64::NAN, 1.0, 0.5];
        assert_eq!(median(&mut v), 1.0, "NaN sorts last");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_tsc_moves_forward() {
        let a = TscClock.now();
        let mut spin = 0u64;
        for i in 0..10_000u64 {
            spin = std::hint::black_box(spin.wrapping_add(i));
        }
        assert!(rdtsc() > a, "after {spin}");
    }

    #[test]
    fn step_clock_and_conversions() {
        let c = StepClock::new(100, 10);
        assert_eq!(c.now(), 100);
        assert_eq!(c.now(), 110);
        c.advance(5);
        assert_eq!(c.now(), 125);
        let hz = TscHz(2_000_000_000);
        assert_eq!(hz.cycles_to_ns(200), 100.0);
        assert_eq!(hz.ms_to_cycles(10), 20_000_000);
        assert_eq!(TscHz(0).cycles_to_ns(5), 0.0);
    }
}
