//! Packets longer than a non-instance port carries: an edge's Direct Connect side and a
//! card's underlay port on DPDK net_tap (1500-byte IP packets), fed 3000-byte packets from
//! yellow-1 (a net_pcap port). `vpcemu run --cards host-b,blackfoot-1`: yellow-1's traffic
//! to its data centre leaves by the edge's dx port, to red-1 (host-a, not run here) by
//! host-b's underlay port. Both are counted `mtu_exceeded`, never `tx_full`, and the
//! ports' own error counters stay at zero; vpcemu warns at start that both ports carry
//! less than may leave by them.
//!
//! Needs root (net_tap creates its interfaces); skips otherwise. Nothing is sent to the
//! taps: every packet is longer than they carry.

mod common;

use std::process::Command;

use common::*;

/// yellow-1's MAC (02:00 + 10.1.1.20) and its subnet router's (any: not checked).
const YELLOW_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x01, 0x01, 0x14];
const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0xff, 0x00, 0x01];

/// An Ethernet frame from yellow-1 with a UDP packet of `total` IP bytes to `dst`, DF set.
fn frame(dst: [u8; 4], total: usize) -> Vec<u8> {
    let mut ip = vec![0u8; total];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 1, 1, 20]);
    ip[16..20].copy_from_slice(&dst);
    ip[20..22].copy_from_slice(&40000u16.to_be_bytes());
    ip[22..24].copy_from_slice(&9u16.to_be_bytes());
    ip[24..26].copy_from_slice(&((total - 20) as u16).to_be_bytes());
    let c = wire::checksum::ipv4_header(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(14 + total);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&YELLOW_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f
}

#[test]
fn dx_and_underlay_ports_count_what_they_cannot_carry_as_mtu_exceeded() {
    match Command::new("id").arg("-u").output() {
        Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "0" => {}
        _ => {
            println!("mtu-ports: skipped: not running as root (net_tap needs it)");
            return;
        }
    }
    let dir = scratch("mtu-ports");
    let d = dir.display();
    // Two to the data centre (DX), two to red-1 (through host-b's underlay port).
    let frames = vec![
        frame([192, 168, 1, 1], 3000),
        frame([10, 0, 1, 10], 3000),
        frame([192, 168, 1, 1], 1600),
        frame([10, 0, 1, 10], 1600),
    ];
    write_pcap(&dir.join("yellow-1.pcap"), &frames);
    let pid = std::process::id();
    let ports = format!(
        "[[port]]\nname = \"yellow-1\"\nvdev = \"net_pcap0,rx_pcap={d}/yellow-1.pcap,tx_pcap={d}/out-yellow-1.pcap\"\nattach = \"instance:yellow-1\"\n\n\
         [[port]]\nname = \"underlay\"\nvdev = \"net_tap0,iface=vpcM{pid}u\"\nattach = \"underlay:host-b\"\n\n\
         [[port]]\nname = \"dx\"\nvdev = \"net_tap1,iface=vpcM{pid}d\"\nattach = \"edge:blackfoot-1:dx\"\n"
    );
    std::fs::write(dir.join("world.toml"), story_world(&ports)).unwrap();
    let stats_path = dir.join("stats.json");
    let out = Command::new("timeout")
        .args(["-k", "5", "60", env!("CARGO_BIN_EXE_vpcemu"), "run"])
        .arg(dir.join("world.toml"))
        .args(["--cards", "host-b,blackfoot-1", "--until-idle", "400", "--duration", "30", "--stats-json"])
        .arg(&stats_path)
        .output()
        .expect("run vpcemu");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "vpcemu run failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("mbufs in use at exit: 0"), "{stdout}");
    let stats = Stats::read(&stats_path).unwrap();
    let drops = |r: &str| drop_count(&stats, r);
    assert_eq!(drops("mtu_exceeded"), 4, "every packet is too long for its port:\n{stdout}");
    assert_eq!(drops("tx_full"), 0, "no TX queue was full:\n{stdout}");
    for port in ["underlay", "dx"] {
        let p = stats.port(port);
        assert_eq!(p.map(|p| (p.tx, p.dropped)), Some((0, 0)), "port {port}: {p:?}");
    }
    assert!(stats.stage_count("vlan") >= Some(2), "the DX packets reached the edge's vlan stage");
    for warning in [
        "warning: port underlay (underlay:host-b) carries IP packets up to 1500 bytes, less than the 9057 that may leave by it",
        "warning: port dx (edge:blackfoot-1:dx) carries IP packets up to 1500 bytes, less than the 9001 that may leave by it",
    ] {
        assert!(stderr.contains(warning), "{warning:?} at start:\n{stderr}");
    }
}
