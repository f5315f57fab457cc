//! `vpcemu demo`: the story of ARCHITECTURE section 1 (steps 1-6) on a built-in world,
//! narrated. It runs the real engine: two hosts' Nitro cards on a worker lcore, joined by
//! the in-process fabric, with in-process ports as the instances' vNICs (so the demo can
//! send one packet at a time and change the mapping live between steps), a capture of
//! the fabric, and host B's underlay port to inject a forged packet on. Every step checks
//! what happened; the exit status is non-zero if any step misbehaved.

mod craft;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mapping_client::service::Command;
use mapping_client::topology::{Attach, Topology};
use wire::ethernet::EthernetAddress;
use wire::{PacketBuf, vpc};

use crate::runtime::engine::{Engine, EngineSpec};
use crate::runtime::plan::{PortIo, PortSpec};
use crate::testkit;

/// The built-in world: hosts A and B; VPCs red and yellow (peered) and green (not); the
/// edge blackfoot-1 (the story's world on lcores 0-1, hugepages if the machine has them).
pub fn world() -> String {
    format!("{}{}", testkit::dataplane("0-1", 512, "auto"), testkit::STORY_WORLD)
}

const RED1: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
const YELLOW1: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 20);
const GREEN1: Ipv4Addr = Ipv4Addr::new(10, 2, 1, 30);
const PA_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PA_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PA_EDGE: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);
const PA_S3: Ipv4Addr = Ipv4Addr::new(198, 18, 254, 1);
const EIP_RED1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const INTERNET_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
const TUNNEL_LOCAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const CUSTOMER_GW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const CUSTOMER_HOST: Ipv4Addr = Ipv4Addr::new(172, 16, 5, 5);
const DX_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 5);
const S3_HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
const ENDPOINT_ID: u64 = 0x0a1b_2c3d_4e5f_6a7b;
const INTERNET: &str = "blackfoot-1-internet";
const DX: &str = "blackfoot-1-dx";
const SERVICES: &str = "blackfoot-1-services";

fn mac_of(topo: &Topology, name: &str) -> EthernetAddress {
    EthernetAddress(topo.instance_by_name(name).map(|i| i.mac.0).unwrap_or([0; 6]))
}

struct Demo<'o> {
    engine: Engine,
    out: &'o mut dyn Write,
    alerts: Vec<u8>,
    alerts_seen: usize,
    failures: Vec<String>,
}

/// What one step observed.
#[derive(Default)]
struct Seen {
    delivered: BTreeMap<String, Vec<Vec<u8>>>,
    fabric: Vec<Vec<u8>>,
    drops: BTreeMap<String, u64>,
    alerts: Vec<serde_json::Value>,
}

impl Demo<'_> {
    fn say(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", line.as_ref());
    }

    fn check(&mut self, ok: bool, what: &str) {
        let mark = if ok { "ok  " } else { "FAIL" };
        self.say(format!("    [{mark}] {what}"));
        if !ok {
            self.failures.push(what.to_string());
        }
    }

    fn drops(&self) -> BTreeMap<String, u64> {
        self.engine.report().drops.iter().map(|(r, n)| (r.name().to_string(), *n)).collect()
    }

    /// Send frames on instance (or underlay) port `port`.
    fn send(&mut self, port: &str, frames: &[Vec<u8>]) {
        let Some(soft) = self.engine.soft_port(port).cloned() else {
            self.failures.push(format!("no port {port}"));
            return;
        };
        for f in frames {
            let Some(mut m) = self.engine.pool().alloc() else {
                self.failures.push("mempool exhausted".into());
                return;
            };
            if m.set_data(f).is_err() || soft.inject(m).is_err() {
                self.failures.push(format!("could not inject on {port}"));
            }
        }
    }

    /// Send `frames` on port `port` and return what one packet's passage showed.
    fn exchange(&mut self, port: &str, frames: &[Vec<u8>]) -> Seen {
        let before = self.drops();
        self.send(port, frames);
        self.observe(&before, 1)
    }

    /// Start a step of the story: a blank line and its title.
    fn step(&mut self, title: &str) {
        self.say("");
        self.say(title);
    }

    /// Wait until `want` packets came out of the ports (or the drop counters moved by
    /// `want` for the rest), then return what was seen since `before`.
    fn observe(&mut self, before: &BTreeMap<String, u64>, want: u64) -> Seen {
        let mut seen = Seen::default();
        let ports: Vec<String> =
            ["red-1", "yellow-1", "green-1", INTERNET, DX, SERVICES].iter().map(|s| s.to_string()).collect();
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            std::thread::sleep(Duration::from_millis(5));
            let mut alerts = std::mem::take(&mut self.alerts);
            self.engine.tick(&mut alerts);
            self.alerts = alerts;
            for p in &ports {
                if let Some(s) = self.engine.soft_port(p).cloned() {
                    while let Some(m) = s.collect() {
                        seen.delivered.entry(p.clone()).or_default().push(m.data().to_vec());
                    }
                }
            }
            if let Some(s) = self.engine.soft_port("fabric").cloned() {
                while let Some(m) = s.collect() {
                    seen.fabric.push(m.data().to_vec());
                }
            }
            let now = self.drops();
            seen.drops = now
                .iter()
                .filter_map(|(k, v)| {
                    let d = v - before.get(k).copied().unwrap_or(0);
                    (d > 0).then(|| (k.clone(), d))
                })
                .collect();
            let delivered: u64 = seen.delivered.values().map(|v| v.len() as u64).sum();
            let dropped: u64 = seen.drops.values().sum();
            if delivered + dropped >= want || Instant::now() > deadline {
                break;
            }
        }
        // Security alerts are written when their window closes; the demo flushes them.
        let mut alerts = std::mem::take(&mut self.alerts);
        self.engine.flush_alerts(&mut alerts);
        self.alerts = alerts;
        let text = String::from_utf8_lossy(&self.alerts[self.alerts_seen..]).into_owned();
        self.alerts_seen = self.alerts.len();
        seen.alerts = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        seen
    }

    fn show_fabric(&mut self, frames: &[Vec<u8>]) {
        for f in frames {
            match vpc::parse_outer(f) {
                Ok(o) => self.say(format!(
                    "    fabric    {} -> {}  Geneve VNI {} ({}), source-VPC option {} ({}), UDP {} -> 6081",
                    o.src_pa,
                    o.dst_pa,
                    o.vni,
                    self.vpc_name(o.vni),
                    o.source_vpc,
                    self.vpc_name(o.source_vpc),
                    o.src_port
                )),
                Err(e) => self.say(format!("    fabric    unparsable frame: {e}")),
            }
        }
    }

    fn vpc_name(&self, vni: u32) -> String {
        let t = self.engine.topology();
        t.vpc_by_vni(vni).and_then(|v| t.vpc(v)).map(|v| v.name.clone()).unwrap_or_else(|| format!("vni-{vni}"))
    }

    fn show_alerts(&mut self, alerts: &[serde_json::Value]) {
        for a in alerts {
            self.say(format!("    alert     {a}"));
        }
    }

    fn expect_drop(&mut self, seen: &Seen, reason: &str, src: Ipv4Addr, dst: Ipv4Addr) {
        let n = seen.drops.get(reason).copied().unwrap_or(0);
        self.check(n == 1 && seen.delivered.is_empty(), &format!("dropped in the trash can: {reason} ({n})"));
        let alert = seen.alerts.iter().find(|a| a["reason"] == reason);
        let ok = alert.is_some_and(|a| a["src"] == src.to_string() && a["dst"] == dst.to_string());
        let alerts = seen.alerts.clone();
        self.show_alerts(&alerts);
        self.check(ok, &format!("security alert raised: reason {reason}, src {src}, dst {dst}"));
    }
}

/// Run the demo, narrating to `out`. `Ok(true)` when every step behaved.
pub fn run(out: &mut dyn Write) -> Result<bool, String> {
    let topo = Topology::from_str(&world(), "demo-world.toml").map_err(|e| e.to_string())?;
    let host_b = topo.card_by_name("host-b").ok_or("demo world has no host-b")?;
    let mut ports: Vec<PortSpec> = ["red-1", "yellow-1", "green-1"]
        .iter()
        .map(|n| PortSpec { name: n.to_string(), io: PortIo::Soft, attach: Attach::Instance(n.to_string()) })
        .collect();
    ports.push(PortSpec { name: "host-b-underlay".into(), io: PortIo::Soft, attach: Attach::Underlay(host_b) });
    ports.push(PortSpec { name: "fabric".into(), io: PortIo::Soft, attach: Attach::Fabric });
    let edge = match topo.card_by_name("blackfoot-1") {
        Some(mapping_client::topology::CardId::Edge(e)) => e,
        _ => return Err("demo world has no edge blackfoot-1".into()),
    };
    ports.push(PortSpec { name: INTERNET.into(), io: PortIo::Soft, attach: Attach::EdgeInternet(edge) });
    ports.push(PortSpec { name: DX.into(), io: PortIo::Soft, attach: Attach::EdgeDx(edge) });
    ports.push(PortSpec { name: SERVICES.into(), io: PortIo::Soft, attach: Attach::EdgeServices(edge) });
    let mut spec = EngineSpec::from_topology(topo.clone());
    spec.ports = ports;
    // One line per event in the demo: no aggregation window to wait for.
    spec.alerts.window_ms = 0;
    let engine = Engine::start(spec).map_err(|e| e.to_string())?;
    let mut d = Demo { engine, out, alerts: Vec::new(), alerts_seen: 0, failures: Vec::new() };
    let (red_mac, yellow_mac, green_mac) = (mac_of(&topo, "red-1"), mac_of(&topo, "yellow-1"), mac_of(&topo, "green-1"));
    let router = EthernetAddress([0x02, 0, 0, 0xff, 0, 0]);

    d.say("vpcemu demo: the AWS VPC story on two emulated Nitro cards and a Blackfoot edge");
    d.say("  host-a (PA 198.18.0.1): red-1 10.0.1.10 (VPC red, VNI 101), green-1 10.2.1.30 (VPC green, VNI 103)");
    d.say("  host-b (PA 198.18.0.2): yellow-1 10.1.1.20 (VPC yellow, VNI 102)");
    d.say("  red and yellow are peered; green is peered with nobody.");
    d.say("  blackfoot-1 (PA 198.18.255.1): red's internet gateway (red-1 = Elastic IP 203.0.113.10), red's VPN");
    d.say("  to 172.16.0.0/16, yellow's Direct Connect VIF (VLAN 101) to 192.168.0.0/16, red's S3 endpoint.");

    // Step 1.
    d.step("1. red-1 asks for its gateway, then pings yellow-1 across the peering.");
    let seen = d.exchange("red-1", &[craft::arp_request(red_mac, RED1, Ipv4Addr::new(10, 0, 1, 1))]);
    let reply = seen.delivered.get("red-1").and_then(|v| v.first()).cloned().unwrap_or_default();
    d.say(format!("    sent      ARP who-has 10.0.1.1 tell 10.0.1.10 on red-1's vNIC -> the card answers ({} bytes)", reply.len()));
    d.check(reply.len() >= 42 && reply[20..22] == [0, 2] && reply[28..32] == [10, 0, 1, 1], "the card answered ARP for the subnet router");
    let router_mac = if reply.len() >= 28 { EthernetAddress(reply[22..28].try_into().unwrap_or([0; 6])) } else { router };
    let inner = craft::echo_packet(RED1, YELLOW1, 1, b"red-1 to yellow-1 over the peering");
    let seen = d.exchange("red-1", &[craft::echo_frame(red_mac, router_mac, RED1, YELLOW1, 1, b"red-1 to yellow-1 over the peering")]);
    d.say(format!("    sent      {RED1} -> {YELLOW1} ICMP echo seq 1 ({} bytes of IPv4) on red-1's vNIC", inner.len()));
    d.show_fabric(&seen.fabric);
    let got = seen.delivered.get("yellow-1").and_then(|v| v.first()).cloned().unwrap_or_default();
    d.check(
        seen.fabric.first().and_then(|f| vpc::parse_outer(f).ok()).is_some_and(|o| {
            o.src_pa == PA_A && o.dst_pa == PA_B && o.vni == 102 && o.source_vpc == 101
        }),
        "wrapped as [host-b's PA][VNI yellow, source VPC red][red-1 -> yellow-1]",
    );
    d.check(got.len() == inner.len() + 14 && got[14..] == inner[..], "host-b's card checked red-1 is on host-a and delivered it, inner packet byte-identical");
    d.check(got.len() >= 14 && got[0..6] == yellow_mac.0, "delivered to yellow-1's MAC");

    // Step 2.
    d.step("2. green-1 tries to reach yellow-1: green is not peered with yellow.");
    let seen = d.exchange("green-1", &[craft::echo_frame(green_mac, router, GREEN1, YELLOW1, 2, b"green knocking")]);
    d.say(format!("    sent      {GREEN1} -> {YELLOW1} ICMP echo on green-1's vNIC"));
    d.expect_drop(&seen, "no_route", GREEN1, YELLOW1);
    d.check(seen.fabric.is_empty(), "nothing left host-a");

    // Step 3.
    d.step("3. green-1 forges yellow-1's address as its source.");
    let seen = d.exchange("green-1", &[craft::echo_frame(green_mac, router, YELLOW1, YELLOW1, 3, b"I am yellow, honest")]);
    d.say(format!("    sent      {YELLOW1} -> {YELLOW1} on green-1's vNIC (\"none of you were yellow before\")"));
    d.expect_drop(&seen, "spoofed_source", YELLOW1, YELLOW1);
    d.check(seen.fabric.is_empty(), "dropped at the sending card: nothing crossed the fabric");

    // Step 4.
    d.step("4. A forged Geneve packet arrives on host-b's underlay port, claiming to be red-1 from 198.18.0.99.");
    let forged = craft::geneve_frame(
        &vpc::Encap {
            src_mac: EthernetAddress([0x02, 0, 198, 18, 0, 99]),
            dst_mac: EthernetAddress([0x02, 0, 198, 18, 0, 2]),
            src_pa: Ipv4Addr::new(198, 18, 0, 99),
            dst_pa: PA_B,
            vni: 102,
            source_vpc: 101,
        },
        &craft::echo_packet(RED1, YELLOW1, 4, b"forged"),
    );
    let seen = d.exchange("host-b-underlay", &[forged]);
    d.say("    sent      198.18.0.99 -> 198.18.0.2 Geneve VNI 102, source VPC 101, inner 10.0.1.10 -> 10.1.1.20");
    d.expect_drop(&seen, "unknown_sender", RED1, YELLOW1);

    // Step 5.
    d.step("5. yellow-1 pings red-1; then red-1 moves to host-b (a live mapping update); yellow-1 pings again.");
    let seen = d.exchange("yellow-1", &[craft::echo_frame(yellow_mac, router, YELLOW1, RED1, 5, b"before the move")]);
    d.show_fabric(&seen.fabric);
    let to_a = seen.fabric.first().and_then(|f| vpc::parse_outer(f).ok()).is_some_and(|o| o.dst_pa == PA_A);
    d.check(to_a && seen.delivered.get("red-1").is_some_and(|v| v.len() == 1), "before the move: to host-a (198.18.0.1), delivered to red-1");
    let t = Instant::now();
    let moved = d.engine.execute(&Command::Move { instance: "red-1".into(), host: "host-b".into() });
    d.say(format!(
        "    ctl       move red-1 host-b -> {} in {:.0} us (deltas to both cards, published by RCU)",
        if moved.is_ok() { "done" } else { "FAILED" },
        t.elapsed().as_secs_f64() * 1e6
    ));
    d.check(moved.is_ok(), "the mapping service accepted the move");
    let seen = d.exchange("yellow-1", &[craft::echo_frame(yellow_mac, router, YELLOW1, RED1, 6, b"after the move")]);
    d.show_fabric(&seen.fabric);
    let to_b = seen.fabric.first().and_then(|f| vpc::parse_outer(f).ok()).is_some_and(|o| o.dst_pa == PA_B);
    d.check(to_b && seen.delivered.get("red-1").is_some_and(|v| v.len() == 1), "after the move: to host-b (198.18.0.2), delivered to red-1");
    let seen = d.exchange("red-1", &[craft::echo_frame(red_mac, router_mac, RED1, YELLOW1, 7, b"red-1 from its new host")]);
    d.show_fabric(&seen.fabric);
    let from_b = seen.fabric.first().and_then(|f| vpc::parse_outer(f).ok()).is_some_and(|o| o.src_pa == PA_B);
    d.check(from_b && seen.delivered.get("yellow-1").is_some_and(|v| v.len() == 1), "red-1's own traffic now leaves from host-b");

    // Step 6.
    d.step("6. Out of the VPC through Blackfoot, and back.");
    step6(&mut d, red_mac, yellow_mac, router_mac);

    // The figures.
    let Demo { engine, out, mut failures, .. } = d;
    let mut sink = Vec::new();
    let (report, in_use) = engine.shutdown(&mut sink);
    let _ = writeln!(out);
    let _ = writeln!(out, "Stage latency (ns per packet, from the TSC around each stage per burst):");
    let _ = writeln!(out, "{:<14} {:>8} {:>10} {:>10} {:>10}", "stage", "packets", "p50_ns", "p99_ns", "max_ns");
    for s in report.stages.iter().filter(|s| s.count > 0) {
        let _ = writeln!(out, "{:<14} {:>8} {:>10.0} {:>10.0} {:>10.0}", s.stage.name(), s.count, s.p50_ns, s.p99_ns, s.max_ns);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Drops: {}", report.drops.iter().filter(|(_, n)| *n > 0).map(|(r, n)| format!("{}={n}", r.name())).collect::<Vec<_>>().join(", "));
    let _ = writeln!(out, "mbufs in use at exit: {in_use}");
    if in_use != 0 {
        failures.push(format!("{in_use} mbufs leaked"));
    }
    let _ = writeln!(out);
    if failures.is_empty() {
        let _ = writeln!(out, "Every step behaved.");
    } else {
        let _ = writeln!(out, "{} step check(s) failed: {}", failures.len(), failures.join("; "));
    }
    Ok(failures.is_empty())
}

/// The first frame seen on `port`.
fn first_on(seen: &Seen, port: &str) -> Vec<u8> {
    seen.delivered.get(port).and_then(|v| v.first()).cloned().unwrap_or_default()
}

/// The inner IPv4 packet of a frame delivered to an instance (after its 14-byte Ethernet).
fn ip_of(frame: &[u8]) -> &[u8] {
    frame.get(14..).unwrap_or_default()
}

/// Step 6 of the story: the four ways out of a VPC through the edge and back in.
fn step6(d: &mut Demo<'_>, red_mac: EthernetAddress, yellow_mac: EthernetAddress, router_mac: EthernetAddress) {
    use blackfoot::aead::RingAesGcm;
    use blackfoot::esp;

    let edge_mac = wire::vpc::card_mac(PA_EDGE);
    let upstream = blackfoot::INTERNET_NEXT_HOP_MAC;
    let topo = d.engine.topology().clone();

    // 6a. Internet gateway.
    d.say("  a. internet gateway: red-1 (Elastic IP 203.0.113.10) sends a DNS query to 192.0.2.80.");
    let query = craft::udp_packet(RED1, INTERNET_HOST, 40000, 53, b"which way to the internet?");
    let seen = d.exchange("red-1", &[craft::frame(red_mac, router_mac, wire::ethernet::EtherType::IPV4, &query)]);
    let out = first_on(&seen, INTERNET);
    let ip = ip_of(&out);
    let snat_ok = ip.len() == query.len()
        && ip[12..16] == EIP_RED1.octets()
        && ip[16..20] == INTERNET_HOST.octets()
        && wire::checksum::ipv4_header_ok(&ip[..20])
        && wire::checksum::tcp_udp_ipv4_ok(EIP_RED1, INTERNET_HOST, 17, &ip[20..]);
    d.say(format!("    internet  {} bytes out of blackfoot-1's internet side, source {}", out.len(), addr_at(ip, 12)));
    d.check(snat_ok, "SNAT 10.0.1.10 -> 203.0.113.10, IPv4 and UDP checksums valid");
    let answer = craft::udp_packet(INTERNET_HOST, EIP_RED1, 53, 40000, b"right here");
    let seen = d.exchange(INTERNET, &[craft::frame(upstream, edge_mac, wire::ethernet::EtherType::IPV4, &answer)]);
    d.show_fabric(&seen.fabric);
    let got = first_on(&seen, "red-1");
    let ip = ip_of(&got);
    let dnat_ok = ip.len() == answer.len()
        && ip[16..20] == RED1.octets()
        && wire::checksum::ipv4_header_ok(&ip[..20])
        && wire::checksum::tcp_udp_ipv4_ok(INTERNET_HOST, RED1, 17, &ip[20..]);
    d.say(format!("    sent      the answer {INTERNET_HOST} -> {EIP_RED1} on the internet side"));
    d.check(dnat_ok, "DNAT 203.0.113.10 -> 10.0.1.10 and carried to red-1 on host-b (where it moved)");

    // 6b. VPN.
    d.say("  b. VPN: red-1 sends to 172.16.5.5 in the customer's network.");
    let vpn = topo.vpns().first().cloned();
    let Some(vpn) = vpn else {
        d.check(false, "the demo world has a VPN");
        return;
    };
    let to_customer = craft::udp_packet(RED1, CUSTOMER_HOST, 40001, 9000, b"to the data centre");
    let seen = d.exchange("red-1", &[craft::frame(red_mac, router_mac, wire::ethernet::EtherType::IPV4, &to_customer)]);
    let out = first_on(&seen, INTERNET);
    let ip = ip_of(&out).to_vec();
    d.say(format!(
        "    internet  {} bytes: {} -> {} ESP SPI {}, seq {}",
        out.len(),
        addr_at(&ip, 12),
        addr_at(&ip, 16),
        ip.get(20..24).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        ip.get(24..28).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
    ));
    // The customer gateway's side of the SAs: our outbound is its inbound and vice versa.
    let decrypted = (|| {
        let aead = RingAesGcm::new(&vpn.outbound.key).ok()?;
        let mut sa = esp::InboundSa::new(&vpn.outbound, aead);
        let mut b = wire::TestBuffer::with_room(0, ip.len());
        b.append(ip.len()).ok()?.copy_from_slice(&ip);
        b.adj(20).ok()?;
        esp::decrypt(&mut b, &mut sa).ok()?;
        Some(b.data().to_vec())
    })();
    d.check(
        ip.get(9) == Some(&50) && ip.get(12..20) == Some(&[TUNNEL_LOCAL.octets(), CUSTOMER_GW.octets()].concat()[..]),
        "ESP tunnel 203.0.113.1 -> 198.51.100.1 (the customer gateway)",
    );
    d.check(decrypted.as_deref() == Some(&to_customer[..]), "the customer gateway decrypts it (AES-128-GCM) to the original packet");
    let reply = craft::udp_packet(CUSTOMER_HOST, RED1, 9000, 40001, b"from the data centre");
    let sealed = (|| {
        let aead = RingAesGcm::new(&vpn.inbound.key).ok()?;
        let sa = esp::OutboundSa::new(&vpn.inbound, CUSTOMER_GW, TUNNEL_LOCAL, aead);
        let mut b = wire::TestBuffer::with_room(64, reply.len() + 64);
        b.append(reply.len()).ok()?.copy_from_slice(&reply);
        esp::encrypt(&mut b, &sa).ok()?;
        Some(b.data().to_vec())
    })()
    .unwrap_or_default();
    let seen = d.exchange(INTERNET, &[craft::frame(upstream, edge_mac, wire::ethernet::EtherType::IPV4, &sealed)]);
    d.say(format!("    sent      the customer gateway's reply, ESP SPI {} ({} bytes)", vpn.inbound.spi, sealed.len()));
    d.show_fabric(&seen.fabric);
    let got = first_on(&seen, "red-1");
    d.check(ip_of(&got) == &reply[..], "decrypted, checked against the VPN's prefixes, delivered to red-1 byte-identical");

    // 6c. Direct Connect.
    d.say("  c. Direct Connect: yellow-1 sends to 192.168.1.5 behind its VIF.");
    let to_dc = craft::udp_packet(YELLOW1, DX_HOST, 40002, 7000, b"over the private line");
    let seen = d.exchange("yellow-1", &[craft::frame(yellow_mac, router_mac, wire::ethernet::EtherType::IPV4, &to_dc)]);
    let out = first_on(&seen, DX);
    let vlan = out.get(14..16).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]) & 0x0fff);
    d.say(format!("    dx        {} bytes, 802.1Q VLAN {vlan} to the DX router {}", out.len(), mac_str(out.get(..6))));
    d.check(out.get(12..14) == Some(&[0x81, 0x00]) && vlan == 101 && out.get(18..) == Some(&to_dc[..]), "tagged VLAN 101, inner packet unchanged");
    let from_dc = craft::udp_packet(DX_HOST, YELLOW1, 7000, 40002, b"and back");
    let seen = d.exchange(DX, &[craft::vlan_frame(EthernetAddress([0x02, 0xdc, 0, 0, 0, 1]), edge_mac, 101, &from_dc)]);
    d.show_fabric(&seen.fabric);
    d.check(ip_of(&first_on(&seen, "yellow-1")) == &from_dc[..], "the answer on VLAN 101 reaches yellow-1 on host-b");

    // 6d. S3 gateway endpoint.
    d.say("  d. S3 gateway endpoint: red-1 sends to 198.51.100.200 (an S3 prefix of its endpoint).");
    let to_s3 = craft::udp_packet(RED1, S3_HOST, 40003, 443, b"GET /bucket/key");
    let seen = d.exchange("red-1", &[craft::frame(red_mac, router_mac, wire::ethernet::EtherType::IPV4, &to_s3)]);
    let out = first_on(&seen, SERVICES);
    let o = vpc::parse_outer(&out).ok();
    d.say(match o {
        Some(o) => format!(
            "    services  {} -> {} Geneve VNI {}, endpoint ID option {}",
            o.src_pa,
            o.dst_pa,
            o.vni,
            o.endpoint_id.map_or("none".to_string(), |id| format!("vpce-{id:016x}"))
        ),
        None => "    services  nothing parsable".to_string(),
    });
    d.check(
        o.is_some_and(|o| o.dst_pa == PA_S3 && o.vni == 101 && o.endpoint_id == Some(ENDPOINT_ID))
            && o.and_then(|o| out.get(o.inner_offset..)) == Some(&to_s3[..]),
        "re-wrapped towards the S3 front end with the VPC endpoint ID, source unchanged",
    );
    let from_s3 = craft::udp_packet(S3_HOST, RED1, 443, 40003, b"200 OK");
    let encap = vpc::Encap {
        src_mac: wire::vpc::card_mac(PA_S3),
        dst_mac: edge_mac,
        src_pa: PA_S3,
        dst_pa: PA_EDGE,
        vni: 101,
        source_vpc: 101,
    };
    let seen = d.exchange(SERVICES, &[craft::geneve_endpoint_frame(&encap, ENDPOINT_ID, &from_s3)]);
    d.show_fabric(&seen.fabric);
    d.check(ip_of(&first_on(&seen, "red-1")) == &from_s3[..], "S3's answer, endpoint ID checked against VPC red, reaches red-1");
}

fn addr_at(ip: &[u8], at: usize) -> String {
    ip.get(at..at + 4).map_or("?".into(), |b| Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string())
}

fn mac_str(b: Option<&[u8]>) -> String {
    b.map_or("?".into(), |b| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":"))
}
