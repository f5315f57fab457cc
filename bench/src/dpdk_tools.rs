//! Running DPDK's own tools as baselines: `dpdk-testpmd` in io forwarding mode on the
//! same vdevs as the vpcemu scenario, measured in the same run.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A unique EAL file prefix per tool run.
pub fn file_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("vpcbench-{tag}-{}-{nanos}", std::process::id())
}

/// The common EAL arguments for a bench run without hugepages (or with, if present).
pub fn eal_args(lcores: &str, memory_mb: u32, tag: &str) -> Vec<String> {
    let mut a = vec!["-l".into(), lcores.into(), "-m".into(), memory_mb.to_string()];
    if free_hugepages() * 2 >= u64::from(memory_mb) {
        a.push("--in-memory".into());
    } else {
        a.extend(["--no-huge".into(), "--no-shconf".into()]);
    }
    a.extend(["--no-pci".into(), "--file-prefix".into(), file_prefix(tag)]);
    a
}

fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("HugePages_Free:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

/// Run `dpdk-testpmd --forward-mode=io` from `rx_vdev` to `tx_vdev` on one forwarding
/// core, with vpcemu's mbuf data room (`--mbuf-size=9344`). It starts forwarding, lets it
/// warm up, then reads the output port's TX rate
/// over `window` with `show port stats` (the rate testpmd computes between two calls).
/// Returns packets per second.
/// `held` is the number of packets the RX vdev keeps in mbufs (net_pcap's `infinite_rx`
/// holds its whole file), added to testpmd's pool.
pub fn testpmd_io(rx_vdev: &str, tx_vdev: &str, window: Duration, held: usize) -> Result<f64, String> {
    let mbufs = 16384 + held;
    // Same data room as vpcemu's pool (128 headroom + 9216), about 9.5 KiB an mbuf.
    let mut args = eal_args("0-1", 256 + (mbufs * 9600 / (1 << 20)) as u32 * 2, "testpmd");
    args.extend(["--vdev".into(), rx_vdev.into(), "--vdev".into(), tx_vdev.into(), "--".into()]);
    args.extend(
        ["-i", "--forward-mode=io", "--nb-cores=1", "--burst=32", "--mbuf-size=9344"].map(String::from),
    );
    args.push(format!("--total-num-mbufs={mbufs}"));
    let mut child = Command::new("dpdk-testpmd")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting dpdk-testpmd: {e} (install it with scripts/setup.sh)"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin for testpmd")?;
    // testpmd reads its interactive commands as they come; pace them with sleeps.
    let script = |stdin: &mut std::process::ChildStdin, cmd: &str| {
        let _ = writeln!(stdin, "{cmd}");
        let _ = stdin.flush();
    };
    std::thread::sleep(Duration::from_millis(1500));
    script(&mut stdin, "start");
    std::thread::sleep(Duration::from_millis(1000));
    script(&mut stdin, "show port stats 1");
    std::thread::sleep(window);
    script(&mut stdin, "show port stats 1");
    script(&mut stdin, "stop");
    script(&mut stdin, "quit");
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| format!("waiting for dpdk-testpmd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The second "Tx-pps:" of port 1 is the rate over the window.
    let rates: Vec<f64> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Tx-pps:"))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    match rates.get(1) {
        Some(&r) if r > 0.0 => Ok(r),
        _ => Err(format!("could not read testpmd's Tx-pps (output: {} bytes)", text.len())),
    }
}
