//! `vpcemu-bench --plot DIR`: SVG charts of a benchmark report (plotters, SVG backend).
//!
//! - `throughput-mpps.svg`: per scenario, vpcemu's Mpps beside its baseline's (testpmd io,
//!   or the small world for the scale rows);
//! - `throughput-gbps.svg`: per ESP scenario, vpcemu's Gbit/s beside crypto-perf's;
//! - `stage-latency.svg`: per scenario and stage, the latency percentile curve (ns per
//!   packet at p50, p90, p99, p99.9 and max, as far as the row has them; log scale), each
//!   percentile a tenfold rarer event than the one before, as on HdrHistogram's plots.
//!
//! A chart with nothing to show is not written. Everything comes from the report's JSON,
//! so `--from-json PATH` draws a saved report again.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

/// Chart size in pixels.
const WIDTH: u32 = 960;

/// Percentile keys of a row's stage figures, their labels and their places on the x axis
/// (p50, p90, p99, p99.9, max: each a tenfold rarer event than the one before, as on
/// HdrHistogram's plots).
const PERCENTILES: [(&str, &str, f64); 5] = [
    ("p50_ns", "p50", 0.0),
    ("p90_ns", "p90", 1.0),
    ("p99_ns", "p99", 2.0),
    ("p999_ns", "p99.9", 3.0),
    ("max_ns", "max", 4.0),
];

/// Curve colours, dark enough on white.
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(90, 90, 90),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One bar pair: scenario, ours, the baseline's, the baseline's name.
type Pair = (String, f64, f64, String);

fn pairs(report: &Value, ours: &str, theirs: &str) -> Vec<Pair> {
    let rows = report["scenarios"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    rows.iter()
        .filter_map(|r| {
            let (a, b) = (r[ours].as_f64()?, r[theirs].as_f64()?);
            let name = r["name"].as_str()?.to_string();
            Some((name, a, b, r["baseline"].as_str().unwrap_or("baseline").to_string()))
        })
        .collect()
}

/// Stage curves: (label, [(x, ns)]).
fn curves(report: &Value) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out = Vec::new();
    for r in report["scenarios"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let (Some(name), Some(stages)) = (r["name"].as_str(), r["stages"].as_object()) else { continue };
        for (stage, figures) in stages {
            let points: Vec<(f64, f64)> =
                PERCENTILES.iter().filter_map(|(key, _, x)| figures[*key].as_f64().map(|ns| (*x, ns))).collect();
            if points.len() >= 2 {
                out.push((format!("{name} {stage}"), points));
            }
        }
    }
    out
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Horizontal bars, two per scenario.
fn bar_chart(path: &Path, title: &str, unit: &str, pairs: &[Pair]) -> Result<(), String> {
    let height = 120 + 60 * pairs.len() as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    // Room on the right for the longest bar's label.
    let top = pairs.iter().map(|p| p.1.max(p.2)).fold(0.0, f64::max).max(f64::MIN_POSITIVE) * 1.5;
    let n = pairs.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(10)
        .build_cartesian_2d(0.0..top, 0.0..n as f64)
        .map_err(err)?;
    chart.configure_mesh().disable_y_mesh().disable_y_axis().x_desc(unit).draw().map_err(err)?;
    // Scenario i has the band from n - i down to n - i - 1: its name, then its two bars.
    let band = |i: usize| n as f64 - i as f64;
    chart
        .draw_series(pairs.iter().enumerate().map(|(i, p)| Text::new(p.0.clone(), (0.0, band(i) - 0.02), ("sans-serif", 14))))
        .map_err(err)?;
    chart
        .draw_series(pairs.iter().enumerate().map(|(i, p)| {
            Rectangle::new([(0.0, band(i) - 0.22), (p.1, band(i) - 0.55)], BLUE.mix(0.8).filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(pairs.iter().enumerate().map(|(i, p)| {
            Rectangle::new([(0.0, band(i) - 0.58), (p.2, band(i) - 0.91)], RGBColor(150, 150, 150).filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(pairs.iter().enumerate().map(|(i, p)| {
            Text::new(format!("{:.2} {}", p.1, unit), (p.1 + top * 0.01, band(i) - 0.28), ("sans-serif", 12))
        }))
        .map_err(err)?;
    chart
        .draw_series(pairs.iter().enumerate().map(|(i, p)| {
            Text::new(format!("{:.2} ({})", p.2, p.3), (p.2 + top * 0.01, band(i) - 0.64), ("sans-serif", 12))
        }))
        .map_err(err)?;
    root.present().map_err(err)
}

/// Latency percentile curves, the legend beside the chart.
fn latency_chart(path: &Path, curves: &[(String, Vec<(f64, f64)>)]) -> Result<(), String> {
    let height = 560.max(80 + 20 * curves.len() as u32);
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(WIDTH - 280);
    let values = || curves.iter().flat_map(|c| c.1.iter().copied());
    let top = values().map(|p| p.1).fold(1.0, f64::max) * 1.5;
    let bottom = values().map(|p| p.1).filter(|v| *v > 0.0).fold(top, f64::min) / 1.5;
    let last = values().map(|p| p.0).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(&left)
        .caption("stage latency by percentile", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.2..last + 0.2, (bottom..top).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(PERCENTILES.len())
        .x_label_formatter(&|x| {
            PERCENTILES.iter().find(|(_, _, at)| (at - x).abs() < 0.01).map(|(_, l, _)| l.to_string()).unwrap_or_default()
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("percentile")
        .y_desc("ns per packet (log)")
        .draw()
        .map_err(err)?;
    for (i, (_, points)) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        // Past ten curves, the colours come again, thinner.
        let style = colour.stroke_width(if i < COLOURS.len() { 2 } else { 1 });
        let kept = points.iter().copied().filter(|p| p.1 > 0.0);
        chart.draw_series(LineSeries::new(kept.clone(), style)).map_err(err)?;
        chart.draw_series(kept.map(|p| Circle::new(p, 3, colour.filled()))).map_err(err)?;
    }
    for (i, (label, _)) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let y = 50 + 20 * i as i32;
        let width = if i < COLOURS.len() { 2 } else { 1 };
        right.draw(&PathElement::new(vec![(8, y), (30, y)], colour.stroke_width(width))).map_err(err)?;
        right.draw(&Text::new(label.as_str(), (38, y - 7), ("sans-serif", 13))).map_err(err)?;
    }
    root.present().map_err(err)
}

/// Draw the charts of `report` into `dir`; returns the files written.
pub fn plot(report: &Value, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--plot {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let mpps: Vec<Pair> = pairs(report, "mpps", "baseline_mpps").into_iter().filter(|p| !p.0.contains("-esp-")).collect();
    if !mpps.is_empty() {
        let path = dir.join("throughput-mpps.svg");
        bar_chart(&path, "Mpps: vpcemu (blue) beside its baseline in the same run (grey)", "Mpps", &mpps)?;
        written.push(path);
    }
    let gbps = pairs(report, "gbps", "baseline_gbps");
    if !gbps.is_empty() {
        let path = dir.join("throughput-gbps.svg");
        bar_chart(&path, "ESP Gbit/s: vpcemu (blue) beside dpdk-test-crypto-perf in the same run (grey)", "Gbit/s", &gbps)?;
        written.push(path);
    }
    let c = curves(report);
    if !c.is_empty() {
        let path = dir.join("stage-latency.svg");
        latency_chart(&path, &c)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({ "scenarios": [
            { "name": "passthrough", "mpps": 34.5, "baseline": "testpmd io", "baseline_mpps": 35.3 },
            { "name": "nitro-egress", "mpps": 5.85, "baseline": "testpmd io", "baseline_mpps": 19.0,
              "stages": { "encap": { "p50_ns": 20.5, "p99_ns": 41.0 }, "route": { "p50_ns": 60.0, "p99_ns": 90.0 } } },
            { "name": "blackfoot-esp-1400", "mpps": 1.05, "gbps": 11.8, "baseline": "crypto-perf",
              "baseline_gbps": 20.5, "stages": { "esp-encrypt": { "p50_ns": 500.0, "p90_ns": 520.0, "p99_ns": 700.0 } } },
            { "name": "tables-lookup", "mappings": 1000 }
        ]})
    }

    #[test]
    fn draws_the_three_charts_from_a_report() {
        let dir = std::env::temp_dir().join(format!("vpcemu-plot-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = plot(&report(), &dir).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["throughput-mpps.svg", "throughput-gbps.svg", "stage-latency.svg"]);
        let mpps = std::fs::read_to_string(dir.join("throughput-mpps.svg")).unwrap();
        assert!(mpps.starts_with("<svg"), "{}", &mpps[..100]);
        assert!(mpps.trim_end().ends_with("</svg>"));
        for text in ["passthrough", "nitro-egress", "34.50 Mpps", "35.30 (testpmd io)", "5.85 Mpps", "vpcemu (blue)"] {
            assert!(mpps.contains(text), "{text} not in the Mpps chart");
        }
        assert!(!mpps.contains("blackfoot-esp-1400"), "ESP rows go to the Gbit/s chart");
        assert!(!mpps.contains("tables-lookup"), "rows without figures are left out");
        let gbps = std::fs::read_to_string(dir.join("throughput-gbps.svg")).unwrap();
        assert!(gbps.contains("11.80 Gbit/s") && gbps.contains("20.50 (crypto-perf)"));
        let lat = std::fs::read_to_string(dir.join("stage-latency.svg")).unwrap();
        for text in ["nitro-egress encap", "nitro-egress route", "blackfoot-esp-1400 esp-encrypt", "p99"] {
            assert!(lat.contains(text), "{text} not in the latency chart");
        }
        assert_eq!(lat.matches("<circle").count(), 2 + 2 + 3, "a mark at every percentile each curve has");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nothing_to_draw_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("vpcemu-plot-empty-{}", std::process::id()));
        let files = plot(&json!({ "scenarios": [{ "name": "tables-update", "mappings": 10 }] }), &dir).unwrap();
        assert!(files.is_empty());
        assert!(plot(&json!({}), &dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
