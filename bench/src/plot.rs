//! `vpcemu-bench --plot DIR`: SVG charts of a benchmark report (plotters, SVG backend).
//!
//! - `throughput-mpps.svg`: per scenario, vpcemu's Mpps beside its baseline's (testpmd io,
//!   or the small world for the scale rows);
//! - `throughput-gbps.svg`: per ESP scenario, vpcemu's Gbit/s beside crypto-perf's;
//! - `stage-latency.svg`: per scenario and stage, the latency percentile curve (ns per
//!   packet at p50, p90, p99, p99.9 and max, as far as the row has them), on an
//!   HdrHistogram-style axis: x = log10(1 / (1 - percentile)).
//!
//! A chart with nothing to show is not written. Everything comes from the report's JSON,
//! so `--from-json PATH` draws a saved report again.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

/// Chart size in pixels.
const WIDTH: u32 = 960;

/// Percentile keys of a row's stage figures, and where they sit on the x axis.
const PERCENTILES: [(&str, &str, f64); 5] = [
    ("p50_ns", "p50", 0.301),
    ("p90_ns", "p90", 1.0),
    ("p99_ns", "p99", 2.0),
    ("p999_ns", "p99.9", 3.0),
    ("max_ns", "max", 4.0),
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
    let top = pairs.iter().map(|p| p.1.max(p.2)).fold(0.0, f64::max).max(f64::MIN_POSITIVE) * 1.15;
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
    let ours = chart
        .draw_series(pairs.iter().enumerate().map(|(i, p)| {
            Rectangle::new([(0.0, band(i) - 0.22), (p.1, band(i) - 0.55)], BLUE.mix(0.8).filled())
        }))
        .map_err(err)?;
    ours.label("vpcemu").legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], BLUE.mix(0.8).filled()));
    let theirs = chart
        .draw_series(pairs.iter().enumerate().map(|(i, p)| {
            Rectangle::new([(0.0, band(i) - 0.58), (p.2, band(i) - 0.91)], RGBColor(150, 150, 150).filled())
        }))
        .map_err(err)?;
    theirs
        .label("baseline (same run)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], RGBColor(150, 150, 150).filled()));
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
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.9)).draw().map_err(err)?;
    root.present().map_err(err)
}

/// Latency percentile curves.
fn latency_chart(path: &Path, curves: &[(String, Vec<(f64, f64)>)]) -> Result<(), String> {
    let root = SVGBackend::new(path, (WIDTH, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let top = curves.iter().flat_map(|c| c.1.iter().map(|p| p.1)).fold(0.0, f64::max).max(1.0) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("stage latency by percentile (ns per packet)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..4.3, 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|x| {
            PERCENTILES.iter().find(|(_, _, at)| (at - x).abs() < 0.2).map(|(_, l, _)| l.to_string()).unwrap_or_default()
        })
        .x_desc("percentile")
        .y_desc("ns per packet")
        .draw()
        .map_err(err)?;
    for (i, (label, points)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled()))).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Draw the charts of `report` into `dir`; returns the files written.
pub fn plot(report: &Value, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--plot {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let mpps: Vec<Pair> = pairs(report, "mpps", "baseline_mpps").into_iter().filter(|p| !p.0.contains("-esp-")).collect();
    if !mpps.is_empty() {
        let path = dir.join("throughput-mpps.svg");
        bar_chart(&path, "Mpps: vpcemu beside its baseline", "Mpps", &mpps)?;
        written.push(path);
    }
    let gbps = pairs(report, "gbps", "baseline_gbps");
    if !gbps.is_empty() {
        let path = dir.join("throughput-gbps.svg");
        bar_chart(&path, "ESP Gbit/s: vpcemu beside dpdk-test-crypto-perf", "Gbit/s", &gbps)?;
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
        for text in ["passthrough", "nitro-egress", "34.50 Mpps", "35.30 (testpmd io)", "5.85 Mpps", "vpcemu"] {
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
