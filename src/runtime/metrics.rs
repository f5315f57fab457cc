//! `vpcemu run --metrics ADDR:PORT`: the run's figures in the Prometheus text exposition
//! format (version 0.0.4) on `GET /metrics`.
//!
//! - The control core renders the text ([`render`], sans-I/O) from the stats report, the
//!   merged stage histograms, the alert counts and the cards' mapping versions, at most
//!   every [`REFRESH`], into a shared string ([`MetricsServer::publish`]).
//! - A plain `std::net` thread serves it: one HTTP/1.1 request per connection (`GET
//!   /metrics`, else 404 or 405), `Connection: close`, a 2 s limit per client. It is
//!   pinned to a CPU no worker lcore uses (`core_affinity`; the control core's when every
//!   CPU has a worker), so it never takes a worker's CPU; the workers never see it.
//!
//! Metrics (every counter ends in `_total`; stage figures by `card_kind`, `host` for Nitro
//! cards and `edge` for Blackfoot, since both kinds run stages of the same name):
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `vpcemu_port_received_packets_total`, `_sent_`, `_dropped_` | counter | `port` |
//! | `vpcemu_dropped_packets_total` | counter | `reason` (every drop reason) |
//! | `vpcemu_alerts_total` | counter | `reason` (events taken by the control core) |
//! | `vpcemu_stage_packets_total`, `vpcemu_stage_dropped_packets_total` | counter | `card_kind`, `stage` |
//! | `vpcemu_stage_latency_seconds` | histogram (per packet, of the timed bursts) | `card_kind`, `stage` |
//! | `vpcemu_mapping_version` | gauge | `card` |
//! | `vpcemu_mapping_age_seconds` | gauge: since the card's tables took that version | `card` |
//!
//! Stage rows are given for the (kind, stage) pairs that ran.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pipeline::{CardKind, DropReason, StageHistograms, StatsReport, TscHz};

use super::engine::Engine;

/// How often the control core renders the text.
pub const REFRESH: Duration = Duration::from_millis(200);
/// Longest request head read.
const MAX_REQUEST: usize = 8192;
/// Upper bounds of the latency buckets, in seconds (then `+Inf`).
pub const BUCKETS: [f64; 14] =
    [10e-9, 25e-9, 50e-9, 100e-9, 250e-9, 500e-9, 1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 1e-3];

/// What [`render`] shows.
#[derive(Debug)]
pub struct Figures<'a> {
    pub report: &'a StatsReport,
    pub histograms: &'a StageHistograms,
    pub hz: TscHz,
    /// Alert events per drop reason (index: [`DropReason::index`]).
    pub alerts: &'a [u64; DropReason::COUNT],
    /// Per card: its name, mapping version, and seconds since it took that version.
    pub mappings: &'a [(String, u64, f64)],
}

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A metric read from a row of type `T`: its name, its help text and how to read it.
type Metric<T> = (&'static str, &'static str, fn(&T) -> u64);

/// The Prometheus text of `f`.
pub fn render(f: &Figures<'_>) -> String {
    let mut o = String::with_capacity(16 * 1024);
    let ports: [Metric<pipeline::PortStats>; 3] = [
        ("vpcemu_port_received_packets_total", "Packets the port received.", |p| p.rx),
        ("vpcemu_port_sent_packets_total", "Packets the port sent.", |p| p.tx),
        ("vpcemu_port_dropped_packets_total", "Packets the port dropped (missed, errors, no mbuf).", |p| p.dropped),
    ];
    for (name, help, value) in ports {
        family(&mut o, name, "counter", help);
        for p in &f.report.ports {
            let _ = writeln!(o, "{name}{{port=\"{}\"}} {}", label(&p.name), value(p));
        }
    }
    family(&mut o, "vpcemu_dropped_packets_total", "counter", "Packets the cards and the runtime dropped, by reason.");
    for (r, n) in &f.report.drops {
        let _ = writeln!(o, "vpcemu_dropped_packets_total{{reason=\"{}\"}} {n}", r.name());
    }
    family(&mut o, "vpcemu_alerts_total", "counter", "Security alert events, by reason.");
    for r in DropReason::ALL.iter().filter(|r| r.is_security()) {
        let n = f.alerts.get(r.index()).copied().unwrap_or(0);
        let _ = writeln!(o, "vpcemu_alerts_total{{reason=\"{}\"}} {n}", r.name());
    }
    let ran: Vec<(CardKind, &pipeline::StageStats)> = f
        .report
        .card_stages
        .iter()
        .flat_map(|(k, rows)| rows.iter().map(move |s| (*k, s)))
        .filter(|(_, s)| s.count > 0)
        .collect();
    let stage_counts: [Metric<pipeline::StageStats>; 2] = [
        ("vpcemu_stage_packets_total", "Packets a stage ran on, by card kind.", |s| s.count),
        ("vpcemu_stage_dropped_packets_total", "Packets a stage dropped, by card kind.", |s| s.dropped),
    ];
    for (name, help, value) in stage_counts {
        family(&mut o, name, "counter", help);
        for (k, s) in &ran {
            let _ = writeln!(o, "{name}{{card_kind=\"{k}\",stage=\"{}\"}} {}", s.stage.name(), value(s));
        }
    }
    family(
        &mut o,
        "vpcemu_stage_latency_seconds",
        "histogram",
        "Time a stage took per packet (a timed burst's time over its packets), by card kind; the bursts a worker timed (--stage-timing-sample-us).",
    );
    for (k, s) in &ran {
        stage_histogram(&mut o, f.histograms.of(*k, s.stage), f.hz, &format!("card_kind=\"{k}\",stage=\"{}\"", s.stage.name()));
    }
    family(&mut o, "vpcemu_mapping_version", "gauge", "Version of the mapping tables the card holds.");
    for (card, version, _) in f.mappings {
        let _ = writeln!(o, "vpcemu_mapping_version{{card=\"{}\"}} {version}", label(card));
    }
    family(&mut o, "vpcemu_mapping_age_seconds", "gauge", "Seconds since the card's tables took their version.");
    for (card, _, age) in f.mappings {
        let _ = writeln!(o, "vpcemu_mapping_age_seconds{{card=\"{}\"}} {age:.3}", label(card));
    }
    o
}

/// One histogram's `_bucket`, `_sum` and `_count` lines; values are cycles per packet.
fn stage_histogram(o: &mut String, h: &hdrhistogram::Histogram<u64>, hz: TscHz, labels: &str) {
    let name = "vpcemu_stage_latency_seconds";
    let secs = |cycles: f64| if hz.0 == 0 { 0.0 } else { cycles / hz.0 as f64 };
    let recorded: Vec<(f64, u64)> =
        h.iter_recorded().map(|v| (secs(h.highest_equivalent(v.value_iterated_to()) as f64), v.count_at_value())).collect();
    for le in BUCKETS {
        let n: u64 = recorded.iter().filter(|(s, _)| *s <= le).map(|(_, n)| n).sum();
        let _ = writeln!(o, "{name}_bucket{{{labels},le=\"{le:e}\"}} {n}");
    }
    let _ = writeln!(o, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.len());
    let sum = secs(h.mean() * h.len() as f64);
    let _ = writeln!(o, "{name}_sum{{{labels}}} {sum:e}");
    let _ = writeln!(o, "{name}_count{{{labels}}} {}", h.len());
}

/// When each card's tables took their version (the age is measured from there).
#[derive(Debug, Default)]
struct Ages {
    seen: Vec<(String, u64, Instant)>,
}

impl Ages {
    fn update(&mut self, now: Instant, versions: &[(&str, u64)]) -> Vec<(String, u64, f64)> {
        versions
            .iter()
            .map(|&(card, version)| {
                let since = match self.seen.iter_mut().find(|(c, _, _)| c == card) {
                    Some(e) if e.1 == version => e.2,
                    Some(e) => {
                        *e = (card.to_string(), version, now);
                        now
                    }
                    None => {
                        self.seen.push((card.to_string(), version, now));
                        now
                    }
                };
                (card.to_string(), version, now.duration_since(since).as_secs_f64())
            })
            .collect()
    }
}

/// The `/metrics` endpoint: its serving thread and the text it serves.
pub struct MetricsServer {
    addr: SocketAddr,
    text: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    rendered: Option<Instant>,
    ages: Ages,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish()
    }
}

/// A CPU for the serving thread: the first not in `workers`, else the first of
/// `control` (the control core's CPU), else none.
pub fn pick_cpu(available: &[usize], workers: &[u32], control: Option<u32>) -> Option<usize> {
    available
        .iter()
        .copied()
        .find(|c| !workers.iter().any(|&w| w as usize == *c))
        .or_else(|| control.map(|c| c as usize).filter(|c| available.contains(c)))
}

impl MetricsServer {
    /// Bind `addr` and start serving (an empty text until the first
    /// [`publish`](Self::publish)). The thread keeps off the CPUs of `workers`.
    pub fn start(addr: SocketAddr, workers: &[u32], control: Option<u32>) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let text = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let cpus: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id).collect();
        let cpu = pick_cpu(&cpus, workers, control);
        let thread = {
            let (text, stop) = (Arc::clone(&text), Arc::clone(&stop));
            std::thread::Builder::new().name("vpcemu-metrics".into()).spawn(move || {
                if let Some(id) = cpu {
                    core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                serve(&listener, &text, &stop);
            })?
        };
        Ok(MetricsServer { addr, text, stop, thread: Some(thread), rendered: None, ages: Ages::default() })
    }

    /// The address served (the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Render the engine's figures if the last rendering is older than [`REFRESH`].
    pub fn publish(&mut self, engine: &Engine) {
        let now = Instant::now();
        if self.rendered.is_some_and(|t| now.duration_since(t) < REFRESH) {
            return;
        }
        self.rendered = Some(now);
        let mappings = self.ages.update(now, &engine.mapping_versions());
        let report = engine.report();
        let alerts = engine.alerts_by_reason();
        let text = render(&Figures {
            report: &report,
            histograms: engine.stage_histograms(),
            hz: TscHz(engine.tsc_hz()),
            alerts: &alerts,
            mappings: &mappings,
        });
        if let Ok(mut t) = self.text.lock() {
            *t = text;
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, text: &Mutex<String>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = answer(stream, text);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Read one request head and answer it.
fn answer(mut stream: TcpStream, text: &Mutex<String>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if head.len() > MAX_REQUEST {
            return respond(&mut stream, "431 Request Header Fields Too Large", "request head too long\n");
        }
    }
    let line = String::from_utf8_lossy(&head);
    let mut words = line.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let body = text.lock().map(|t| t.clone()).unwrap_or_default();
            respond(&mut stream, "200 OK", &body)
        }
        ("GET", _) => respond(&mut stream, "404 Not Found", "vpcemu serves /metrics only\n"),
        _ => respond(&mut stream, "405 Method Not Allowed", "GET /metrics\n"),
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::{AlertTotals, Counters, HistogramConfig, PortStats, StageId};

    fn figures_text() -> String {
        let (mut c, mut h) = (Counters::new(), StageHistograms::new(HistogramConfig::default()).unwrap());
        c.add_drops(DropReason::SpoofedSource, 4);
        // Host: 10 packets at 100 ns (2 GHz), 1 dropped; edge: 5 at 2 µs.
        for (kind, n, dropped, cycles) in [(CardKind::Host, 10, 1, 200), (CardKind::Edge, 5, 0, 4000)] {
            c.add_stage(kind, StageId::VerifyRecv, n, dropped);
            h.record(kind, StageId::VerifyRecv, cycles, n);
        }
        let ports = vec![PortStats { name: "red-1".into(), rx: 7, tx: 3, dropped: 1 }];
        let report = StatsReport::new(ports, &c, &h, TscHz(2_000_000_000), &["red-1"], AlertTotals::default());
        let mut alerts = [0; DropReason::COUNT];
        alerts[DropReason::SpoofedSource.index()] = 4;
        let mappings = vec![("host-a".to_string(), 3, 1.5)];
        render(&Figures { report: &report, histograms: &h, hz: TscHz(2_000_000_000), alerts: &alerts, mappings: &mappings })
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.parse().ok()))
    }

    #[test]
    fn renders_every_family_with_hosts_and_edges_apart() {
        let t = figures_text();
        assert_eq!(value(&t, "vpcemu_port_received_packets_total{port=\"red-1\"}"), Some(7.0));
        assert_eq!(value(&t, "vpcemu_port_dropped_packets_total{port=\"red-1\"}"), Some(1.0));
        assert_eq!(value(&t, "vpcemu_dropped_packets_total{reason=\"spoofed_source\"}"), Some(4.0));
        assert_eq!(value(&t, "vpcemu_dropped_packets_total{reason=\"malformed\"}"), Some(0.0));
        assert_eq!(value(&t, "vpcemu_alerts_total{reason=\"spoofed_source\"}"), Some(4.0));
        assert_eq!(value(&t, "vpcemu_stage_packets_total{card_kind=\"host\",stage=\"verify-recv\"}"), Some(10.0));
        assert_eq!(value(&t, "vpcemu_stage_dropped_packets_total{card_kind=\"host\",stage=\"verify-recv\"}"), Some(1.0));
        assert_eq!(value(&t, "vpcemu_stage_packets_total{card_kind=\"edge\",stage=\"verify-recv\"}"), Some(5.0));
        let b = |kind: &str, le: &str| {
            value(&t, &format!("vpcemu_stage_latency_seconds_bucket{{card_kind=\"{kind}\",stage=\"verify-recv\",le=\"{le}\"}}"))
        };
        assert_eq!(b("host", "5e-8"), Some(0.0));
        assert_eq!(b("host", "2.5e-7"), Some(10.0));
        assert_eq!(b("edge", "1e-6"), Some(0.0));
        assert_eq!(b("edge", "2.5e-6"), Some(5.0));
        assert_eq!(b("edge", "+Inf"), Some(5.0));
        assert_eq!(value(&t, "vpcemu_stage_latency_seconds_count{card_kind=\"edge\",stage=\"verify-recv\"}"), Some(5.0));
        let sum = value(&t, "vpcemu_stage_latency_seconds_sum{card_kind=\"edge\",stage=\"verify-recv\"}").unwrap();
        assert!((sum - 5.0 * 2e-6).abs() < 1e-7, "{sum}");
        assert!(!t.contains("stage=\"encap\""), "only stages that ran");
        assert_eq!(value(&t, "vpcemu_mapping_version{card=\"host-a\"}"), Some(3.0));
        assert_eq!(value(&t, "vpcemu_mapping_age_seconds{card=\"host-a\"}"), Some(1.5));
        // Every sample line belongs to a family announced before it.
        let mut typed = Vec::new();
        for l in t.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                typed.push(rest.split_whitespace().next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                assert!(typed.iter().any(|f| name.starts_with(f.as_str())), "{l}");
            }
        }
    }

    #[test]
    fn ages_restart_when_the_version_changes() {
        let mut a = Ages::default();
        let t0 = Instant::now();
        assert_eq!(a.update(t0, &[("host-a", 1)])[0].2, 0.0);
        let later = t0 + Duration::from_secs(2);
        assert_eq!(a.update(later, &[("host-a", 1)])[0].2, 2.0);
        assert_eq!(a.update(later, &[("host-a", 2)])[0], ("host-a".to_string(), 2, 0.0));
    }

    #[test]
    fn the_thread_keeps_off_the_workers() {
        assert_eq!(pick_cpu(&[0, 1, 2, 3], &[1, 2], Some(0)), Some(0));
        assert_eq!(pick_cpu(&[0, 1, 2, 3], &[0, 1], Some(2)), Some(2));
        assert_eq!(pick_cpu(&[1], &[1], Some(0)), None);
        assert_eq!(pick_cpu(&[0, 1], &[0, 1], Some(0)), Some(0));
    }

    #[test]
    fn serves_get_metrics_over_http() {
        let mut server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), &[], None).unwrap();
        *server.text.lock().unwrap() = "vpcemu_x 1\n".into();
        let get = |req: &str| {
            let mut s = TcpStream::connect(server.local_addr()).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nvpcemu_x 1\n"), "{ok}");
        assert!(get("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        server.rendered = None;
        drop(server);
    }
}
