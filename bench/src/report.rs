//! The benchmark report: one row per scenario, printed as a table and written as the
//! JSON of ARCHITECTURE section 10 (`scenarios`, each with `name`, `mpps`,
//! `cycles_per_packet`, `baseline`, `baseline_mpps`, `ratio`, plus scenario extras).

use serde::Serialize;
use serde_json::{Map, Value};

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
            "{:<24} {:>9} {:>12} {:>26} {:>13} {:>7}\n",
            "scenario", "Mpps", "cycles/pkt", "baseline", "baseline Mpps", "ratio"
        ));
        for r in &self.scenarios {
            out.push_str(&format!(
                "{:<24} {:>9} {:>12} {:>26} {:>13} {:>7}",
                r.name,
                fmt_opt(r.mpps, 2),
                fmt_opt(r.cycles_per_packet, 1),
                r.baseline.as_deref().unwrap_or("-"),
                fmt_opt(r.baseline_mpps, 2),
                fmt_opt(r.ratio, 3),
            ));
            for (k, v) in &r.extra {
                out.push_str(&format!("  {k}={v}"));
            }
            out.push('\n');
        }
        out
    }
}
