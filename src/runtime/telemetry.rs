//! `vpcemu run`'s figures as DPDK telemetry commands (see `crate::dpdk::telemetry`):
//!
//! - `/vpcemu/drops`: drop reason -> packets
//! - `/vpcemu/stages`: `KIND/STAGE/count`, `KIND/STAGE/timed` (the packets the
//!   percentiles are of), `KIND/STAGE/p50_ns`, `KIND/STAGE/p99_ns`, `KIND/STAGE/max_ns`
//!   for the stages that ran, hosts (`host/`) and edges (`edge/`)
//!   apart
//! - `/vpcemu/ports`: `PORT/rx`, `PORT/tx`, `PORT/dropped`
//!
//! The control core refreshes a snapshot every 100 ms; the providers only read it.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pipeline::StatsReport;

use super::engine::Engine;
use crate::dpdk::DpdkError;
use crate::dpdk::telemetry::{self, TelValue};

struct Snapshot {
    report: Option<StatsReport>,
    at: Option<Instant>,
}

fn snapshot() -> &'static Mutex<Snapshot> {
    static S: OnceLock<Mutex<Snapshot>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(Snapshot { report: None, at: None }))
}

fn with_report(f: impl FnOnce(&StatsReport) -> Vec<(String, TelValue)>) -> Vec<(String, TelValue)> {
    match snapshot().lock() {
        Ok(s) => s.report.as_ref().map(f).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Telemetry entries `PREFIX/KEY` of `values`.
fn under<const N: usize>(prefix: &str, values: [(&str, u64); N]) -> [(String, TelValue); N] {
    values.map(|(k, v)| (format!("{prefix}/{k}"), TelValue::U64(v)))
}

/// Register the commands.
pub fn register(_engine: &Engine) -> Result<(), DpdkError> {
    telemetry::register(
        "/vpcemu/drops",
        "vpcemu drops per reason",
        Arc::new(|_: &str| {
            with_report(|r| r.drops.iter().map(|(d, n)| (d.name().to_string(), TelValue::U64(*n))).collect())
        }),
    )?;
    telemetry::register(
        "/vpcemu/stages",
        "vpcemu per-stage packets and latency (ns per packet), by card kind",
        Arc::new(|_: &str| {
            with_report(|r| {
                let ns = |x: f64| x.round() as u64;
                r.card_stages
                    .iter()
                    .flat_map(|(k, rows)| rows.iter().map(move |s| (k, s)))
                    .filter(|(_, s)| s.count > 0)
                    .flat_map(|(k, s)| {
                        let values = [("count", s.count), ("timed", s.timed), ("p50_ns", ns(s.p50_ns)), ("p99_ns", ns(s.p99_ns)), ("max_ns", ns(s.max_ns))];
                        under(&format!("{k}/{}", s.stage.name()), values)
                    })
                    .collect()
            })
        }),
    )?;
    telemetry::register(
        "/vpcemu/ports",
        "vpcemu per-port rx, tx, dropped",
        Arc::new(|_: &str| {
            with_report(|r| r.ports.iter().flat_map(|p| under(&p.name, [("rx", p.rx), ("tx", p.tx), ("dropped", p.dropped)])).collect())
        }),
    )?;
    Ok(())
}

/// Refresh the snapshot if it is older than 100 ms.
pub fn publish(engine: &Engine) {
    let Ok(mut s) = snapshot().lock() else { return };
    if s.at.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
        return;
    }
    s.report = Some(engine.report());
    s.at = Some(Instant::now());
}
