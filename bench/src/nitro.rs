//! Scenarios `nitro-egress` and `nitro-ingress`: `vpcemu run` with one Nitro card
//! (`--cards host-a`) on one worker, a world of 1M mappings (16 peered /16 VPCs, the
//! instances spread over 64 remote hosts), 64-byte frames to or from 64k distinct
//! instances, net_pcap (infinite_rx) -> net_null (no-rx), beside `dpdk-testpmd
//! --forward-mode=io` on the same vdevs; each measured with stage timing on and off.
//!
//! - egress: the local instance's vNIC replays frames to 64k destinations; the card
//!   encapsulates them and, the destinations' hosts not being in this process, sends them
//!   out of host-a's underlay port.
//! - ingress: host-a's underlay port replays Geneve frames from 64k instances on their
//!   right hosts; the card verifies and decapsulates them to the local instance's vNIC.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wire::ethernet::EthernetAddress;
use wire::vpc;

use crate::dpdk_tools::{run_profiled, testpmd_io_cpu};
use crate::profile::{self, Profile};
use crate::rate_matched;
use crate::report::{median, Row, Stats};
use vpcemu::runtime::engine::DEFAULT_STAGE_TIMING_SAMPLE_US;
use crate::traffic;

pub const VPCS: u32 = 16;
pub const REMOTE_HOSTS: u32 = 64;
pub const ACTIVE: u32 = 65_536;
const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);

/// The scenario's setup: the common one and its own size.
pub struct Setup<'a> {
    pub run: crate::report::Setup<'a>,
    pub mappings: u32,
}

/// The i-th remote instance: (address, VPC index, host index).
fn instance(i: u32) -> (Ipv4Addr, u32, u32) {
    let per_vpc = 65_530;
    let (vpc, k) = (i / per_vpc, i % per_vpc + 4);
    let k = if vpc == 0 && k >= 10 { k + 1 } else { k }; // skip the local instance's .0.10
    (Ipv4Addr::new(10, vpc as u8, (k >> 8) as u8, k as u8), vpc, i % REMOTE_HOSTS)
}

fn host_pa(h: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, (h >> 8) as u8, h as u8)
}

/// The world, written once per size (loading 1M instances takes seconds, writing it too).
fn world(s: &Setup, ports: &str) -> Result<PathBuf, String> {
    let base = s.run.work.join(format!("nitro-world-{}.toml", s.mappings));
    if !base.exists() {
        let mut t = String::with_capacity(s.mappings as usize * 96);
        let _ = write!(t, "[[host]]\nname = \"host-a\"\npa = \"{LOCAL_PA}\"\n\n");
        for h in 0..REMOTE_HOSTS {
            let _ = write!(t, "[[host]]\nname = \"remote-{h}\"\npa = \"{}\"\n\n", host_pa(h));
        }
        for v in 0..VPCS {
            let _ = write!(t, "[[vpc]]\nname = \"red-{v}\"\nvni = {}\ncidr = \"10.{v}.0.0/16\"\n\n", 101 + v);
            let _ = write!(t, "[[subnet]]\nname = \"red-{v}-a\"\nvpc = \"red-{v}\"\ncidr = \"10.{v}.0.0/16\"\n\n");
        }
        for v in 1..VPCS {
            let _ = write!(t, "[[peering]]\nvpcs = [\"red-0\", \"red-{v}\"]\n\n");
        }
        let _ = write!(t, "[[instance]]\nname = \"src\"\nsubnet = \"red-0-a\"\nhost = \"host-a\"\nip = \"{SRC}\"\n\n");
        for i in 0..s.mappings.saturating_sub(1) {
            let (ip, v, h) = instance(i);
            let _ = write!(t, "[[instance]]\nname = \"i{i}\"\nsubnet = \"red-{v}-a\"\nhost = \"remote-{h}\"\nip = \"{ip}\"\n\n");
        }
        std::fs::write(&base, t).map_err(|e| format!("{}: {e}", base.display()))?;
    }
    let body = std::fs::read_to_string(&base).map_err(|e| e.to_string())?;
    let path = s.run.work.join("nitro-run.toml");
    let head = vpcemu::testkit::dataplane("0-1", 2048, "auto");
    std::fs::write(&path, format!("{head}{body}{ports}")).map_err(|e| e.to_string())?;
    Ok(path)
}

/// The active set: `ACTIVE` (at most the remote instances) flow numbers `j`, each with
/// its remote instance `i`, spread over the whole table.
fn active(mappings: u32) -> impl Iterator<Item = (u32, u32)> {
    let n = ACTIVE.min(mappings.saturating_sub(1));
    (0..n).map(move |j| (j, (u64::from(j) * u64::from(mappings - 1) / u64::from(n)) as u32))
}

/// Where the egress frames go, in the pcap's order: each frame's destination address,
/// the VNI of its VPC and the PA of its host (what the card's encap writes).
pub fn egress_destinations(mappings: u32) -> Vec<(Ipv4Addr, u32, Ipv4Addr)> {
    active(mappings)
        .map(|(_, i)| {
            let (dst, v, h) = instance(i);
            (dst, 101 + v, host_pa(h))
        })
        .collect()
}

/// The local instance: its address, MAC and VNI (the source-VPC option of its Geneve).
pub const LOCAL_IP: Ipv4Addr = SRC;
pub const LOCAL_MAC: [u8; 6] = [0x02, 0x00, 10, 0, 0, 10];
pub const LOCAL_VNI: u32 = 101;
/// host-a's PA, the outer source of what its card sends.
pub const LOCAL_PA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// Write the egress frames (the `nitro-egress` scenario's traffic) as a pcap in `work`;
/// returns its path and the number of frames.
pub fn egress_pcap(work: &Path, mappings: u32) -> Result<(PathBuf, usize), String> {
    let pcap = work.join(format!("nitro-egress-{mappings}.pcap"));
    let frames = egress_frames(mappings);
    traffic::write_pcap(&pcap, &frames).map_err(|e| format!("writing {}: {e}", pcap.display()))?;
    Ok((pcap, frames.len()))
}

/// 64-byte frames from the local instance to `ACTIVE` distinct destinations.
fn egress_frames(mappings: u32) -> Vec<Vec<u8>> {
    active(mappings)
        .map(|(j, i)| {
            let (dst, _, _) = instance(i);
            let mut f = traffic::udp64(j);
            f[0..6].copy_from_slice(&[0x02, 0, 0, 0xff, 0, 0]);
            f[6..12].copy_from_slice(&LOCAL_MAC);
            f[26..30].copy_from_slice(&SRC.octets());
            f[30..34].copy_from_slice(&dst.octets());
            traffic::fix_ipv4_checksum(&mut f[14..34]);
            f
        })
        .collect()
}

/// Geneve frames to host-a from `ACTIVE` distinct instances, each from its own host.
fn ingress_frames(mappings: u32) -> Vec<Vec<u8>> {
    active(mappings)
        .map(|(j, i)| {
            let (src, v, h) = instance(i);
            let mut inner = traffic::udp64(j)[14..].to_vec();
            inner[12..16].copy_from_slice(&src.octets());
            inner[16..20].copy_from_slice(&SRC.octets());
            traffic::fix_ipv4_checksum(&mut inner[..20]);
            let encap = vpc::Encap {
                src_mac: EthernetAddress([0x02, 0, 198, 19, 0, h as u8]),
                dst_mac: EthernetAddress([0x02, 0, 198, 18, 0, 1]),
                src_pa: host_pa(h),
                dst_pa: LOCAL_PA,
                vni: 101,
                source_vpc: 101 + v,
            };
            let mut f = vec![0u8; vpc::OUTER_HEADER_LEN + inner.len()];
            let _ = vpc::emit_outer_into(&mut f, &encap, None, inner.len(), vpc::inner_flow_hash(&inner));
            f[vpc::OUTER_HEADER_LEN..].copy_from_slice(&inner);
            f
        })
        .collect()
}

struct Measured {
    pps: f64,
    tsc_hz: f64,
    /// The share of its life the worker thread ran (it waits for a CPU on a busy machine).
    cpu_share: f64,
    stats: Stats,
    /// Its worker thread's profile (`--profile`, the default variant's runs).
    profile: Option<Profile>,
}

fn run_once(s: &Setup, topo: &Path, out_port: &str, timing: &[&str], profiled: bool) -> Result<Measured, String> {
    let json = s.run.work.join("nitro-stats.json");
    let mut cmd = Command::new(s.run.vpcemu);
    cmd.args(["run", topo.to_str().unwrap_or_default(), "--cards", "host-a"]);
    cmd.args(["--duration", &format!("{}", s.run.seconds), "--stats-json"]).arg(&json);
    cmd.args(timing);
    let data = s.run.work.join("nitro-worker.perf.data");
    let profile_to = (profiled && profile::enabled()).then_some(data.as_path());
    let (ok, _, err, cpu_share, profile) = run_profiled(&mut cmd, &s.run.work.join("nitro-log"), profile_to)?;
    if !ok {
        return Err(format!("vpcemu run failed: {}", err.trim()));
    }
    let stats = Stats::read(&json)?;
    let tx = stats.port(out_port).ok_or("no output port counter")?.tx as f64;
    let (busy, tsc_hz) = stats.run_figures()?;
    Ok(Measured { pps: tx / busy, tsc_hz, cpu_share, stats, profile })
}

/// Run one direction; returns the rows (stage timing as `vpcemu run` does by default, on
/// every burst, off).
pub fn run(s: &Setup, ingress: bool) -> Result<Vec<Row>, String> {
    let name = if ingress { "nitro-ingress" } else { "nitro-egress" };
    let (pcap, held) = if ingress {
        let pcap = s.run.work.join(format!("{name}-{}.pcap", s.mappings));
        let frames = ingress_frames(s.mappings);
        traffic::write_pcap(&pcap, &frames).map_err(|e| e.to_string())?;
        (pcap, frames.len())
    } else {
        egress_pcap(s.run.work, s.mappings)?
    };
    let rx = format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display());
    let tx = "net_null0,no-rx=1".to_string();
    let (in_attach, out_attach, out_name) = if ingress {
        ("underlay:host-a", "instance:src", "vnic")
    } else {
        ("instance:src", "underlay:host-a", "underlay")
    };
    let ports = format!(
        "[[port]]\nname = \"in\"\nvdev = \"{rx}\"\nattach = \"{in_attach}\"\n\n[[port]]\nname = \"{out_name}\"\nvdev = \"{tx}\"\nattach = \"{out_attach}\"\n"
    );
    let topo = world(s, &ports)?;
    let (mut on, mut every, mut off, mut base) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut on_cpu, mut every_cpu, mut off_cpu, mut base_cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut hz, mut last, mut last_every) = (0.0, Stats::default(), Stats::default());
    let (mut on_profiles, mut base_profiles) = (Vec::new(), Vec::new());
    for _ in 0..s.run.repeat.max(1) {
        let m = run_once(s, &topo, out_name, &[], true)?;
        on.push(m.pps);
        on_cpu.push(m.pps / m.cpu_share);
        on_profiles.push((m.pps / m.cpu_share, m.profile));
        hz = m.tsc_hz;
        last = m.stats;
        let m = run_once(s, &topo, out_name, &["--stage-timing-sample-us", "0"], false)?;
        every.push(m.pps);
        every_cpu.push(m.pps / m.cpu_share);
        last_every = m.stats;
        let m = run_once(s, &topo, out_name, &["--no-stage-timing"], false)?;
        off.push(m.pps);
        off_cpu.push(m.pps / m.cpu_share);
        let data = s.run.work.join("testpmd-worker.perf.data");
        let profile_to = profile::enabled().then_some(data.as_path());
        let (pps, share, profile) = testpmd_io_cpu(&rx, &tx, Duration::from_secs_f64(s.run.seconds), held, profile_to)?;
        base.push(pps);
        base_cpu.push(pps / share);
        base_profiles.push((pps / share, profile));
    }
    let stages: &[&str] = if ingress { &["verify-recv", "decap"] } else { &["classify", "verify-send", "route", "encap"] };
    let (base, base_cpu) = (median(base), median(base_cpu));
    let mut rows = Vec::new();
    let variants = [
        ("", median(on), median(on_cpu), Some(&last)),
        ("-every-burst", median(every), median(every_cpu), Some(&last_every)),
        ("-no-timing", median(off), median(off_cpu), None),
    ];
    for (suffix, pps, cpu_pps, stats) in variants {
        let mut row = Row::new(format!("{name}{suffix}"));
        row.mpps = Some(pps / 1e6);
        row.cycles_per_packet = Some(hz / pps);
        row.baseline = Some("dpdk-testpmd --forward-mode=io".into());
        row.baseline_mpps = Some(base / 1e6);
        row.ratio = Some(pps / base);
        let mut row = row
            .with("mappings", s.mappings)
            .with("active_flows", ACTIVE.min(s.mappings.saturating_sub(1)))
            .with("baseline_cycles_per_packet", hz / base)
            .with("nitro_cycles_per_packet", hz / pps - hz / base)
            .with("cpu_cycles_per_packet", hz / cpu_pps)
            .with("baseline_cpu_cycles_per_packet", hz / base_cpu)
            .with("nitro_cpu_cycles_per_packet", hz / cpu_pps - hz / base_cpu)
            .with("stage_timing", stats.is_some())
            .with("stage_timing_sample_us", stats.map(|_| if suffix.is_empty() { DEFAULT_STAGE_TIMING_SAMPLE_US } else { 0 }));
        if let Some(stats) = stats {
            row = row.with("stages", stats.stage_figures(stages, &["p50_ns", "p99_ns", "count", "timed"]));
        }
        if suffix.is_empty() {
            if let Some(own) = profile::median_of(&on_profiles, hz) {
                row = profile::with_profiles(row, own, profile::median_of(&base_profiles, hz));
            }
            if rate_matched::enabled() {
                let m = rate_matched::measure(&s.run, &rx, held, hz / cpu_pps)?;
                row = rate_matched::with_matched(row, &m, hz / cpu_pps);
            }
        }
        rows.push(row);
    }
    Ok(rows)
}
