//! `--rate-matched`: what the device drivers cost a packet at the vpcemu run's own packet
//! rate, and vpcemu's own cycles measured against that.
//!
//! Own cycles (a vpcemu run's CPU cycles a packet minus testpmd io's on the same frames)
//! assume the drivers cost as much a packet in both. They do not when the cost of a
//! driver call depends on the rate: net_pcap's `infinite_rx` copies every packet from a
//! set of stored frames, and the slower a tool passes over them the more of them it finds
//! gone from the caches it shares with the rest of the machine. testpmd io passes three to
//! four times as often as a vpcemu pipeline does.
//!
//! So the baseline is measured again at the vpcemu run's rate: `vpcemu passthrough` on the
//! same vdevs with `--work-cycles W`, a busy-wait of W TSC cycles a packet that touches no
//! memory, standing in for the pipeline's work. W is searched so that the passthrough
//! takes as many CPU cycles a packet as the vpcemu run; what it takes beyond W is the
//! drivers' (and the forwarding loop's) cost at that rate. The row gets:
//!
//! - `passthrough_cpu_cycles_per_packet`: passthrough with W = 0, the check that it is a
//!   stand-in for testpmd io (the two should be close);
//! - `rate_matched_runs`: each passthrough run as `[W, CPU cycles a packet]`;
//! - `rate_matched_work_cycles`, `rate_matched_baseline_cpu_cycles_per_packet`: W and the
//!   drivers' cost at the vpcemu run's CPU cycles a packet (interpolated between the two
//!   runs with work that bracket it, else the nearest run's);
//! - `rate_matched_own_cpu_cycles_per_packet`: the vpcemu run's CPU cycles a packet minus
//!   that.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::dpdk_tools::{hugepages_for, pool_memory_mb, run_sampled};
use crate::report::{Row, Setup};

static ENABLED: AtomicBool = AtomicBool::new(false);

pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Passthrough runs after the one with no work, at most: a first guess, then corrections
/// until two runs bracket the target.
const SEARCH_RUNS: usize = 3;

/// How much a passthrough's CPU cycles a packet grow per cycle of `--work-cycles`, before
/// any run says otherwise: the work itself, plus about half again in slower driver calls
/// (measured on the development machine; the second run corrects it).
const FIRST_SLOPE: f64 = 1.5;

/// One passthrough run: its `--work-cycles` and CPU cycles a packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub work: f64,
    pub cpu_cycles: f64,
}

impl Point {
    /// What the run took beyond its work: the drivers and the loop.
    fn baseline(&self) -> f64 {
        self.cpu_cycles - self.work
    }
}

/// What the search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    /// Every run, the one with no work first.
    pub runs: Vec<Point>,
    /// The work and the drivers' cost at the target.
    pub work: f64,
    pub baseline: f64,
}

/// The next `--work-cycles` to try towards `target` CPU cycles a packet, from the runs so
/// far (at least the one with no work): the last run corrected along the slope between
/// the last two (bounded to 1..=3, [`FIRST_SLOPE`] with one run).
pub fn next_work(runs: &[Point], target: f64) -> f64 {
    let slope = match runs {
        [.., a, b] if (b.work - a.work).abs() > 1.0 => ((b.cpu_cycles - a.cpu_cycles) / (b.work - a.work)).clamp(1.0, 3.0),
        _ => FIRST_SLOPE,
    };
    let last = runs.last().copied().unwrap_or(Point { work: 0.0, cpu_cycles: 0.0 });
    (last.work + (target - last.cpu_cycles) / slope).clamp(0.0, f64::from(MAX_WORK))
}

/// The most `--work-cycles` takes.
const MAX_WORK: u32 = 1_000_000;

/// Whether a run with work took at most `target` CPU cycles a packet and another more.
/// (The run with no work does not count: the drivers' cost is not linear in the rate,
/// so a bracket that reaches down to it interpolates too far.)
pub fn bracketed(runs: &[Point], target: f64) -> bool {
    let worked = || runs.iter().filter(|p| p.work > 0.0);
    worked().any(|p| p.cpu_cycles <= target) && worked().any(|p| p.cpu_cycles > target)
}

/// The drivers' cost at `target` CPU cycles a packet, with the work there: interpolated
/// between the two runs with work that bracket it most closely, else the nearest run's
/// (the run with no work included: it is the nearest when vpcemu is as fast as a bare
/// forwarding loop).
pub fn at_target(runs: &[Point], target: f64) -> Option<(f64, f64)> {
    let worked = || runs.iter().filter(|p| p.work > 0.0);
    let below = worked().filter(|p| p.cpu_cycles <= target).max_by(|a, b| a.cpu_cycles.total_cmp(&b.cpu_cycles));
    let above = worked().filter(|p| p.cpu_cycles > target).min_by(|a, b| a.cpu_cycles.total_cmp(&b.cpu_cycles));
    if let (Some(a), Some(b)) = (below, above) {
        let f = (target - a.cpu_cycles) / (b.cpu_cycles - a.cpu_cycles);
        return Some((a.work + f * (b.work - a.work), a.baseline() + f * (b.baseline() - a.baseline())));
    }
    let nearest = runs.iter().min_by(|a, b| (a.cpu_cycles - target).abs().total_cmp(&(b.cpu_cycles - target).abs()))?;
    Some((nearest.work, nearest.baseline()))
}

/// One `vpcemu passthrough` run from `rx` to net_null with `work` cycles a packet; its CPU
/// cycles a packet (TSC cycles a packet times the share of the time its worker ran).
fn passthrough(s: &Setup, rx: &str, held: usize, work: u32) -> Result<f64, String> {
    let json = s.work.join("rate-matched-stats.json");
    // The pool testpmd gets in `testpmd_io_cpu`.
    let mbufs = 16384 + held;
    let memory_mb = pool_memory_mb(mbufs);
    let mut cmd = Command::new(s.vpcemu);
    cmd.args(["passthrough", "--vdev", rx, "--vdev", "net_null0,no-rx=1", "--hugepages", hugepages_for(memory_mb)])
        .args(["--mbufs", &mbufs.to_string(), "--memory-mb", &memory_mb.to_string()])
        .args(["--work-cycles", &work.to_string(), "--duration", &format!("{}", s.seconds), "--stats-json"])
        .arg(&json);
    let (ok, _, err, share) = run_sampled(&mut cmd, &s.work.join("rate-matched-log"))?;
    if !ok {
        return Err(format!("vpcemu passthrough --work-cycles {work} failed: {}", err.trim()));
    }
    cycles_of(&json, share)
}

/// CPU cycles a packet from a passthrough's `--stats-json` and its worker's CPU share.
fn cycles_of(json: &Path, share: f64) -> Result<f64, String> {
    let text = std::fs::read_to_string(json).map_err(|e| format!("{}: {e}", json.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    match v["cycles_per_packet"].as_f64() {
        Some(c) if c > 0.0 => Ok(c * share),
        _ => Err(format!("{}: the passthrough moved no packets", json.display())),
    }
}

/// Search the work that makes a passthrough from `rx` (holding `held` frames) take
/// `target` CPU cycles a packet.
pub fn measure(s: &Setup, rx: &str, held: usize, target: f64) -> Result<Matched, String> {
    if !(target.is_finite() && target > 0.0) {
        return Err(format!("--rate-matched: no rate to match (the vpcemu run's CPU cycles a packet: {target})"));
    }
    let mut runs = vec![Point { work: 0.0, cpu_cycles: passthrough(s, rx, held, 0)? }];
    for _ in 0..SEARCH_RUNS {
        let work = next_work(&runs, target).round();
        if work < 1.0 {
            // vpcemu is no slower than the loop with no work: nothing to search.
            break;
        }
        runs.push(Point { work, cpu_cycles: passthrough(s, rx, held, work as u32)? });
        if bracketed(&runs, target) {
            break;
        }
    }
    let (work, baseline) = at_target(&runs, target).ok_or("no passthrough run")?;
    Ok(Matched { runs, work, baseline })
}

/// `row` with the figures of [`measure`] against the vpcemu run's `cpu_cycles` a packet.
pub fn with_matched(row: Row, m: &Matched, cpu_cycles: f64) -> Row {
    let runs: Vec<Vec<f64>> = m.runs.iter().map(|p| vec![p.work, round1(p.cpu_cycles)]).collect();
    row.with("passthrough_cpu_cycles_per_packet", m.runs.first().map(|p| round1(p.cpu_cycles)))
        .with("rate_matched_runs", runs)
        .with("rate_matched_work_cycles", m.work.round())
        .with("rate_matched_baseline_cpu_cycles_per_packet", round1(m.baseline))
        .with("rate_matched_own_cpu_cycles_per_packet", round1(cpu_cycles - m.baseline))
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(work: f64, cpu_cycles: f64) -> Point {
        Point { work, cpu_cycles }
    }

    #[test]
    fn first_guess_then_the_measured_slope() {
        // No work: 100 cycles; the target is 400: 300 more at 1.5 a cycle of work.
        assert_eq!(next_work(&[p(0.0, 100.0)], 400.0), 200.0);
        // 200 cycles of work took 350: the slope was 1.25; 50 more to go.
        assert_eq!(next_work(&[p(0.0, 100.0), p(200.0, 350.0)], 400.0), 240.0);
        // Overshot: back off along the slope, never below no work.
        assert_eq!(next_work(&[p(0.0, 100.0), p(200.0, 500.0)], 400.0), 150.0);
        assert_eq!(next_work(&[p(0.0, 100.0), p(10.0, 500.0)], 50.0), 0.0);
        // Never beyond what --work-cycles takes.
        assert_eq!(next_work(&[p(0.0, 100.0)], 1e9), f64::from(MAX_WORK));
        // A noisy pair (work rose, cycles fell) does not turn the slope around.
        assert_eq!(next_work(&[p(100.0, 300.0), p(200.0, 290.0)], 390.0), 300.0);
    }

    #[test]
    fn interpolated_between_the_runs_that_bracket_the_target() {
        let runs = [p(0.0, 100.0), p(200.0, 350.0), p(240.0, 410.0)];
        // 400 lies between 350 (baseline 150) and 410 (baseline 170), five sixths along.
        let (work, baseline) = at_target(&runs, 400.0).unwrap();
        assert!((work - 233.333).abs() < 0.01, "{work}");
        assert!((baseline - 166.667).abs() < 0.01, "{baseline}");
        // Outside every run: the nearest one's, not an extrapolation.
        assert_eq!(at_target(&runs, 500.0), Some((240.0, 170.0)));
        assert_eq!(at_target(&runs, 90.0), Some((0.0, 100.0)));
        assert_eq!(at_target(&[], 90.0), None);
        // Between no work and the only run with work: the nearer of the two, not a line
        // down to no work.
        assert_eq!(at_target(&runs[..2], 300.0), Some((200.0, 150.0)));
        assert_eq!(at_target(&runs[..2], 150.0), Some((0.0, 100.0)));
        // The search goes on until two runs with work bracket the target.
        assert!(bracketed(&runs, 400.0));
        assert!(!bracketed(&runs, 500.0) && !bracketed(&runs, 90.0) && !bracketed(&[], 1.0));
        assert!(!bracketed(&runs[..2], 300.0), "the run with no work is not one end");
    }

    #[test]
    fn row_fields() {
        let m = Matched { runs: vec![p(0.0, 101.04), p(200.0, 350.0)], work: 210.4, baseline: 152.26 };
        let row = with_matched(Row::new("x"), &m, 400.0);
        let v = serde_json::to_value(&row).unwrap();
        assert_eq!(v["passthrough_cpu_cycles_per_packet"], 101.0);
        assert_eq!(v["rate_matched_runs"], serde_json::json!([[0.0, 101.0], [200.0, 350.0]]));
        assert_eq!(v["rate_matched_work_cycles"], 210.0);
        assert_eq!(v["rate_matched_baseline_cpu_cycles_per_packet"], 152.3);
        assert_eq!(v["rate_matched_own_cpu_cycles_per_packet"], 247.7);
    }

    #[test]
    fn cycles_from_the_stats_json() {
        let dir = std::env::temp_dir().join(format!("vpcemu-rate-matched-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("stats.json");
        std::fs::write(&json, r#"{"cycles_per_packet": 200.0, "mpps": 12.25}"#).unwrap();
        assert_eq!(cycles_of(&json, 0.5), Ok(100.0));
        std::fs::write(&json, r#"{"cycles_per_packet": 0.0}"#).unwrap();
        assert!(cycles_of(&json, 1.0).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
