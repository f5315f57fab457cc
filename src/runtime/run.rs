//! `vpcemu run TOPOLOGY`: the engine on the topology's own ports, with the control
//! socket, the alerts file, the periodic report and the stop conditions.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mapping_client::topology::Topology;

use super::cipher::EspCipher;
use super::control::ControlSocket;
use super::ctl::{self, Request};
use super::engine::{Engine, EngineSpec};
use super::stop::{Signals, StopWhen};

/// Options of `vpcemu run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub topology: PathBuf,
    pub until_idle: Option<Duration>,
    pub duration: Option<Duration>,
    pub stats_json: Option<PathBuf>,
    pub alerts: Option<PathBuf>,
    pub report_interval: Option<Duration>,
    pub control: Option<PathBuf>,
    pub no_stage_timing: bool,
    /// Time a worker's burst when this many microseconds have passed since its last timed
    /// one (0: every burst).
    pub stage_timing_sample_us: u64,
    pub file_prefix: Option<String>,
    pub cards: Option<Vec<String>>,
    pub esp_cipher: EspCipher,
    /// Serve `/metrics` (Prometheus text) on this address.
    pub metrics: Option<std::net::SocketAddr>,
    /// Write dropped packets here (pcapng), at most `trash_limit` per reason per second.
    pub trash: Option<PathBuf>,
    pub trash_limit: u32,
    /// Write each stage's latency histogram here at exit (`.hgrm`).
    pub hgrm: Option<PathBuf>,
    /// Let `dpdk-dumpcap` capture the ports (multi-process EAL, `rte_pdump_init`).
    pub pdump: bool,
    /// The world is in this etcd; the file holds only `[dataplane]` and `[[port]]`s.
    pub etcd: Option<String>,
}

fn write_file(path: &PathBuf, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The stats report as JSON, with the etcd watchers' counters (`mapping`) under `--etcd`.
fn stats_json(engine: &Engine, report: &pipeline::StatsReport) -> Result<serde_json::Value, String> {
    let mut v: serde_json::Value = serde_json::from_str(&report.to_json()).map_err(|e| e.to_string())?;
    if let (Some(o), Some(m)) = (v.as_object_mut(), engine.mapping_stats()) {
        o.insert("mapping".into(), m);
    }
    Ok(v)
}

/// Answer one control line.
fn handle(engine: &mut Engine, line: &str) -> Result<serde_json::Value, String> {
    match ctl::parse(line)? {
        Request::List => match engine.etcd_url() {
            // The world as etcd holds it now.
            Some(url) => {
                let store = mapping_client::etcd::Store::connect(url)?;
                let (world, _) = store.read_world(mapping_client::etcd::layout::DUMP_DATAPLANE)?;
                Ok(ctl::list(&world))
            }
            None => Ok(ctl::list(engine.topology())),
        },
        Request::Stats => stats_json(engine, &engine.report()),
        Request::Change(cmd) => {
            engine.execute(&cmd)?;
            Ok(serde_json::json!(format!("{line}: done")))
        }
    }
}

/// Run until a stop condition; prints the final table and returns the process status.
pub fn run(opts: &RunOptions) -> Result<(), String> {
    run_spec(opts, EngineSpec::from_topology(load_world(opts)?), |_| Ok(()))
}

/// The run's world: the topology file, or with `--etcd` the world in etcd with the file's
/// `[dataplane]` and `[[port]]`s.
pub fn load_world(opts: &RunOptions) -> Result<Topology, String> {
    match &opts.etcd {
        None => Topology::load(&opts.topology).map_err(|e| e.to_string()),
        Some(url) => world_from_etcd(&opts.topology, url),
    }
}

/// [`run`] on `spec` (its topology and ports; the options set the rest). `started` is
/// called once the engine runs every port, before the loop (`vpcemu lab` configures its
/// hosts there); an error from it stops the engine and is the run's error.
pub fn run_spec(
    opts: &RunOptions,
    mut spec: EngineSpec,
    started: impl FnOnce(&Engine) -> Result<(), String>,
) -> Result<(), String> {
    let signals = Signals::install().map_err(|e| format!("installing signal handlers: {e}"))?;
    let mut alerts_out: Box<dyn Write> = match &opts.alerts {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("alerts file {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::sink()),
    };
    let mut control = match &opts.control {
        Some(p) => Some(ControlSocket::bind(p).map_err(|e| format!("control socket {}: {e}", p.display()))?),
        None => None,
    };
    let dp = spec.topology.dataplane().clone();
    let mut metrics = match opts.metrics {
        Some(addr) => Some(
            super::metrics::MetricsServer::start(addr, dp.worker_lcores(), dp.lcores.first().copied())
                .map_err(|e| format!("--metrics {addr}: {e}"))?,
        ),
        None => None,
    };
    spec.stage_timing = !opts.no_stage_timing;
    spec.stage_timing_sample_us = opts.stage_timing_sample_us;
    spec.file_prefix = opts.file_prefix.clone();
    spec.cards = opts.cards.clone();
    spec.esp_cipher = opts.esp_cipher;
    spec.trash_limit = opts.trash.as_ref().map(|_| opts.trash_limit);
    spec.pdump = opts.pdump;
    if let Some(dir) = &opts.hgrm {
        std::fs::create_dir_all(dir).map_err(|e| format!("--hgrm {}: {e}", dir.display()))?;
    }
    // The trash file is made before the engine starts: an error stops the run before any
    // worker runs.
    let trash_file = match &opts.trash {
        Some(path) => {
            Some((path, std::fs::File::create(path).map_err(|e| format!("--trash {}: {e}", path.display()))?))
        }
        None => None,
    };
    if let Some(url) = &opts.etcd {
        spec.mapping = super::etcd::MappingSource::Etcd { url: url.clone() };
    }
    let mut engine = Engine::start(spec).map_err(|e| e.to_string())?;
    let mut trash = match (trash_file, engine.trash_bin()) {
        (Some((path, file)), Some(bin)) => Some(super::engine::open_trash(path, file, bin, &engine)),
        _ => None,
    };
    let mut trash_error = None;
    // What each instance port carries, and a warning for every port that carries less
    // than may have to leave by it.
    for p in engine.port_mtus() {
        if p.is_instance() {
            println!("{}", p.describe());
        }
        if let Some(why) = p.warning() {
            eprintln!("vpcemu: warning: {why}");
        }
    }
    if let Some((_, Some(why))) = engine.esp_cipher() {
        eprintln!("vpcemu: warning: {why}");
    }
    if let Some(info) = engine.esp_cipher_info() {
        println!("{info}");
    }
    if opts.pdump {
        if let Some(prefix) = engine.eal().file_prefix() {
            println!("pdump: ready for dpdk-dumpcap --file-prefix={prefix} -i PORT (PORT: a vdev name such as net_pcap0, or a port number)");
        }
    }
    if let Some(m) = &metrics {
        // The address actually bound: with port 0 the system chose it.
        println!("metrics: serving http://{}/metrics", m.local_addr());
    }
    let esp_cipher = engine.esp_cipher().map(|(name, _)| name);
    super::telemetry::register(&engine).map_err(|e| e.to_string())?;
    if let Err(e) = started(&engine) {
        let _ = engine.shutdown(&mut alerts_out);
        return Err(e);
    }

    let mut stop = StopWhen::new(opts.duration, opts.until_idle, Instant::now(), engine.movement());
    let mut next_report = opts.report_interval.map(|d| stop.start() + d);
    loop {
        std::thread::sleep(Duration::from_millis(1));
        engine.tick(&mut alerts_out);
        // Alerts reach the file as they come (`tail -f`; a no-op when none came).
        let _ = alerts_out.flush();
        if let Some(c) = control.as_mut() {
            c.poll(|line| handle(&mut engine, line));
        }
        super::telemetry::publish(&engine);
        if let Some(m) = metrics.as_mut() {
            m.publish(&engine);
        }
        if let Some(Err(e)) = trash.as_mut().map(|t| t.drain()) {
            trash_error.get_or_insert(e);
        }
        let now = Instant::now();
        if let Some(at) = next_report {
            if now >= at {
                print!("{}", engine.report().to_table());
                let _ = std::io::stdout().flush();
                next_report = opts.report_interval.map(|d| now + d);
            }
        }
        if stop.due(now, engine.movement(), signals.raised()) {
            break;
        }
    }
    drop(control);
    drop(metrics);
    let seconds = stop.start().elapsed().as_secs_f64();
    let tsc_hz = engine.tsc_hz();
    let mapping = engine.mapping_stats();
    let (report, in_use, histograms) = engine.shutdown_with_histograms(&mut alerts_out);
    alerts_out.flush().map_err(|e| format!("writing alerts: {e}"))?;
    print!("{}", report.to_table());
    println!("mbufs in use at exit: {in_use}");
    let trash_totals = match trash {
        Some(t) => {
            let path = t.path().display().to_string();
            let totals = t.finish().map_err(|e| format!("--trash {path}: {e}"))?;
            // A write error while running is the run's error too.
            if let Some(e) = trash_error {
                return Err(format!("--trash {path}: {e}"));
            }
            println!(
                "trash: {} packets written to {path}, {} over --trash-limit, {} lost to a full queue",
                totals.written, totals.limited, totals.queue_full
            );
            Some(totals)
        }
        None => None,
    };
    if let Some(p) = &opts.stats_json {
        // The report of ARCHITECTURE section 8, plus how long the run forwarded and the
        // TSC frequency (for cycles per packet).
        let mut v: serde_json::Value = serde_json::from_str(&report.to_json()).map_err(|e| e.to_string())?;
        if let Some(o) = v.as_object_mut() {
            if let Some(m) = mapping {
                o.insert("mapping".into(), m);
            }
            o.insert(
                "run".into(),
                serde_json::json!({ "seconds": seconds, "tsc_hz": tsc_hz, "mbufs_in_use": in_use, "esp_cipher": esp_cipher }),
            );
            if let Some(t) = trash_totals {
                o.insert("trash".into(), serde_json::json!(t));
            }
        }
        write_file(p, &(serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n"))?;
    }
    if let Some(dir) = &opts.hgrm {
        let files = super::hgrm::write_all(dir, &report, &histograms, tsc_hz).map_err(|e| format!("--hgrm {}: {e}", dir.display()))?;
        println!("hgrm: {files} stage histograms written to {}", dir.display());
    }
    if in_use != 0 {
        return Err(format!("{in_use} mbufs still in use at exit (leak)"));
    }
    Ok(())
}

/// `run FILE --etcd URL`: the world in etcd with FILE's `[dataplane]` and `[[port]]`s.
fn world_from_etcd(file: &std::path::Path, url: &str) -> Result<Topology, String> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let store = mapping_client::etcd::Store::connect(url)?;
    let (_, snap) = store.read_world(mapping_client::etcd::layout::DUMP_DATAPLANE)?;
    mapping_client::etcd::layout::world_with_run_file(&snap.records, &text, &name)
}
