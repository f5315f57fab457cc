//! `vpcemu run --hgrm DIR`: each stage's latency histogram at exit in HdrHistogram's
//! percentile-distribution format, one file per card kind and stage that ran, parsed
//! back and checked against the stats report of the same run.

mod common;
#[path = "common/observe.rs"]
mod observe;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use observe::*;

/// A parsed `.hgrm`: rows (value, percentile, total count) and the footer's mean, max
/// and total count.
#[derive(Debug)]
struct Hgrm {
    rows: Vec<(f64, f64, u64)>,
    mean: f64,
    max: f64,
    total: u64,
}

fn footer_field(line: &str, i: usize) -> &str {
    line.trim_start_matches("#[").trim_end_matches(']').split(',').nth(i).unwrap().split('=').nth(1).unwrap().trim()
}

fn parse(path: &Path) -> Hgrm {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"], "{}", path.display());
    assert_eq!(lines.next(), Some(""));
    let mut rows = Vec::new();
    let mut footer = Vec::new();
    for l in lines {
        if l.starts_with("#[") {
            footer.push(l);
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        let p: f64 = f[1].parse().unwrap();
        if p < 1.0 {
            let inv: f64 = f[3].parse().unwrap();
            assert!((inv - 1.0 / (1.0 - p)).abs() < 0.01, "{l}");
        } else {
            assert_eq!(f.len(), 3, "the 100% row has no 1/(1-p): {l}");
        }
        rows.push((f[0].parse().unwrap(), p, f[2].parse().unwrap()));
    }
    assert_eq!(footer.len(), 3, "{text}");
    assert!(footer[0].starts_with("#[Mean    =") && footer[2].starts_with("#[Buckets ="), "{text}");
    Hgrm {
        rows,
        mean: footer_field(footer[0], 0).parse().unwrap(),
        max: footer_field(footer[1], 0).parse().unwrap(),
        total: footer_field(footer[1], 1).parse().unwrap(),
    }
}

#[test]
fn stage_histograms_are_written_per_card_kind_and_stage() {
    // Every burst timed (`--stage-timing-sample-us 0`): the histograms hold every packet;
    // by default a burst within 20 us of the last timed one is not timed, and the files
    // hold what the stats call `timed`.
    for every_burst in [true, false] {
        check_hgrm(every_burst);
    }
}

fn check_hgrm(every_burst: bool) {
    let dir = scratch(if every_burst { "hgrm-every" } else { "hgrm" });
    std::fs::write(dir.join("world.toml"), world(&dir)).unwrap();
    let (out_dir, stats) = (dir.join("hgrm"), dir.join("stats.json"));
    let (w, o, s) = (dir.join("world.toml"), out_dir.to_str().unwrap(), stats.to_str().unwrap());
    let mut args = vec!["run", w.to_str().unwrap(), "--until-idle", "400", "--hgrm", o, "--stats-json", s];
    if every_burst {
        args.extend(["--stage-timing-sample-us", "0"]);
    }
    let out = vpcemu(&args);
    assert!(out.status.success(), "vpcemu run: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    // Every (kind, stage) with timed packets has its file, and nothing else is there.
    let mut want = BTreeMap::new();
    for (kind, stages) in v["card_stages"].as_object().unwrap() {
        for (stage, figures) in stages.as_object().unwrap() {
            let (count, timed) = (figures["count"].as_u64().unwrap(), figures["timed"].as_u64().unwrap());
            assert!(timed <= count, "{kind}-{stage}: {figures}");
            if every_burst {
                assert_eq!(timed, count, "{kind}-{stage}: every burst timed");
            }
            if timed > 0 {
                want.insert(format!("{kind}-{stage}.hgrm"), (timed, figures["max_ns"].as_f64().unwrap()));
            }
        }
    }
    let mut got: Vec<String> =
        std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    got.sort();
    assert_eq!(got, want.keys().cloned().collect::<Vec<_>>());
    assert_eq!(v["card_stages"]["host"]["verify-recv"]["count"], TO_PEER as u64);
    assert_eq!(v["card_stages"]["edge"]["verify-recv"]["count"], (TO_INTERNET + NO_EIP) as u64);
    if every_burst {
        for name in ["host-verify-send.hgrm", "host-verify-recv.hgrm", "edge-verify-recv.hgrm", "edge-nat.hgrm"] {
            assert!(want.contains_key(name), "{name} in {got:?}");
        }
        assert_eq!(want["host-verify-recv.hgrm"].0, TO_PEER as u64);
        assert_eq!(want["edge-verify-recv.hgrm"].0, (TO_INTERNET + NO_EIP) as u64);
    }
    for (name, (count, max_ns)) in &want {
        let h = parse(&out_dir.join(name));
        assert_eq!(h.total, *count, "{name}: every timed packet");
        let last = h.rows.last().unwrap();
        assert_eq!((last.1, last.2), (1.0, *count), "{name}");
        assert!(h.rows.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1 && w[0].2 <= w[1].2), "{name}: {h:?}");
        // Values in ns: the same maximum as the stats report (to its rounding).
        assert!((h.max - max_ns).abs() <= 0.1 + max_ns * 0.01, "{name}: {} vs {max_ns}", h.max);
        assert!(h.mean > 0.0 && h.mean <= h.max, "{name}: {h:?}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("hgrm: {} stage histograms written to {o}", want.len())));
}

#[test]
fn an_unusable_hgrm_directory_is_one_clear_error() {
    let dir = scratch("hgrm-bad");
    std::fs::write(dir.join("world.toml"), world(&dir)).unwrap();
    let w = dir.join("world.toml");
    let bad = w.join("under-a-file");
    let out = vpcemu(&["run", w.to_str().unwrap(), "--until-idle", "400", "--hgrm", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr_lines(&out);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].starts_with(&format!("vpcemu: error: --hgrm {}", bad.display())), "{err:?}");
}
