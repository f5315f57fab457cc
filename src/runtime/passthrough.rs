//! `vpcemu passthrough`: packets read from the first port go out of the second,
//! unchanged, on one worker lcore, in bursts — and, as in `dpdk-testpmd
//! --forward-mode=io` and `l2fwd`, whatever the second port receives goes out of the
//! first (a port that receives nothing, such as net_null with `no-rx=1` or net_pcap
//! without `rx_pcap`, costs one empty poll). The control core watches the stop
//! conditions and prints per-port counts and the mbufs still in use at exit.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::devices::{find_port, rx_needs, with_device};
use super::stop::{Signals, StopWhen};
use super::worker_stats::{CountersSnapshot, WorkerCounters};
use crate::dpdk::telemetry::{self, TelValue};
use crate::dpdk::{self, EalBuilder, Hugepages, Mempool, MbufBurst, PortConfig, PortStats, rdtsc};

/// Options of a passthrough run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Input and output device: vdev strings ("net_pcap0,rx_pcap=in.pcap") or PCI addresses.
    pub input: String,
    pub output: String,
    pub until_idle: Option<Duration>,
    pub duration: Option<Duration>,
    pub lcores: String,
    pub memory_mb: u32,
    pub hugepages: Hugepages,
    pub burst: usize,
    pub mbufs: u32,
    pub stats_json: Option<std::path::PathBuf>,
    /// EAL file prefix (default: unique per process); names the telemetry socket
    /// directory, /var/run/dpdk/PREFIX/.
    pub file_prefix: Option<String>,
    /// TSC cycles the worker busy-waits per packet received, touching no memory: a
    /// stand-in for a pipeline's work, to measure what the devices' RX and TX cost at the
    /// packet rate of a pipeline that takes that long (0: none).
    pub work_cycles: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            input: String::new(),
            output: String::new(),
            until_idle: None,
            duration: None,
            lcores: "0-1".into(),
            memory_mb: 512,
            hugepages: Hugepages::Auto,
            burst: 32,
            mbufs: 8191,
            stats_json: None,
            file_prefix: None,
            work_cycles: 0,
        }
    }
}

/// One port's figures at exit.
#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    pub port: u16,
    pub name: String,
    pub rx: u64,
    pub tx: u64,
    /// Packets lost on this port: missed on RX, or not taken by the device on TX.
    pub dropped: u64,
}

/// What a passthrough run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ports: Vec<PortReport>,
    pub worker_lcore: u32,
    pub packets: u64,
    pub seconds: f64,
    pub mpps: f64,
    pub cycles_per_packet: f64,
    pub tsc_hz: u64,
    pub mbufs_in_use: u32,
    /// `--work-cycles`: TSC cycles of busy-waiting per packet received.
    pub work_cycles: u32,
}

impl Report {
    pub fn table(&self) -> String {
        let mut s = format!("{:<5} {:<24} {:>14} {:>14} {:>10}\n", "port", "name", "rx", "tx", "dropped");
        for p in &self.ports {
            s.push_str(&format!("{:<5} {:<24} {:>14} {:>14} {:>10}\n", p.port, p.name, p.rx, p.tx, p.dropped));
        }
        if self.mpps > 0.0 {
            s.push_str(&format!(
                "worker lcore {}: {} packets, {:.3} Mpps, {:.1} cycles/packet (TSC {:.3} GHz)\n",
                self.worker_lcore,
                self.packets,
                self.mpps,
                self.cycles_per_packet,
                self.tsc_hz as f64 / 1e9
            ));
        } else {
            s.push_str(&format!(
                "worker lcore {}: {} packets (too few bursts to measure a rate)\n",
                self.worker_lcore, self.packets
            ));
        }
        if self.work_cycles > 0 {
            s.push_str(&format!("busy-waited {} TSC cycles a packet (--work-cycles)\n", self.work_cycles));
        }
        s.push_str(&format!("mbufs in use at exit: {}\n", self.mbufs_in_use));
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Dpdk(#[from] dpdk::DpdkError),
    #[error("{0}")]
    Setup(String),
    #[error("worker on lcore {0} failed")]
    Worker(u32),
    #[error("{0} mbufs still in use at exit (leak)")]
    Leak(u32),
    #[error("writing {path}: {err}")]
    Io { path: String, err: std::io::Error },
}

/// One forwarding direction: an RX queue and the TX queue its packets go out of.
struct Direction {
    rx: dpdk::RxQueue,
    tx: dpdk::TxQueue,
}

/// Busy-wait until the TSC has advanced `cycles` past `from`, reading nothing but the TSC.
#[inline(never)]
fn busy_wait(from: u64, cycles: u64) {
    while rdtsc().wrapping_sub(from) < cycles {
        core::hint::spin_loop();
    }
}

/// The worker's loop: for each direction, RX a burst, busy-wait `work` TSC cycles a
/// packet, and TX it, until `stop`.
fn forward_loop(mut dirs: [Direction; 2], burst_size: usize, work: u64, stop: &AtomicBool, counters: &WorkerCounters) {
    let mut burst = MbufBurst::new();
    let mut c = CountersSnapshot::default();
    while !stop.load(Ordering::Relaxed) {
        let mut moved = 0;
        for d in &mut dirs {
            let n = d.rx.rx_burst(&mut burst, burst_size);
            if n == 0 {
                continue;
            }
            if work > 0 {
                busy_wait(rdtsc(), work * n as u64);
            }
            let r = d.tx.tx_burst(&mut burst);
            moved += n;
            c.tx += r.sent as u64;
            c.tx_dropped += r.dropped as u64;
        }
        if moved == 0 {
            continue;
        }
        c.rx += moved as u64;
        c.bursts += 1;
        c.last_tsc = rdtsc();
        if c.first_tsc == 0 {
            c.first_tsc = c.last_tsc;
            c.first_rx = c.rx;
        }
        counters.publish(&c);
    }
}

/// Run passthrough to completion and return its report.
pub fn run(opts: &Options, out: &mut dyn Write) -> Result<Report, Error> {
    let signals = Signals::install().map_err(|e| Error::Setup(format!("installing signal handlers: {e}")))?;
    let mut eal = EalBuilder::new().lcores(&opts.lcores).memory_mb(opts.memory_mb).hugepages(opts.hugepages);
    if let Some(p) = &opts.file_prefix {
        eal = eal.file_prefix(p.as_str());
    }
    for dev in [&opts.input, &opts.output] {
        eal = with_device(eal, dev);
    }
    let eal = eal.init()?;
    let worker = *eal
        .worker_lcores()
        .first()
        .ok_or_else(|| Error::Setup(format!("lcores {:?} leave no worker lcore (need at least two)", opts.lcores)))?;
    // Ports receive into small mbufs, as `vpcemu run`'s do (chained when a frame is longer;
    // forwarded chained); the jumbo pool serves a device that can neither fit nor chain.
    let pool = Mempool::with_data_size("passthrough", opts.mbufs, 256, dpdk::RX_DATA_SIZE)?;
    let jumbo = Mempool::new("passthrough-jumbo", opts.mbufs.min(4096), 256)?;
    let in_name = dpdk::vdev_name(&opts.input).to_string();
    let out_name = dpdk::vdev_name(&opts.output).to_string();
    if in_name == out_name {
        return Err(Error::Setup(format!("input and output are the same device {in_name:?}")));
    }
    let mut pin = find_port(&eal, &in_name)?;
    let mut pout = find_port(&eal, &out_name)?;
    let cfg = PortConfig::default();
    let rx = |dev: &str| dpdk::RxPools { small: &pool, jumbo: &jumbo, chains_anyway: rx_needs(dev).1 };
    pin.configure(&cfg, rx(&opts.input))?;
    pout.configure(&cfg, rx(&opts.output))?;
    pin.start()?;
    pout.start()?;
    fn queue<Q>(q: Option<Q>) -> Result<Q, Error> {
        q.ok_or_else(|| Error::Setup("queue 0 already taken".into()))
    }
    let dirs = [
        Direction { rx: queue(pin.rx_queue(0))?, tx: queue(pout.tx_queue(0))? },
        Direction { rx: queue(pout.rx_queue(0))?, tx: queue(pin.tx_queue(0))? },
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(WorkerCounters::default());
    let burst = opts.burst.clamp(1, dpdk::MAX_BURST);
    let work = u64::from(opts.work_cycles);
    let handle = {
        let (stop, counters) = (Arc::clone(&stop), Arc::clone(&counters));
        dpdk::launch(worker, move || {
            forward_loop(dirs, burst, work, &stop, &counters);
            0
        })?
    };

    {
        let counters = Arc::clone(&counters);
        let provider = move |_: &str| {
            let s = counters.snapshot();
            [("rx", s.rx), ("tx", s.tx), ("tx_dropped", s.tx_dropped), ("bursts", s.bursts)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), TelValue::U64(v)))
                .collect()
        };
        telemetry::register("/vpcemu/passthrough", "vpcemu passthrough worker counters", Arc::new(provider))?;
    }

    // Control core: watch the stop conditions.
    let mut when = StopWhen::new(opts.duration, opts.until_idle, Instant::now(), 0);
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let snap = counters.snapshot();
        if when.due(Instant::now(), snap.rx + snap.tx, signals.raised()) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if handle.join() != 0 {
        return Err(Error::Worker(worker));
    }
    let elapsed = when.start().elapsed().as_secs_f64();
    let snap = counters.snapshot();
    let tsc_hz = eal.tsc_hz();

    let (sin, sout): (PortStats, PortStats) = (pin.stats(), pout.stats());
    // Packets the devices refused on TX were freed by the worker and are in
    // `tx_dropped`; ethdev counts its own losses in missed and errors.
    let port_report = |p: &dpdk::Port, name: &str, s: PortStats| PortReport {
        port: p.id(),
        name: name.to_string(),
        rx: s.rx_packets,
        tx: s.tx_packets,
        dropped: s.rx_missed + s.rx_nombuf + s.tx_errors,
    };
    let mut ports = vec![port_report(&pin, &in_name, sin), port_report(&pout, &out_name, sout)];
    if snap.tx_dropped > 0 {
        // Attribute refused TX to the ports by what they did not send.
        for (p, rx_other) in [(0, sout.rx_packets), (1, sin.rx_packets)] {
            ports[p].dropped += rx_other.saturating_sub(ports[p].tx);
        }
    }
    pin.stop()?;
    pout.stop()?;
    drop(pin);
    drop(pout);
    let in_use = pool.in_use() + jumbo.in_use();
    let pps = snap.pps(tsc_hz);
    let report = Report {
        ports,
        worker_lcore: worker,
        packets: snap.rx,
        seconds: elapsed,
        mpps: pps / 1e6,
        cycles_per_packet: if pps > 0.0 { tsc_hz as f64 / pps } else { 0.0 },
        tsc_hz,
        mbufs_in_use: in_use,
        work_cycles: opts.work_cycles,
    };
    let _ = out.write_all(report.table().as_bytes());
    if let Some(path) = &opts.stats_json {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, json + "\n").map_err(|err| Error::Io { path: path.display().to_string(), err })?;
    }
    if in_use != 0 {
        return Err(Error::Leak(in_use));
    }
    drop(pool);
    drop(jumbo);
    drop(eal);
    Ok(report)
}
