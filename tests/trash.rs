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

/// tshark's comment and interface name of every frame, the frame bytes' length and the
/// IPv4 source tshark dissected.
fn tshark_trash(pcapng: &Path) -> Vec<(String, String, usize, String)> {
    let out = Command::new("tshark")
        .args(["-n", "-r", pcapng.to_str().unwrap(), "-T", "fields", "-E", "separator=|"])
        .args(["-e", "frame.comment", "-e", "frame.interface_name", "-e", "frame.len", "-e", "ip.src"])
        .output()
        .expect("run tshark (scripts/setup.sh installs it)");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap(), f[3].to_string())
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
    let no_eip = "reason=no_elastic_ip stage=nat card=blackfoot-1";
    let count = |c: &str| frames.iter().filter(|(comment, ..)| comment == c).count();
    // 7 spoofed, at most 5 a second kept: 5; both IPv6 frames; red-2's two at the edge;
    // nothing else was dropped.
    assert_eq!(count(spoofed), limit.min(SPOOFED), "{frames:?}");
    assert_eq!(count(not_ipv4), NOT_IPV4, "{frames:?}");
    assert_eq!(count(no_eip), NO_EIP, "{frames:?}");
    assert_eq!(frames.len(), limit.min(SPOOFED) + NOT_IPV4 + NO_EIP, "{frames:?}");
    // Whole frames, as red-1 sent them, on the port they came in by; red-2's reached the
    // edge across the in-process fabric, and its nat stage held the bare IP packet.
    let sent = read_pcap(&dir.join("red-1.pcap"));
    let first_spoofed = &sent[TO_PEER + TO_INTERNET];
    let red2 = read_pcap(&dir.join("red-2.pcap"));
    for (comment, interface, len, src) in &frames {
        let (port, want, ip) = match comment.as_str() {
            c if c == spoofed => ("red-1", first_spoofed.len(), "10.0.1.99"),
            // As the edge's nat stage held it: the inner IP packet red-2 sent.
            c if c == no_eip => ("fabric", red2[0].len() - 14, "10.0.1.11"),
            _ => ("red-1", ipv6_frame(0).len(), ""),
        };
        assert_eq!((interface.as_str(), *len, src.as_str()), (port, want, ip), "{comment}");
    }
    let file = std::fs::read(&trash).unwrap();
    let blocks = wire::pcapng::blocks(&file).unwrap();
    let epb = blocks.iter().find(|(t, _)| *t == wire::pcapng::EPB).unwrap().1;
    assert_eq!(&epb[20..20 + first_spoofed.len()], &first_spoofed[..]);
    // The totals: what was kept and what was only counted.
    assert!(
        stdout.contains(&format!(
            "trash: {} packets written to {}, 2 over --trash-limit, 0 lost",
            limit + NOT_IPV4 + NO_EIP,
            trash.display()
        )),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(v["trash"]["written"], (limit + NOT_IPV4 + NO_EIP) as u64);
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
