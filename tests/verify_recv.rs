//! One verify-recv rule for both cards: the same edge-case frames through a Nitro card's
//! underlay pipeline (host-b) and a Blackfoot edge's (blackfoot-1), on plain buffers with
//! the tables each gets from the same world. Each frame is a well-formed one for that card
//! (differing only in the outer destination PA, the VNI and the inner destination) with the
//! same damage done to it; both cards must drop it with the same reason, the reason the
//! shared front end (`pipeline::underlay::receive`) gives.

use std::net::Ipv4Addr;
use std::sync::Arc;

use blackfoot::{EdgeOutputs, EdgeSas, FromUnderlay as EdgeFromUnderlay, VecExtra};
use mapping_client::{Tables, Topology};
use nitro::FromUnderlay;
use pipeline::CardCtx;
use pipeline::{alert_channel, Burst, DropReason, HistogramConfig, Meters, NullClock, Output, TimingCollector, Verdict};
use wire::vpc::{self, Encap, VPC_MTU};
use wire::{EthernetAddress, PacketBuf, TestBuffer};

const WORLD: &str = r#"
[[host]]
name = "host-a"
pa = "198.18.0.1"

[[host]]
name = "host-b"
pa = "198.18.0.2"

[[edge]]
name = "blackfoot-1"
pa = "198.18.255.1"

[[vpc]]
name = "red"
vni = 101
cidr = "10.0.0.0/16"

[[vpc]]
name = "yellow"
vni = 102
cidr = "10.1.0.0/16"

[[subnet]]
name = "red-a"
vpc = "red"
cidr = "10.0.1.0/24"

[[subnet]]
name = "yellow-a"
vpc = "yellow"
cidr = "10.1.1.0/24"

[[instance]]
name = "red-1"
subnet = "red-a"
host = "host-a"
ip = "10.0.1.10"

[[instance]]
name = "yellow-1"
subnet = "yellow-a"
host = "host-b"
ip = "10.1.1.20"

[[peering]]
vpcs = ["red", "yellow"]

[[elastic_ip]]
ip = "203.0.113.10"
instance = "red-1"
"#;

const HOST_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const HOST_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const EDGE: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);
const RED1: [u8; 4] = [10, 0, 1, 10];

fn out(i: usize) -> Output {
    Output::new(i).unwrap()
}

/// The receiving card: its PA and what a well-formed frame for it carries.
#[derive(Clone, Copy, Debug)]
enum Card {
    /// host-b: red-1 -> yellow-1 across the peering (VNI yellow, source VPC red).
    Host,
    /// blackfoot-1: red-1 -> an internet host through red's gateway (VNI = source = red).
    Edge,
}

impl Card {
    fn pa(self) -> Ipv4Addr {
        match self {
            Card::Host => HOST_B,
            Card::Edge => EDGE,
        }
    }
    fn vni(self) -> u32 {
        match self {
            Card::Host => 102,
            Card::Edge => 101,
        }
    }
    fn inner_dst(self) -> [u8; 4] {
        match self {
            Card::Host => [10, 1, 1, 20],
            Card::Edge => [192, 0, 2, 80],
        }
    }
}

/// How a frame is made: the inner packet, then the outer header, then damage.
#[derive(Clone, Copy, Debug, Default)]
struct Make {
    /// Inner total length (default 60).
    inner_len: Option<usize>,
    /// 4 bytes of inner IPv4 options (NOPs).
    inner_options: bool,
    /// XOR into the inner header checksum.
    inner_csum_xor: u16,
    /// Inner total length field minus the real length.
    inner_total_short_by: u16,
    /// First byte of the inner header (version and IHL) instead of 0x45 / 0x46.
    inner_first: Option<u8>,
    /// Outer destination PA instead of the card's.
    dst_pa: Option<Ipv4Addr>,
    /// XOR into the outer IPv4 checksum.
    outer_csum_xor: u16,
    /// A non-zero, wrong UDP checksum.
    bad_udp_csum: bool,
    /// Outer UDP destination port instead of 6081.
    udp_dst: Option<u16>,
    /// Outer MF flag (checksum fixed).
    outer_fragment: bool,
    /// 4 bytes of outer IPv4 options (checksum fixed).
    outer_options: bool,
    /// Geneve option class/type bytes at offset 50..53 (checksum unaffected: UDP 0).
    option_head: Option<[u8; 3]>,
    /// Bytes cut off the end of the frame.
    truncate: usize,
}

fn frame(card: Card, m: Make) -> Vec<u8> {
    let len = m.inner_len.unwrap_or(60);
    let ihl = if m.inner_options { 24 } else { 20 };
    let mut ip = vec![0u8; len];
    ip[0] = m.inner_first.unwrap_or(0x40 | (ihl / 4) as u8);
    ip[2..4].copy_from_slice(&(len as u16 - m.inner_total_short_by).to_be_bytes());
    ip[4..12].copy_from_slice(&[0, 7, 0x00, 0, 64, 17, 0, 0]);
    ip[12..16].copy_from_slice(&RED1);
    ip[16..20].copy_from_slice(&card.inner_dst());
    if m.inner_options {
        ip[20..24].copy_from_slice(&[1, 1, 1, 1]);
    }
    // UDP 40000 -> 7000, no checksum.
    ip[ihl..ihl + 8].copy_from_slice(&[0x9c, 0x40, 0x1b, 0x58, 0, 0, 0, 0]);
    let udp_len = (len - ihl) as u16;
    ip[ihl + 4..ihl + 6].copy_from_slice(&udp_len.to_be_bytes());
    let sum = wire::checksum::ipv4_header(&ip[..ihl]) ^ m.inner_csum_xor;
    ip[10..12].copy_from_slice(&sum.to_be_bytes());

    let mut b = TestBuffer::from_slice_with_room(&ip, 128, 0);
    let encap = Encap {
        src_mac: EthernetAddress([0x02, 0, 198, 18, 0, 1]),
        dst_mac: wire::vpc::UNDERLAY_ROUTER_MAC,
        src_pa: HOST_A,
        dst_pa: m.dst_pa.unwrap_or(card.pa()),
        vni: card.vni(),
        source_vpc: 101,
    };
    vpc::push_outer(&mut b, &encap, None).unwrap();
    let mut f = b.data().to_vec();
    if let Some(port) = m.udp_dst {
        f[36..38].copy_from_slice(&port.to_be_bytes());
    }
    if let Some(head) = m.option_head {
        f[50..53].copy_from_slice(&head);
    }
    if m.bad_udp_csum {
        f[40..42].copy_from_slice(&[0x12, 0x34]);
    }
    if m.outer_fragment {
        f[20] |= 0x20;
    }
    if m.outer_options {
        f.splice(34..34, [1, 1, 1, 1]);
        f[14] = 0x46;
        let total = u16::from_be_bytes([f[16], f[17]]) + 4;
        f[16..18].copy_from_slice(&total.to_be_bytes());
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let sum = wire::checksum::ipv4_header(&f[14..14 + ihl]) ^ m.outer_csum_xor;
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    f.truncate(f.len() - m.truncate);
    f
}

/// host-b's underlay pipeline.
fn through_host(tables: &Tables, f: &[u8]) -> Verdict {
    let (mut alerts, _consumer) = alert_channel(64);
    let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
    let mut meters = Meters::new(collector.add_worker(u64::MAX).unwrap());
    let icmp_limit = pipeline::RateLimit::new(1000, 50, 1000);
    let mut ctx = CardCtx { tables, card: pipeline::CardId::Host(mapping_client::HostId(1)), alerts: &mut alerts, icmp_limit: &icmp_limit, now: 0 };
    let mut burst = Burst::new();
    burst.push(TestBuffer::from_slice_with_room(f, 128, 128)).unwrap();
    let ports = |_: mapping_client::EniId| Some(out(1));
    let mut extra = pipeline::VecExtra::new(|| Some(TestBuffer::with_room(128, 9216)));
    FromUnderlay::new(out(2)).process(&mut burst, &ports, &mut ctx, &mut extra, &NullClock, &mut meters);
    burst.verdict(0).expect("decided")
}

/// blackfoot-1's underlay pipeline.
fn through_edge(tables: &Tables, f: &[u8]) -> Verdict {
    let (mut alerts, _consumer) = alert_channel(64);
    let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
    let mut meters = Meters::new(collector.add_worker(u64::MAX).unwrap());
    let icmp_limit = pipeline::RateLimit::new(1000, 50, 1000);
    let mut ctx = CardCtx { tables, card: pipeline::CardId::Edge(mapping_client::EdgeId(0)), alerts: &mut alerts, icmp_limit: &icmp_limit, now: 0 };
    let outputs = EdgeOutputs { fabric: out(0), internet: Some(out(1)), dx: Some(out(2)), services: Some(out(3)) };
    let mut pipe = EdgeFromUnderlay::new(outputs, Arc::new(EdgeSas::new(tables)));
    let mut extra = VecExtra::new(|| Some(TestBuffer::with_room(128, 2048)));
    let mut burst = Burst::new();
    burst.push(TestBuffer::from_slice_with_room(f, 128, 128)).unwrap();
    pipe.process(&mut burst, &mut ctx, &mut extra, &NullClock, &mut meters);
    burst.verdict(0).expect("decided")
}

#[test]
fn both_cards_give_one_answer_to_each_frame() {
    let text = format!("{}{WORLD}", vpcemu::testkit::dataplane("0-1", 64, "off"));
    let topo = Topology::from_str(&text, "world.toml").unwrap();
    let host = Tables::build_for_card(&topo, topo.card_by_name("host-b").unwrap());
    let edge = Tables::build_for_card(&topo, topo.card_by_name("blackfoot-1").unwrap());
    let d = Make::default();
    let big = Some(VPC_MTU + 1);
    let elsewhere = Some(Ipv4Addr::new(198, 18, 9, 9));
    use DropReason::*;
    // (what, how, the reason both cards must give; None: both must forward it).
    let cases: Vec<(&str, Make, Option<DropReason>)> = vec![
        ("well formed", d, None),
        ("inner IPv4 options", Make { inner_options: true, ..d }, None),
        ("inner exactly the VPC MTU", Make { inner_len: Some(VPC_MTU), ..d }, None),
        ("bad inner header checksum", Make { inner_csum_xor: 0x0100, ..d }, Some(Malformed)),
        ("inner longer than 9001", Make { inner_len: big, ..d }, Some(MtuExceeded)),
        ("inner longer than 9001, bad checksum", Make { inner_len: big, inner_csum_xor: 1, ..d }, Some(Malformed)),
        ("inner longer than 9001, total length != Geneve payload", Make { inner_len: big, inner_total_short_by: 4, ..d }, Some(Malformed)),
        ("inner total length != Geneve payload", Make { inner_total_short_by: 4, ..d }, Some(Malformed)),
        ("inner IHL 4", Make { inner_first: Some(0x44), ..d }, Some(Malformed)),
        ("inner header longer than the packet", Make { inner_first: Some(0x4f), inner_len: Some(40), ..d }, Some(Malformed)),
        ("inner IPv6 version", Make { inner_first: Some(0x65), ..d }, Some(Malformed)),
        ("inner options, bad checksum", Make { inner_options: true, inner_csum_xor: 4, ..d }, Some(Malformed)),
        ("truncated frame", Make { truncate: 10, ..d }, Some(Malformed)),
        ("truncated long frame", Make { inner_len: big, truncate: 1, ..d }, Some(Malformed)),
        ("bad outer IPv4 checksum", Make { outer_csum_xor: 1, ..d }, Some(Malformed)),
        ("bad outer UDP checksum", Make { bad_udp_csum: true, ..d }, Some(Malformed)),
        ("outer IPv4 options", Make { outer_options: true, ..d }, Some(Unsupported)),
        ("outer fragment", Make { outer_fragment: true, ..d }, Some(Unsupported)),
        ("not to port 6081", Make { udp_dst: Some(4789), ..d }, Some(Unsupported)),
        ("unknown critical option instead of the source VPC", Make { option_head: Some([0xff, 0xf0, 0x81]), ..d }, Some(Unsupported)),
        ("no source-VPC option", Make { option_head: Some([0xff, 0xf0, 0x02]), ..d }, Some(Malformed)),
        ("wrong outer destination PA", Make { dst_pa: elsewhere, ..d }, Some(UnknownDestination)),
        ("wrong outer destination PA, bad inner checksum", Make { dst_pa: elsewhere, inner_csum_xor: 1, ..d }, Some(UnknownDestination)),
        ("wrong outer destination PA, inner longer than 9001", Make { dst_pa: elsewhere, inner_len: big, ..d }, Some(UnknownDestination)),
        ("bad outer checksum, wrong destination PA", Make { dst_pa: elsewhere, outer_csum_xor: 1, ..d }, Some(Malformed)),
    ];
    let mut wrong = Vec::new();
    for (what, make, want) in &cases {
        let (fh, fe) = (frame(Card::Host, *make), frame(Card::Edge, *make));
        let (h, e) = (through_host(&host, &fh), through_edge(&edge, &fe));
        // The shared front end says the same about both frames.
        let front = (pipeline::underlay::receive(&fh, HOST_B).err(), pipeline::underlay::receive(&fe, EDGE).err());
        let ok = match want {
            Some(r) => h == Verdict::Drop(*r) && e == Verdict::Drop(*r) && front == (Some(*r), Some(*r)),
            None => matches!((h, e), (Verdict::Forward(_), Verdict::Forward(_))) && front == (None, None),
        };
        if !ok {
            wrong.push(format!("{what}: host {h:?}, edge {e:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "the cards disagree with the rule:\n{}", wrong.join("\n"));
}
