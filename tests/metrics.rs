//! `vpcemu run --metrics ADDR:PORT`: the Prometheus text on `/metrics`, fetched over
//! loopback while the run goes on, checked against the known traffic of
//! `tests/common/observe.rs` and by `promtool check metrics` (Debian's `prometheus`).
//! Also: host and edge stages of one name are counted apart (stats JSON and metrics).

mod common;
#[path = "common/observe.rs"]
mod observe;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use observe::*;

/// GET `path` from `port` on loopback: (status line, body).
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// The value of the sample `series` (name and labels exactly as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_are_served_while_running_and_pass_promtool() {
    let dir = scratch("metrics");
    std::fs::write(dir.join("world.toml"), world(&dir)).unwrap();
    let stats_path = dir.join("stats.json");
    // Port 0: the run binds a port the system chose and prints it (a port picked here
    // and bound later by the run could be taken by someone else meanwhile).
    let mut run = Command::new(env!("CARGO_BIN_EXE_vpcemu"))
        .args(["run", dir.join("world.toml").to_str().unwrap(), "--duration", "60"])
        // Every burst timed: the latency histograms count every packet.
        .args(["--stage-timing-sample-us", "0"])
        .args(["--metrics", "127.0.0.1:0", "--stats-json", stats_path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let stdout = run.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("metrics: serving http://127.0.0.1:") {
                let port: Option<u16> = url.strip_suffix("/metrics").and_then(|p| p.parse().ok());
                let _ = port_tx.send(port);
            }
            lines.push(line);
        }
        lines
    });
    let port = match port_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(port)) => port,
        Ok(None) => {
            let _ = run.kill();
            let _ = run.wait();
            panic!("the metrics line names no port: {:?}", reader.join());
        }
        Err(_) => {
            let _ = run.kill();
            let out = run.wait_with_output().unwrap();
            panic!("no metrics line: {:?} {}", reader.join(), String::from_utf8_lossy(&out.stderr));
        }
    };
    let spoofed = "vpcemu_dropped_packets_total{reason=\"spoofed_source\"}";
    let host_recv = "vpcemu_stage_packets_total{card_kind=\"host\",stage=\"verify-recv\"}";
    let edge_recv = "vpcemu_stage_packets_total{card_kind=\"edge\",stage=\"verify-recv\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    while Instant::now() < deadline {
        if let Some((status, body)) = http_get(port, "/metrics") {
            assert_eq!(status, "HTTP/1.1 200 OK");
            text = body;
            // Counters reach the control core every millisecond, histograms every 10 ms.
            let timed = |kind: &str| {
                sample(&text, &format!("vpcemu_stage_latency_seconds_count{{card_kind=\"{kind}\",stage=\"verify-recv\"}}"))
            };
            let done = sample(&text, spoofed) == Some(SPOOFED as f64)
                && sample(&text, host_recv) == Some(TO_PEER as f64)
                && sample(&text, edge_recv) == Some((TO_INTERNET + NO_EIP) as f64)
                && timed("host") == Some(TO_PEER as f64)
                && timed("edge") == Some((TO_INTERNET + NO_EIP) as f64);
            if done {
                break;
            }
        }
        if run.try_wait().unwrap().is_some() {
            let out = run.wait_with_output().unwrap();
            panic!("vpcemu exited early: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Another path is refused.
    let (status, _) = http_get(port, "/").expect("answer to GET /");
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    let _ = Command::new("kill").args(["-TERM", &run.id().to_string()]).status();
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "vpcemu run: {}", String::from_utf8_lossy(&out.stderr));
    let printed = reader.join().unwrap();
    assert_eq!(printed.iter().filter(|l| l.starts_with("metrics: serving")).count(), 1, "{printed:?}");

    // The known drops and stage counts, hosts and edges apart.
    assert_eq!(sample(&text, spoofed), Some(SPOOFED as f64), "{text}");
    assert_eq!(sample(&text, "vpcemu_dropped_packets_total{reason=\"not_ipv4\"}"), Some(NOT_IPV4 as f64));
    assert_eq!(sample(&text, "vpcemu_dropped_packets_total{reason=\"malformed\"}"), Some(0.0));
    assert_eq!(sample(&text, "vpcemu_alerts_total{reason=\"spoofed_source\"}"), Some(SPOOFED as f64));
    assert_eq!(sample(&text, "vpcemu_alerts_total{reason=\"no_route\"}"), Some(0.0));
    let all = (TO_PEER + TO_INTERNET + SPOOFED + NOT_IPV4) as f64;
    assert_eq!(sample(&text, "vpcemu_port_received_packets_total{port=\"red-1\"}"), Some(all));
    assert_eq!(sample(&text, "vpcemu_port_sent_packets_total{port=\"yellow-1\"}"), Some(TO_PEER as f64));
    assert_eq!(sample(&text, "vpcemu_port_sent_packets_total{port=\"internet\"}"), Some(TO_INTERNET as f64));
    assert_eq!(sample(&text, "vpcemu_port_dropped_packets_total{port=\"red-1\"}"), Some(0.0));
    assert_eq!(sample(&text, host_recv), Some(TO_PEER as f64));
    assert_eq!(sample(&text, edge_recv), Some((TO_INTERNET + NO_EIP) as f64));
    assert_eq!(sample(&text, "vpcemu_stage_packets_total{card_kind=\"edge\",stage=\"nat\"}"), Some((TO_INTERNET + NO_EIP) as f64));
    assert_eq!(
        sample(&text, "vpcemu_stage_dropped_packets_total{card_kind=\"edge\",stage=\"nat\"}"),
        Some(NO_EIP as f64)
    );
    assert_eq!(sample(&text, "vpcemu_dropped_packets_total{reason=\"no_elastic_ip\"}"), Some(NO_EIP as f64));
    assert_eq!(
        sample(&text, "vpcemu_stage_dropped_packets_total{card_kind=\"host\",stage=\"verify-send\"}"),
        Some(SPOOFED as f64)
    );
    for (kind, n) in [("host", TO_PEER), ("edge", TO_INTERNET + NO_EIP)] {
        let series = format!("vpcemu_stage_latency_seconds_count{{card_kind=\"{kind}\",stage=\"verify-recv\"}}");
        assert_eq!(sample(&text, &series), Some(n as f64), "{series}");
        let inf = format!("vpcemu_stage_latency_seconds_bucket{{card_kind=\"{kind}\",stage=\"verify-recv\",le=\"+Inf\"}}");
        assert_eq!(sample(&text, &inf), Some(n as f64), "{inf}");
    }
    for card in ["host-a", "host-b", "blackfoot-1"] {
        let v = sample(&text, &format!("vpcemu_mapping_version{{card=\"{card}\"}}")).expect("mapping version");
        assert!(v >= 1.0, "{card}: {v}");
        let age = sample(&text, &format!("vpcemu_mapping_age_seconds{{card=\"{card}\"}}")).expect("mapping age");
        assert!(age >= 0.0, "{card}: {age}");
    }

    // promtool's own parser and linter.
    let file = dir.join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("run promtool (scripts/setup.sh installs prometheus)");
    assert!(
        check.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // The stats JSON at exit: the same drops, and the stages by card kind.
    let stats: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    assert_eq!(stats["drops"]["spoofed_source"], SPOOFED as u64);
    assert_eq!(stats["card_stages"]["host"]["verify-recv"]["count"], TO_PEER as u64);
    assert_eq!(stats["card_stages"]["edge"]["verify-recv"]["count"], (TO_INTERNET + NO_EIP) as u64);
    assert_eq!(stats["stages"]["verify-recv"]["count"], (TO_PEER + TO_INTERNET + NO_EIP) as u64);
    assert_eq!(stats["card_stages"]["edge"]["verify-send"]["count"], 0);
}

#[test]
fn a_bad_metrics_address_is_one_clear_error() {
    let dir = scratch("metrics-bad");
    std::fs::write(dir.join("world.toml"), world(&dir)).unwrap();
    let world = dir.join("world.toml");
    let out = vpcemu(&["run", world.to_str().unwrap(), "--metrics", "localhost"]);
    assert!(!out.status.success());
    let err = stderr_lines(&out);
    assert!(err[0].contains("--metrics") && err[0].contains("localhost"), "{err:?}");
    // An address in use: refused before anything starts.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = vpcemu(&["run", world.to_str().unwrap(), "--metrics", &addr, "--duration", "1"]);
    assert!(!out.status.success());
    let err = stderr_lines(&out);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].starts_with("vpcemu: error: --metrics") && err[0].contains(&addr), "{err:?}");
}
