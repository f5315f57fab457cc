//! When the control core stops a run: SIGINT/SIGTERM set a flag it polls, `--duration`
//! and `--until-idle` are watched against the packets moved; the workers then see the
//! stop flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A flag raised by SIGINT or SIGTERM.
#[derive(Debug, Clone)]
pub struct Signals {
    flag: Arc<AtomicBool>,
}

impl Signals {
    /// Register handlers for SIGINT and SIGTERM.
    pub fn install() -> std::io::Result<Signals> {
        let flag = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&flag))?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&flag))?;
        Ok(Signals { flag })
    }

    pub fn raised(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// How long `--until-idle` waits: the given time once something has moved; before the
/// first packet, at least [`FIRST_PACKET_GRACE`] (a loaded machine may take a moment to get
/// the first burst through).
pub fn idle_limit(idle: Duration, moved_once: bool) -> Duration {
    if moved_once { idle } else { idle.max(FIRST_PACKET_GRACE) }
}

/// See [`idle_limit`].
pub const FIRST_PACKET_GRACE: Duration = Duration::from_secs(2);

/// The stop conditions of a run: `--duration` from the start, `--until-idle` after the
/// last movement (a counter of packets moved that only grows), and a signal.
#[derive(Debug, Clone)]
pub struct StopWhen {
    start: Instant,
    duration: Option<Duration>,
    until_idle: Option<Duration>,
    last_moved: Instant,
    last_movement: u64,
    moved_once: bool,
}

impl StopWhen {
    /// Conditions watched from `start`, when the movement counter reads `movement`.
    pub fn new(duration: Option<Duration>, until_idle: Option<Duration>, start: Instant, movement: u64) -> StopWhen {
        StopWhen { start, duration, until_idle, last_moved: start, last_movement: movement, moved_once: false }
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Note the movement counter at `now`; whether the run is to stop (`signalled`: a
    /// signal was raised).
    pub fn due(&mut self, now: Instant, movement: u64, signalled: bool) -> bool {
        if movement != self.last_movement {
            self.last_movement = movement;
            self.last_moved = now;
            self.moved_once = true;
        }
        signalled
            || self.duration.is_some_and(|d| now.duration_since(self.start) >= d)
            || self
                .until_idle
                .is_some_and(|idle| now.duration_since(self.last_moved) >= idle_limit(idle, self.moved_once))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn idle_waits_for_the_first_packet_longer() {
        let t0 = Instant::now();
        let mut w = StopWhen::new(None, Some(100 * MS), t0, 0);
        assert!(!w.due(t0 + 500 * MS, 0, false), "nothing moved yet: the grace holds");
        assert!(w.due(t0 + FIRST_PACKET_GRACE, 0, false));
        let mut w = StopWhen::new(None, Some(100 * MS), t0, 0);
        assert!(!w.due(t0 + 50 * MS, 7, false));
        assert!(!w.due(t0 + 140 * MS, 7, false));
        assert!(w.due(t0 + 150 * MS, 7, false), "idle 100 ms after the last movement");
        assert_eq!(idle_limit(5 * MS, true), 5 * MS);
    }

    #[test]
    fn duration_and_signal() {
        let t0 = Instant::now();
        let mut w = StopWhen::new(Some(10 * MS), None, t0, 3);
        assert!(!w.due(t0 + 9 * MS, 4, false));
        assert!(w.due(t0 + 10 * MS, 5, false));
        let mut w = StopWhen::new(None, None, t0, 0);
        assert!(!w.due(t0 + 3600 * 1000 * MS, 0, false), "no condition: runs until a signal");
        assert!(w.due(t0, 0, true));
        assert_eq!(w.start(), t0);
    }
}
