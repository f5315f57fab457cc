//! The stats report: the JSON of `--stats-json` and the readable table, same figures.
//!
//! Contract: [`StatsReport::new`] takes everything as values (sans-I/O): port figures
//! from the runtime (ethdev stats), the merged worker [`Counters`], the merged
//! [`StageHistograms`] with the measured TSC frequency, the output names and the alert
//! totals. JSON shape (keys in this order, maps in the order shown):
//!
//! ```json
//! { "ports":   { "<port>": { "rx": 0, "tx": 0, "dropped": 0 } },
//!   "drops":   { "<every drop reason>": 0 },
//!   "stages":  { "<every stage>": { "count": 0, "dropped": 0, "timed": 0, "p50_ns": 0.0,
//!                                   "p90_ns": 0.0, "p99_ns": 0.0, "p999_ns": 0.0,
//!                                   "max_ns": 0.0 } },
//!   "card_stages": { "host": { "<every stage>": { ...as in stages } }, "edge": { ... } },
//!   "outputs": { "<output>": 0 },
//!   "consumed": 0, "packets": 0, "bursts": 0,
//!   "alerts_dropped": 0,
//!   "alerts":  { "written": 0, "events": 0, "queue_full": 0, "rate_limited": 0, "overflow": 0 } }
//! ```
//!
//! Every drop reason and every stage is listed, zero or not, so the shape never changes.
//! `stages` is every card together; `card_stages` keeps host (Nitro) and edge
//! (Blackfoot) cards apart, since both run stages of the same name (`verify-recv`,
//! `decap`, `encap`, `classify`) with different work behind them.
//! A stage's `count` and `dropped` are exact packet counts from the counters; the
//! percentiles (nanoseconds per packet, 0 when timing is off) come from the histograms
//! merged so far, which hold the packets of the bursts the workers timed: `timed` of them
//! (all at low rates; a sample at high ones, `vpcemu run --stage-timing-sample-us`). `outputs` lists the named outputs and any unnamed one that was used
//! (as `output-N`).

use core::fmt;
use std::io;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::alert::AlertTotals;
use crate::card_kind::CardKind;
use crate::limits::MAX_OUTPUTS;
use crate::output::Output;
use crate::clock::TscHz;
use crate::counters::Counters;
use crate::drop::DropReason;
use crate::stage_id::StageId;
use crate::timing::{StageHistograms, StageSummary};

/// One port's figures, from the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortStats {
    /// Port name (the topology's `[[port]] name`).
    #[serde(skip)]
    pub name: String,
    /// Packets received.
    pub rx: u64,
    /// Packets sent.
    pub tx: u64,
    /// Packets the port dropped (missed + errors + no mbuf).
    pub dropped: u64,
}

/// One stage's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StageStats {
    /// Which stage.
    #[serde(skip)]
    pub stage: StageId,
    /// Packets the stage ran on.
    pub count: u64,
    /// Packets it dropped.
    pub dropped: u64,
    /// Packets of the bursts timed: what the percentiles are of.
    pub timed: u64,
    /// Median ns per packet.
    pub p50_ns: f64,
    /// 90th percentile ns per packet.
    pub p90_ns: f64,
    /// 99th percentile ns per packet.
    pub p99_ns: f64,
    /// 99.9th percentile ns per packet.
    pub p999_ns: f64,
    /// Largest ns per packet.
    pub max_ns: f64,
}

impl StageStats {
    /// The row of `stage`: exact counts and the histogram's figures.
    pub fn of(stage: StageId, count: u64, dropped: u64, t: StageSummary) -> StageStats {
        StageStats {
            stage,
            count,
            dropped,
            timed: t.count,
            p50_ns: t.p50_ns,
            p90_ns: t.p90_ns,
            p99_ns: t.p99_ns,
            p999_ns: t.p999_ns,
            max_ns: t.max_ns,
        }
    }
}

/// Everything the stats JSON and table show. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq)]
pub struct StatsReport {
    /// Per port, in the runtime's order.
    pub ports: Vec<PortStats>,
    /// Per drop reason, every reason in [`DropReason::ALL`] order.
    pub drops: Vec<(DropReason, u64)>,
    /// Per stage, every stage in [`StageId::ALL`] order, every kind of card together.
    pub stages: Vec<StageStats>,
    /// Per card kind ([`CardKind::ALL`] order), per stage ([`StageId::ALL`] order).
    pub card_stages: Vec<(CardKind, Vec<StageStats>)>,
    /// Per output name.
    pub outputs: Vec<(String, u64)>,
    /// Packets consumed by stages.
    pub consumed: u64,
    /// Packets drained from bursts.
    pub packets: u64,
    /// Bursts drained.
    pub bursts: u64,
    /// Alert figures.
    pub alerts: AlertTotals,
}

impl StatsReport {
    /// Build the report. `output_names[i]` names `Output` number `i`.
    pub fn new<S: AsRef<str>>(
        ports: Vec<PortStats>,
        counters: &Counters,
        timing: &StageHistograms,
        hz: TscHz,
        output_names: &[S],
        alerts: AlertTotals,
    ) -> Self {
        let drops = DropReason::ALL.iter().map(|&r| (r, counters.drops(r))).collect();
        let stages = StageId::ALL
            .iter()
            .map(|&s| {
                StageStats::of(s, counters.stage_packets(s), counters.stage_drops(s), timing.summary(s, hz))
            })
            .collect();
        let card_stages = CardKind::ALL
            .iter()
            .map(|&k| {
                let rows = StageId::ALL
                    .iter()
                    .map(|&s| {
                        let t = timing.summary_of(k, s, hz);
                        StageStats::of(s, counters.stage_packets_of(k, s), counters.stage_drops_of(k, s), t)
                    })
                    .collect();
                (k, rows)
            })
            .collect();
        let outputs = (0..MAX_OUTPUTS)
            .filter_map(|i| {
                let n = Output::new(i).map_or(0, |o| counters.output(o));
                match output_names.get(i) {
                    // An empty name marks an unused output number.
                    Some(name) if !name.as_ref().is_empty() => Some((name.as_ref().to_owned(), n)),
                    Some(_) if n > 0 => Some((format!("output-{i}"), n)),
                    Some(_) => None,
                    None if n > 0 => Some((format!("output-{i}"), n)),
                    None => None,
                }
            })
            .collect();
        StatsReport {
            ports,
            drops,
            stages,
            card_stages,
            outputs,
            consumed: counters.consumed(),
            packets: counters.packets(),
            bursts: counters.bursts(),
            alerts,
        }
    }

    /// The JSON text (one object, no trailing newline).
    pub fn to_json(&self) -> String {
        // Serializing plain numbers and strings into a String cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Write the JSON and a newline.
    pub fn write_json<W: io::Write>(&self, mut w: W) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut w, self).map_err(io::Error::from)?;
        w.write_all(b"\n")
    }

    /// The readable fixed-width table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_table(&mut s);
        s
    }

    /// Write the readable fixed-width table.
    pub fn write_table<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        writeln!(w, "{:<24} {:>14} {:>14} {:>14}", "port", "rx", "tx", "dropped")?;
        for p in &self.ports {
            writeln!(w, "{:<24} {:>14} {:>14} {:>14}", p.name, p.rx, p.tx, p.dropped)?;
        }
        writeln!(w)?;
        writeln!(
            w,
            "{:<12} {:>14} {:>12} {:>14} {:>10} {:>10} {:>10} {:>10} {:>12}",
            "stage", "count", "dropped", "timed", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"
        )?;
        for s in &self.stages {
            stage_row(w, s.stage.name(), 12, s)?;
        }
        // Per card kind, the stages that ran on it.
        let ran = |rows: &Vec<StageStats>| rows.iter().any(|s| s.count > 0);
        if self.card_stages.iter().any(|(_, rows)| ran(rows)) {
            writeln!(w)?;
            writeln!(
                w,
                "{:<24} {:>14} {:>12} {:>14} {:>10} {:>10} {:>10} {:>10} {:>12}",
                "card/stage", "count", "dropped", "timed", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"
            )?;
        }
        for (kind, rows) in &self.card_stages {
            for s in rows.iter().filter(|s| s.count > 0) {
                stage_row(w, &format!("{kind}/{}", s.stage.name()), 24, s)?;
            }
        }
        writeln!(w)?;
        writeln!(w, "{:<24} {:>14}", "drop reason", "count")?;
        for (r, n) in &self.drops {
            writeln!(w, "{:<24} {:>14}", r.name(), n)?;
        }
        writeln!(w)?;
        writeln!(w, "{:<24} {:>14}", "output", "count")?;
        for (name, n) in &self.outputs {
            writeln!(w, "{name:<24} {n:>14}")?;
        }
        writeln!(w)?;
        writeln!(w, "{:<24} {:>14}", "consumed", self.consumed)?;
        writeln!(w, "{:<24} {:>14}", "packets", self.packets)?;
        writeln!(w, "{:<24} {:>14}", "bursts", self.bursts)?;
        let a = &self.alerts;
        writeln!(w, "{:<24} {:>14}", "alerts_dropped", a.dropped())?;
        writeln!(
            w,
            "alerts: written {} ({} events), queue_full {}, rate_limited {}, overflow {}",
            a.written, a.events, a.queue_full, a.rate_limited, a.overflow
        )
    }
}

/// One row of a stage table, its label `width` wide.
fn stage_row<W: fmt::Write>(w: &mut W, label: &str, width: usize, s: &StageStats) -> fmt::Result {
    writeln!(
        w,
        "{label:<width$} {:>14} {:>12} {:>14} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>12.1}",
        s.count, s.dropped, s.timed, s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns
    )
}

/// A slice of pairs serialized as a JSON object in slice order.
struct Ordered<'a, K, V>(&'a [(K, V)]);

impl<K: AsRef<str>, V: Serialize> Serialize for Ordered<'_, K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k.as_ref(), v)?;
        }
        m.end()
    }
}

/// Rows keyed by their own name.
trait Named {
    fn key(&self) -> &str;
}

impl Named for PortStats {
    fn key(&self) -> &str {
        &self.name
    }
}

impl Named for StageStats {
    fn key(&self) -> &str {
        self.stage.name()
    }
}

/// A slice of named rows serialized as a JSON object in slice order.
struct ByName<'a, T>(&'a [T]);

impl<T: Serialize + Named> Serialize for ByName<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for v in self.0 {
            m.serialize_entry(v.key(), v)?;
        }
        m.end()
    }
}

impl Serialize for StatsReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let drops: Vec<(&str, u64)> = self.drops.iter().map(|(r, n)| (r.name(), *n)).collect();
        let card_stages: Vec<(&str, ByName<'_, StageStats>)> =
            self.card_stages.iter().map(|(k, rows)| (k.name(), ByName(rows))).collect();
        let mut m = s.serialize_map(Some(10))?;
        m.serialize_entry("ports", &ByName(&self.ports))?;
        m.serialize_entry("drops", &Ordered(&drops))?;
        m.serialize_entry("stages", &ByName(&self.stages))?;
        m.serialize_entry("card_stages", &Ordered(&card_stages))?;
        m.serialize_entry("outputs", &Ordered(&self.outputs))?;
        m.serialize_entry("consumed", &self.consumed)?;
        m.serialize_entry("packets", &self.packets)?;
        m.serialize_entry("bursts", &self.bursts)?;
        m.serialize_entry("alerts_dropped", &self.alerts.dropped())?;
        m.serialize_entry("alerts", &self.alerts)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::HistogramConfig;
    use serde_json::Value;

    fn report() -> StatsReport {
        let mut c = Counters::new();
        c.add_drops(DropReason::SpoofedSource, 3);
        c.add_drops(DropReason::NoRoute, 2);
        c.add_output(Output::new(0).unwrap(), 100);
        c.add_output(Output::new(5).unwrap(), 4);
        c.add_consumed(1);
        c.add_stage(CardKind::Host, StageId::VerifySend, 105, 3);
        c.add_stage(CardKind::Host, StageId::Encap, 60, 0);
        c.add_stage(CardKind::Edge, StageId::Encap, 41, 0);
        c.add_burst(110);
        let mut h = StageHistograms::new(HistogramConfig::default()).unwrap();
        // The host's encap: a packet in a burst not timed (60 counted, 59 timed).
        h.record(CardKind::Host, StageId::Encap, 60, 59);
        h.record(CardKind::Edge, StageId::Encap, 60, 40);
        h.record(CardKind::Edge, StageId::Encap, 240, 1);
        let ports = vec![
            PortStats { name: "red-1".into(), rx: 110, tx: 0, dropped: 0 },
            PortStats { name: "underlay".into(), rx: 0, tx: 100, dropped: 2 },
        ];
        let alerts =
            AlertTotals { written: 2, events: 5, queue_full: 1, rate_limited: 3, overflow: 0 };
        StatsReport::new(ports, &c, &h, TscHz(3_000_000_000), &["underlay", "fabric"], alerts)
    }

    #[test]
    fn json_shape_parses_back() {
        let r = report();
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["ports"]["red-1"]["rx"], 110);
        assert_eq!(v["ports"]["underlay"]["dropped"], 2);
        let drops = v["drops"].as_object().unwrap();
        assert_eq!(drops.len(), DropReason::COUNT);
        for r in DropReason::ALL {
            assert!(drops.contains_key(r.name()), "{r}");
        }
        assert_eq!(v["drops"]["spoofed_source"], 3);
        assert_eq!(v["drops"]["malformed"], 0);
        let stages = v["stages"].as_object().unwrap();
        assert_eq!(stages.len(), StageId::COUNT);
        let encap = &v["stages"]["encap"];
        for k in ["count", "dropped", "timed", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"] {
            assert!(encap[k].is_number(), "{k}");
        }
        assert_eq!((encap["count"].as_u64(), encap["timed"].as_u64()), (Some(101), Some(100)));
        assert_eq!(encap["p50_ns"], 20.0);
        assert_eq!(encap["max_ns"], 80.0);
        // Hosts and edges apart.
        assert_eq!(v["card_stages"].as_object().unwrap().len(), 2);
        for k in ["host", "edge"] {
            assert_eq!(v["card_stages"][k].as_object().unwrap().len(), StageId::COUNT);
        }
        let (host, edge) = (&v["card_stages"]["host"]["encap"], &v["card_stages"]["edge"]["encap"]);
        assert_eq!((host["count"].as_u64(), host["p50_ns"].as_f64(), host["max_ns"].as_f64()), (Some(60), Some(20.0), Some(20.0)));
        assert_eq!((edge["count"].as_u64(), edge["p50_ns"].as_f64(), edge["max_ns"].as_f64()), (Some(41), Some(20.0), Some(80.0)));
        assert_eq!((host["timed"].as_u64(), edge["timed"].as_u64()), (Some(59), Some(41)));
        assert_eq!(v["card_stages"]["host"]["verify-send"]["dropped"], 3);
        assert_eq!(v["card_stages"]["edge"]["verify-send"]["count"], 0);
        assert_eq!(v["stages"]["verify-send"]["dropped"], 3);
        assert_eq!(v["stages"]["nat"]["p99_ns"], 0.0);
        assert_eq!(v["outputs"]["underlay"], 100);
        assert_eq!(v["outputs"]["fabric"], 0);
        assert_eq!(v["outputs"]["output-5"], 4);
        assert_eq!(v["outputs"].as_object().unwrap().len(), 3);
        assert_eq!(v["alerts_dropped"], 4);
        assert_eq!(v["alerts"]["rate_limited"], 3);
        assert_eq!(v["consumed"], 1);
        assert_eq!(v["packets"], 110);
        // Order is the documented one, not alphabetical.
        let text = r.to_json();
        assert!(text.find("\"ports\"") < text.find("\"drops\""));
        assert!(text.find("\"host\"") < text.find("\"edge\""));
        assert!(text.find("\"malformed\"") < text.find("\"arp_ignored\""));
        let mut buf = Vec::new();
        r.write_json(&mut buf).unwrap();
        assert!(buf.ends_with(b"}\n"));
    }

    #[test]
    fn table_has_the_same_figures() {
        let t = report().to_table();
        let row = |name: &str| {
            t.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("no row {name}:\n{t}"))
                .split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(row("red-1"), ["110", "0", "0"]);
        assert_eq!(row("encap"), ["101", "0", "100", "20.0", "20.0", "20.0", "80.0", "80.0"]);
        assert_eq!(row("host/encap"), ["60", "0", "59", "20.0", "20.0", "20.0", "20.0", "20.0"]);
        assert_eq!(row("edge/encap"), ["41", "0", "41", "20.0", "20.0", "80.0", "80.0", "80.0"]);
        assert!(!t.contains("edge/verify-send"), "only the stages that ran: {t}");
        assert_eq!(row("spoofed_source"), ["3"]);
        assert_eq!(row("output-5"), ["4"]);
        assert_eq!(row("alerts_dropped"), ["4"]);
        for r in DropReason::ALL {
            assert_eq!(row(r.name()).len(), 1);
        }
        // Fixed width: the stage rows line up.
        let widths: Vec<usize> = StageId::ALL.iter().map(|s| {
            t.lines().find(|l| l.starts_with(&format!("{} ", s.name()))).unwrap().len()
        }).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{t}");
    }
}
