//! What the tests, the benchmarks and the demo share: the story's world text with a
//! `[dataplane]` section, and a typed reader of the stats report (`vpcemu run
//! --stats-json`, the control socket's `stats`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The story's world (`examples/story-world.toml`), without a `[dataplane]` section.
pub const STORY_WORLD: &str = include_str!("../examples/story-world.toml");

/// A `[dataplane]` section: `lcores` as the topology file writes them (`"0-1"`),
/// `memory_mb`, `hugepages` (`auto`, `on` or `off`).
pub fn dataplane(lcores: &str, memory_mb: u32, hugepages: &str) -> String {
    format!("[dataplane]\nlcores = \"{lcores}\"\nmemory_mb = {memory_mb}\nhugepages = \"{hugepages}\"\n\n")
}

/// The story's world on lcores `lcores` (512 MB, no hugepages, so that it runs anywhere),
/// with `extra` (ports, more instances) after it.
pub fn story_world(lcores: &str, extra: &str) -> String {
    format!("{}{STORY_WORLD}\n{extra}", dataplane(lcores, 512, "off"))
}

/// A `[[port]]` of a topology file.
pub fn port(name: &str, vdev: &str, attach: &str) -> String {
    format!("\n[[port]]\nname = \"{name}\"\nvdev = \"{vdev}\"\nattach = \"{attach}\"\n")
}

/// One port's counts in the stats report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct PortCounts {
    pub rx: u64,
    pub tx: u64,
    pub dropped: u64,
}

/// What `vpcemu run --stats-json` adds: how long the run forwarded and with what.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RunInfo {
    pub seconds: f64,
    pub tsc_hz: u64,
    pub mbufs_in_use: u64,
    /// The edges' cipher (`null` when no edge ran).
    pub esp_cipher: Option<String>,
}

/// The stats report (ARCHITECTURE section 8) as `vpcemu` writes it in JSON.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Stats {
    /// Port name -> counts.
    pub ports: BTreeMap<String, PortCounts>,
    /// Every drop reason -> count.
    pub drops: BTreeMap<String, u64>,
    /// Stage name -> its figures as written (`count`, `dropped`, `p50_ns`, ... `max_ns`).
    #[serde(default)]
    pub stages: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// Output name -> packets sent to it.
    #[serde(default)]
    pub outputs: BTreeMap<String, u64>,
    #[serde(default)]
    pub packets: u64,
    /// `--stats-json` only.
    #[serde(default)]
    pub run: Option<RunInfo>,
}

impl Stats {
    /// Parse the JSON text.
    pub fn parse(text: &str) -> Result<Stats, String> {
        serde_json::from_str(text).map_err(|e| format!("not a stats report: {e}"))
    }

    /// Read a `--stats-json` file.
    pub fn read(path: &Path) -> Result<Stats, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Stats::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The count of drop reason `reason` (every reason is in the report: `None` means no
    /// such reason).
    pub fn drop_count(&self, reason: &str) -> Option<u64> {
        self.drops.get(reason).copied()
    }

    /// The reasons with a non-zero count, by name.
    pub fn nonzero_drops(&self) -> Vec<(String, u64)> {
        self.drops.iter().filter(|(_, n)| **n > 0).map(|(r, n)| (r.clone(), *n)).collect()
    }

    /// Every drop counted.
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }

    /// Port `name`'s counts.
    pub fn port(&self, name: &str) -> Option<PortCounts> {
        self.ports.get(name).copied()
    }

    /// How many packets stage `stage` ran on (`None`: no such stage).
    pub fn stage_count(&self, stage: &str) -> Option<u64> {
        self.stages.get(stage)?.get("count")?.as_u64()
    }

    /// `--stats-json`'s run seconds and TSC frequency (Hz).
    pub fn run_figures(&self) -> Result<(f64, f64), String> {
        let run = self.run.as_ref().ok_or("no run figures in the stats")?;
        Ok((run.seconds, run.tsc_hz as f64))
    }

    /// The figures `keys` of each of `stages` as a JSON object (stage -> key -> value;
    /// `null` for what the report does not hold).
    pub fn stage_figures(&self, stages: &[&str], keys: &[&str]) -> serde_json::Value {
        let of = |st: &str| -> serde_json::Value {
            let f = self.stages.get(st);
            keys.iter().map(|k| (k.to_string(), f.and_then(|f| f.get(*k)).cloned().unwrap_or_default())).collect()
        };
        stages.iter().map(|st| (st.to_string(), of(st))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_report_the_runtime_writes() {
        let mut counters = pipeline::Counters::new();
        counters.add_drops(pipeline::DropReason::NoRoute, 3);
        let ports = vec![pipeline::PortStats { name: "red-1".into(), rx: 5, tx: 4, dropped: 1 }];
        let names = vec!["red-1".to_string()];
        let timing = pipeline::StageHistograms::new(pipeline::HistogramConfig::default()).expect("histograms");
        let report = pipeline::StatsReport::new(
            ports,
            &counters,
            &timing,
            pipeline::TscHz(1_000_000_000),
            &names,
            pipeline::AlertTotals::default(),
        );
        let mut v: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
        v["run"] = serde_json::json!({ "seconds": 1.5, "tsc_hz": 2000, "mbufs_in_use": 0, "esp_cipher": null });
        let s = Stats::parse(&v.to_string()).expect("a stats report");
        assert_eq!(s.port("red-1"), Some(PortCounts { rx: 5, tx: 4, dropped: 1 }));
        assert_eq!(s.drop_count("no_route"), Some(3));
        assert_eq!(s.drop_count("malformed"), Some(0), "every reason is listed");
        assert_eq!(s.drop_count("nonsense"), None);
        assert_eq!(s.nonzero_drops(), [("no_route".to_string(), 3)]);
        assert_eq!(s.total_drops(), 3);
        let stages = s.stage_figures(&["classify", "nowhere"], &["count", "p50_ns", "bogus"]);
        assert_eq!(stages["classify"]["count"], 0);
        assert!(stages["classify"]["p50_ns"].is_number() && stages["classify"]["bogus"].is_null());
        assert!(stages["nowhere"]["count"].is_null());
        assert_eq!((s.stage_count("classify"), s.stage_count("nowhere")), (Some(0), None));
        assert_eq!(s.run_figures(), Ok((1.5, 2000.0)));
        let run = s.run.expect("run");
        assert_eq!((run.tsc_hz, run.esp_cipher), (2000, None));
        assert!(Stats::parse("{}").is_err());
    }

    #[test]
    fn the_story_world_loads_with_its_dataplane() {
        let text = story_world("0-2", "");
        let topo = mapping_client::topology::Topology::from_str(&text, "w.toml").expect("loads");
        assert_eq!(topo.dataplane().lcores, [0, 1, 2]);
        let with_port = story_world("0-1", &port("red-1", "net_null0", "instance:red-1"));
        let topo = mapping_client::topology::Topology::from_str(&with_port, "w.toml").expect("loads");
        assert_eq!((topo.ports()[0].name.as_str(), topo.ports()[0].vdev.as_str()), ("red-1", "net_null0"));
        assert!(text.starts_with("[dataplane]\nlcores = \"0-2\"\nmemory_mb = 512\nhugepages = \"off\"\n\n"));
    }
}
