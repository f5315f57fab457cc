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
