//! The benchmark report: one row per scenario, printed as a table and written as the
//! JSON of ARCHITECTURE section 10 (`scenarios`, each with `name`, `mpps`,
//! `cycles_per_packet`, `baseline`, `baseline_mpps`, `ratio`, plus scenario extras; the
//! ESP rows add `gbps` and `baseline_gbps`).

use serde::Serialize;
use serde_json::{Map, Value};

/// What every line-rate scenario is given: the vpcemu binary, a work directory, seconds
/// per run and runs per measurement.
pub struct Setup<'a> {
    pub vpcemu: &'a std::path::Path,
    pub work: &'a std::path::Path,
    pub seconds: f64,
    pub repeat: usize,
}

/// One measured scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mpps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycles_per_packet: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_mpps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Encryption throughput, Gbit/s of plaintext (ESP rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gbps: Option<f64>,
    /// The baseline's Gbit/s over the same bytes (ESP rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_gbps: Option<f64>,
    /// Scenario-specific fields (for example `mappings`, `gbps`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Row {
    pub fn new(name: impl Into<String>) -> Self {
        Row {
            name: name.into(),
            mpps: None,
            cycles_per_packet: None,
            baseline: None,
            baseline_mpps: None,
            ratio: None,
            gbps: None,
            baseline_gbps: None,
            extra: Map::new(),
        }
    }

    /// A row from a JSON object with a `name`; every other field goes to `extra`.
    pub fn from_value(v: Value) -> Row {
        let mut map = match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let name = map.remove("name").and_then(|n| n.as_str().map(str::to_owned)).unwrap_or_default();
        Row { extra: map, ..Row::new(name) }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }
}

/// The median of measurements (the upper one of an even count; 0 for none).
pub use pipeline::clock::median;

/// The stats report `vpcemu run --stats-json` wrote, typed.
pub use vpcemu::testkit::Stats;

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenarios: Vec<Row>,
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}")).unwrap_or_else(|| "-".into())
}

impl Report {
    /// The readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<30} {:>9} {:>12} {:>38} {:>13} {:>7} {:>8} {:>10}\n",
            "scenario", "Mpps", "cycles/pkt", "baseline", "baseline Mpps", "ratio", "Gbps", "base Gbps"
        ));
        for r in &self.scenarios {
            out.push_str(&format!(
                "{:<30} {:>9} {:>12} {:>38} {:>13} {:>7} {:>8} {:>10}",
                r.name,
                fmt_opt(r.mpps, 2),
                fmt_opt(r.cycles_per_packet, 1),
                r.baseline.as_deref().unwrap_or("-"),
                fmt_opt(r.baseline_mpps, 2),
                fmt_opt(r.ratio, 3),
                fmt_opt(r.gbps, 3),
                fmt_opt(r.baseline_gbps, 3),
            ));
            for (k, v) in &r.extra {
                out.push_str(&format!("  {k}={v}"));
            }
            out.push('\n');
        }
        out
    }
}
