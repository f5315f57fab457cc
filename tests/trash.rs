//! `vpcemu run --trash PATH --trash-limit N`: the dropped packets of known bad input in a
//! pcapng file that tshark reads, each with its drop reason, stage and card as the packet
//! comment and its port as the interface; at most N per reason, the rest counted.

mod common;
#[path = "common/observe.rs"]
mod observe;

use std::path::Path;
use std::process::Command;

use common::*;
use observe::*;

/// tshark's comment and interface name of every frame, and the frame bytes' length.
fn tshark_trash(pcapng: &Path) -> Vec<(String, String, usize)> {
    let out = Command::new("tshark")
        .args(["-n", "-r", pcapng.to_str().unwrap(), "-T", "fields", "-E", "separator=|"])
        .args(["-e", "frame.comment", "-e", "frame.interface_name", "-e", "frame.len"])
        .output()
        .expect("run tshark (scripts/setup.sh installs it)");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn dropped_packets_land_in_the_trash_with_their_reason_stage_and_port() {
    let dir = scratch("trash");
    std::fs::write(dir.join("world.toml"), world(&dir)).unwrap();
    let (trash, stats) = (dir.join("trash.pcapng"), dir.join("stats.json"));
    let limit = 5;
    let (w, t, st, n) = (dir.join("world.toml"), trash.to_str().unwrap(), stats.to_str().unwrap(), limit.to_string());
    let args = ["run", w.to_str().unwrap(), "--until-idle", "400", "--trash", t, "--trash-limit", &n, "--stats-json", st];
    let out = vpcemu(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "vpcemu run: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let frames = tshark_trash(&trash);
    let spoofed = "reason=spoofed_source stage=verify-send card=host-a";
    let not_ipv4 = "reason=not_ipv4 stage=classify card=host-a";
    let count = |c: &str| frames.iter().filter(|(comment, _, _)| comment == c).count();
    // 7 spoofed, at most 5 a second kept: 5; both IPv6 frames; nothing else was dropped.
    assert_eq!(count(spoofed), limit.min(SPOOFED), "{frames:?}");
    assert_eq!(count(not_ipv4), NOT_IPV4, "{frames:?}");
    assert_eq!(frames.len(), limit.min(SPOOFED) + NOT_IPV4, "{frames:?}");
    // Whole frames, as red-1 sent them, on the port they came in by.
    let sent = read_pcap(&dir.join("red-1.pcap"));
    let first_spoofed = &sent[TO_PEER + TO_INTERNET];
    for (comment, interface, len) in &frames {
        assert_eq!(interface, "red-1", "the port they came in by");
        let want = if comment == spoofed { first_spoofed.len() } else { ipv6_frame(0).len() };
        assert_eq!(*len, want, "{comment}");
    }
    let file = std::fs::read(&trash).unwrap();
    let blocks = wire::pcapng::blocks(&file).unwrap();
    let epb = blocks.iter().find(|(t, _)| *t == wire::pcapng::EPB).unwrap().1;
    assert_eq!(&epb[20..20 + first_spoofed.len()], &first_spoofed[..]);
    // The totals: what was kept and what was only counted.
    assert!(
        stdout.contains(&format!("trash: {} packets written to {}, 2 over --trash-limit, 0 lost", limit + NOT_IPV4, trash.display())),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(v["trash"]["written"], (limit + NOT_IPV4) as u64);
    assert_eq!(v["trash"]["limited"], (SPOOFED - limit) as u64);
    assert_eq!(v["drops"]["spoofed_source"], SPOOFED as u64, "every drop still counted");
}

#[test]
fn bad_trash_options_are_one_clear_error() {
    let dir = scratch("trash-bad");
    std::fs::write(dir.join("world.toml"), world(&dir)).unwrap();
    let world = dir.join("world.toml");
    let w = world.to_str().unwrap();
    let out = vpcemu(&["run", w, "--trash", "/nonexistent/dir/t.pcapng", "--duration", "1"]);
    assert!(!out.status.success());
    let err = stderr_lines(&out);
    assert!(err.iter().any(|l| l.starts_with("vpcemu: error: --trash /nonexistent/dir/t.pcapng")), "{err:?}");
    let out = vpcemu(&["run", w, "--trash", dir.join("t.pcapng").to_str().unwrap(), "--trash-limit", "many"]);
    assert!(!out.status.success());
    assert!(stderr_lines(&out)[0].contains("--trash-limit"), "{:?}", stderr_lines(&out));
    let out = vpcemu(&["run", w, "--trash-limit", "5"]);
    assert!(!out.status.success(), "--trash-limit needs --trash");
    assert_eq!(stderr_lines(&out), ["vpcemu: error: --trash-limit needs --trash PATH"]);
}
