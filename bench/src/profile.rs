//! `--profile`: where the forwarding thread's time goes, by shared object, in vpcemu and
//! in its baseline `dpdk-testpmd`, from `perf record -e cpu-clock` on that one thread
//! (`rte-worker-N`) while it forwards. Each share of the thread's samples times the run's
//! CPU cycles per packet gives cycles per packet spent in that object: the device drivers
//! (`librte_net_pcap`, `librte_net_null`), the tool's own code (`vpcemu`,
//! `dpdk-testpmd`), the dynamic loader's TLS lookups (`ld-linux`), and so on.
//!
//! Own cycles (vpcemu's minus testpmd's) are not all vpcemu's code: the same driver calls
//! can cost more in vpcemu's process than in testpmd's (net_pcap's replay copies from a
//! set of frames that vpcemu, forwarding slower, re-reads less often and finds less often
//! in the cache). This shows by how much. `cpu-clock` is a software timer: it needs no
//! hardware performance counters (none in most VMs), at the cost of a coarser view.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

use crate::report::Row;

/// Samples per second of the forwarding thread.
const FREQUENCY: &str = "1999";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Profile from now on (checks that `perf` runs).
pub fn enable() -> Result<(), String> {
    let ok = Command::new("perf")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(
            "--profile needs perf (Debian's linux-perf; scripts/setup.sh installs it)".into(),
        );
    }
    ENABLED.store(true, Ordering::Relaxed);
    Ok(())
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Shares of one thread's samples by shared object, largest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub by_object: Vec<(String, f64)>,
}

impl Profile {
    /// Cycles per packet by object, given the run's CPU cycles per packet, as JSON
    /// (objects under 0.5% of the samples left out). Library versions are cut from
    /// the names (`librte_net_pcap.so.23.0` -> `librte_net_pcap`).
    pub fn cycles(&self, cycles_per_packet: f64) -> Value {
        let mut m = Map::new();
        for (object, share) in &self.by_object {
            if *share >= 0.005 {
                let c = (share * cycles_per_packet * 10.0).round() / 10.0;
                m.insert(short_name(object).to_string(), c.into());
            }
        }
        Value::Object(m)
    }

    /// Cycles per packet in the DPDK libraries and drivers (`librte_*`).
    pub fn dpdk_cycles(&self, cycles_per_packet: f64) -> f64 {
        self.by_object
            .iter()
            .filter(|(o, _)| o.starts_with("librte_"))
            .map(|(_, s)| s)
            .sum::<f64>()
            * cycles_per_packet
    }
}

/// Of runs (vpcemu's or the baseline's), each its packets per second of CPU time and its profile: the
/// profile of the run with the median rate and its CPU cycles per packet at `hz`.
pub fn median_of(runs: &[(f64, Option<Profile>)], hz: f64) -> Option<(f64, &Profile)> {
    let mut with: Vec<(f64, &Profile)> = runs
        .iter()
        .filter_map(|(pps, p)| Some((*pps, p.as_ref()?)))
        .collect();
    with.sort_by(|a, b| a.0.total_cmp(&b.0));
    let &(pps, p) = with.get(with.len() / 2)?;
    (pps > 0.0).then_some((hz / pps, p))
}

/// `row` with the profiles of vpcemu's run and of its baseline's (each its CPU cycles per
/// packet and profile): `profile_cycles_per_packet` and `baseline_profile_cycles_per_packet`
/// (cycles per packet by object), and the DPDK libraries' and drivers' part of each
/// (`profile_dpdk_cycles_per_packet`, `baseline_profile_dpdk_cycles_per_packet`).
pub fn with_profiles(row: Row, vpcemu: (f64, &Profile), baseline: Option<(f64, &Profile)>) -> Row {
    let round = |c: f64| (c * 10.0).round() / 10.0;
    let mut row = row
        .with("profile_cycles_per_packet", vpcemu.1.cycles(vpcemu.0))
        .with(
            "profile_dpdk_cycles_per_packet",
            round(vpcemu.1.dpdk_cycles(vpcemu.0)),
        );
    if let Some((cycles, p)) = baseline {
        row = row
            .with("baseline_profile_cycles_per_packet", p.cycles(cycles))
            .with(
                "baseline_profile_dpdk_cycles_per_packet",
                round(p.dpdk_cycles(cycles)),
            );
    }
    row
}

/// `librte_net_pcap.so.23.0` -> `librte_net_pcap`; other names unchanged.
fn short_name(object: &str) -> &str {
    object.split_once(".so").map_or(object, |(stem, _)| stem)
}

/// Reads `perf report --sort dso --stdio -q`: one line per object, its share first
/// (`    55.85%  librte_net_pcap.so.23.0`). Lines that are not such are skipped.
pub fn parse_report(text: &str) -> Profile {
    let mut by_object: Vec<(String, f64)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let share = f.next()?.strip_suffix('%')?.parse::<f64>().ok()?;
            let object = f.next()?;
            Some((object.to_string(), share / 100.0))
        })
        .collect();
    by_object.sort_by(|a, b| b.1.total_cmp(&a.1));
    Profile { by_object }
}

/// A `perf record` of one thread, running.
pub struct Recording {
    perf: Child,
    data: PathBuf,
}

impl Recording {
    /// Start recording thread `tid` into `data`.
    pub fn start(tid: u32, data: &Path) -> Result<Recording, String> {
        let perf = Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                FREQUENCY,
                "-q",
                "-t",
                &tid.to_string(),
                "-o",
            ])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting perf: {e}"))?;
        Ok(Recording {
            perf,
            data: data.to_path_buf(),
        })
    }

    /// Stop recording (perf also stops by itself when the thread ends) and read the
    /// shares.
    pub fn finish(mut self) -> Result<Profile, String> {
        if self.perf.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-INT", &self.perf.id().to_string()])
                .status();
        }
        let _ = self.perf.wait();
        let out = Command::new("perf")
            .args(["report", "--sort", "dso", "--stdio", "-q", "-i"])
            .arg(&self.data)
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("perf report: {e}"))?;
        let p = parse_report(&String::from_utf8_lossy(&out.stdout));
        if p.by_object.is_empty() {
            return Err(format!(
                "perf recorded no samples of the forwarding thread ({})",
                self.data.display()
            ));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `perf report --sort dso --stdio -q` of testpmd's forwarding thread (perf 6.1).
    const REPORT: &str = "    56.12%  librte_net_pcap.so.23.0       \n    28.91%  librte_net_null.so.23.0       \n     6.90%  ld-linux-x86-64.so.2          \n     3.86%  dpdk-testpmd                  \n     0.30%  [kernel.kallsyms]             \n\n";

    #[test]
    fn parses_shares_and_splits_cycles() {
        let p = parse_report(REPORT);
        assert_eq!(p.by_object.len(), 5);
        assert_eq!(p.by_object[0].0, "librte_net_pcap.so.23.0");
        assert!((p.by_object[0].1 - 0.5612).abs() < 1e-9);
        let c = p.cycles(100.0);
        assert_eq!(c["librte_net_pcap"], 56.1);
        assert_eq!(c["librte_net_null"], 28.9);
        assert_eq!(c["dpdk-testpmd"], 3.9);
        assert_eq!(c["ld-linux-x86-64"], 6.9);
        // Under 0.5% of the samples: left out.
        assert!(c.get("[kernel.kallsyms]").is_none());
        assert!((p.dpdk_cycles(100.0) - 85.03).abs() < 1e-9);
    }

    #[test]
    fn skips_what_is_not_a_row() {
        let p = parse_report("# Samples: 1K of event 'cpu-clock'\n\nnot a row\n  12.5%  vpcemu\n");
        assert_eq!(p.by_object, vec![("vpcemu".to_string(), 0.125)]);
        assert!(parse_report("").by_object.is_empty());
    }

    #[test]
    fn median_run_and_row_fields() {
        let (a, b) = (
            parse_report("  60.0%  librte_net_pcap.so.23.0\n  40.0%  vpcemu\n"),
            parse_report("  100.0%  librte_net_null.so.23.0\n"),
        );
        // Packets per CPU second: the median of three is 2e6, i.e. 1,000 cycles at 2 GHz.
        let runs = vec![
            (1e6, Some(b.clone())),
            (2e6, Some(a.clone())),
            (3e6, Some(b.clone())),
            (9e6, None),
        ];
        let (cycles, p) = median_of(&runs, 2e9).unwrap();
        assert_eq!((cycles, p), (1000.0, &a));
        assert!(median_of(&[(1e6, None)], 2e9).is_none());
        let row = with_profiles(Row::new("x"), (200.0, &a), Some((cycles, p)));
        assert_eq!(
            row.extra["profile_cycles_per_packet"]["librte_net_pcap"],
            120.0
        );
        assert_eq!(row.extra["profile_cycles_per_packet"]["vpcemu"], 80.0);
        assert_eq!(row.extra["profile_dpdk_cycles_per_packet"], 120.0);
        assert_eq!(row.extra["baseline_profile_dpdk_cycles_per_packet"], 600.0);
        let row = with_profiles(Row::new("y"), (10.0, &b), None);
        assert!(!row.extra.contains_key("baseline_profile_cycles_per_packet"));
    }

    #[test]
    fn sorted_largest_first() {
        let p = parse_report("  1.0%  a\n  50.0%  b\n  7.0%  c\n");
        let names: Vec<&str> = p.by_object.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(names, ["b", "c", "a"]);
    }
}
