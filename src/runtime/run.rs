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
    pub file_prefix: Option<String>,
    pub cards: Option<Vec<String>>,
    pub esp_cipher: EspCipher,
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
    let topology = match &opts.etcd {
        None => Topology::load(&opts.topology).map_err(|e| e.to_string())?,
        Some(url) => world_from_etcd(&opts.topology, url)?,
    };
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
    let mut spec = EngineSpec::from_topology(topology);
    spec.stage_timing = !opts.no_stage_timing;
    spec.file_prefix = opts.file_prefix.clone();
    spec.cards = opts.cards.clone();
    spec.esp_cipher = opts.esp_cipher;
    if let Some(url) = &opts.etcd {
        spec.mapping = super::etcd::MappingSource::Etcd { url: url.clone() };
    }
    let mut engine = Engine::start(spec).map_err(|e| e.to_string())?;
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
    let esp_cipher = engine.esp_cipher().map(|(name, _)| name);
    super::telemetry::register(&engine).map_err(|e| e.to_string())?;

    let mut stop = StopWhen::new(opts.duration, opts.until_idle, Instant::now(), engine.movement());
    let mut next_report = opts.report_interval.map(|d| stop.start() + d);
    loop {
        std::thread::sleep(Duration::from_millis(1));
        engine.tick(&mut alerts_out);
        if let Some(c) = control.as_mut() {
            c.poll(|line| handle(&mut engine, line));
        }
        super::telemetry::publish(&engine);
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
    let seconds = stop.start().elapsed().as_secs_f64();
    let tsc_hz = engine.tsc_hz();
    let mapping = engine.mapping_stats();
    let (report, in_use) = engine.shutdown(&mut alerts_out);
    alerts_out.flush().map_err(|e| format!("writing alerts: {e}"))?;
    print!("{}", report.to_table());
    println!("mbufs in use at exit: {in_use}");
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
        }
        write_file(p, &(serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n"))?;
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
