//! Scenarios `blackfoot-nat`, `blackfoot-vlan`, `blackfoot-endpoint` and
//! `blackfoot-esp-64`, `-512`, `-1400`, `-imix`: the Blackfoot edge's underlay-in pipeline
//! (verify-recv, decap, then NAT, 802.1Q, endpoint re-encap or ESP encrypt) in
//! `vpcemu run --cards edge-1` on one worker, net_pcap (infinite_rx) -> net_null (no-rx).
//!
//! The world: one edge `edge-1` (PA 198.18.255.1) holding VPC `red`'s (10.0.0.0/16)
//! internet gateway, its VPN to 172.16.0.0/16, its Direct Connect VIF (VLAN 101) to
//! 192.168.0.0/16 and its S3 gateway endpoint for 198.51.100.128/25; `--edge-instances`
//! instances (default 16384) spread over 64 hosts, each with its own Elastic IP. Only the
//! edge runs in the process: its underlay port replays Geneve frames the hosts would send
//! (outer source = the host of the inner source, VNI = source VPC = red), one frame per
//! instance, so every frame has its own source (and, for NAT, its own Elastic IP). Inner
//! packets are IPv4/UDP with correct checksums, DF set; "64-byte" means a 64-byte inner
//! IPv4 packet (122-byte Geneve frame in, 78-byte Ethernet frame out to the internet).
//!
//! Baselines, measured in the same run, alternating with vpcemu:
//! - every scenario: `dpdk-testpmd --forward-mode=io` on the same vdevs (the same Geneve
//!   frames, one way); `ratio` = Mpps / testpmd Mpps for nat, vlan and endpoint;
//! - ESP: vpcemu runs with its default `--esp-cipher auto` (DPDK's ipsec_mb AES-GCM, its
//!   library called directly, and ring's for the lengths from which ring's measured faster
//!   when the run started) in the main rows, `--esp-cipher aesni-gcm` in the `-aesni-gcm`
//!   rows and `--esp-cipher ring` in the `-ring` rows;
//!   `dpdk-test-crypto-perf` with the ipsec_mb `crypto_aesni_gcm` driver, AES-128-GCM
//!   encrypt (8-byte AAD, 16-byte ICV, bursts of 32, one lcore) at the same buffer size, or
//!   with `--imix` at the same sizes and weights, three runs per repeat round, the median
//!   of all of them (one run moves more than our changes do); one more run per round at
//!   the bytes ESP encrypts (inner packet, padding, trailer), reported for information.
//!   `gbps` = inner IPv4 bytes encrypted per second * 8 / 1e9, crypto-perf's `Gbps`
//!   counts its buffer bytes the same way; `ratio` = gbps / baseline_gbps.
//!
//! Before measuring, a check run (for ESP one per cipher) sends the pcap once through the
//! edge into a tx_pcap and verifies every output frame (count, port, drops; NAT source = the sender's Elastic IP
//! and checksums right; ESP decrypted with the SA's key back to the sent packet; 802.1Q
//! tag and router MAC; endpoint Geneve to the front end with the endpoint ID). Every
//! measured run must then send most received packets out of the expected port, or the
//! scenario fails.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use blackfoot::esp::{self as besp, InboundSa};
use mapping_client::topology::SaConfig;
use wire::ethernet::EthernetAddress;
use wire::{vpc, PacketBuf, TestBuffer};

use crate::dpdk_tools::{crypto_perf_gcm, run_profiled, testpmd_io_cpu, CryptoBuffers, CryptoPerf, CRYPTO_PERF_DRIVER};
use crate::profile::{self, Profile};
use crate::rate_matched;
use crate::report::{median, Row, Stats};
use vpcemu::runtime::engine::DEFAULT_STAGE_TIMING_SAMPLE_US;
use crate::traffic;

/// The scenarios of this module.
pub const NAMES: &[&str] = &[
    "blackfoot-nat",
    "blackfoot-vlan",
    "blackfoot-endpoint",
    "blackfoot-esp-64",
    "blackfoot-esp-512",
    "blackfoot-esp-1400",
    "blackfoot-esp-imix",
];

/// Hosts the instances are spread over.
pub const HOSTS: u32 = 64;
/// Most instances the /16 VPC holds here (its addresses .0.4 and up, below the broadcast).
pub const MAX_INSTANCES: u32 = 65_531;
/// Inner IPv4 packet size of the nat, vlan and endpoint scenarios.
pub const SMALL_INNER: usize = 64;
/// The IMIX: (inner IPv4 bytes, weight), 7:4:1 of 64/576/1400 (mean 346 bytes).
pub const IMIX: [(usize, u32); 3] = [(64, 7), (576, 4), (1400, 1)];

const EDGE: &str = "edge-1";
const EDGE_PA: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);
const VNI: u32 = 101;
const VPN_LOCAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const VPN_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const SPI_OUT: u32 = 4097;
/// Test keys, public on purpose (as in examples/story-world.toml): 16-byte AES-128 key,
/// then the 4-byte RFC 4106 salt.
const KEY_OUT: &str = "000102030405060708090a0b0c0d0e0f10111213";
const SPI_IN: u32 = 8193;
const KEY_IN: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3";
const DX_VLAN: u16 = 101;
const DX_ROUTER_MAC: EthernetAddress = EthernetAddress([0x02, 0xdc, 0, 0, 0, 0x01]);
const ENDPOINT_ID: u64 = 0x0a1b_2c3d_4e5f_6a7b;
const FRONT_END_PA: Ipv4Addr = Ipv4Addr::new(198, 18, 254, 1);

/// Where the scenario's packets leave the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// Internet gateway: SNAT to the Elastic IP.
    Internet,
    /// Direct Connect: 802.1Q.
    Dx,
    /// S3 gateway endpoint: Geneve with the endpoint ID.
    Endpoint,
    /// VPN: ESP tunnel mode.
    Vpn,
}

impl Way {
    /// The `[[port]]` name (and stats key) of the expected output.
    fn port(self) -> &'static str {
        match self {
            Way::Internet | Way::Vpn => "internet",
            Way::Dx => "dx",
            Way::Endpoint => "services",
        }
    }

    /// The stage that tells the ways apart.
    fn stage(self) -> &'static str {
        match self {
            Way::Internet => "nat",
            Way::Dx => "vlan",
            Way::Endpoint => "endpoint",
            Way::Vpn => "esp-encrypt",
        }
    }

    /// The outside destination of flow `j`: in the VPC's route for this way.
    fn dst(self, j: u32) -> Ipv4Addr {
        let (hi, lo) = ((j >> 8) as u8, j as u8);
        match self {
            Way::Internet => Ipv4Addr::new(93, 184, hi, lo),
            Way::Dx => Ipv4Addr::new(192, 168, hi, lo),
            Way::Endpoint => Ipv4Addr::new(198, 51, 100, 128 | (j % 128) as u8),
            Way::Vpn => Ipv4Addr::new(172, 16, hi, lo),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Sizes {
    Fixed(usize),
    Imix,
}

struct Scenario {
    name: &'static str,
    way: Way,
    sizes: Sizes,
}

fn scenario(name: &str) -> Option<Scenario> {
    let (way, sizes) = match name {
        "blackfoot-nat" => (Way::Internet, Sizes::Fixed(SMALL_INNER)),
        "blackfoot-vlan" => (Way::Dx, Sizes::Fixed(SMALL_INNER)),
        "blackfoot-endpoint" => (Way::Endpoint, Sizes::Fixed(SMALL_INNER)),
        "blackfoot-esp-64" => (Way::Vpn, Sizes::Fixed(64)),
        "blackfoot-esp-512" => (Way::Vpn, Sizes::Fixed(512)),
        "blackfoot-esp-1400" => (Way::Vpn, Sizes::Fixed(1400)),
        "blackfoot-esp-imix" => (Way::Vpn, Sizes::Imix),
        _ => return None,
    };
    let name = NAMES.iter().copied().find(|n| *n == name)?;
    Some(Scenario { name, way, sizes })
}

/// The scenario's setup: the common one and its own size.
pub struct Setup<'a> {
    pub run: crate::report::Setup<'a>,
    /// Instances (each with an Elastic IP) in the world, and flows in the traffic.
    pub instances: u32,
}

/// The i-th instance: (address, host index).
fn instance(i: u32) -> (Ipv4Addr, u32) {
    let k = i + 4;
    (Ipv4Addr::new(10, 0, (k >> 8) as u8, k as u8), i % HOSTS)
}

/// The i-th instance's Elastic IP.
fn elastic_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(52, (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

fn host_pa(h: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, (h >> 8) as u8, h as u8)
}

fn sa_config(spi: u32, hex: &str) -> Result<SaConfig, String> {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let key: [u8; 16] = bytes.get(..16).and_then(|k| k.try_into().ok()).ok_or("bad key length")?;
    let salt: [u8; 4] = bytes.get(16..20).and_then(|k| k.try_into().ok()).ok_or("bad key length")?;
    Ok(SaConfig { spi, key, salt })
}

/// The world, without `[dataplane]` and ports (a few MB: written afresh for each run).
fn world(s: &Setup) -> String {
    let mut t = String::with_capacity(s.instances as usize * 160 + 4096);
    for h in 0..HOSTS {
        let _ = write!(t, "[[host]]\nname = \"host-{h}\"\npa = \"{}\"\n\n", host_pa(h));
    }
    let _ = write!(t, "[[edge]]\nname = \"{EDGE}\"\npa = \"{EDGE_PA}\"\n\n");
    let _ = write!(
        t,
        "[[vpc]]\nname = \"red\"\nvni = {VNI}\ncidr = \"10.0.0.0/16\"\ninternet_gateway = \"{EDGE}\"\n\n\
         [[subnet]]\nname = \"red-a\"\nvpc = \"red\"\ncidr = \"10.0.0.0/16\"\n\n"
    );
    for i in 0..s.instances {
        let (ip, h) = instance(i);
        let _ = write!(t, "[[instance]]\nname = \"i{i}\"\nsubnet = \"red-a\"\nhost = \"host-{h}\"\nip = \"{ip}\"\n\n");
    }
    for i in 0..s.instances {
        let _ = write!(t, "[[elastic_ip]]\nip = \"{}\"\ninstance = \"i{i}\"\n\n", elastic_ip(i));
    }
    let _ = write!(
        t,
        "[[vpn]]\nname = \"vpn-red\"\nvpc = \"red\"\nedge = \"{EDGE}\"\nlocal = \"{VPN_LOCAL}\"\n\
         customer_gateway = \"{VPN_GATEWAY}\"\nremote_prefixes = [\"172.16.0.0/16\"]\n\
         outbound = {{ spi = {SPI_OUT}, key = \"{KEY_OUT}\" }}\ninbound = {{ spi = {SPI_IN}, key = \"{KEY_IN}\" }}\n\n"
    );
    let _ = write!(
        t,
        "[[dx]]\nname = \"dx-red\"\nvpc = \"red\"\nedge = \"{EDGE}\"\nvlan = {DX_VLAN}\n\
         remote_prefixes = [\"192.168.0.0/16\"]\nrouter_mac = \"{DX_ROUTER_MAC}\"\n\n"
    );
    let _ = write!(
        t,
        "[[endpoint]]\nid = \"vpce-{ENDPOINT_ID:016x}\"\nvpc = \"red\"\nedge = \"{EDGE}\"\nservice = \"s3\"\n\
         prefixes = [\"198.51.100.128/25\"]\nfront_end_pa = \"{FRONT_END_PA}\"\n\n"
    );
    t
}

/// The run file: `[dataplane]`, the world, the edge's four ports.
fn topology(s: &Setup, tag: &str, vdevs: &[(&str, String, String)]) -> Result<PathBuf, String> {
    let mut t = vpcemu::testkit::dataplane("0-1", 1024, "auto");
    t.push_str(&world(s));
    for (name, vdev, attach) in vdevs {
        let _ = write!(t, "[[port]]\nname = \"{name}\"\nvdev = \"{vdev}\"\nattach = \"{attach}\"\n\n");
    }
    let path = s.run.work.join(format!("blackfoot-{tag}.toml"));
    std::fs::write(&path, t).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The edge's ports: `underlay` (the given RX vdev) and `internet`, `dx`, `services`, each
/// net_null (no-rx) unless `capture` names one to write to a tx_pcap instead.
fn ports(rx: &str, capture: Option<(&str, &Path)>) -> Vec<(&'static str, String, String)> {
    let mut v = vec![("underlay", rx.to_string(), format!("underlay:{EDGE}"))];
    for (k, name) in ["internet", "dx", "services"].into_iter().enumerate() {
        let vdev = match capture {
            Some((c, path)) if c == name => format!("net_pcap1,tx_pcap={}", path.display()),
            _ => format!("net_null{k},no-rx=1"),
        };
        v.push((name, vdev, format!("edge:{EDGE}:{name}")));
    }
    v
}

/// Inner packet sizes for `n` flows: fixed, or the IMIX weights spread evenly (smooth
/// weighted round robin, so every run of `sum of weights` packets holds the exact mix).
fn sizes_for(sizes: Sizes, n: usize) -> Vec<usize> {
    match sizes {
        Sizes::Fixed(len) => vec![len; n],
        Sizes::Imix => {
            let total: i64 = IMIX.iter().map(|(_, w)| i64::from(*w)).sum();
            let mut current = [0i64; IMIX.len()];
            (0..n)
                .map(|_| {
                    for (c, (_, w)) in current.iter_mut().zip(IMIX) {
                        *c += i64::from(w);
                    }
                    let best = (0..IMIX.len()).max_by_key(|&k| (current[k], -(k as i64))).unwrap_or(0);
                    current[best] -= total;
                    IMIX[best].0
                })
                .collect()
        }
    }
}

/// One flow: the inner packet the host sends, the Geneve frame carrying it.
struct Flow {
    index: u32,
    inner: Vec<u8>,
    frame: Vec<u8>,
}

fn flows(s: &Setup, sc: &Scenario) -> Vec<Flow> {
    let mut n = s.instances as usize;
    if matches!(sc.sizes, Sizes::Imix) {
        // Whole cycles of the mix, so the file's mean is the mix's mean.
        let cycle: usize = IMIX.iter().map(|(_, w)| *w as usize).sum();
        n = (n / cycle).max(1) * cycle;
    }
    sizes_for(sc.sizes, n)
        .into_iter()
        .enumerate()
        .map(|(j, len)| {
            let j = j as u32;
            let (src, h) = instance(j % s.instances);
            let inner = traffic::udp_ipv4(src, sc.way.dst(j), 1024 + (j % 64_000) as u16, 5001, j as u16, len);
            let encap = vpc::Encap {
                src_mac: wire::vpc::card_mac(host_pa(h)),
                dst_mac: wire::vpc::card_mac(EDGE_PA),
                src_pa: host_pa(h),
                dst_pa: EDGE_PA,
                vni: VNI,
                source_vpc: VNI,
            };
            let frame = traffic::geneve(&encap, &inner);
            Flow { index: j % s.instances, inner, frame }
        })
        .collect()
}

/// What one `vpcemu run` reported.
struct Run {
    stats: Stats,
    rx: u64,
    out: u64,
    /// Packets sent by the other outside ports (misrouted).
    other: u64,
    drops: Vec<(String, u64)>,
    seconds: f64,
    tsc_hz: f64,
    /// The share of its life the worker thread ran (it waits for a CPU on a busy machine).
    cpu_share: f64,
    /// Its worker thread's profile (`--profile`, the default variant's runs).
    profile: Option<Profile>,
}

impl Run {
    fn pps(&self) -> f64 {
        self.out as f64 / self.seconds
    }

    /// Packets per second of the worker's own running time.
    fn cpu_pps(&self) -> f64 {
        self.pps() / self.cpu_share
    }

    fn dropped(&self) -> u64 {
        self.drops.iter().map(|(_, n)| n).sum()
    }

    fn describe(&self, way: Way) -> String {
        let drops: Vec<String> = self.drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
        format!(
            "underlay rx {}, {} tx {}, other outside ports tx {}, drops [{}]",
            self.rx,
            way.port(),
            self.out,
            self.other,
            if drops.is_empty() { "none".to_string() } else { drops.join(", ") }
        )
    }
}

fn vpcemu_run(s: &Setup, topo: &Path, way: Way, extra: &[&str]) -> Result<Run, String> {
    vpcemu_run_profiled(s, topo, way, extra, false)
}

/// [`vpcemu_run`], with its worker thread profiled when `profiled` and `--profile`.
fn vpcemu_run_profiled(s: &Setup, topo: &Path, way: Way, extra: &[&str], profiled: bool) -> Result<Run, String> {
    let json = s.run.work.join("blackfoot-stats.json");
    let _ = std::fs::remove_file(&json);
    let mut cmd = Command::new(s.run.vpcemu);
    cmd.args(["run", topo.to_str().unwrap_or_default(), "--cards", EDGE, "--stats-json"]).arg(&json).args(extra);
    let data = s.run.work.join("blackfoot-worker.perf.data");
    let profile_to = (profiled && profile::enabled()).then_some(data.as_path());
    let (ok, _, err, cpu_share, profile) = run_profiled(&mut cmd, &s.run.work.join("blackfoot-log"), profile_to)?;
    if !ok {
        return Err(format!("vpcemu run failed: {}", err.trim()));
    }
    let stats = Stats::read(&json)?;
    let rx = stats.port("underlay").ok_or("no underlay rx counter in the stats")?.rx;
    let out = stats.port(way.port()).ok_or("no output port counter in the stats")?.tx;
    let other = ["internet", "dx", "services"].iter().filter(|p| **p != way.port()).filter_map(|p| stats.port(p)).map(|c| c.tx).sum();
    let drops = stats.nonzero_drops();
    let (seconds, tsc_hz) = stats.run_figures()?;
    Ok(Run { stats, rx, out, other, drops, seconds, tsc_hz, cpu_share, profile })
}

/// Same IPv4/UDP packet except the TTL, the addresses and the checksums (each checked on
/// its own by the caller).
fn same_packet(sent: &[u8], got: &[u8]) -> bool {
    let masked = |p: &[u8]| -> Vec<u8> {
        let mut p = p.to_vec();
        for i in [8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 26, 27] {
            if let Some(b) = p.get_mut(i) {
                *b = 0;
            }
        }
        p
    };
    sent.len() == got.len() && masked(sent) == masked(got)
}

fn addr(p: &[u8], at: usize) -> Ipv4Addr {
    let mut a = [0u8; 4];
    if let Some(s) = p.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    Ipv4Addr::from(a)
}

/// Checksums of an IPv4/UDP packet verify.
fn checksums_ok(p: &[u8]) -> bool {
    p.len() >= 28
        && wire::checksum::ipv4_header_ok(&p[..20])
        && wire::checksum::tcp_udp_ipv4_ok(addr(p, 12), addr(p, 16), 17, &p[20..])
}

/// Check the outer layers of one output frame of `way`; returns the IPv4 packet it
/// carries (for ESP, decrypted with the VPN's outbound key), or why it is wrong.
fn inner_of(way: Way, frame: &[u8], sa: &mut Option<InboundSa<blackfoot::aead::RingAesGcm>>) -> Result<Vec<u8>, String> {
    let eth_type = |f: &[u8], at: usize| f.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    match way {
        Way::Internet | Way::Vpn => {
            if frame.get(..6) != Some(&blackfoot::INTERNET_NEXT_HOP_MAC.0[..]) || eth_type(frame, 12) != Some(0x0800) {
                return Err("not Ethernet/IPv4 to the internet next hop".into());
            }
            let ip = &frame[14..];
            if way == Way::Internet {
                return Ok(ip.to_vec());
            }
            if ip.len() < 20 || ip[9] != 50 || addr(ip, 12) != VPN_LOCAL || addr(ip, 16) != VPN_GATEWAY {
                return Err("not ESP from the tunnel address to the customer gateway".into());
            }
            if !wire::checksum::ipv4_header_ok(&ip[..20]) || usize::from(u16::from_be_bytes([ip[2], ip[3]])) != ip.len() {
                return Err("outer IPv4 header checksum or length wrong".into());
            }
            let sa = sa.as_mut().ok_or("no SA")?;
            let mut buf = TestBuffer::from_slice(&ip[20..]);
            besp::decrypt(&mut buf, sa).map_err(|e| format!("ESP decrypt with the VPN's key: {e:?}"))?;
            if besp::tunnel_len(buf.len()) != ip.len() {
                return Err("tunnel length is not tunnel_len(inner)".into());
            }
            Ok(buf.data().to_vec())
        }
        Way::Dx => {
            if frame.get(..6) != Some(&DX_ROUTER_MAC.0[..])
                || eth_type(frame, 12) != Some(0x8100)
                || eth_type(frame, 14).map(|t| t & 0x0fff) != Some(DX_VLAN)
                || eth_type(frame, 16) != Some(0x0800)
            {
                return Err(format!("not 802.1Q VLAN {DX_VLAN} IPv4 to the VIF's router MAC"));
            }
            Ok(frame[18..].to_vec())
        }
        Way::Endpoint => {
            let o = vpc::parse_outer(frame).map_err(|e| format!("not Geneve: {e:?}"))?;
            if o.src_pa != EDGE_PA || o.dst_pa != FRONT_END_PA || o.vni != VNI || o.source_vpc != VNI {
                return Err("Geneve not from the edge to the front end in the VPC".into());
            }
            if o.endpoint_id != Some(ENDPOINT_ID) {
                return Err(format!("endpoint ID {:x?}, not {ENDPOINT_ID:x}", o.endpoint_id));
            }
            frame.get(o.inner_offset..o.inner_offset + o.inner_len).map(<[u8]>::to_vec).ok_or("truncated".into())
        }
    }
}

/// Send every flow once through the edge into a capture and check each frame that came
/// out, and that nothing was dropped or went elsewhere.
fn check(s: &Setup, sc: &Scenario, flows: &[Flow], pcap: &Path, cipher: &str) -> Result<u64, String> {
    let out_pcap = s.run.work.join(format!("{}-check-out.pcap", sc.name));
    let _ = std::fs::remove_file(&out_pcap);
    let rx = format!("net_pcap0,rx_pcap={}", pcap.display());
    let topo = topology(s, "check", &ports(&rx, Some((sc.way.port(), &out_pcap))))?;
    // 2 s without a packet ends it: 500 ms stopped a check half way on a loaded machine
    // (the worker descheduled that long).
    let run = vpcemu_run(s, &topo, sc.way, &["--until-idle", "2000", "--no-stage-timing", "--esp-cipher", cipher])?;
    let n = flows.len() as u64;
    if run.rx != n || run.out != n || run.other != 0 || run.dropped() != 0 {
        return Err(format!("{} check: {} flows sent once: {}", sc.name, n, run.describe(sc.way)));
    }
    let bytes = std::fs::read(&out_pcap).map_err(|e| format!("{}: {e}", out_pcap.display()))?;
    let reader = wire::pcap::Reader::new(&bytes).map_err(|e| format!("{}: {e:?}", out_pcap.display()))?;
    // Expected: (source as it leaves, destination) -> (flow, sent inner packet).
    let mut expect: HashMap<(Ipv4Addr, Ipv4Addr), &Flow> = HashMap::with_capacity(flows.len());
    for f in flows {
        let src = if sc.way == Way::Internet { elastic_ip(f.index) } else { addr(&f.inner, 12) };
        expect.insert((src, addr(&f.inner, 16)), f);
    }
    let mut sa = match sc.way {
        Way::Vpn => Some(InboundSa::with_ring(&sa_config(SPI_OUT, KEY_OUT)?).map_err(|_| "bad key")?),
        _ => None,
    };
    let mut seen = 0u64;
    for (k, rec) in reader.enumerate() {
        let rec = rec.map_err(|e| format!("{}: record {k}: {e:?}", out_pcap.display()))?;
        let bad = |why: String| format!("{} check ({cipher}): output frame {k}: {why}", sc.name);
        let got = inner_of(sc.way, rec.data, &mut sa).map_err(bad)?;
        let key = (addr(&got, 12), addr(&got, 16));
        let f = expect.remove(&key).ok_or_else(|| bad(format!("unexpected or repeated {} -> {}", key.0, key.1)))?;
        if !same_packet(&f.inner, &got) || !checksums_ok(&got) {
            return Err(bad(format!("inner packet {} -> {} differs from the one sent or its checksums fail", key.0, key.1)));
        }
        seen += 1;
    }
    if seen != n {
        return Err(format!("{} check: {seen} frames captured, {n} sent", sc.name));
    }
    let _ = std::fs::remove_file(&out_pcap);
    Ok(seen)
}

/// The run whose rate is the median (for its stage figures).
fn median_run(mut v: Vec<Run>) -> Option<Run> {
    v.sort_by(|a, b| a.pps().total_cmp(&b.pps()));
    let mid = v.len() / 2;
    v.into_iter().nth(mid)
}

/// A measured run must send most of what it received out of the expected port.
fn sound(sc: &Scenario, run: &Run) -> Result<(), String> {
    if run.rx == 0 || run.out * 2 < run.rx || run.other * 100 > run.rx {
        return Err(format!("{}: most packets did not leave by the {} port: {}", sc.name, sc.way.port(), run.describe(sc.way)));
    }
    Ok(())
}

/// crypto-perf runs per repeat round (all in the baseline's median).
const CRYPTO_PERF_RUNS: usize = 3;

/// The smallest and largest of `v` (0, 0 when empty).
fn spread(v: impl Iterator<Item = f64>) -> (f64, f64) {
    v.fold(None, |a: Option<(f64, f64)>, x| Some(a.map_or((x, x), |(lo, hi)| (lo.min(x), hi.max(x))))).unwrap_or((0.0, 0.0))
}

/// The bytes ESP encrypts of an inner packet of `inner` bytes: the packet, its padding
/// and the 2-byte trailer (68 for 64, 1404 for 1400).
fn esp_plaintext_len(inner: usize) -> usize {
    besp::tunnel_len(inner) - besp::HEAD_LEN - wire::esp::GCM_ICV_LEN
}

/// [`crypto_buffers`] at the bytes ESP encrypts ([`esp_plaintext_len`]).
fn esp_buffers(sizes: Sizes) -> CryptoBuffers {
    match sizes {
        Sizes::Fixed(n) => CryptoBuffers::Fixed(esp_plaintext_len(n)),
        Sizes::Imix => CryptoBuffers::Imix(IMIX.iter().map(|&(n, w)| (esp_plaintext_len(n), w)).collect()),
    }
}

fn crypto_buffers(sizes: Sizes) -> CryptoBuffers {
    match sizes {
        Sizes::Fixed(n) => CryptoBuffers::Fixed(n),
        Sizes::Imix => CryptoBuffers::Imix(IMIX.to_vec()),
    }
}

/// Run one scenario; returns its rows (stage timing as by default, on every burst, off;
/// for ESP also each cipher alone).
pub fn run(s: &Setup, name: &str) -> Result<Vec<Row>, String> {
    let sc = scenario(name).ok_or_else(|| format!("unknown scenario {name:?}"))?;
    if s.instances == 0 || s.instances > MAX_INSTANCES {
        return Err(format!("--edge-instances must be 1 ..= {MAX_INSTANCES}"));
    }
    let flows = flows(s, &sc);
    let pcap = s.run.work.join(format!("{}-{}.pcap", sc.name, s.instances));
    let frames: Vec<Vec<u8>> = flows.iter().map(|f| f.frame.clone()).collect();
    traffic::write_pcap(&pcap, &frames).map_err(|e| format!("{}: {e}", pcap.display()))?;
    let inner_bytes = flows.iter().map(|f| f.inner.len()).sum::<usize>() as f64 / flows.len() as f64;
    let frame_bytes = flows.iter().map(|f| f.frame.len()).sum::<usize>() as f64 / flows.len() as f64;

    let esp = sc.way == Way::Vpn;
    // ESP runs with `vpcemu run`'s default cipher (`auto`: DPDK's ipsec_mb AES-GCM, and
    // ring's for the lengths where it measured faster at start) and, in extra rows, with
    // each alone (`-aesni-gcm`, `-ring`); the other paths do no crypto.
    let ciphers: &[&str] = if esp { &["auto", "aesni-gcm", "ring"] } else { &["auto"] };
    for cipher in ciphers {
        let checked = check(s, &sc, &flows, &pcap, cipher)?;
        let with = if esp { format!(", ESP cipher {cipher}") } else { String::new() };
        eprintln!("vpcemu-bench: {}: check passed ({checked} frames out of the {} port verified{with})", sc.name, sc.way.port());
    }

    let rx = format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display());
    let topo = topology(s, "run", &ports(&rx, None))?;
    let secs = format!("{}", s.run.seconds);
    // crypto-perf runs a number of operations, not a time: size it from a short run so
    // that it lasts about as long as the other tools.
    let mut crypto_ops = 0u64;
    if esp {
        let cal = crypto_perf_gcm(&crypto_buffers(sc.sizes), 300_000)?;
        crypto_ops = ((cal.mops * 1e6 * s.run.seconds) as u64).max(300_000);
    }
    let (mut on, mut every, mut off, mut aesni, mut ring, mut pmd, mut pmd_cpu, mut crypto) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::<CryptoPerf>::new());
    let mut crypto_esp = Vec::<CryptoPerf>::new();
    let mut pmd_profiles = Vec::new();
    // Alternate the tools so that each sees the same machine conditions.
    for _ in 0..s.run.repeat.max(1) {
        let r = vpcemu_run_profiled(s, &topo, sc.way, &["--duration", &secs], true)?;
        sound(&sc, &r)?;
        on.push(r);
        let r = vpcemu_run(s, &topo, sc.way, &["--duration", &secs, "--stage-timing-sample-us", "0"])?;
        sound(&sc, &r)?;
        every.push(r);
        let r = vpcemu_run(s, &topo, sc.way, &["--duration", &secs, "--no-stage-timing"])?;
        sound(&sc, &r)?;
        off.push(r);
        if esp {
            let r = vpcemu_run(s, &topo, sc.way, &["--duration", &secs, "--esp-cipher", "aesni-gcm"])?;
            sound(&sc, &r)?;
            aesni.push(r);
            let r = vpcemu_run(s, &topo, sc.way, &["--duration", &secs, "--esp-cipher", "ring"])?;
            sound(&sc, &r)?;
            ring.push(r);
        }
        let data = s.run.work.join("testpmd-worker.perf.data");
        let profile_to = profile::enabled().then_some(data.as_path());
        let (pps, share, profile) =
            testpmd_io_cpu(&rx, "net_null0,no-rx=1", Duration::from_secs_f64(s.run.seconds), frames.len(), profile_to)?;
        pmd.push(pps);
        pmd_cpu.push(pps / share);
        pmd_profiles.push((pps / share, profile));
        if esp {
            // The baseline moves more between invocations than one vpcemu run does (the
            // other CPU's load): several runs a round, all in the median.
            for _ in 0..CRYPTO_PERF_RUNS {
                crypto.push(crypto_perf_gcm(&crypto_buffers(sc.sizes), crypto_ops)?);
            }
            // For information: the same at the bytes ESP encrypts (inner packet, padding,
            // trailer), which the ratio does not use.
            crypto_esp.push(crypto_perf_gcm(&esp_buffers(sc.sizes), crypto_ops)?);
        }
    }
    let (pmd, pmd_cpu) = (median(pmd), median(pmd_cpu));
    let crypto_cpu_cycles = median(crypto.iter().map(|c| c.cycles_per_buf * c.cpu_share).collect::<Vec<f64>>());
    let crypto_mops = median(crypto.iter().map(|c| c.mops).collect::<Vec<f64>>());
    let crypto_gbps = median(crypto.iter().map(|c| c.gbps).collect::<Vec<f64>>());
    let crypto_cycles = median(crypto.iter().map(|c| c.cycles_per_buf).collect::<Vec<f64>>());
    let crypto_buf = crypto.first().map(|c| c.buffer_bytes);
    let crypto_done = crypto.iter().map(|c| c.ops).min();
    let crypto_runs = crypto.len() as u64;
    let crypto_spread = spread(crypto.iter().map(|c| c.cycles_per_buf * c.cpu_share));
    let crypto_esp_cpu_cycles = median(crypto_esp.iter().map(|c| c.cycles_per_buf * c.cpu_share).collect::<Vec<f64>>());
    let crypto_esp_buf = crypto_esp.first().map(|c| c.buffer_bytes);
    let stages = ["verify-recv", "decap", sc.way.stage()];
    let mut rows = Vec::new();
    let variants = [("", on), ("-every-burst", every), ("-no-timing", off), ("-aesni-gcm", aesni), ("-ring", ring)];
    for (suffix, runs) in variants {
        if runs.is_empty() {
            continue;
        }
        let timing = suffix != "-no-timing";
        let pps = median(runs.iter().map(Run::pps).collect::<Vec<f64>>());
        let cpu_pps = median(runs.iter().map(Run::cpu_pps).collect::<Vec<f64>>());
        let mid = median_run(runs).ok_or("no runs")?;
        let hz = mid.tsc_hz;
        let mut row = Row::new(format!("{}{suffix}", sc.name));
        row.mpps = Some(pps / 1e6);
        row.cycles_per_packet = Some(hz / pps);
        let mut row = if esp {
            let gbps = pps * inner_bytes * 8.0 / 1e9;
            row.baseline = Some(format!("dpdk-test-crypto-perf {CRYPTO_PERF_DRIVER}"));
            row.baseline_mpps = Some(crypto_mops);
            row.gbps = Some(gbps);
            row.baseline_gbps = Some(crypto_gbps);
            row.ratio = Some(gbps / crypto_gbps);
            row.with("baseline_cycles_per_packet", crypto_cycles)
                .with("baseline_cpu_cycles_per_packet", crypto_cpu_cycles)
                .with("crypto_perf_buffer_bytes", crypto_buf)
                .with("crypto_perf_ops", crypto_done)
                .with("crypto_perf_runs", crypto_runs)
                .with("baseline_cpu_cycles_min", crypto_spread.0)
                .with("baseline_cpu_cycles_max", crypto_spread.1)
                .with("crypto_perf_esp_buffer_bytes", crypto_esp_buf)
                .with("baseline_esp_len_cpu_cycles_per_packet", crypto_esp_cpu_cycles)
                .with("testpmd_mpps", pmd / 1e6)
                .with("ratio_testpmd", pps / pmd)
        } else {
            row.baseline = Some("dpdk-testpmd --forward-mode=io".into());
            row.baseline_mpps = Some(pmd / 1e6);
            row.ratio = Some(pps / pmd);
            row.with("baseline_cycles_per_packet", hz / pmd).with("baseline_cpu_cycles_per_packet", hz / pmd_cpu)
        };
        row = row
            .with("edge_cycles_per_packet", hz / pps - hz / pmd)
            .with("cpu_cycles_per_packet", hz / cpu_pps)
            .with("edge_cpu_cycles_per_packet", hz / cpu_pps - hz / pmd_cpu)
            .with("instances", s.instances)
            .with("flows", flows.len() as u64)
            .with("inner_bytes", inner_bytes)
            .with("frame_bytes", frame_bytes)
            .with("output_port", sc.way.port())
            .with("dropped_fraction", mid.dropped() as f64 / mid.rx.max(1) as f64)
            .with("stage_timing", timing)
            .with("stage_timing_sample_us", timing.then_some(if suffix == "-every-burst" { 0 } else { DEFAULT_STAGE_TIMING_SAMPLE_US }))
            .with("repeats", s.run.repeat.max(1) as u64);
        if let Some(p) = &mid.profile {
            row = profile::with_profiles(row, (hz / mid.cpu_pps(), p), profile::median_of(&pmd_profiles, hz));
        }
        if suffix.is_empty() && !esp && rate_matched::enabled() {
            let m = rate_matched::measure(&s.run, &rx, frames.len(), hz / cpu_pps)?;
            row = rate_matched::with_matched(row, &m, hz / cpu_pps);
        }
        if sc.way == Way::Internet {
            row = row.with("elastic_ips", s.instances);
        }
        if esp {
            row = row.with("esp_cipher", mid.stats.run.as_ref().and_then(|r| r.esp_cipher.clone()).unwrap_or_else(|| "none".into()));
        }
        if matches!(sc.sizes, Sizes::Imix) {
            let mix: Vec<String> = IMIX.iter().map(|(b, w)| format!("{w}x{b}")).collect();
            row = row.with("imix", mix.join(" "));
        }
        if timing {
            row = row.with("stages", mid.stats.stage_figures(&stages, &["count", "timed", "p50_ns", "p99_ns"]));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imix_spreads_the_exact_mix() {
        let v = sizes_for(Sizes::Imix, 24);
        for cycle in v.chunks(12) {
            for (b, w) in IMIX {
                assert_eq!(cycle.iter().filter(|s| **s == b).count(), w as usize);
            }
        }
        assert_eq!(v.iter().sum::<usize>() as f64 / 24.0, 346.0);
    }

    #[test]
    fn names_parse() {
        for n in NAMES {
            assert!(scenario(n).is_some(), "{n}");
        }
        assert!(besp::tunnel_len(1400) <= blackfoot::INTERNET_MTU);
    }

    #[test]
    fn esp_plaintext_is_the_packet_padding_and_trailer() {
        assert_eq!(esp_plaintext_len(64), 68);
        assert_eq!(esp_plaintext_len(1400), 1404);
        assert_eq!(esp_plaintext_len(1402), 1404);
        assert_eq!(esp_plaintext_len(61), 64);
        assert_eq!(spread([3.0, 1.0, 2.0].into_iter()), (1.0, 3.0));
    }
}
