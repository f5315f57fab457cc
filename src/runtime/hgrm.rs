//! `vpcemu run --hgrm DIR`: at exit, each stage's latency histogram (nanoseconds per
//! packet) in HdrHistogram's percentile-distribution format (`pipeline::hgrm`), one file
//! per card kind and stage that ran: `DIR/host-verify-recv.hgrm`, `DIR/edge-nat.hgrm`, ...

use std::io;
use std::path::Path;

use pipeline::{StageHistograms, StatsReport};

/// Write the files; returns how many.
pub fn write_all(dir: &Path, report: &StatsReport, histograms: &StageHistograms, tsc_hz: u64) -> io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let cycles_per_ns = tsc_hz as f64 / 1e9;
    let mut n = 0;
    for (kind, rows) in &report.card_stages {
        for s in rows.iter().filter(|s| s.count > 0) {
            let h = histograms.of(*kind, s.stage);
            if h.is_empty() {
                continue; // timing off: counted, not timed
            }
            let text = pipeline::hgrm::percentile_distribution(h, cycles_per_ns);
            std::fs::write(dir.join(format!("{kind}-{}.hgrm", s.stage.name())), text)?;
            n += 1;
        }
    }
    Ok(n)
}
