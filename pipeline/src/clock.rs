//! Clocks: where stage timing gets its cycle counts.
//!
//! Contract: the stages read no clock themselves (sans-I/O): they are given a [`Clock`].
//! The runtime's workers use [`TscClock`] (one `rdtsc`, here so that micro-benchmarks time
//! with the same read without building the DPDK layer); tests use [`StepClock`]. [`NullClock`] turns timing off at compile time:
//! its [`Clock::ENABLED`] is `false`, so [`run_timed`](crate::run_timed) monomorphised for it
//! contains no clock read, no division and no histogram update. [`Sampled`] times some
//! bursts only: the first one after at least an interval since the last one it timed (so
//! every burst at low rates, about one in `interval / burst gap` at line rate), which
//! keeps what timing costs a fraction of reading the clock around every stage of every
//! burst.

use core::cell::Cell;

/// A monotonic cycle counter, read once before and once after a stage per burst.
pub trait Clock {
    /// `false` compiles timing out of every code path generic over this clock.
    const ENABLED: bool = true;

    /// Current time in cycles (TSC ticks for the runtime's clock).
    fn now(&self) -> u64;

    /// Whether the burst under way is timed (decided by [`begin_burst`](Clock::begin_burst);
    /// always, for a clock that does not sample).
    #[inline(always)]
    fn timing(&self) -> bool {
        Self::ENABLED
    }

    /// A burst begins at `now` (a time its caller read anyway): a sampling clock decides
    /// here whether to time it. Nothing, for a clock that times every burst.
    #[inline(always)]
    fn begin_burst(&self, _now: u64) {}
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

/// Times a burst when at least `interval` cycles have passed since the last burst it
/// timed (the first burst always; every burst when `interval` is 0), reading `C` for the
/// timed ones. The decision takes the time the caller passes to
/// [`begin_burst`](Clock::begin_burst): no clock read of its own.
#[derive(Debug, Clone, Default)]
pub struct Sampled<C> {
    inner: C,
    interval: u64,
    next: Cell<u64>,
    on: Cell<bool>,
}

impl<C: Clock> Sampled<C> {
    /// Time through `inner`, one burst per `interval` cycles at most.
    pub fn new(inner: C, interval: u64) -> Self {
        Sampled { inner, interval, next: Cell::new(0), on: Cell::new(true) }
    }
}

impl<C: Clock> Clock for Sampled<C> {
    const ENABLED: bool = C::ENABLED;

    #[inline(always)]
    fn now(&self) -> u64 {
        self.inner.now()
    }

    #[inline(always)]
    fn timing(&self) -> bool {
        self.on.get()
    }

    #[inline(always)]
    fn begin_burst(&self, now: u64) {
        let on = now >= self.next.get();
        if on {
            self.next.set(now.saturating_add(self.interval));
        }
        self.on.set(on);
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
    const _: () = assert!(Sampled::<StepClock>::ENABLED && !Sampled::<NullClock>::ENABLED);

    #[test]
    fn sampled_times_the_first_burst_after_each_interval() {
        let c = Sampled::new(StepClock::new(0, 1), 100);
        let mut timed = Vec::new();
        for now in [1_000, 1_050, 1_099, 1_100, 1_150, 1_300, 1_301, 1_400] {
            c.begin_burst(now);
            timed.push(c.timing());
        }
        assert_eq!(timed, [true, false, false, true, false, true, false, true]);
        // Deciding reads nothing.
        assert_eq!(c.now(), 0);
        // Interval 0: every burst.
        let every = Sampled::new(NullClock, 0);
        assert!((0..5).all(|t| {
            every.begin_burst(t / 2);
            every.timing()
        }));
        // A clock that does not sample times every burst (off: none).
        assert!(StepClock::new(0, 1).timing() && !NullClock.timing());
    }

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
