//! Scenario `passthrough`: `vpcemu passthrough` from net_pcap (64-byte frames,
//! infinite_rx) to net_null (no-rx) beside `dpdk-testpmd --forward-mode=io` on the same
//! vdevs, so both tools move packets one way only.

use std::process::Command;
use std::time::Duration;

use crate::dpdk_tools::{hugepages_for, testpmd_io};
use crate::report::{median, Row};
use crate::traffic;

pub use crate::report::Setup;


/// One vpcemu passthrough run; (pps, tsc_hz).
fn vpcemu_once(s: &Setup, rx: &str, tx: &str) -> Result<(f64, f64), String> {
    let json = s.work.join("passthrough-stats.json");
    let out = Command::new(s.vpcemu)
        .args(["passthrough", "--vdev", rx, "--vdev", tx, "--hugepages", hugepages_for(512)])
        .args(["--duration", &format!("{}", s.seconds)])
        .arg("--stats-json")
        .arg(&json)
        .output()
        .map_err(|e| format!("running {}: {e}", s.vpcemu.display()))?;
    if !out.status.success() {
        return Err(format!("vpcemu passthrough failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let mpps = v["mpps"].as_f64().ok_or("no mpps in passthrough stats")?;
    let hz = v["tsc_hz"].as_f64().ok_or("no tsc_hz in passthrough stats")?;
    Ok((mpps * 1e6, hz))
}

pub fn run(s: &Setup) -> Result<Row, String> {
    let pcap = s.work.join("udp64.pcap");
    let frames: Vec<Vec<u8>> = (0..1024).map(traffic::udp64).collect();
    traffic::write_pcap(&pcap, &frames).map_err(|e| format!("writing {}: {e}", pcap.display()))?;
    let rx = format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display());
    let tx = "net_null0,no-rx=1".to_string();
    let (mut ours, mut theirs, mut hz) = (Vec::new(), Vec::new(), 0.0);
    // Alternate the two tools so that both see the same machine conditions.
    for _ in 0..s.repeat.max(1) {
        let (pps, h) = vpcemu_once(s, &rx, &tx)?;
        ours.push(pps);
        hz = h;
        theirs.push(testpmd_io(&rx, &tx, Duration::from_secs_f64(s.seconds), frames.len())?);
    }
    let (pps, base) = (median(ours), median(theirs));
    let mut row = Row::new("passthrough");
    row.mpps = Some(pps / 1e6);
    row.cycles_per_packet = Some(hz / pps);
    row.baseline = Some("dpdk-testpmd --forward-mode=io".into());
    row.baseline_mpps = Some(base / 1e6);
    row.ratio = Some(pps / base);
    Ok(row.with("baseline_cycles_per_packet", hz / base).with("frame_bytes", 64).with("repeats", s.repeat as u64))
}
