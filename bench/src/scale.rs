//! Scenario `scale` (or one part of it: `scale-nitro`, `scale-blackfoot`, `scale-fabric`):
//! does the cost of a packet depend on the size of the world? Each part runs the same
//! traffic through `vpcemu run` in a small world and in a large one, alternating them in
//! the same invocation (median of `--repeat`), on one worker, net_pcap (infinite_rx) ->
//! net_null (no-rx):
//!
//! - `nitro-egress-internet-1vpc` / `-1000vpc`: host-a's instance sends 64-byte UDP frames
//!   to 16384 internet destinations through its VPC's internet gateway (the edge is not in
//!   the process: they leave by host-a's underlay port). In the large world host-a holds
//!   1000 VPCs (an instance of each on it): the route stage's refusal of another VPC's
//!   CIDR must not look at each of them.
//! - `blackfoot-outside-esp-1vpn` / `-100vpn`: ESP from customer gateways to the edge's
//!   tunnel addresses on its internet port, one VPN or 100 (each its own VPC, tunnel
//!   address, SPIs and keys; the traffic spread over all of them). Every frame decrypts
//!   and reaches its instance's host the first time (the check run below), but
//!   `infinite_rx` replays the same sequence numbers: after the first pass every packet
//!   is `esp_replay`, so these rows count packets *received* and measure the outside path
//!   up to the anti-replay check (classify with its tunnel-address test, the SA lookups),
//!   which is where the number of VPNs could show.
//! - `fabric-2cards` / `-64cards`: every host card in the process, an instance on the first
//!   host sends to one on the last; the worker carries each packet across the in-process
//!   fabric to the receiving card (found by the outer destination PA), which delivers it.
//!
//! The small world's row has `dpdk-testpmd --forward-mode=io` on the same vdevs as its
//! baseline (as every line-rate scenario); the large world's row has the small world's
//! row as its baseline: `ratio` = large Mpps / small Mpps (1.0: the size does not
//! matter), `cycles_ratio` = large cycles per packet / small cycles per packet.
//!
//! On a shared machine the worker lcore does not have its CPU to itself, and
//! `cycles_per_packet` (TSC Hz / packets per second, as in every row) counts the time other
//! processes held it. So each run also samples the worker thread's schedstat in `/proc`
//! (nanoseconds running, nanoseconds waiting for a CPU) and the rows add
//! `cpu_cycles_per_packet` (the same, over the time the worker ran), the runs'
//! `worker_cpu_share`, and for the large world `cpu_cycles_ratio`.
//!
//! Before measuring, a check run sends each world's pcap once and requires every frame
//! to arrive where it should, with no drop; every measured run must move most of what it
//! received the expected way.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use blackfoot::esp::{self as besp, OutboundSa};
use mapping_client::topology::SaConfig;
use serde_json::Value;
use wire::{PacketBuf, TestBuffer};

use crate::dpdk_tools::{run_sampled, testpmd_io};
use crate::report::{median, Row, Stats};
use crate::traffic;

/// The scenarios of this module: all three parts, or one.
pub const NAMES: &[&str] = &["scale", "scale-nitro", "scale-blackfoot", "scale-fabric"];

/// Frames (flows) in each pcap.
const FLOWS: u32 = 16_384;
/// The large worlds.
pub const LARGE_VPCS: u32 = 1000;
pub const LARGE_VPNS: u32 = 100;
pub const LARGE_CARDS: u32 = 64;

pub use crate::report::Setup;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Nitro,
    Blackfoot,
    Fabric,
}

/// One world of a part: what `vpcemu run` gets and what must come out of it.
struct World {
    /// The row name.
    name: String,
    /// VPCs, VPNs and cards of the world (for the row).
    size: Value,
    /// The topology without `[dataplane]` and ports.
    toml: String,
    /// `--cards` (empty: every card of the file).
    cards: &'static str,
    /// `[[port]]` attach of the input (net_pcap) and of the output (net_null) port.
    input: String,
    output: String,
    frames: Vec<Vec<u8>>,
    /// Whether the measured runs count received packets (they are dropped by design).
    count_rx: bool,
    /// The stages whose p50/p99 the row shows.
    stages: &'static [&'static str],
}

/// The `[dataplane]` of every scale world.
fn dataplane() -> String {
    vpcemu::testkit::dataplane("0-1", 1024, "auto")
}
const EDGE_PA: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);

fn host_pa(h: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, (h >> 8) as u8, (h & 0xff) as u8 + 1)
}

/// A 64-byte UDP frame of flow `j` from `src` (MAC 02:00 + address) to `dst`.
fn frame(j: u32, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut f = traffic::udp64(j);
    let o = src.octets();
    f[6..12].copy_from_slice(&[0x02, 0x00, o[0], o[1], o[2], o[3]]);
    f[26..30].copy_from_slice(&o);
    f[30..34].copy_from_slice(&dst.octets());
    traffic::fix_ipv4_checksum(&mut f[14..34]);
    f
}

// ----- nitro: VPCs on one host -----

/// The address of VPC `v`'s instance; the VPC is the /20 around it.
fn vpc_instance(v: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, (v >> 4) as u8, ((v & 15) << 4) as u8, 10)
}

fn nitro_world(vpcs: u32) -> World {
    let mut t = String::new();
    let _ = write!(t, "[[host]]\nname = \"host-a\"\npa = \"{}\"\n\n", host_pa(0));
    let _ = write!(t, "[[edge]]\nname = \"edge-1\"\npa = \"{EDGE_PA}\"\n\n");
    for v in 0..vpcs {
        let o = vpc_instance(v).octets();
        let cidr = format!("{}.{}.{}.0/20", o[0], o[1], o[2]);
        let _ = write!(t, "[[vpc]]\nname = \"vpc-{v}\"\nvni = {}\ncidr = \"{cidr}\"\n\n", 1000 + v);
        let _ = write!(t, "[[subnet]]\nname = \"subnet-{v}\"\nvpc = \"vpc-{v}\"\ncidr = \"{cidr}\"\n\n");
        let _ = write!(
            t,
            "[[instance]]\nname = \"i{v}\"\nsubnet = \"subnet-{v}\"\nhost = \"host-a\"\nip = \"{}\"\n\n",
            vpc_instance(v)
        );
    }
    let frames = (0..FLOWS).map(|j| frame(j, vpc_instance(0), Ipv4Addr::new(93, 184, (j >> 8) as u8, j as u8))).collect();
    World {
        name: format!("nitro-egress-internet-{vpcs}vpc"),
        size: serde_json::json!({ "vpcs": vpcs, "vpns": 0, "cards": 1 }),
        toml: t,
        cards: "host-a",
        input: "instance:i0".into(),
        output: "underlay:host-a".into(),
        frames,
        count_rx: false,
        stages: &["verify-send", "route", "encap"],
    }
}

// ----- blackfoot: VPNs on one edge -----

/// VPN `k`'s inbound SA (what its customer gateway encrypts with).
fn inbound_sa(k: u32) -> SaConfig {
    let mut key = [0u8; 16];
    for (i, b) in key.iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    SaConfig { spi: 8193 + k, key, salt: [0xc0, 0xff, 0xee, k as u8] }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tunnel_address(k: u32) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, k as u8 + 1)
}

fn customer_gateway(k: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, k as u8 + 1)
}

fn blackfoot_world(vpns: u32) -> Result<World, String> {
    const HOSTS: u32 = 4;
    let mut t = String::new();
    for h in 0..HOSTS {
        let _ = write!(t, "[[host]]\nname = \"host-{h}\"\npa = \"{}\"\n\n", host_pa(h));
    }
    let _ = write!(t, "[[edge]]\nname = \"edge-1\"\npa = \"{EDGE_PA}\"\n\n");
    for k in 0..vpns {
        let _ = write!(
            t,
            "[[vpc]]\nname = \"vpc-{k}\"\nvni = {}\ncidr = \"10.{k}.0.0/16\"\n\n\
             [[subnet]]\nname = \"subnet-{k}\"\nvpc = \"vpc-{k}\"\ncidr = \"10.{k}.0.0/16\"\n\n\
             [[instance]]\nname = \"i{k}\"\nsubnet = \"subnet-{k}\"\nhost = \"host-{}\"\nip = \"10.{k}.0.10\"\n\n",
            1000 + k,
            k % HOSTS
        );
        let inbound = inbound_sa(k);
        let outbound_key = hex(&[[0x5a; 16].as_slice(), &[k as u8; 4]].concat());
        let _ = write!(
            t,
            "[[vpn]]\nname = \"vpn-{k}\"\nvpc = \"vpc-{k}\"\nedge = \"edge-1\"\nlocal = \"{}\"\n\
             customer_gateway = \"{}\"\nremote_prefixes = [\"172.16.0.0/16\"]\n\
             outbound = {{ spi = {}, key = \"{outbound_key}\" }}\ninbound = {{ spi = {}, key = \"{}\" }}\n\n",
            tunnel_address(k),
            customer_gateway(k),
            4097 + k,
            inbound.spi,
            hex(&[inbound.key.as_slice(), &inbound.salt].concat())
        );
    }
    // Each customer gateway's SA numbers its packets from 1, as the SA's sender would.
    let sas: Vec<OutboundSa<blackfoot::aead::RingAesGcm>> = (0..vpns)
        .map(|k| OutboundSa::with_ring(&inbound_sa(k), customer_gateway(k), tunnel_address(k)))
        .collect::<Result<_, _>>()
        .map_err(|_| "bad test key".to_string())?;
    let edge_mac = wire::vpc::card_mac(EDGE_PA);
    let mut frames = Vec::with_capacity(FLOWS as usize);
    for j in 0..FLOWS {
        let k = j % vpns;
        let src = Ipv4Addr::new(172, 16, (j >> 8) as u8, j as u8);
        let inner = traffic::udp_ipv4(src, Ipv4Addr::new(10, k as u8, 0, 10), 1024 + (j % 60_000) as u16, 5001, j as u16, 64);
        let mut buf = TestBuffer::from_slice_with_room(&inner, 64, 64);
        besp::encrypt(&mut buf, &sas[k as usize]).map_err(|e| format!("encrypting the test traffic: {e:?}"))?;
        let mut f = Vec::with_capacity(14 + buf.len());
        f.extend_from_slice(&edge_mac.0);
        f.extend_from_slice(&[0x02, 0x00, 0x00, 0xfe, 0x00, 0x02]);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        f.extend_from_slice(buf.data());
        frames.push(f);
    }
    Ok(World {
        name: format!("blackfoot-outside-esp-{vpns}vpn"),
        size: serde_json::json!({ "vpcs": vpns, "vpns": vpns, "cards": 1 }),
        toml: t,
        cards: "edge-1",
        input: "edge:edge-1:internet".into(),
        output: "underlay:edge-1".into(),
        frames,
        count_rx: true,
        stages: &["classify", "esp-decrypt"],
    })
}

// ----- fabric: host cards in one process -----

fn fabric_world(cards: u32) -> World {
    let mut t = String::new();
    for h in 0..cards {
        let _ = write!(t, "[[host]]\nname = \"host-{h}\"\npa = \"{}\"\n\n", host_pa(h));
    }
    let (src, dst) = (Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 20));
    let _ = write!(
        t,
        "[[vpc]]\nname = \"red\"\nvni = 101\ncidr = \"10.0.0.0/16\"\n\n\
         [[subnet]]\nname = \"red-a\"\nvpc = \"red\"\ncidr = \"10.0.0.0/16\"\n\n\
         [[instance]]\nname = \"src\"\nsubnet = \"red-a\"\nhost = \"host-0\"\nip = \"{src}\"\n\n\
         [[instance]]\nname = \"dst\"\nsubnet = \"red-a\"\nhost = \"host-{}\"\nip = \"{dst}\"\n\n",
        cards - 1
    );
    World {
        name: format!("fabric-{cards}cards"),
        size: serde_json::json!({ "vpcs": 1, "vpns": 0, "cards": cards }),
        toml: t,
        cards: "",
        input: "instance:src".into(),
        output: "instance:dst".into(),
        frames: (0..FLOWS).map(|j| frame(j, src, dst)).collect(),
        count_rx: false,
        stages: &["route", "verify-recv", "decap"],
    }
}

// ----- running -----

/// What one `vpcemu run` reported.
struct Run {
    stats: Stats,
    rx: u64,
    tx: u64,
    drops: Vec<(String, u64)>,
    seconds: f64,
    tsc_hz: f64,
    /// The share of its life the worker thread spent running rather than waiting for a
    /// CPU that other processes held (1.0 on an idle machine).
    cpu_share: f64,
}

impl Run {
    fn counted(&self, w: &World) -> u64 {
        if w.count_rx {
            self.rx
        } else {
            self.tx
        }
    }

    fn pps(&self, w: &World) -> f64 {
        self.counted(w) as f64 / self.seconds
    }

    /// Packets per second of the worker's own running time.
    fn cpu_pps(&self, w: &World) -> f64 {
        self.pps(w) / self.cpu_share
    }

    fn dropped(&self, reason: Option<&str>) -> u64 {
        self.drops.iter().filter(|(r, _)| reason.is_none_or(|x| r == x)).map(|(_, n)| n).sum()
    }

    fn describe(&self) -> String {
        let drops: Vec<String> = self.drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
        format!("in rx {}, out tx {}, drops [{}]", self.rx, self.tx, drops.join(", "))
    }
}

/// Write the run file of `w` with `rx_vdev` as its input port.
fn topology(s: &Setup, w: &World, rx_vdev: &str, tag: &str) -> Result<PathBuf, String> {
    let mut t = dataplane();
    t.push_str(&w.toml);
    let _ = write!(
        t,
        "[[port]]\nname = \"in\"\nvdev = \"{rx_vdev}\"\nattach = \"{}\"\n\n\
         [[port]]\nname = \"out\"\nvdev = \"net_null0,no-rx=1\"\nattach = \"{}\"\n",
        w.input, w.output
    );
    let path = s.work.join(format!("scale-{}-{tag}.toml", w.name));
    std::fs::write(&path, t).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn vpcemu_run(s: &Setup, w: &World, topo: &Path, extra: &[&str]) -> Result<Run, String> {
    let json = s.work.join("scale-stats.json");
    let _ = std::fs::remove_file(&json);
    let mut cmd = Command::new(s.vpcemu);
    cmd.args(["run", topo.to_str().unwrap_or_default(), "--stats-json"]).arg(&json).args(extra);
    if !w.cards.is_empty() {
        cmd.args(["--cards", w.cards]);
    }
    let (ok, _, err, cpu_share) = run_sampled(&mut cmd, &s.work.join("scale-log"))?;
    if !ok {
        return Err(format!("{}: vpcemu run failed: {}", w.name, err.trim()));
    }
    let stats = Stats::read(&json)?;
    let port = |name: &str| stats.port(name).ok_or(format!("no port {name} in the stats"));
    let (rx, tx) = (port("in")?.rx, port("out")?.tx);
    let drops = stats.nonzero_drops();
    let (seconds, tsc_hz) = stats.run_figures()?;
    Ok(Run { stats, rx, tx, drops, seconds, tsc_hz, cpu_share })
}

/// Send the pcap once: every frame must come out, nothing dropped.
fn check(s: &Setup, w: &World, pcap: &Path) -> Result<(), String> {
    let topo = topology(s, w, &format!("net_pcap0,rx_pcap={}", pcap.display()), "check")?;
    // 2 s without a packet ends it (500 ms stopped a check half way on a loaded machine).
    let r = vpcemu_run(s, w, &topo, &["--until-idle", "2000", "--no-stage-timing"])?;
    let n = w.frames.len() as u64;
    if r.rx != n || r.tx != n || r.dropped(None) != 0 {
        return Err(format!("{} check: {n} frames sent once: {}", w.name, r.describe()));
    }
    eprintln!("vpcemu-bench: {}: check passed ({n} frames in, {n} out, no drop)", w.name);
    Ok(())
}

/// A measured run must have moved most of its input the expected way: out of the output
/// port, or (ESP replays) dropped as a replay.
fn sound(w: &World, r: &Run) -> Result<(), String> {
    let moved = if w.count_rx { r.dropped(Some("esp_replay")) + r.tx } else { r.tx };
    if r.rx == 0 || moved * 10 < r.rx * 9 {
        return Err(format!("{}: most packets did not go the expected way: {}", w.name, r.describe()));
    }
    Ok(())
}

/// Measure a small and a large world of one part, alternating; returns their two rows.
fn pair(s: &Setup, small: &World, large: &World) -> Result<Vec<Row>, String> {
    let mut inputs = Vec::new();
    for w in [small, large] {
        let pcap = s.work.join(format!("scale-{}.pcap", w.name));
        traffic::write_pcap(&pcap, &w.frames).map_err(|e| format!("{}: {e}", pcap.display()))?;
        check(s, w, &pcap)?;
        let rx = format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display());
        inputs.push((topology(s, w, &rx, "run")?, rx));
    }
    let secs = format!("{}", s.seconds);
    let (mut runs, mut pmd): ([Vec<Run>; 2], Vec<f64>) = ([Vec::new(), Vec::new()], Vec::new());
    for _ in 0..s.repeat.max(1) {
        for (k, w) in [small, large].into_iter().enumerate() {
            let r = vpcemu_run(s, w, &inputs[k].0, &["--duration", &secs])?;
            sound(w, &r)?;
            runs[k].push(r);
        }
        pmd.push(testpmd_io(&inputs[0].1, "net_null0,no-rx=1", Duration::from_secs_f64(s.seconds), small.frames.len())?);
    }
    let pmd = median(pmd);
    let [small_runs, large_runs] = runs;
    let figures = |w: &World, mut runs: Vec<Run>| {
        let pps = median(runs.iter().map(|r| r.pps(w)).collect::<Vec<f64>>());
        let cpu_pps = median(runs.iter().map(|r| r.cpu_pps(w)).collect::<Vec<f64>>());
        let shares: Vec<f64> = runs.iter().map(|r| (r.cpu_share * 1000.0).round() / 1000.0).collect();
        runs.sort_by(|a, b| a.pps(w).total_cmp(&b.pps(w)));
        let mid = runs.swap_remove(runs.len() / 2);
        (pps, cpu_pps, shares, mid)
    };
    let (small_pps, small_cpu_pps, small_shares, small_mid) = figures(small, small_runs);
    let (large_pps, large_cpu_pps, large_shares, large_mid) = figures(large, large_runs);
    let hz = small_mid.tsc_hz;
    let row = |w: &World, pps: f64, cpu_pps: f64, shares: Vec<f64>, mid: &Run| {
        let mut row = Row::new(w.name.clone());
        row.mpps = Some(pps / 1e6);
        row.cycles_per_packet = Some(hz / pps);
        row.with("cpu_cycles_per_packet", hz / cpu_pps)
            .with("worker_cpu_share", shares)
            .with("world", w.size.clone())
            .with("counted", if w.count_rx { "rx" } else { "tx" })
            .with("flows", w.frames.len() as u64)
            .with("testpmd_mpps", pmd / 1e6)
            .with("repeats", s.repeat.max(1) as u64)
            .with("stages", mid.stats.stage_figures(w.stages, &["p50_ns", "p99_ns"]))
    };
    let mut first = row(small, small_pps, small_cpu_pps, small_shares, &small_mid);
    first.baseline = Some("dpdk-testpmd --forward-mode=io".into());
    first.baseline_mpps = Some(pmd / 1e6);
    first.ratio = Some(small_pps / pmd);
    let mut second = row(large, large_pps, large_cpu_pps, large_shares, &large_mid);
    second.baseline = Some(small.name.clone());
    second.baseline_mpps = Some(small_pps / 1e6);
    second.ratio = Some(large_pps / small_pps);
    let second = second.with("cycles_ratio", small_pps / large_pps).with("cpu_cycles_ratio", small_cpu_pps / large_cpu_pps);
    Ok(vec![first, second])
}

/// Run the scenario `name` (one of [`NAMES`]).
pub fn run(s: &Setup, name: &str) -> Result<Vec<Row>, String> {
    let parts: &[Part] = match name {
        "scale" => &[Part::Nitro, Part::Blackfoot, Part::Fabric],
        "scale-nitro" => &[Part::Nitro],
        "scale-blackfoot" => &[Part::Blackfoot],
        "scale-fabric" => &[Part::Fabric],
        _ => return Err(format!("unknown scenario {name:?}")),
    };
    let mut rows = Vec::new();
    for part in parts {
        let (small, large) = match part {
            Part::Nitro => (nitro_world(1), nitro_world(LARGE_VPCS)),
            Part::Blackfoot => (blackfoot_world(1)?, blackfoot_world(LARGE_VPNS)?),
            Part::Fabric => (fabric_world(2), fabric_world(LARGE_CARDS)),
        };
        rows.extend(pair(s, &small, &large)?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worlds load, and their traffic is what the scenario says.
    #[test]
    fn worlds_load() {
        for w in [nitro_world(LARGE_VPCS), blackfoot_world(LARGE_VPNS).unwrap(), fabric_world(LARGE_CARDS)] {
            let text = format!("{}{}", dataplane(), w.toml);
            let t = mapping_client::Topology::from_str(&text, "scale.toml").unwrap_or_else(|e| panic!("{}: {e}", w.name));
            assert_eq!(w.frames.len(), FLOWS as usize);
            match w.size["cards"].as_u64() {
                Some(64) => assert_eq!(t.hosts().len(), 64),
                _ => assert!(t.vpcs().len() >= 100),
            }
        }
        // Every ESP frame parses with one of the VPNs' inbound SPIs.
        let w = blackfoot_world(LARGE_VPNS).unwrap();
        for f in &w.frames {
            let spi = besp::parse_spi(&f[34..]).unwrap();
            assert!((8193..8193 + LARGE_VPNS).contains(&spi));
        }
    }
}
