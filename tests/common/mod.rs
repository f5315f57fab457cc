//! Shared helpers for the end-to-end tests: run the `vpcemu` binary, read and write pcaps.
#![allow(dead_code)]

pub mod netns;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The story's world (examples/story-world.toml) with a `[dataplane]` section for tests
/// (no hugepages) and `extra` (ports, more instances) after it.
pub fn story_world(extra: &str) -> String {
    format!(
        "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 512\nhugepages = \"off\"\n\n{}\n{extra}",
        include_str!("../../examples/story-world.toml")
    )
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Run vpcemu with `args` (EAL without hugepages, so tests run anywhere).
pub fn vpcemu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vpcemu")).args(args).output().expect("spawn vpcemu")
}

/// Write frames as a classic microsecond pcap (Ethernet).
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// Read the frames of a classic pcap (with the `wire` crate's reader).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    wire::pcap::Reader::new(&b)
        .unwrap_or_else(|e| panic!("{} is not a pcap: {e}", path.display()))
        .map(|r| r.unwrap_or_else(|e| panic!("{}: bad record: {e}", path.display())).data.to_vec())
        .collect()
}

/// stderr as text, with the number of non-empty lines.
pub fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

/// An Ethernet/IPv4/UDP frame (DF, TTL 64, ports 40000 -> 7000, no UDP checksum) with a
/// correct IPv4 header checksum.
pub fn udp_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = (20 + udp_len) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = wire::checksum::ipv4_header(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&7000u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A broadcast ARP request from `src_mac`/`src`: who has `target`.
pub fn arp_request(src_mac: [u8; 6], src: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// The header of a classic microsecond pcap (Ethernet), for writing one record at a time
/// (into a FIFO a net_pcap port reads).
pub fn pcap_header() -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    h.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

/// One pcap record holding `frame` (time 0).
pub fn pcap_record(frame: &[u8]) -> Vec<u8> {
    let mut r = vec![0; 8];
    r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    r.extend_from_slice(frame);
    r
}

/// A pcap record of an echo request yellow-1 -> red-1 with sequence `seq`, built by hand
/// (a pcap header is written separately).
pub fn echo(seq: u16) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 1, 1, 20, 10, 0, 1, 10];
    let sum = wire::checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut icmp = vec![8, 0, 0, 0, 0, 1];
    icmp.extend_from_slice(&seq.to_be_bytes());
    let sum = wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = vec![0x02, 0, 0, 0xff, 0, 1, 0x02, 0x00, 0x0a, 0x01, 0x01, 0x14, 0x08, 0x00];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}
