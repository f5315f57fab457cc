//! Running DPDK's own tools as baselines, measured in the same run as the vpcemu
//! scenario: `dpdk-testpmd` in io forwarding mode on the same vdevs, and
//! `dpdk-test-crypto-perf` with the ipsec_mb AES-GCM driver for the ESP scenarios.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::profile::{Profile, Recording};

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
    if hugepages_fit(memory_mb) {
        a.push("--in-memory".into());
    } else {
        a.extend(["--no-huge".into(), "--no-shconf".into()]);
    }
    a.extend(["--no-pci".into(), "--file-prefix".into(), file_prefix(tag)]);
    a
}

/// The DPDK memory (MiB) for a pool of `mbufs` with the data room of vpcemu's RX pool
/// (128 headroom + 2048: about 2.4 KiB an mbuf), twice over, plus 256.
pub fn pool_memory_mb(mbufs: usize) -> u32 {
    256 + (mbufs * 2432 / (1 << 20)) as u32 * 2
}

/// `vpcemu --hugepages` for a run of `memory_mb`: `on` when [`eal_args`] would use
/// hugepages for it, else `off`.
pub fn hugepages_for(memory_mb: u32) -> &'static str {
    if hugepages_fit(memory_mb) { "on" } else { "off" }
}

/// Whether the free 2 MiB hugepages hold `memory_mb`.
fn hugepages_fit(memory_mb: u32) -> bool {
    free_hugepages() * 2 >= u64::from(memory_mb)
}

/// DPDK's runtime directory of one tool run (`dpdk` under `/var/run` for root, else under
/// `$XDG_RUNTIME_DIR` or `/tmp`, then the run's `--file-prefix`), removed when this is
/// dropped: DPDK 22.11 leaves it behind at exit, one directory per run.
pub struct RuntimeDir(Option<String>);

impl RuntimeDir {
    /// The directory of the run with the EAL arguments `args` (none without a prefix).
    pub fn of(args: &[String]) -> RuntimeDir {
        let i = args.iter().position(|a| a == "--file-prefix");
        RuntimeDir(i.and_then(|i| args.get(i + 1)).filter(|p| !p.is_empty() && !p.contains('/')).cloned())
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let Some(prefix) = &self.0 else { return };
        let mut bases = vec![std::path::PathBuf::from("/var/run"), std::path::PathBuf::from("/tmp")];
        bases.extend(std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from));
        for b in bases {
            let _ = std::fs::remove_dir_all(b.join("dpdk").join(prefix));
        }
    }
}

fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("HugePages_Free:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

/// Run `dpdk-testpmd --forward-mode=io` from `rx_vdev` to `tx_vdev` on one forwarding
/// core, with the data room of the mbufs vpcemu's ports receive into (`--mbuf-size=2176`:
/// 128 headroom + `RX_DATA_SIZE`, also testpmd's default). It starts forwarding, lets it
/// warm up, then reads the output port's TX rate
/// over `window` with `show port stats` (the rate testpmd computes between two calls).
/// Returns packets per second.
/// `held` is the number of packets the RX vdev keeps in mbufs (net_pcap's `infinite_rx`
/// holds its whole file), added to testpmd's pool.
pub fn testpmd_io(rx_vdev: &str, tx_vdev: &str, window: Duration, held: usize) -> Result<f64, String> {
    testpmd_io_cpu(rx_vdev, tx_vdev, window, held, None).map(|(pps, _, _)| pps)
}

/// [`testpmd_io`], with the share of the window its forwarding lcore's thread ran (its
/// schedstat at both ends of the window: on a shared machine it waits for a CPU too).
pub fn testpmd_io_cpu(
    rx_vdev: &str,
    tx_vdev: &str,
    window: Duration,
    held: usize,
    profile: Option<&std::path::Path>,
) -> Result<(f64, f64, Option<Profile>), String> {
    let mbufs = 16384 + held;
    let mut args = eal_args("0-1", pool_memory_mb(mbufs), "testpmd");
    args.extend(["--vdev".into(), rx_vdev.into(), "--vdev".into(), tx_vdev.into(), "--".into()]);
    args.extend(
        ["-i", "--forward-mode=io", "--nb-cores=1", "--burst=32", "--mbuf-size=2176"].map(String::from),
    );
    args.push(format!("--total-num-mbufs={mbufs}"));
    let _dir = RuntimeDir::of(&args);
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
    let before = worker_schedstat(child.id());
    // Forwarding runs: record its thread over the window.
    let recording = match profile {
        Some(data) => match worker_tid(child.id()) {
            Some(tid) => Some(Recording::start(tid, data)),
            None => Some(Err("--profile: testpmd's forwarding thread was not found".to_string())),
        },
        None => None,
    };
    std::thread::sleep(window);
    script(&mut stdin, "show port stats 1");
    let after = worker_schedstat(child.id());
    let recording = recording.transpose();
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
    let share = match (before, after) {
        (Some(b), Some(a)) => cpu_share(a.0.saturating_sub(b.0), a.1.saturating_sub(b.1)),
        _ => 1.0,
    };
    let profile = recording?.map(Recording::finish).transpose()?;
    match rates.get(1) {
        Some(&r) if r > 0.0 => Ok((r, share, profile)),
        _ => Err(format!("could not read testpmd's Tx-pps (output: {} bytes)", text.len())),
    }
}

/// A DPDK process's worker lcore thread (`rte-worker-N`, or `lcore-worker-N` in other
/// DPDK releases): its schedstat from `/proc`, nanoseconds it ran and nanoseconds it
/// waited for a CPU.
pub fn worker_schedstat(pid: u32) -> Option<(u64, u64)> {
    thread_schedstat(pid, WORKER_THREADS)
}

/// The names a DPDK worker lcore thread starts with.
const WORKER_THREADS: &[&str] = &["rte-worker", "lcore-worker"];

/// Process `pid`'s first thread whose name starts with one of `prefixes` (its entry
/// under `/proc/PID/task`).
fn thread_of(pid: u32, prefixes: &[&str]) -> Option<std::fs::DirEntry> {
    std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten().find(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        prefixes.iter().any(|p| comm.starts_with(p))
    })
}

/// The thread id of process `pid`'s worker lcore thread.
pub fn worker_tid(pid: u32) -> Option<u32> {
    thread_of(pid, WORKER_THREADS)?.file_name().to_str()?.parse().ok()
}

/// The schedstat of process `pid`'s first thread whose name starts with one of
/// `prefixes`: nanoseconds it ran and nanoseconds it waited for a CPU.
pub fn thread_schedstat(pid: u32, prefixes: &[&str]) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(thread_of(pid, prefixes)?.path().join("schedstat")).ok()?;
    let mut f = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some((f.next()??, f.next()??))
}

/// The share of the time a thread ran of the time it ran or waited for a CPU (1 when
/// nothing was measured).
pub fn cpu_share(ran: u64, waited: u64) -> f64 {
    let f = ran as f64 / (ran + waited).max(1) as f64;
    if f > 0.0 { f } else { 1.0 }
}

/// Run `cmd` (a DPDK process) to its end with stdout and stderr into files named `log`
/// with `.out` and `.err` appended, sampling its worker lcore thread's schedstat every
/// 50 ms. Returns whether it succeeded, its stdout and stderr, and the share of its
/// worker's life the worker ran ([`cpu_share`]).
pub fn run_sampled(cmd: &mut Command, log: &std::path::Path) -> Result<(bool, String, String, f64), String> {
    run_profiled(cmd, log, None).map(|(ok, out, err, share, _)| (ok, out, err, share))
}

/// [`run_sampled`], also recording its worker lcore thread with `perf` into `profile`
/// when given ([`crate::profile`]): what it returns, and the thread's profile.
#[allow(clippy::type_complexity)]
pub fn run_profiled(
    cmd: &mut Command,
    log: &std::path::Path,
    profile: Option<&std::path::Path>,
) -> Result<(bool, String, String, f64, Option<Profile>), String> {
    let name = |ext: &str| {
        let mut p = log.as_os_str().to_owned();
        p.push(ext);
        std::path::PathBuf::from(p)
    };
    let (out_path, err_path) = (name(".out"), name(".err"));
    let file = |p: &std::path::Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?)
        .spawn()
        .map_err(|e| format!("running {:?}: {e}", cmd.get_program()))?;
    let mut sched = None;
    let mut recording = None;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        sched = worker_schedstat(child.id()).or(sched);
        if let (Some(data), None) = (profile, &recording) {
            // The worker thread exists from EAL init on; it runs once forwarding starts.
            if let Some(tid) = worker_tid(child.id()) {
                match Recording::start(tid, data) {
                    Ok(r) => recording = Some(r),
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(e);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let share = sched.map_or(1.0, |(ran, waited)| cpu_share(ran, waited));
    let profile = match recording {
        // A failed run says why itself; its profile, if any, is not needed.
        Some(r) if status.success() => Some(r.finish()?),
        Some(r) => r.finish().ok(),
        None if profile.is_some() && status.success() => return Err("--profile: the run's worker thread was not found".into()),
        None => None,
    };
    Ok((status.success(), read(&out_path), read(&err_path), share, profile))
}

/// One row of `dpdk-test-crypto-perf`'s throughput table.
#[derive(Debug, Clone, Copy)]
pub struct CryptoPerf {
    /// `Buf Size`: the bytes encrypted per operation (the mean size with `--imix`).
    pub buffer_bytes: f64,
    /// `MOps`: operations (buffers) per second, in millions.
    pub mops: f64,
    /// `Gbps`: buffer bytes encrypted per second * 8 / 1e9.
    pub gbps: f64,
    /// `Cycles/Buf`: the tool's own cycles per operation.
    pub cycles_per_buf: f64,
    /// Operations the run enqueued and dequeued.
    pub ops: u64,
    /// The share of its life the tool's worker thread ran ([`run_sampled`]).
    pub cpu_share: f64,
}

/// What `dpdk-test-crypto-perf` encrypts: one buffer size, or an IMIX of sizes with
/// weights (its `--imix`: each operation's size drawn with those weights).
#[derive(Debug, Clone)]
pub enum CryptoBuffers {
    Fixed(usize),
    Imix(Vec<(usize, u32)>),
}

/// The crypto device and operation of the ESP baseline: the ipsec_mb AES-GCM PMD
/// (`crypto_aesni_gcm`), AES-128-GCM encrypt, 12-byte nonce, 8-byte AAD (SPI and
/// sequence number, as RFC 4106 ESP without ESN), 16-byte ICV, bursts of 32 on one lcore.
pub const CRYPTO_PERF_DRIVER: &str = "crypto_aesni_gcm";

/// Run `dpdk-test-crypto-perf --ptest throughput` with the AES-128-GCM encrypt settings of
/// [`CRYPTO_PERF_DRIVER`] for `total_ops` operations on one worker lcore (lcore 1, as the
/// vpcemu worker and testpmd's forwarding core). Returns its throughput row.
pub fn crypto_perf_gcm(buffers: &CryptoBuffers, total_ops: u64) -> Result<CryptoPerf, String> {
    let mut args = eal_args("0,1", 1024, "cryptoperf");
    args.extend(["--vdev".into(), CRYPTO_PERF_DRIVER.into(), "--".into()]);
    args.extend(
        [
            "--ptest", "throughput", "--devtype", CRYPTO_PERF_DRIVER, "--optype", "aead", "--aead-algo", "aes-gcm",
            "--aead-op", "encrypt", "--aead-key-sz", "16", "--aead-iv-sz", "12", "--aead-aad-sz", "8",
            "--digest-sz", "16", "--burst-sz", "32", "--silent",
        ]
        .map(String::from),
    );
    match buffers {
        CryptoBuffers::Fixed(n) => args.extend(["--buffer-sz".into(), n.to_string()]),
        CryptoBuffers::Imix(mix) => {
            let sizes: Vec<String> = mix.iter().map(|(s, _)| s.to_string()).collect();
            let weights: Vec<String> = mix.iter().map(|(_, w)| w.to_string()).collect();
            args.extend(["--buffer-sz".into(), sizes.join(","), "--imix".into(), weights.join(",")]);
        }
    }
    args.extend(["--total-ops".into(), total_ops.to_string()]);
    let _dir = RuntimeDir::of(&args);
    let log = std::env::temp_dir().join(file_prefix("cryptoperf-log"));
    let (ok, text, err, share) = run_sampled(Command::new("dpdk-test-crypto-perf").args(&args), &log)
        .map_err(|e| format!("{e} (install dpdk-test-crypto-perf with scripts/setup.sh)"))?;
    for ext in [".out", ".err"] {
        let mut p = log.as_os_str().to_owned();
        p.push(ext);
        let _ = std::fs::remove_file(p);
    }
    if !ok {
        return Err(format!(
            "dpdk-test-crypto-perf failed: {}",
            err.lines().rev().chain(text.lines().rev()).find(|l| !l.trim().is_empty()).unwrap_or("")
        ));
    }
    let mut row = parse_crypto_perf(&text).ok_or_else(|| {
        format!("could not read dpdk-test-crypto-perf's throughput table (output: {} bytes)", text.len())
    })?;
    row.cpu_share = share;
    Ok(row)
}

/// The first data row of crypto-perf's throughput table, found by its column names
/// (`lcore id`, `Buf Size`, `Burst Size`, `Enqueued`, `Dequeued`, `Failed Enq`,
/// `Failed Deq`, `MOps`, `Gbps`, `Cycles/Buf`, separated by two or more spaces).
fn parse_crypto_perf(text: &str) -> Option<CryptoPerf> {
    let mut lines = text.lines();
    let header = lines.by_ref().find(|l| l.contains("Buf Size") && l.contains("Gbps"))?;
    let cols: Vec<&str> = header.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    let at = |name: &str| cols.iter().position(|c| *c == name);
    let (buf, enq, deq, mops, gbps, cyc) =
        (at("Buf Size")?, at("Enqueued")?, at("Dequeued")?, at("MOps")?, at("Gbps")?, at("Cycles/Buf")?);
    let row = lines.map(str::split_whitespace).map(|w| w.collect::<Vec<_>>()).find(|w| w.len() == cols.len())?;
    let f = |i: usize| row.get(i).and_then(|v| v.parse::<f64>().ok());
    let (enqueued, dequeued) = (f(enq)? as u64, f(deq)? as u64);
    if enqueued != dequeued || dequeued == 0 {
        return None;
    }
    Some(CryptoPerf {
        buffer_bytes: f(buf)?,
        mops: f(mops)?,
        gbps: f(gbps)?,
        cycles_per_buf: f(cyc)?,
        ops: dequeued,
        cpu_share: 1.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_22_11_throughput_table() {
        let text = "Allocated pool \"sess_mp_0\" on socket 0\n    lcore id    Buf Size  Burst Size    Enqueued    Dequeued  Failed Enq  Failed Deq        MOps        Gbps  Cycles/Buf\n\n           1         346          32     2000000     2000000           0           0      2.2059      6.1060      906.66\n\n";
        let p = parse_crypto_perf(text).unwrap();
        assert_eq!(p.buffer_bytes, 346.0);
        assert_eq!(p.mops, 2.2059);
        assert_eq!(p.gbps, 6.1060);
        assert_eq!(p.cycles_per_buf, 906.66);
        assert_eq!(p.ops, 2_000_000);
    }
}
