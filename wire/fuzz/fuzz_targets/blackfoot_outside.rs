//! The Blackfoot edge's pipelines on anything: `blackfoot::FromOutside` on each outside
//! side (internet, dx, services) and, for the same bytes, `blackfoot::FromFabric`, with the
//! tables of the edge `blackfoot-1` of the story's world (`examples/story-world.toml`).
//!
//! Each input is used two ways:
//! * **raw** — the bytes as a frame on every port (with a copy and a half in the same
//!   burst, so duplicates and cuts meet in one pass);
//! * **wrapped** — the bytes (after an Ethernet header, when they start with one) as an
//!   inner IPv4 packet whose version, length, addresses and header checksum are fixed up,
//!   then delivered the way each path expects it: from red-1's or yellow-1's host to the
//!   edge (towards the internet, the VPN, the S3 endpoint and the DX VIF), from the internet
//!   to red-1's Elastic IP, sealed with the customer gateway's SA, on VLAN 101, and from
//!   the S3 front end. The transport bytes stay the fuzzer's: that is what NAT (ICMP quotes),
//!   fragmentation, fragmentation-needed and ESP chew on.
//!
//! Asserted: every packet of every burst is decided; what goes out is well formed for its
//! port (Geneve from the edge to a host with VNI = source VPC, the internet MTU, Ethernet
//! to the next hop, the Elastic IP as source, ESP the customer gateway decrypts, VLAN 101,
//! the endpoint option); and the wrapped packets that must be delivered are, byte for byte
//! where no translation applies.
#![no_main]

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use blackfoot::esp::{self, InboundSa, OutboundSa};
use blackfoot::{
    EdgeCtx, EdgeOutputs, EdgeSas, FromFabric, FromOutside, InboundSas, Side, VecExtra,
    INTERNET_MTU, INTERNET_NEXT_HOP_MAC,
};
use libfuzzer_sys::fuzz_target;
use mapping_client::{Tables, Topology, VpnEntry};
use pipeline::{
    alert_channel, Burst, CardId, DropReason, HistogramConfig, Meters, NullClock, Output,
    TimingCollector, Verdict,
};
use wire::vpc::{self, Encap};
use wire::{checksum, PacketBuf, TestBuffer};

const PA_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PA_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PA_EDGE: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);
const FRONT_END: Ipv4Addr = Ipv4Addr::new(198, 18, 254, 1);
const RED: u32 = 101;
const YELLOW: u32 = 102;
const RED1: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
const YELLOW1: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 20);
const EIP_RED1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const TUNNEL_LOCAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const CUSTOMER_GW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const CUSTOMER_HOST: Ipv4Addr = Ipv4Addr::new(172, 16, 5, 5);
const DX_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 5);
const S3_HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
const ENDPOINT_ID: u64 = 0x0a1b_2c3d_4e5f_6a7b;
const VLAN: u16 = 101;
const DX_ROUTER_MAC: [u8; 6] = [0x02, 0xdc, 0, 0, 0, 1];

const fn output(i: usize) -> Output {
    match Output::new(i) {
        Some(o) => o,
        None => panic!(),
    }
}
const FABRIC: Output = output(0);
const INTERNET: Output = output(1);
const DX: Output = output(2);
const SERVICES: Output = output(3);
const OUTPUTS: EdgeOutputs = EdgeOutputs {
    fabric: FABRIC,
    internet: Some(INTERNET),
    dx: Some(DX),
    services: Some(SERVICES),
};

struct World {
    tables: Tables,
    card: CardId,
    vpn: VpnEntry,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let text = format!(
            "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 64\nhugepages = \"off\"\n\n{}",
            include_str!("../../../examples/story-world.toml")
        );
        let topo = Topology::from_str(&text, "story-world.toml").unwrap();
        let id = topo.card_by_name("blackfoot-1").unwrap();
        let tables = Tables::build_for_card(&topo, id);
        let vpn = tables.vpns().next().unwrap().clone();
        World {
            tables,
            card: nitro::card_id(id),
            vpn,
        }
    })
}

thread_local! {
    /// One worker's meters, reused by every run (histograms are costly to allocate;
    /// NullClock records nothing into them, and the counters only add up).
    static METERS: RefCell<(Meters, TimingCollector)> = RefCell::new({
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        (Meters::new(collector.add_worker(u64::MAX).unwrap()), collector)
    });
}

fn burst_of(frames: &[Vec<u8>]) -> Burst<TestBuffer> {
    let mut burst = Burst::new();
    for f in frames {
        let _ = burst.push(TestBuffer::from_slice(f));
    }
    burst
}

fn drain(burst: &mut Burst<TestBuffer>, meters: &mut Meters) -> Vec<(Verdict, Vec<u8>)> {
    let mut out = Vec::new();
    burst.drain(&mut meters.counters, |b, v| {
        out.push((v, b.data().to_vec()))
    });
    out
}

fn run_outside(side: Side, frames: &[Vec<u8>]) -> Vec<(Verdict, Vec<u8>)> {
    let w = world();
    let mut pipe = FromOutside::new(OUTPUTS, InboundSas::new(&w.tables));
    let (mut alerts, _consumer) = alert_channel(64);
    let mut burst = burst_of(frames);
    let mut ctx = EdgeCtx {
        tables: &w.tables,
        card: w.card,
        alerts: &mut alerts,
    };
    METERS.with_borrow_mut(|(meters, _)| {
        pipe.process(side, &mut burst, &mut ctx, &NullClock, meters);
        assert_eq!(burst.live_mask(), 0, "undecided packets on {side:?}");
        drain(&mut burst, meters)
    })
}

type Sent = Vec<(Vec<u8>, Output)>;

fn run_fabric(frames: &[Vec<u8>]) -> (Vec<(Verdict, Vec<u8>)>, Sent) {
    let w = world();
    let mut pipe = FromFabric::new(OUTPUTS, Arc::new(EdgeSas::new(&w.tables)));
    let (mut alerts, _consumer) = alert_channel(64);
    let mut extra = VecExtra::new(|| Some(TestBuffer::with_room(128, 2048)));
    let mut burst = burst_of(frames);
    let mut ctx = EdgeCtx {
        tables: &w.tables,
        card: w.card,
        alerts: &mut alerts,
    };
    let out = METERS.with_borrow_mut(|(meters, _)| {
        pipe.process(&mut burst, &mut ctx, &mut extra, &NullClock, meters);
        assert_eq!(burst.live_mask(), 0, "undecided packets from the fabric");
        drain(&mut burst, meters)
    });
    let sent = extra
        .sent
        .into_iter()
        .map(|(b, o)| (b.data().to_vec(), o))
        .collect();
    (out, sent)
}

// ----- building -----

/// `data` made an IPv4 packet: version 4, IHL kept when it fits, total length = length,
/// the addresses asked for, header checksum. `None` when too short or too long.
fn fix_inner(data: &[u8], src: Option<Ipv4Addr>, dst: Option<Ipv4Addr>) -> Option<Vec<u8>> {
    if data.len() < 20 || data.len() > vpc::VPC_MTU {
        return None;
    }
    let mut p = data.to_vec();
    let mut ihl = usize::from(p[0] & 0x0f).max(5);
    if ihl * 4 > p.len() {
        ihl = 5;
    }
    p[0] = 0x40 | ihl as u8;
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    if let Some(s) = src {
        p[12..16].copy_from_slice(&s.octets());
    }
    if let Some(d) = dst {
        p[16..20].copy_from_slice(&d.octets());
    }
    p[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::ipv4_header(&p[..ihl * 4]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    Some(p)
}

fn geneve(src_pa: Ipv4Addr, vni: u32, endpoint: Option<u64>, inner: &[u8]) -> Vec<u8> {
    let encap = Encap {
        src_mac: nitro::card_mac(src_pa),
        dst_mac: nitro::UNDERLAY_ROUTER_MAC,
        src_pa,
        dst_pa: PA_EDGE,
        vni,
        source_vpc: vni,
    };
    let len = vpc::outer_len(endpoint);
    let mut f = vec![0u8; len + inner.len()];
    vpc::emit_outer_into(
        &mut f,
        &encap,
        endpoint,
        inner.len(),
        vpc::inner_flow_hash(inner),
    )
    .unwrap();
    f[len..].copy_from_slice(inner);
    f
}

fn ether(ethertype: &[u8], body: &[u8]) -> Vec<u8> {
    let mut f = nitro::card_mac(PA_EDGE).0.to_vec();
    f.extend_from_slice(&INTERNET_NEXT_HOP_MAC.0);
    f.extend_from_slice(ethertype);
    f.extend_from_slice(body);
    f
}

// ----- checks -----

fn addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// A Geneve frame from the edge to a host: (VNI, inner packet).
fn to_host(frame: &[u8]) -> (u32, &[u8]) {
    let o = vpc::parse_outer(frame).expect("the edge sends valid Geneve");
    assert_eq!(o.src_pa, PA_EDGE);
    assert!(
        o.dst_pa == PA_A || o.dst_pa == PA_B,
        "to a host: {}",
        o.dst_pa
    );
    assert_eq!(o.vni, o.source_vpc);
    assert_eq!(o.endpoint_id, None);
    assert_eq!(o.inner_offset + o.inner_len, frame.len());
    let inner = &frame[o.inner_offset..];
    let ihl = usize::from(inner[0] & 0x0f) * 4;
    assert!(inner.len() >= ihl && ihl >= 20);
    (o.vni, inner)
}

/// A frame out of the internet side: Ethernet to the next hop, at most the MTU.
fn internet_ip(frame: &[u8]) -> &[u8] {
    assert_eq!(&frame[..6], &INTERNET_NEXT_HOP_MAC.0);
    assert_eq!(&frame[6..12], &nitro::card_mac(PA_EDGE).0);
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    let ip = &frame[14..];
    assert!(
        ip.len() <= INTERNET_MTU,
        "{} bytes over the internet MTU",
        ip.len()
    );
    assert!(checksum::ipv4_header_ok(
        &ip[..usize::from(ip[0] & 0x0f) * 4]
    ));
    assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
    ip
}

/// Whatever FromFabric sent to `out`, checked for that port.
fn check_fabric_out(frame: &[u8], out: Output, gw: &mut InboundSa<blackfoot::aead::RingAesGcm>) {
    if out == INTERNET {
        let ip = internet_ip(frame);
        if ip[9] == 50 && addr(ip, 12) == TUNNEL_LOCAL {
            assert_eq!(addr(ip, 16), CUSTOMER_GW);
            let mut b = TestBuffer::from_slice(&ip[20..]);
            esp::decrypt(&mut b, gw).expect("the customer gateway decrypts what the edge sends");
            assert!(b.len() <= esp::max_inner_for_mtu(INTERNET_MTU));
        } else {
            assert_eq!(addr(ip, 12), EIP_RED1, "SNAT");
        }
    } else if out == DX {
        assert_eq!(&frame[..6], &DX_ROUTER_MAC);
        assert_eq!(&frame[12..16], &[0x81, 0x00, 0x00, VLAN as u8]);
        assert_eq!(&frame[16..18], &[0x08, 0x00]);
    } else if out == SERVICES {
        let o = vpc::parse_outer(frame).expect("valid Geneve to the front end");
        assert_eq!((o.src_pa, o.dst_pa), (PA_EDGE, FRONT_END));
        assert_eq!(
            (o.vni, o.source_vpc, o.endpoint_id),
            (RED, RED, Some(ENDPOINT_ID))
        );
    } else {
        assert_eq!(out, FABRIC);
        // Fragmentation-needed back to the sender.
        let (_, inner) = to_host(frame);
        assert_eq!(inner[9], 1);
        assert_eq!(&inner[20..22], &[3, 4]);
    }
}

/// Run `frames`, and the crafted frame when there is one (the frame and the inner IPv4
/// packet it carries), on `side`: whatever is forwarded goes to the fabric, to a host of
/// `vni`, and the crafted frame's inner packet is delivered unchanged.
fn check_to_fabric(
    side: Side,
    mut frames: Vec<Vec<u8>>,
    crafted: Option<(Vec<u8>, Vec<u8>)>,
    vni: u32,
) {
    let k = frames.len();
    let crafted = crafted.map(|(frame, ip)| {
        frames.push(frame);
        ip
    });
    let out = run_outside(side, &frames);
    for (v, frame) in &out {
        if let Verdict::Forward(o) = *v {
            assert_eq!(o, FABRIC);
            assert_eq!(to_host(frame).0, vni);
        }
    }
    if let Some(ip) = &crafted {
        let (v, frame) = &out[k];
        assert_eq!(*v, Verdict::Forward(FABRIC));
        assert_eq!(to_host(frame).1, &ip[..]);
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let half = data[..data.len() / 2].to_vec();
    let raw = vec![data.to_vec(), data.to_vec(), half];
    // The inner packet: after an Ethernet header when the bytes start with one.
    let body = match data.get(12..14) {
        Some([0x08, 0x00]) if data.len() > 14 && data[14] >> 4 == 4 => &data[14..],
        _ => data,
    };

    // ----- from the fabric -----
    let mut frames = raw.clone();
    let mut wrapped = Vec::new();
    // (host, VPC, source, destination, the output it must reach with the inner packet
    // unchanged behind `at` bytes of headers).
    for (pa, vni, src, dst, must) in [
        (PA_A, RED, RED1, None, None),
        (PA_A, RED, RED1, Some(CUSTOMER_HOST), None),
        (
            PA_A,
            RED,
            RED1,
            Some(S3_HOST),
            Some((SERVICES, vpc::OUTER_HEADER_LEN_WITH_ENDPOINT)),
        ),
        (PA_B, YELLOW, YELLOW1, Some(DX_HOST), Some((DX, 18))),
        (PA_B, YELLOW, YELLOW1, None, None),
    ] {
        if let Some(ip) = fix_inner(body, Some(src), dst) {
            if let Some(must) = must {
                wrapped.push((frames.len(), ip.clone(), must));
            }
            frames.push(geneve(pa, vni, None, &ip));
        }
    }
    let (out, sent) = run_fabric(&frames);
    let mut gw = InboundSa::with_ring(&w.vpn.outbound).unwrap();
    for (v, frame) in &out {
        match *v {
            Verdict::Forward(o) => check_fabric_out(frame, o, &mut gw),
            Verdict::Drop(r) => assert_ne!(r, DropReason::NoVerdict),
            _ => {}
        }
    }
    for (frame, o) in &sent {
        assert_eq!(*o, INTERNET, "only internet packets are fragmented");
        check_fabric_out(frame, *o, &mut gw);
    }
    for (k, ip, (port, at)) in &wrapped {
        let (v, frame) = &out[*k];
        assert_eq!(*v, Verdict::Forward(*port));
        assert_eq!(&frame[*at..], &ip[..], "inner packet unchanged");
    }

    // ----- internet side -----
    let mut frames = raw.clone();
    let to_eip = fix_inner(body, None, Some(EIP_RED1));
    if let Some(ip) = &to_eip {
        frames.push(ether(&[0x08, 0x00], ip));
    }
    let from_vpn = fix_inner(body, Some(CUSTOMER_HOST), Some(RED1));
    if let Some(ip) = &from_vpn {
        let sa = OutboundSa::with_ring(&w.vpn.inbound, CUSTOMER_GW, TUNNEL_LOCAL).unwrap();
        let mut b = TestBuffer::from_slice(ip);
        esp::encrypt(&mut b, &sa).unwrap();
        frames.push(ether(&[0x08, 0x00], b.data()));
    }
    let out = run_outside(Side::Internet, &frames);
    for (v, frame) in &out {
        if let Verdict::Forward(o) = *v {
            if o == INTERNET {
                // An ARP reply from the edge for one of its addresses, nothing else.
                assert_eq!(frame.len(), 42);
                assert_eq!(&frame[6..12], &nitro::card_mac(PA_EDGE).0);
                assert_eq!(&frame[12..14], &[0x08, 0x06]);
                assert_eq!(&frame[20..22], &[0, 2]);
                let target = addr(frame, 28);
                assert!(target == EIP_RED1 || target == TUNNEL_LOCAL, "ARP answered for {target}");
                continue;
            }
            assert_eq!(o, FABRIC);
            let (vni, inner) = to_host(frame);
            assert_eq!(vni, RED);
            assert_eq!(addr(inner, 16), RED1);
        }
    }
    let mut k = raw.len();
    if let Some(ip) = &to_eip {
        let (v, frame) = &out[k];
        match v {
            Verdict::Forward(_) => {
                let (_, inner) = to_host(frame);
                assert_eq!(inner.len(), ip.len());
                assert!(checksum::ipv4_header_ok(
                    &inner[..usize::from(inner[0] & 0x0f) * 4]
                ));
                assert_eq!(&inner[12..16], &ip[12..16]);
            }
            Verdict::Drop(r) => assert_eq!(*r, DropReason::Malformed, "DNAT refused"),
            _ => {}
        }
        k += 1;
    }
    if let Some(ip) = &from_vpn {
        let (v, frame) = &out[k];
        assert_eq!(
            *v,
            Verdict::Forward(FABRIC),
            "a sealed packet from the VPN is delivered"
        );
        assert_eq!(to_host(frame).1, &ip[..]);
    }

    // ----- dx side -----
    let to_yellow = fix_inner(body, None, Some(YELLOW1))
        .map(|ip| (ether(&[0x81, 0x00, 0x00, VLAN as u8, 0x08, 0x00], &ip), ip));
    check_to_fabric(Side::Dx, raw.clone(), to_yellow, YELLOW);

    // ----- services side -----
    let answer = fix_inner(body, None, Some(RED1))
        .map(|ip| (geneve(FRONT_END, RED, Some(ENDPOINT_ID), &ip), ip));
    check_to_fabric(Side::Services, raw, answer, RED);
});
