//! The edge pipelines end to end on plain buffers: [`FromFabric`] (Geneve frames hosts
//! send to the edge) and [`FromOutside`] (internet, dx and services sides) over
//! [`TestBuffer`]s, with the tables the edge `blackfoot-1` of the story's world
//! (`examples/story-world.toml`) gets from [`Tables::build_for_card`].
//!
//! Every test checks bytes (against packets built independently here, checksums
//! recomputed from scratch), verdicts, drop reasons, counters and the security alerts the
//! pipelines raise. The last test is a property: NAT out then NAT back is the identity.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::sync::Arc;

use blackfoot::aead::RingAesGcm;
use blackfoot::esp::{self, InboundSa, OutboundSa};
use blackfoot::{
    EdgeCtx, EdgeOutputs, EdgeSas, FromFabric, FromOutside, InboundSas, Side, VecExtra,
    INTERNET_MTU, INTERNET_NEXT_HOP_MAC,
};
use mapping_client::topology::SaConfig;
use mapping_client::{Tables, Topology, VpnEntry};
use pipeline::{
    alert_channel, AlertConsumer, AlertEvent, AlertProducer, Burst, CardId, DropReason,
    HistogramConfig, Meters, NullClock, Output, StageId, StepClock, TimingCollector, Verdict,
    MAX_BURST,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use wire::checksum;
use wire::vpc::{self, Encap};
use wire::{EthernetAddress, PacketBuf, TestBuffer};

// ----- the world -----

const PA_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PA_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PA_EDGE: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);
const FRONT_END: Ipv4Addr = Ipv4Addr::new(198, 18, 254, 1);

const RED: u32 = 101;
const YELLOW: u32 = 102;
const GREEN: u32 = 103;

const RED1: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
const RED2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 20);
const YELLOW1: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 20);
const GREEN1: Ipv4Addr = Ipv4Addr::new(10, 2, 1, 30);
/// The VPC router of red (10.0.0.0/16): where fragmentation-needed comes from.
const RED_ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

const EIP_RED1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const NOT_AN_EIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 99);
const INTERNET_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
const TUNNEL_LOCAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const CUSTOMER_GW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const CUSTOMER_HOST: Ipv4Addr = Ipv4Addr::new(172, 16, 5, 5);
const DX_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 5);
const S3_HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);

const ENDPOINT_ID: u64 = 0x0a1b_2c3d_4e5f_6a7b;
const DX_ROUTER_MAC: EthernetAddress = EthernetAddress([0x02, 0xdc, 0, 0, 0, 1]);
const OUTBOUND_SPI: u32 = 4097;
const INBOUND_SPI: u32 = 8193;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ESP: u8 = 50;

const fn output(i: usize) -> Output {
    match Output::new(i) {
        Some(o) => o,
        None => panic!("output index"),
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

/// The story's world, with the `[dataplane]` section the loader wants, and `extra` after.
fn world_text(extra: &str) -> String {
    format!(
        "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 64\nhugepages = \"off\"\n\n{}\n{extra}",
        include_str!("../../examples/story-world.toml")
    )
}

/// red-2: a second red instance, on host-b, without an Elastic IP.
const RED2_NO_EIP: &str = r#"
[[instance]]
name = "red-2"
subnet = "red-a"
host = "host-b"
ip = "10.0.1.20"
"#;

/// A second edge holding a Direct Connect VIF of red on the same VLAN number (101) as
/// yellow's VIF on blackfoot-1 (VLANs are unique per edge only).
const RED_DX_ON_EDGE_2: &str = r#"
[[edge]]
name = "blackfoot-2"
pa = "198.18.255.2"

[[dx]]
name = "dx-red"
vpc = "red"
edge = "blackfoot-2"
vlan = 101
remote_prefixes = ["10.99.0.0/16"]
router_mac = "02:dc:00:00:00:02"
"#;

// ----- the harness -----

/// Verdicts and bytes of one pass, in slot order, and what went out through `Extra`.
struct Pass {
    out: Vec<(Verdict, Vec<u8>)>,
    extra: Vec<(Vec<u8>, Output)>,
}

impl Pass {
    fn verdicts(&self) -> Vec<Verdict> {
        self.out.iter().map(|(v, _)| *v).collect()
    }

    /// The bytes of the single packet of the pass, which must have `verdict`.
    fn only(&self, verdict: Verdict) -> &[u8] {
        assert_eq!(self.verdicts(), [verdict]);
        &self.out[0].1
    }
}

/// blackfoot-1: its tables, alert queue, meters and both pipelines.
struct Edge {
    topo: Topology,
    tables: Tables,
    card: CardId,
    alerts: AlertProducer,
    consumer: AlertConsumer,
    meters: Meters,
    _collector: TimingCollector,
    fabric: FromFabric,
    outside: FromOutside,
    /// `None`: timing off ([`NullClock`]).
    clock: Option<StepClock>,
}

impl Edge {
    fn story() -> Edge {
        Edge::with_world(&world_text(""))
    }

    fn with_world(text: &str) -> Edge {
        Edge::build(text, OUTPUTS, Some(StepClock::new(0, 100)))
    }

    fn build(text: &str, outputs: EdgeOutputs, clock: Option<StepClock>) -> Edge {
        let topo = Topology::from_str(text, "story-world.toml").expect("world loads");
        let id = topo.card_by_name("blackfoot-1").expect("edge blackfoot-1");
        let tables = Tables::build_for_card(&topo, id);
        let (alerts, consumer) = alert_channel(1024);
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        let meters = Meters::new(collector.add_worker(u64::MAX).unwrap());
        let sas = Arc::new(EdgeSas::new(&tables));
        let fabric = FromFabric::new(outputs, sas);
        let outside = FromOutside::new(outputs, InboundSas::new(&tables));
        Edge {
            card: nitro::card_id(id),
            topo,
            tables,
            alerts,
            consumer,
            meters,
            _collector: collector,
            fabric,
            outside,
            clock,
        }
    }

    fn vpn(&self) -> VpnEntry {
        self.tables.vpns().next().expect("vpn-red").clone()
    }

    /// Underlay in: `frames` as one burst.
    fn run_fabric(&mut self, frames: &[Vec<u8>]) -> Pass {
        let mut burst = burst_of(frames);
        let mut extra = VecExtra::new(|| Some(TestBuffer::with_room(128, 2048)));
        let mut ctx = EdgeCtx {
            tables: &self.tables,
            card: self.card,
            alerts: &mut self.alerts,
        };
        match &self.clock {
            Some(clock) => {
                self.fabric
                    .process(&mut burst, &mut ctx, &mut extra, clock, &mut self.meters)
            }
            None => self.fabric.process(
                &mut burst,
                &mut ctx,
                &mut extra,
                &NullClock,
                &mut self.meters,
            ),
        }
        assert_eq!(burst.live_mask(), 0, "FromFabric left packets undecided");
        let out = drain(&mut burst, &mut self.meters);
        let extra = extra
            .sent
            .into_iter()
            .map(|(b, o)| (b.data().to_vec(), o))
            .collect();
        Pass { out, extra }
    }

    /// Outside in on `side`: `frames` as one burst.
    fn run_outside(&mut self, side: Side, frames: &[Vec<u8>]) -> Pass {
        let mut burst = burst_of(frames);
        let mut ctx = EdgeCtx {
            tables: &self.tables,
            card: self.card,
            alerts: &mut self.alerts,
        };
        match &self.clock {
            Some(clock) => {
                self.outside
                    .process(side, &mut burst, &mut ctx, clock, &mut self.meters)
            }
            None => self
                .outside
                .process(side, &mut burst, &mut ctx, &NullClock, &mut self.meters),
        }
        assert_eq!(burst.live_mask(), 0, "FromOutside left packets undecided");
        let out = drain(&mut burst, &mut self.meters);
        Pass {
            out,
            extra: Vec::new(),
        }
    }

    fn alerts(&self) -> Vec<AlertEvent> {
        std::iter::from_fn(|| self.consumer.pop()).collect()
    }

    fn drops(&self, reason: DropReason) -> u64 {
        self.meters.counters.drops(reason)
    }

    /// The one alert a drop raised.
    fn alert(
        &self,
        reason: DropReason,
        stage: StageId,
        vni: u32,
        peer_vni: Option<u32>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> AlertEvent {
        AlertEvent {
            reason,
            stage,
            card: self.card,
            eni: None,
            vni,
            peer_vni,
            src,
            dst,
        }
    }
}

fn burst_of(frames: &[Vec<u8>]) -> Burst<TestBuffer> {
    let mut burst = Burst::new();
    for f in frames {
        burst
            .push(TestBuffer::from_slice(f))
            .expect("burst has room");
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

fn drop(reason: DropReason) -> Verdict {
    Verdict::Drop(reason)
}

fn fwd(out: Output) -> Verdict {
    Verdict::Forward(out)
}

// ----- packets, built here without the crate under test -----

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// An IPv4 packet with a 20-byte header: TTL 61, ident `ident`, DF as asked.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, df: bool, ident: u16, body: &[u8]) -> Vec<u8> {
    let total = 20 + body.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[1] = 0x28; // DSCP 10 (AF11): carried through unchanged
    put16(&mut p, 2, total as u16);
    put16(&mut p, 4, ident);
    put16(&mut p, 6, if df { 0x4000 } else { 0 });
    p[8] = 61;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum::ipv4_header(&p[..20]);
    put16(&mut p, 10, c);
    p[20..].copy_from_slice(body);
    p
}

fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8], df: bool) -> Vec<u8> {
    let mut s = vec![0u8; 8 + data.len()];
    put16(&mut s, 0, sport);
    put16(&mut s, 2, dport);
    put16(&mut s, 4, (8 + data.len()) as u16);
    s[8..].copy_from_slice(data);
    let c = checksum::udp_on_wire(checksum::tcp_udp_ipv4(src, dst, PROTO_UDP, &s));
    put16(&mut s, 6, c);
    ipv4(src, dst, PROTO_UDP, df, 0x1001, &s)
}

fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8], df: bool) -> Vec<u8> {
    let mut s = vec![0u8; 20 + data.len()];
    put16(&mut s, 0, sport);
    put16(&mut s, 2, dport);
    s[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    s[8..12].copy_from_slice(&0x9abc_def0u32.to_be_bytes());
    s[12] = 5 << 4;
    s[13] = 0x18; // PSH ACK
    put16(&mut s, 14, 64240);
    s[20..].copy_from_slice(data);
    let c = checksum::tcp_udp_ipv4(src, dst, PROTO_TCP, &s);
    put16(&mut s, 16, c);
    ipv4(src, dst, PROTO_TCP, df, 0x2002, &s)
}

/// An ICMP message: type, code, the 4 bytes after the checksum, then `data`.
fn icmp(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 8 + data.len()];
    m[0] = ty;
    m[1] = code;
    m[4..8].copy_from_slice(&rest);
    m[8..].copy_from_slice(data);
    let c = checksum::checksum(&m);
    put16(&mut m, 2, c);
    ipv4(src, dst, PROTO_ICMP, false, 0x3003, &m)
}

fn echo(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, data: &[u8]) -> Vec<u8> {
    icmp(src, dst, ty, 0, [0x00, 0x2a, 0x00, 0x07], data)
}

/// A Geneve frame from `src_pa` to `dst_pa` (the layout of ARCHITECTURE section 3),
/// written with the wire crate's emitter.
fn geneve(
    src_pa: Ipv4Addr,
    dst_pa: Ipv4Addr,
    vni: u32,
    source_vpc: u32,
    endpoint: Option<u64>,
    inner: &[u8],
) -> Vec<u8> {
    let encap = Encap {
        src_mac: nitro::card_mac(src_pa),
        dst_mac: nitro::UNDERLAY_ROUTER_MAC,
        src_pa,
        dst_pa,
        vni,
        source_vpc,
    };
    let len = vpc::outer_len(endpoint);
    let mut f = vec![0u8; len + inner.len()];
    let n = vpc::emit_outer_into(
        &mut f,
        &encap,
        endpoint,
        inner.len(),
        vpc::inner_flow_hash(inner),
    )
    .expect("emit outer");
    assert_eq!(n, len);
    f[len..].copy_from_slice(inner);
    f
}

/// What a host's card sends the edge for an instance of VPC `vni`.
fn from_host(src_pa: Ipv4Addr, vni: u32, inner: &[u8]) -> Vec<u8> {
    geneve(src_pa, PA_EDGE, vni, vni, None, inner)
}

fn ether(dst: EthernetAddress, src: EthernetAddress, ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + body.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// What the upstream router hands the edge's internet port.
fn from_internet(ip: &[u8]) -> Vec<u8> {
    ether(nitro::card_mac(PA_EDGE), INTERNET_NEXT_HOP_MAC, 0x0800, ip)
}

/// What the DX router sends on VLAN `vid`.
fn from_dx(vid: u16, ip: &[u8]) -> Vec<u8> {
    let mut tagged = Vec::with_capacity(4 + ip.len());
    tagged.extend_from_slice(&vid.to_be_bytes());
    tagged.extend_from_slice(&[0x08, 0x00]);
    tagged.extend_from_slice(ip);
    ether(nitro::card_mac(PA_EDGE), DX_ROUTER_MAC, 0x8100, &tagged)
}

/// `ip` with its source or destination replaced, every checksum recomputed from scratch
/// (UDP checksum 0 stays 0): the oracle for NAT.
fn readdressed(ip: &[u8], src: Option<Ipv4Addr>, dst: Option<Ipv4Addr>) -> Vec<u8> {
    let mut p = ip.to_vec();
    if let Some(s) = src {
        p[12..16].copy_from_slice(&s.octets());
    }
    if let Some(d) = dst {
        p[16..20].copy_from_slice(&d.octets());
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    put16(&mut p, 10, 0);
    let c = checksum::ipv4_header(&p[..ihl]);
    put16(&mut p, 10, c);
    let (s, d) = (addr(&p, 12), addr(&p, 16));
    let (proto, at) = match p[9] {
        PROTO_TCP => (PROTO_TCP, 16),
        PROTO_UDP => (PROTO_UDP, 6),
        _ => return p,
    };
    let seg = &mut p[ihl..];
    if proto == PROTO_UDP && get16(seg, 6) == 0 {
        return p;
    }
    put16(seg, at, 0);
    let mut c = checksum::tcp_udp_ipv4(s, d, proto, seg);
    if proto == PROTO_UDP {
        c = checksum::udp_on_wire(c);
    }
    put16(seg, at, c);
    p
}

/// `ip` with source and destination swapped, and the ports too for TCP and UDP (every
/// checksum stays valid: the sums do not depend on the order).
fn swapped(ip: &[u8]) -> Vec<u8> {
    let mut p = ip.to_vec();
    p[12..16].copy_from_slice(&ip[16..20]);
    p[16..20].copy_from_slice(&ip[12..16]);
    if p[9] == PROTO_TCP || p[9] == PROTO_UDP {
        p[20..22].copy_from_slice(&ip[22..24]);
        p[22..24].copy_from_slice(&ip[20..22]);
    }
    p
}

// ----- checks -----

/// The IPv4 header is sound (version, IHL, checksum) and its total length is the buffer.
fn assert_ipv4_sound(ip: &[u8]) {
    assert!(ip.len() >= 20, "short IPv4 packet");
    assert_eq!(ip[0] >> 4, 4, "version");
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    assert!(checksum::ipv4_header_ok(&ip[..ihl]), "IPv4 header checksum");
    assert_eq!(usize::from(get16(ip, 2)), ip.len(), "IPv4 total length");
}

/// The transport checksum of an unfragmented packet verifies (UDP 0 = none).
fn assert_l4_sound(ip: &[u8]) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let seg = &ip[ihl..];
    let (src, dst) = (addr(ip, 12), addr(ip, 16));
    match ip[9] {
        PROTO_TCP => assert!(
            checksum::tcp_udp_ipv4_ok(src, dst, PROTO_TCP, seg),
            "TCP checksum"
        ),
        PROTO_UDP => assert!(
            get16(seg, 6) == 0 || checksum::tcp_udp_ipv4_ok(src, dst, PROTO_UDP, seg),
            "UDP checksum"
        ),
        PROTO_ICMP => assert_eq!(checksum::sum(seg), 0xffff, "ICMP checksum"),
        _ => {}
    }
}

/// The IPv4 packet of a frame out of the internet side (Ethernet to the next hop, from
/// the edge's MAC).
fn internet_ip(frame: &[u8]) -> &[u8] {
    assert!(frame.len() >= 14 + 20);
    assert_eq!(
        &frame[..6],
        &INTERNET_NEXT_HOP_MAC.0,
        "Ethernet destination"
    );
    assert_eq!(
        &frame[6..12],
        &nitro::card_mac(PA_EDGE).0,
        "Ethernet source"
    );
    assert_eq!(&frame[12..14], &[0x08, 0x00], "EtherType");
    &frame[14..]
}

/// The inner packet of a Geneve frame from the edge to the host at `pa`, VNI = source
/// VPC = `vni`, without endpoint option.
fn host_inner(frame: &[u8], pa: Ipv4Addr, vni: u32) -> Vec<u8> {
    let o = vpc::parse_outer(frame).expect("a valid VPC encapsulation");
    assert_eq!(
        &frame[..6],
        &nitro::UNDERLAY_ROUTER_MAC.0,
        "outer Ethernet destination"
    );
    assert_eq!(
        &frame[6..12],
        &nitro::card_mac(PA_EDGE).0,
        "outer Ethernet source"
    );
    assert_eq!((o.src_pa, o.dst_pa), (PA_EDGE, pa), "outer addresses");
    assert_eq!((o.vni, o.source_vpc, o.endpoint_id), (vni, vni, None));
    assert_eq!(o.inner_offset, vpc::OUTER_HEADER_LEN);
    assert_eq!(o.inner_offset + o.inner_len, frame.len());
    // DF, TTL 64, UDP checksum 0, source port from the inner flow hash (section 3).
    assert_eq!(get16(frame, 20), 0x4000);
    assert_eq!(frame[22], 64);
    assert_eq!(get16(frame, 40), 0);
    let inner = frame[o.inner_offset..].to_vec();
    assert_eq!(o.src_port, vpc::src_port(vpc::inner_flow_hash(&inner)));
    inner
}

/// Offset in 8-byte units and MF of an IPv4 packet.
fn frag_of(ip: &[u8]) -> (usize, bool) {
    let f = get16(ip, 6);
    (usize::from(f & 0x1fff) * 8, f & 0x2000 != 0)
}

/// Reassemble fragments (any order) into the datagram: the first fragment's header with
/// the full length, MF and offset cleared, checksum recomputed.
fn reassemble(fragments: &[Vec<u8>]) -> Vec<u8> {
    let mut frags: Vec<&Vec<u8>> = fragments.iter().collect();
    frags.sort_by_key(|f| frag_of(f).0);
    let first = frags[0];
    let ihl = usize::from(first[0] & 0x0f) * 4;
    let mut data = Vec::new();
    for (k, f) in frags.iter().enumerate() {
        assert_ipv4_sound(f);
        assert_eq!(get16(f, 4), get16(first, 4), "same identification");
        assert_eq!(&f[12..20], &first[12..20], "same addresses");
        let (off, mf) = frag_of(f);
        assert_eq!(off, data.len(), "contiguous fragments");
        assert_eq!(mf, k + 1 < frags.len(), "MF on every fragment but the last");
        let fihl = usize::from(f[0] & 0x0f) * 4;
        data.extend_from_slice(&f[fihl..]);
    }
    let mut p = first[..ihl].to_vec();
    p.extend_from_slice(&data);
    let total = p.len() as u16;
    put16(&mut p, 2, total);
    let flags = get16(&p, 6) & 0x4000;
    put16(&mut p, 6, flags);
    put16(&mut p, 10, 0);
    let c = checksum::ipv4_header(&p[..ihl]);
    put16(&mut p, 10, c);
    p
}

// ----- ESP, from the customer gateway's side -----

/// The customer gateway decrypts what the edge sends: an inbound SA made of the VPN's
/// *outbound* configuration.
fn customer_rx(vpn: &VpnEntry) -> InboundSa<RingAesGcm> {
    InboundSa::with_ring(&vpn.outbound).expect("key")
}

/// The customer gateway encrypts what it sends the edge: an outbound SA made of the VPN's
/// *inbound* configuration, from the gateway to the tunnel address.
fn customer_tx(vpn: &VpnEntry) -> OutboundSa<RingAesGcm> {
    OutboundSa::with_ring(&vpn.inbound, CUSTOMER_GW, TUNNEL_LOCAL).expect("key")
}

/// Check the outer header of an ESP packet from the edge and decrypt it: (sequence
/// number, inner packet).
fn open_esp(ip: &[u8], sa: &mut InboundSa<RingAesGcm>) -> (u32, Vec<u8>) {
    assert_ipv4_sound(ip);
    assert!(
        ip.len() <= INTERNET_MTU,
        "tunnel packet over the internet MTU"
    );
    assert_eq!(ip[9], PROTO_ESP);
    assert_eq!((addr(ip, 12), addr(ip, 16)), (TUNNEL_LOCAL, CUSTOMER_GW));
    assert_eq!(get32(ip, 20), OUTBOUND_SPI);
    let seq = get32(ip, 24);
    let mut b = TestBuffer::from_slice(&ip[20..]);
    esp::decrypt(&mut b, sa).expect("the customer gateway decrypts it");
    (seq, b.data().to_vec())
}

/// What the customer gateway sends: `inner` sealed with `sa`, in an Ethernet frame.
fn sealed(inner: &[u8], sa: &OutboundSa<RingAesGcm>) -> Vec<u8> {
    let mut b = TestBuffer::from_slice(inner);
    esp::encrypt(&mut b, sa).expect("encrypt");
    from_internet(b.data())
}

// ===== from the fabric =====

#[test]
fn internet_udp_tcp_and_echo_are_snatted_to_the_elastic_ip() {
    let mut edge = Edge::story();
    let packets = [
        udp(
            RED1,
            INTERNET_HOST,
            40000,
            53,
            b"which way to the internet?",
            true,
        ),
        tcp(RED1, INTERNET_HOST, 40001, 443, &payload(333, 1), true),
        echo(RED1, INTERNET_HOST, 8, b"ping!ping!"),
        // UDP without checksum: stays without.
        {
            let mut p = udp(RED1, INTERNET_HOST, 40002, 123, b"no checksum", false);
            put16(&mut p, 26, 0);
            p
        },
    ];
    let frames: Vec<_> = packets.iter().map(|p| from_host(PA_A, RED, p)).collect();
    let pass = edge.run_fabric(&frames);
    assert_eq!(pass.verdicts(), vec![fwd(INTERNET); packets.len()]);
    assert!(pass.extra.is_empty());
    for ((_, frame), orig) in pass.out.iter().zip(&packets) {
        let ip = internet_ip(frame);
        assert_eq!(
            ip,
            &readdressed(orig, Some(EIP_RED1), None)[..],
            "SNAT, checksums updated"
        );
        assert_eq!(addr(ip, 12), EIP_RED1);
        assert_eq!(addr(ip, 16), INTERNET_HOST);
        assert_eq!(ip[8], 61, "TTL not decremented");
        assert_ipv4_sound(ip);
        assert_l4_sound(ip);
    }
    assert_eq!(
        get16(internet_ip(&pass.out[3].1), 26),
        0,
        "UDP checksum 0 stays 0"
    );
    assert_eq!(edge.meters.counters.output(INTERNET), packets.len() as u64);
    assert_eq!(edge.meters.counters.total_drops(), 0);
    assert!(edge.alerts().is_empty());
}

#[test]
fn a_padded_frame_is_trimmed_before_snat() {
    let mut edge = Edge::story();
    let inner = udp(RED1, INTERNET_HOST, 40000, 53, b"x", true);
    let mut frame = from_host(PA_A, RED, &inner);
    frame.extend_from_slice(&[0xee; 17]);
    let pass = edge.run_fabric(&[frame]);
    let ip = internet_ip(pass.only(fwd(INTERNET)));
    assert_eq!(ip, &readdressed(&inner, Some(EIP_RED1), None)[..]);
}

#[test]
fn a_3000_byte_datagram_without_df_goes_out_in_fragments() {
    let mut edge = Edge::story();
    let orig = udp(
        RED1,
        INTERNET_HOST,
        40000,
        9999,
        &payload(3000 - 28, 3),
        false,
    );
    assert_eq!(orig.len(), 3000);
    let pass = edge.run_fabric(&[from_host(PA_A, RED, &orig)]);
    let first = internet_ip(pass.only(fwd(INTERNET))).to_vec();
    assert_eq!(first.len(), INTERNET_MTU, "first fragment fills the MTU");
    assert_eq!(frag_of(&first), (0, true));
    // 2980 bytes of data: 1480 + 1480 + 20.
    assert_eq!(
        pass.extra.len(),
        2,
        "the other fragments go out through Extra"
    );
    let mut frags = vec![first];
    for (frame, out) in &pass.extra {
        assert_eq!(*out, INTERNET);
        let ip = internet_ip(frame);
        assert!(ip.len() <= INTERNET_MTU);
        assert_eq!(addr(ip, 12), EIP_RED1);
        frags.push(ip.to_vec());
    }
    assert_eq!(
        frags.iter().map(|f| frag_of(f).0).collect::<Vec<_>>(),
        [0, 1480, 2960]
    );
    let whole = reassemble(&frags);
    assert_eq!(
        whole,
        readdressed(&orig, Some(EIP_RED1), None),
        "reassembles to the SNATed original"
    );
    assert_l4_sound(&whole);
    assert_eq!(edge.meters.counters.total_drops(), 0);
}

/// The ICMP fragmentation-needed the edge sends back for `orig` (MTU `mtu`), as red-1's
/// host receives it: from the VPC router to red-1, quoting the header and 8 bytes.
fn assert_frag_needed(frame: &[u8], orig: &[u8], mtu: u16) {
    let ip = host_inner(frame, PA_A, RED);
    assert_ipv4_sound(&ip);
    assert_eq!(ip[9], PROTO_ICMP);
    assert_eq!((addr(&ip, 12), addr(&ip, 16)), (RED_ROUTER, RED1));
    assert_eq!(get16(&ip, 6) & 0x4000, 0, "DF clear");
    let m = &ip[20..];
    assert_eq!(
        (m[0], m[1]),
        (3, 4),
        "destination unreachable, fragmentation needed"
    );
    assert_eq!(get16(m, 6), mtu, "next-hop MTU");
    assert_eq!(&m[8..], &orig[..28], "quotes the IPv4 header and 8 bytes");
    assert_l4_sound(&ip);
}

#[test]
fn a_3000_byte_datagram_with_df_gets_fragmentation_needed_back() {
    let mut edge = Edge::story();
    let orig = udp(
        RED1,
        INTERNET_HOST,
        40000,
        9999,
        &payload(3000 - 28, 4),
        true,
    );
    let pass = edge.run_fabric(&[from_host(PA_A, RED, &orig)]);
    assert_frag_needed(pass.only(fwd(FABRIC)), &orig, 1500);
    assert!(pass.extra.is_empty());
    assert_eq!(edge.meters.counters.output(FABRIC), 1);
    assert_eq!(edge.meters.counters.stage_packets(StageId::Encap), 1);
}

#[test]
fn vpn_traffic_is_esp_to_the_customer_gateway_with_increasing_sequence_numbers() {
    let mut edge = Edge::story();
    let vpn = edge.vpn();
    assert_eq!(
        (vpn.outbound.spi, vpn.inbound.spi),
        (OUTBOUND_SPI, INBOUND_SPI)
    );
    let mut gw = customer_rx(&vpn);
    for (k, seq) in [1u32, 2, 3].into_iter().enumerate() {
        let inner = udp(
            RED1,
            CUSTOMER_HOST,
            40001,
            9000,
            &payload(50 + k, k as u8),
            true,
        );
        let pass = edge.run_fabric(&[from_host(PA_A, RED, &inner)]);
        let ip = internet_ip(pass.only(fwd(INTERNET)));
        assert_eq!(ip.len(), esp::tunnel_len(inner.len()));
        assert_eq!(get16(ip, 6), 0x4000, "DF copied from the inner header");
        assert_eq!(ip[1], inner[1] & 0xfc, "DSCP copied, ECN 0");
        let (got_seq, plain) = open_esp(ip, &mut gw);
        assert_eq!(got_seq, seq);
        assert_eq!(plain, inner, "decrypts to the original");
    }
    // Two in one burst: 4 and 5.
    let a = tcp(RED1, CUSTOMER_HOST, 1, 2, b"a", false);
    let b = echo(RED1, CUSTOMER_HOST, 8, b"b");
    let pass = edge.run_fabric(&[from_host(PA_A, RED, &a), from_host(PA_A, RED, &b)]);
    assert_eq!(pass.verdicts(), [fwd(INTERNET), fwd(INTERNET)]);
    assert_eq!(open_esp(internet_ip(&pass.out[0].1), &mut gw), (4, a));
    assert_eq!(open_esp(internet_ip(&pass.out[1].1), &mut gw), (5, b));
    assert_eq!(edge.meters.counters.stage_packets(StageId::EspEncrypt), 5);
    assert_eq!(edge.meters.counters.stage_packets(StageId::Nat), 0);
}

#[test]
fn a_2000_byte_vpn_packet_without_df_is_fragmented_then_encrypted() {
    let mut edge = Edge::story();
    let mut gw = customer_rx(&edge.vpn());
    let inner = udp(
        RED1,
        CUSTOMER_HOST,
        40001,
        9000,
        &payload(2000 - 28, 9),
        false,
    );
    let pass = edge.run_fabric(&[from_host(PA_A, RED, &inner)]);
    let first = internet_ip(pass.only(fwd(INTERNET))).to_vec();
    assert_eq!(pass.extra.len(), 1);
    assert_eq!(pass.extra[0].1, INTERNET);
    let second = internet_ip(&pass.extra[0].0).to_vec();
    let (seq1, frag1) = open_esp(&first, &mut gw);
    let (seq2, frag2) = open_esp(&second, &mut gw);
    // Numbered in wire order: the first fragment (in the burst, sent first) gets 1, the
    // second (through Extra, sent after the burst) gets 2.
    assert_eq!((seq1, seq2), (1, 2));
    let max_inner = esp::max_inner_for_mtu(INTERNET_MTU);
    assert!(frag1.len() <= max_inner && frag2.len() <= max_inner);
    assert_eq!(frag_of(&frag1), (0, true));
    assert!(!frag_of(&frag2).1, "MF clear on the last fragment");
    assert_eq!(reassemble(&[frag1, frag2]), inner);
}

#[test]
fn a_2000_byte_vpn_packet_with_df_gets_fragmentation_needed_for_the_tunnel_mtu() {
    let mut edge = Edge::story();
    let inner = udp(
        RED1,
        CUSTOMER_HOST,
        40001,
        9000,
        &payload(2000 - 28, 9),
        true,
    );
    let pass = edge.run_fabric(&[from_host(PA_A, RED, &inner)]);
    let mtu = esp::max_inner_for_mtu(INTERNET_MTU);
    assert_eq!(mtu, 1446);
    assert_frag_needed(pass.only(fwd(FABRIC)), &inner, mtu as u16);
    // Just fits: goes out encrypted at exactly 1500 bytes.
    let fits = udp(
        RED1,
        CUSTOMER_HOST,
        40001,
        9000,
        &payload(mtu - 28, 1),
        true,
    );
    let pass = edge.run_fabric(&[from_host(PA_A, RED, &fits)]);
    let ip = internet_ip(pass.only(fwd(INTERNET)));
    assert_eq!(ip.len(), INTERNET_MTU);
    let (seq, plain) = open_esp(ip, &mut customer_rx(&edge.vpn()));
    assert_eq!(
        (seq, plain),
        (1, fits),
        "the bounce used no sequence number"
    );
}

#[test]
fn dx_traffic_is_tagged_with_the_vifs_vlan() {
    let mut edge = Edge::story();
    let inner = udp(
        YELLOW1,
        DX_HOST,
        40002,
        7000,
        b"over the private line",
        true,
    );
    let pass = edge.run_fabric(&[from_host(PA_B, YELLOW, &inner)]);
    let f = pass.only(fwd(DX));
    assert_eq!(&f[..6], &DX_ROUTER_MAC.0);
    assert_eq!(&f[6..12], &nitro::card_mac(PA_EDGE).0);
    assert_eq!(&f[12..14], &[0x81, 0x00], "802.1Q");
    assert_eq!(get16(f, 14), 101, "PCP 0, DEI 0, VLAN 101");
    assert_eq!(&f[16..18], &[0x08, 0x00]);
    assert_eq!(&f[18..], &inner[..], "inner packet unchanged");
    assert_eq!(edge.meters.counters.stage_packets(StageId::Vlan), 1);
}

#[test]
fn s3_traffic_is_reencapsulated_to_the_front_end_with_the_endpoint_id() {
    let mut edge = Edge::story();
    let inner = tcp(RED1, S3_HOST, 40003, 443, b"GET /bucket/key", true);
    let pass = edge.run_fabric(&[from_host(PA_A, RED, &inner)]);
    let f = pass.only(fwd(SERVICES));
    let o = vpc::parse_outer(f).expect("Geneve");
    assert_eq!((o.src_pa, o.dst_pa), (PA_EDGE, FRONT_END));
    assert_eq!(
        (o.vni, o.source_vpc, o.endpoint_id),
        (RED, RED, Some(ENDPOINT_ID))
    );
    assert_eq!(o.inner_offset, vpc::OUTER_HEADER_LEN_WITH_ENDPOINT);
    assert_eq!(&f[..6], &nitro::UNDERLAY_ROUTER_MAC.0);
    assert_eq!(&f[6..12], &nitro::card_mac(PA_EDGE).0);
    // The option exactly: class 0x0108, type 1, length 2, the 64-bit ID.
    assert_eq!(&f[58..62], &[0x01, 0x08, 0x01, 0x02]);
    assert_eq!(&f[62..70], &ENDPOINT_ID.to_be_bytes());
    assert_eq!(
        &f[o.inner_offset..],
        &inner[..],
        "inner packet unchanged, source too"
    );
}

#[test]
fn an_icmp_error_from_red1_has_its_quote_snatted() {
    // red-1 answers a packet the internet host sent to its Elastic IP (which the edge
    // DNATed) with port unreachable: the quote must show the Elastic IP again.
    let mut edge = Edge::story();
    let seen_by_red1 = udp(INTERNET_HOST, RED1, 5353, 9, &payload(40, 5), false);
    let on_the_internet = readdressed(&seen_by_red1, None, Some(EIP_RED1));
    let error = icmp(RED1, INTERNET_HOST, 3, 3, [0; 4], &seen_by_red1);
    let pass = edge.run_fabric(&[from_host(PA_A, RED, &error)]);
    let ip = internet_ip(pass.only(fwd(INTERNET)));
    let expected = icmp(EIP_RED1, INTERNET_HOST, 3, 3, [0; 4], &on_the_internet);
    assert_eq!(ip, &expected[..]);
    assert_l4_sound(&ip[20 + 8..]);
}

// ===== drops from the fabric =====

#[test]
fn a_source_not_behind_the_outer_pa_is_an_unknown_sender() {
    let mut edge = Edge::story();
    let inner = udp(RED1, INTERNET_HOST, 1, 2, b"spoof", true);
    let pass = edge.run_fabric(&[from_host(PA_B, RED, &inner)]);
    pass.only(drop(DropReason::UnknownSender));
    assert_eq!(
        edge.alerts(),
        [edge.alert(
            DropReason::UnknownSender,
            StageId::VerifyRecv,
            RED,
            None,
            RED1,
            INTERNET_HOST
        )]
    );
    assert_eq!(edge.drops(DropReason::UnknownSender), 1);
}

#[test]
fn a_vni_other_than_the_source_vpc_is_an_unknown_sender() {
    let mut edge = Edge::story();
    // red-1, really on host-a, but the VNI names yellow (a peer may not use red's gateways).
    let inner = udp(RED1, INTERNET_HOST, 1, 2, b"transit", true);
    let pass = edge.run_fabric(&[geneve(PA_A, PA_EDGE, YELLOW, RED, None, &inner)]);
    pass.only(drop(DropReason::UnknownSender));
    assert_eq!(
        edge.alerts(),
        [edge.alert(
            DropReason::UnknownSender,
            StageId::VerifyRecv,
            RED,
            Some(YELLOW),
            RED1,
            INTERNET_HOST
        )]
    );
}

#[test]
fn a_frame_for_another_pa_is_an_unknown_destination() {
    let mut edge = Edge::story();
    let inner = udp(RED1, INTERNET_HOST, 1, 2, b"lost", true);
    let pass = edge.run_fabric(&[geneve(PA_A, PA_B, RED, RED, None, &inner)]);
    pass.only(drop(DropReason::UnknownDestination));
    assert!(edge.alerts().is_empty(), "not a security reason");
}

#[test]
fn green_is_not_served_by_the_edge_so_its_sender_is_unknown() {
    // Green (VNI 103, internet_gateway = "") has nothing on blackfoot-1: the edge's tables
    // hold neither the VPC nor its mappings, so verify-recv cannot place green-1 behind
    // host-a and drops it as `unknown_sender` (with an alert) before any route lookup.
    let mut edge = Edge::story();
    assert!(edge.tables.vpc(GREEN).is_none());
    let inner = udp(GREEN1, INTERNET_HOST, 1, 2, b"let me out", true);
    let pass = edge.run_fabric(&[from_host(PA_A, GREEN, &inner)]);
    pass.only(drop(DropReason::UnknownSender));
    assert_eq!(
        edge.alerts(),
        [edge.alert(
            DropReason::UnknownSender,
            StageId::VerifyRecv,
            GREEN,
            None,
            GREEN1,
            INTERNET_HOST
        )]
    );
}

#[test]
fn yellow_has_no_internet_gateway_so_no_route() {
    let mut edge = Edge::story();
    let inner = udp(YELLOW1, INTERNET_HOST, 1, 2, b"out?", true);
    let pass = edge.run_fabric(&[from_host(PA_B, YELLOW, &inner)]);
    pass.only(drop(DropReason::NoRoute));
    assert_eq!(
        edge.alerts(),
        [edge.alert(
            DropReason::NoRoute,
            StageId::VerifyRecv,
            YELLOW,
            None,
            YELLOW1,
            INTERNET_HOST
        )]
    );
}

#[test]
fn yellow_to_red_through_the_edge_is_not_for_the_edge() {
    // A VPC route (the peer red) sent to the edge: `unknown_destination`, no alert.
    let mut edge = Edge::story();
    let inner = udp(YELLOW1, RED1, 1, 2, b"peer", true);
    let pass = edge.run_fabric(&[from_host(PA_B, YELLOW, &inner)]);
    pass.only(drop(DropReason::UnknownDestination));
    assert!(edge.alerts().is_empty());
}

#[test]
fn a_source_without_elastic_ip_is_dropped_at_nat() {
    let mut edge = Edge::with_world(&world_text(RED2_NO_EIP));
    let inner = udp(RED2, INTERNET_HOST, 1, 2, b"no eip", true);
    let pass = edge.run_fabric(&[from_host(PA_B, RED, &inner)]);
    pass.only(drop(DropReason::NoElasticIp));
    assert!(edge.alerts().is_empty());
    assert_eq!(edge.meters.counters.stage_packets(StageId::Nat), 1);
    assert_eq!(edge.meters.counters.stage_drops(StageId::Nat), 1);
    // red-2 still reaches the VPN and the S3 endpoint, which need no Elastic IP.
    let vpn = udp(RED2, CUSTOMER_HOST, 1, 2, b"vpn", true);
    let s3 = udp(RED2, S3_HOST, 1, 2, b"s3", true);
    let pass = edge.run_fabric(&[from_host(PA_B, RED, &vpn), from_host(PA_B, RED, &s3)]);
    assert_eq!(pass.verdicts(), [fwd(INTERNET), fwd(SERVICES)]);
}

#[test]
fn sides_without_a_port_are_unknown_destinations() {
    let outputs = EdgeOutputs {
        fabric: FABRIC,
        internet: None,
        dx: None,
        services: None,
    };
    let mut edge = Edge::build(&world_text(""), outputs, None);
    let frames = [
        from_host(PA_A, RED, &udp(RED1, INTERNET_HOST, 1, 2, b"igw", true)),
        from_host(PA_A, RED, &udp(RED1, CUSTOMER_HOST, 1, 2, b"vpn", true)),
        from_host(PA_B, YELLOW, &udp(YELLOW1, DX_HOST, 1, 2, b"dx", true)),
        from_host(PA_A, RED, &udp(RED1, S3_HOST, 1, 2, b"s3", true)),
    ];
    let pass = edge.run_fabric(&frames);
    assert_eq!(
        pass.verdicts(),
        vec![drop(DropReason::UnknownDestination); 4]
    );
}

#[test]
fn a_dx_route_held_by_another_edge_is_not_sent_on_this_edges_vif() {
    // red has a VIF on blackfoot-2 with VLAN 101, the number of yellow's VIF on
    // blackfoot-1. A red packet for red's DX prefix that reaches blackfoot-1 (misdirected)
    // must not leave on yellow's VLAN 101: the route is held by another edge.
    let mut edge = Edge::with_world(&world_text(RED_DX_ON_EDGE_2));
    let inner = udp(
        RED1,
        Ipv4Addr::new(10, 99, 0, 5),
        1,
        2,
        b"to red's DC",
        true,
    );
    let pass = edge.run_fabric(&[from_host(PA_A, RED, &inner)]);
    assert_eq!(
        pass.verdicts(),
        [drop(DropReason::UnknownDestination)],
        "red's packet went out on yellow's Direct Connect VIF"
    );
    // Yellow's own DX traffic still goes out.
    let ok = udp(YELLOW1, DX_HOST, 1, 2, b"dx", true);
    let pass = edge.run_fabric(&[from_host(PA_B, YELLOW, &ok)]);
    assert_eq!(pass.verdicts(), [fwd(DX)]);
    assert!(edge.topo.dxs().len() == 2);
}

/// Valid frames of every class from the fabric.
fn fabric_frames() -> Vec<Vec<u8>> {
    vec![
        from_host(
            PA_A,
            RED,
            &udp(RED1, INTERNET_HOST, 40000, 53, &payload(30, 1), true),
        ),
        from_host(
            PA_A,
            RED,
            &tcp(RED1, CUSTOMER_HOST, 40001, 22, &payload(30, 2), true),
        ),
        from_host(PA_B, YELLOW, &echo(YELLOW1, DX_HOST, 8, &payload(30, 3))),
        from_host(
            PA_A,
            RED,
            &udp(RED1, S3_HOST, 40003, 443, &payload(30, 4), true),
        ),
    ]
}

#[test]
fn truncated_fabric_frames_are_malformed_or_unsupported_never_a_panic() {
    let mut edge = Edge::story();
    for frame in fabric_frames() {
        let cuts: Vec<Vec<u8>> = (0..frame.len()).map(|n| frame[..n].to_vec()).collect();
        for chunk in cuts.chunks(MAX_BURST) {
            let pass = edge.run_fabric(chunk);
            assert!(pass.extra.is_empty());
            for (k, (v, _)) in pass.out.iter().enumerate() {
                assert!(
                    matches!(
                        v,
                        Verdict::Drop(DropReason::Malformed | DropReason::Unsupported)
                    ),
                    "cut at {}: {v:?}",
                    chunk[k].len()
                );
            }
        }
        // The whole frame still goes through.
        let pass = edge.run_fabric(&[frame]);
        assert!(matches!(pass.verdicts()[..], [Verdict::Forward(_)]));
    }
    assert!(edge.alerts().is_empty());
    assert_eq!(edge.meters.counters.drops(DropReason::NoVerdict), 0);
}

#[test]
fn inner_header_damage_is_malformed() {
    let mut edge = Edge::story();
    let inner = udp(RED1, INTERNET_HOST, 1, 2, b"x", true);
    let mut bad_sum = inner.clone();
    bad_sum[10] ^= 1;
    let mut bad_len = inner.clone();
    put16(&mut bad_len, 2, inner.len() as u16 - 1);
    let c = checksum::ipv4_header(&bad_len[..20]);
    put16(&mut bad_len, 10, c);
    let mut bad_version = inner.clone();
    bad_version[0] = 0x65;
    let frames: Vec<_> = [bad_sum, bad_len, bad_version]
        .iter()
        .map(|p| from_host(PA_A, RED, p))
        .collect();
    let pass = edge.run_fabric(&frames);
    assert_eq!(pass.verdicts(), vec![drop(DropReason::Malformed); 3]);
}

// ===== outside in: internet =====

#[test]
fn internet_answers_are_dnatted_and_carried_to_red1s_host() {
    let mut edge = Edge::story();
    let packets = [
        udp(INTERNET_HOST, EIP_RED1, 53, 40000, b"right here", false),
        tcp(INTERNET_HOST, EIP_RED1, 443, 40001, &payload(200, 7), true),
        echo(INTERNET_HOST, EIP_RED1, 0, b"pong!pong!"),
    ];
    let frames: Vec<_> = packets.iter().map(|p| from_internet(p)).collect();
    let pass = edge.run_outside(Side::Internet, &frames);
    assert_eq!(pass.verdicts(), vec![fwd(FABRIC); 3]);
    for ((_, frame), orig) in pass.out.iter().zip(&packets) {
        let inner = host_inner(frame, PA_A, RED);
        assert_eq!(
            inner,
            readdressed(orig, None, Some(RED1)),
            "DNAT, checksums updated"
        );
        assert_ipv4_sound(&inner);
        assert_l4_sound(&inner);
    }
    assert_eq!(edge.meters.counters.stage_packets(StageId::Nat), 3);
    assert_eq!(edge.meters.counters.stage_packets(StageId::Encap), 3);
}

#[test]
fn an_icmp_error_quoting_a_snatted_packet_gets_its_quote_translated_back() {
    let mut edge = Edge::story();
    let orig = udp(RED1, INTERNET_HOST, 40000, 53, &payload(24, 8), true);
    let pass = edge.run_fabric(&[from_host(PA_A, RED, &orig)]);
    let out = internet_ip(pass.only(fwd(INTERNET))).to_vec();
    // The internet host quotes the whole SNATed datagram (RFC 1812 allows more than 8 bytes).
    let error = icmp(INTERNET_HOST, EIP_RED1, 3, 3, [0; 4], &out);
    let pass = edge.run_outside(Side::Internet, &[from_internet(&error)]);
    let inner = host_inner(pass.only(fwd(FABRIC)), PA_A, RED);
    let expected = icmp(INTERNET_HOST, RED1, 3, 3, [0; 4], &orig);
    assert_eq!(
        inner, expected,
        "outer destination and quoted source are red-1 again"
    );
    let quote = &inner[28..];
    assert_eq!(quote, &orig[..]);
    assert_ipv4_sound(quote);
    assert_l4_sound(quote);
    // A short quote (header + 8 bytes) too.
    let error = icmp(INTERNET_HOST, EIP_RED1, 11, 0, [0; 4], &out[..28]);
    let pass = edge.run_outside(Side::Internet, &[from_internet(&error)]);
    let inner = host_inner(pass.only(fwd(FABRIC)), PA_A, RED);
    assert_eq!(inner, icmp(INTERNET_HOST, RED1, 11, 0, [0; 4], &orig[..28]));
}

#[test]
fn traffic_to_an_unassociated_address_has_no_elastic_ip() {
    let mut edge = Edge::story();
    let frames = [
        from_internet(&udp(INTERNET_HOST, NOT_AN_EIP, 53, 40000, b"?", false)),
        // ESP to an address that is neither a tunnel address nor an Elastic IP.
        from_internet(&ipv4(
            CUSTOMER_GW,
            NOT_AN_EIP,
            PROTO_ESP,
            false,
            1,
            &payload(64, 1),
        )),
    ];
    let pass = edge.run_outside(Side::Internet, &frames);
    assert_eq!(pass.verdicts(), vec![drop(DropReason::NoElasticIp); 2]);
    assert!(edge.alerts().is_empty());
    assert_eq!(edge.meters.counters.stage_drops(StageId::Classify), 2);
}

#[test]
fn esp_to_an_elastic_ip_is_plain_traffic_for_the_instance() {
    // Only the tunnel address terminates ESP: ESP to red-1's Elastic IP is red-1's own
    // business (its own IPsec), DNATed and delivered like any protocol.
    let mut edge = Edge::story();
    let esp_pkt = ipv4(CUSTOMER_GW, EIP_RED1, PROTO_ESP, false, 1, &payload(64, 1));
    let pass = edge.run_outside(Side::Internet, &[from_internet(&esp_pkt)]);
    let inner = host_inner(pass.only(fwd(FABRIC)), PA_A, RED);
    assert_eq!(inner, readdressed(&esp_pkt, None, Some(RED1)));
    assert_eq!(edge.meters.counters.stage_packets(StageId::EspDecrypt), 0);
}

#[test]
fn not_ipv4_and_broken_headers_on_the_internet_side() {
    let mut edge = Edge::story();
    let good = udp(INTERNET_HOST, EIP_RED1, 1, 2, b"x", false);
    let mut bad_sum = good.clone();
    bad_sum[11] ^= 0x80;
    let mut long = good.clone();
    put16(&mut long, 2, good.len() as u16 + 1);
    let c = checksum::ipv4_header(&long[..20]);
    put16(&mut long, 10, c);
    let frames = [
        ether(
            nitro::card_mac(PA_EDGE),
            INTERNET_NEXT_HOP_MAC,
            0x86dd,
            &good,
        ),
        ether(
            nitro::card_mac(PA_EDGE),
            INTERNET_NEXT_HOP_MAC,
            0x0806,
            &[0; 28],
        ),
        from_internet(&bad_sum),
        from_internet(&long),
        from_internet(&good[..19]),
    ];
    let pass = edge.run_outside(Side::Internet, &frames);
    assert_eq!(
        pass.verdicts(),
        [
            drop(DropReason::NotIpv4),
            // ARP is answered for the edge's own addresses only; an empty one is ignored.
            drop(DropReason::ArpIgnored),
            drop(DropReason::Malformed),
            drop(DropReason::Malformed),
            drop(DropReason::Malformed),
        ]
    );
}

// ===== outside in: VPN =====

#[test]
fn esp_from_the_customer_gateway_is_decrypted_and_delivered_to_red1() {
    let mut edge = Edge::story();
    let gw = customer_tx(&edge.vpn());
    let reply = udp(
        CUSTOMER_HOST,
        RED1,
        9000,
        40001,
        b"from the data centre",
        true,
    );
    let frame = sealed(&reply, &gw);
    let pass = edge.run_outside(Side::Internet, std::slice::from_ref(&frame));
    let inner = host_inner(pass.only(fwd(FABRIC)), PA_A, RED);
    assert_eq!(inner, reply, "byte-identical inner packet");
    assert_eq!(edge.meters.counters.stage_packets(StageId::EspDecrypt), 1);
    assert_eq!(edge.meters.counters.stage_packets(StageId::Nat), 0);

    // The same packet again: a replay.
    let pass = edge.run_outside(Side::Internet, &[frame]);
    pass.only(drop(DropReason::EspReplay));
    assert!(edge.alerts().is_empty(), "a replay is not a security alert");

    // A duplicate inside one burst: the first goes through, the copy is a replay.
    let again = sealed(&reply, &gw);
    let pass = edge.run_outside(Side::Internet, &[again.clone(), again]);
    assert_eq!(pass.verdicts(), [fwd(FABRIC), drop(DropReason::EspReplay)]);
    assert_eq!(edge.drops(DropReason::EspReplay), 2);
}

#[test]
fn esp_with_a_flipped_icv_bit_fails_authentication_and_raises_an_alert() {
    let mut edge = Edge::story();
    let gw = customer_tx(&edge.vpn());
    let reply = udp(CUSTOMER_HOST, RED1, 9000, 40001, b"tampered", true);
    let good = sealed(&reply, &gw);
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 0x01;
    let pass = edge.run_outside(Side::Internet, &[bad]);
    pass.only(drop(DropReason::EspAuthFailed));
    assert_eq!(
        edge.alerts(),
        [edge.alert(
            DropReason::EspAuthFailed,
            StageId::EspDecrypt,
            RED,
            None,
            CUSTOMER_GW,
            TUNNEL_LOCAL
        )]
    );
    // The forgery did not move the window: the genuine packet with that number still passes.
    let pass = edge.run_outside(Side::Internet, &[good]);
    assert_eq!(host_inner(pass.only(fwd(FABRIC)), PA_A, RED), reply);
    // A flipped ciphertext bit too.
    let mut bad = sealed(&reply, &gw);
    bad[14 + 20 + 16 + 3] ^= 0x40;
    let pass = edge.run_outside(Side::Internet, &[bad]);
    pass.only(drop(DropReason::EspAuthFailed));
    assert_eq!(edge.alerts().len(), 1);
}

#[test]
fn esp_with_an_unknown_spi_is_dropped() {
    let mut edge = Edge::story();
    let vpn = edge.vpn();
    let config = SaConfig {
        spi: 0x0bad_5a11,
        ..vpn.inbound
    };
    let sa = OutboundSa::with_ring(&config, CUSTOMER_GW, TUNNEL_LOCAL).unwrap();
    let frame = sealed(&udp(CUSTOMER_HOST, RED1, 1, 2, b"?", true), &sa);
    // Our outbound SPI is no inbound SPI either.
    let config = SaConfig {
        spi: OUTBOUND_SPI,
        ..vpn.inbound
    };
    let sa = OutboundSa::with_ring(&config, CUSTOMER_GW, TUNNEL_LOCAL).unwrap();
    let reflected = sealed(&udp(CUSTOMER_HOST, RED1, 1, 2, b"?", true), &sa);
    let pass = edge.run_outside(Side::Internet, &[frame, reflected]);
    assert_eq!(pass.verdicts(), vec![drop(DropReason::UnknownSpi); 2]);
    assert!(edge.alerts().is_empty());
}

#[test]
fn esp_outside_the_vpns_prefixes_violates_the_policy() {
    let mut edge = Edge::story();
    let gw = customer_tx(&edge.vpn());
    let stranger = Ipv4Addr::new(10, 9, 9, 9);
    let from_stranger = sealed(&udp(stranger, RED1, 1, 2, b"not from the DC", true), &gw);
    // Into yellow (peered with red, but not the VPN's VPC).
    let to_yellow = sealed(&udp(CUSTOMER_HOST, YELLOW1, 1, 2, b"transit", true), &gw);
    let pass = edge.run_outside(Side::Internet, &[from_stranger, to_yellow]);
    assert_eq!(pass.verdicts(), vec![drop(DropReason::VpnPolicy); 2]);
    assert_eq!(
        edge.alerts(),
        [
            edge.alert(
                DropReason::VpnPolicy,
                StageId::EspDecrypt,
                RED,
                None,
                stranger,
                RED1
            ),
            edge.alert(
                DropReason::VpnPolicy,
                StageId::EspDecrypt,
                RED,
                None,
                CUSTOMER_HOST,
                YELLOW1
            ),
        ]
    );
}

#[test]
fn a_fragment_of_a_tunnel_packet_is_unsupported() {
    let mut edge = Edge::story();
    let gw = customer_tx(&edge.vpn());
    let mut frame = sealed(&udp(CUSTOMER_HOST, RED1, 1, 2, b"frag", true), &gw);
    put16(&mut frame, 14 + 6, 0x2000); // MF
    frame[14 + 10] = 0;
    frame[14 + 11] = 0;
    let c = checksum::ipv4_header(&frame[14..34]);
    put16(&mut frame, 14 + 10, c);
    let pass = edge.run_outside(Side::Internet, &[frame]);
    pass.only(drop(DropReason::Unsupported));
}

// ===== outside in: Direct Connect =====

#[test]
fn dx_frames_enter_the_vifs_vpc() {
    let mut edge = Edge::story();
    let from_dc = udp(DX_HOST, YELLOW1, 7000, 40002, b"and back", true);
    let mut padded = from_dx(101, &from_dc);
    padded.extend_from_slice(&[0; 9]);
    let frames = [
        from_dx(101, &from_dc),
        padded,
        // PCP and DEI bits do not change the VLAN.
        from_dx(0xe000 | 101, &from_dc),
        from_dx(555, &from_dc),
        ether(nitro::card_mac(PA_EDGE), DX_ROUTER_MAC, 0x0800, &from_dc),
        {
            let mut f = from_dx(101, &from_dc);
            f[16..18].copy_from_slice(&[0x86, 0xdd]);
            f
        },
        // The VIF is yellow's: red-1 is not reachable through it.
        from_dx(101, &udp(DX_HOST, RED1, 7000, 40002, b"wrong vpc", true)),
        from_dx(101, &from_dc[..from_dc.len() - 1]),
    ];
    let pass = edge.run_outside(Side::Dx, &frames);
    assert_eq!(
        pass.verdicts(),
        [
            fwd(FABRIC),
            fwd(FABRIC),
            fwd(FABRIC),
            drop(DropReason::UnknownVlan),
            drop(DropReason::UnknownVlan),
            drop(DropReason::NotIpv4),
            drop(DropReason::NoMapping),
            drop(DropReason::Malformed),
        ]
    );
    for (_, f) in &pass.out[..3] {
        assert_eq!(
            host_inner(f, PA_B, YELLOW),
            from_dc,
            "to host-b, VNI 102, unchanged"
        );
    }
    assert_eq!(
        edge.meters.counters.stage_packets(StageId::Vlan),
        frames.len() as u64
    );
    assert_eq!(edge.meters.counters.stage_drops(StageId::Vlan), 4);
    assert!(edge.alerts().is_empty());
}

// ===== outside in: S3 front end =====

#[test]
fn endpoint_answers_go_to_the_host_of_their_destination() {
    let mut edge = Edge::story();
    let answer = tcp(S3_HOST, RED1, 443, 40003, b"200 OK", true);
    let frame = geneve(FRONT_END, PA_EDGE, RED, RED, Some(ENDPOINT_ID), &answer);
    let pass = edge.run_outside(Side::Services, &[frame]);
    let inner = host_inner(pass.only(fwd(FABRIC)), PA_A, RED);
    assert_eq!(inner, answer, "outer header off, inner unchanged");
    assert_eq!(edge.meters.counters.stage_packets(StageId::Endpoint), 1);
}

#[test]
fn endpoint_answers_that_do_not_match_are_dropped() {
    let mut edge = Edge::story();
    let answer = tcp(S3_HOST, RED1, 443, 40003, b"200 OK", true);
    let to_yellow = tcp(S3_HOST, YELLOW1, 443, 40003, b"200 OK", true);
    let other_pa = Ipv4Addr::new(198, 18, 254, 9);
    let frames = [
        geneve(
            FRONT_END,
            PA_EDGE,
            RED,
            RED,
            Some(0x1111_2222_3333_4444),
            &answer,
        ),
        geneve(
            FRONT_END,
            PA_EDGE,
            YELLOW,
            YELLOW,
            Some(ENDPOINT_ID),
            &to_yellow,
        ),
        geneve(FRONT_END, PA_EDGE, RED, RED, None, &answer),
        geneve(other_pa, PA_EDGE, RED, RED, Some(ENDPOINT_ID), &answer),
        geneve(FRONT_END, PA_B, RED, RED, Some(ENDPOINT_ID), &answer),
    ];
    let pass = edge.run_outside(Side::Services, &frames);
    assert_eq!(
        pass.verdicts(),
        [
            drop(DropReason::UnknownEndpoint),
            drop(DropReason::EndpointMismatch),
            drop(DropReason::UnknownEndpoint),
            drop(DropReason::EndpointMismatch),
            drop(DropReason::UnknownDestination),
        ]
    );
    assert_eq!(
        edge.alerts(),
        [
            edge.alert(
                DropReason::EndpointMismatch,
                StageId::Endpoint,
                YELLOW,
                Some(RED),
                S3_HOST,
                YELLOW1
            ),
            edge.alert(
                DropReason::EndpointMismatch,
                StageId::Endpoint,
                RED,
                None,
                S3_HOST,
                RED1
            ),
        ]
    );
}

/// Valid frames of every outside side: (side, frame).
fn outside_frames(edge: &Edge) -> Vec<(Side, Vec<u8>)> {
    let gw = customer_tx(&edge.vpn());
    vec![
        (
            Side::Internet,
            from_internet(&udp(
                INTERNET_HOST,
                EIP_RED1,
                53,
                40000,
                &payload(30, 1),
                false,
            )),
        ),
        (
            Side::Internet,
            sealed(&udp(CUSTOMER_HOST, RED1, 1, 2, &payload(30, 2), true), &gw),
        ),
        (
            Side::Dx,
            from_dx(101, &udp(DX_HOST, YELLOW1, 1, 2, &payload(30, 3), true)),
        ),
        (
            Side::Services,
            geneve(
                FRONT_END,
                PA_EDGE,
                RED,
                RED,
                Some(ENDPOINT_ID),
                &udp(S3_HOST, RED1, 1, 2, &payload(30, 4), true),
            ),
        ),
    ]
}

#[test]
fn truncated_outside_frames_are_dropped_never_a_panic() {
    let mut edge = Edge::story();
    for (side, frame) in outside_frames(&edge) {
        let cuts: Vec<Vec<u8>> = (0..frame.len()).map(|n| frame[..n].to_vec()).collect();
        for chunk in cuts.chunks(MAX_BURST) {
            let pass = edge.run_outside(side, chunk);
            for (k, (v, _)) in pass.out.iter().enumerate() {
                let n = chunk[k].len();
                let ok = match (side, v) {
                    (_, Verdict::Drop(DropReason::Malformed | DropReason::Unsupported)) => true,
                    // Cut inside the Ethernet header: the EtherType / tag is not there.
                    (Side::Internet, Verdict::Drop(DropReason::NotIpv4)) => n < 14,
                    (Side::Dx, Verdict::Drop(DropReason::UnknownVlan)) => n < 18,
                    _ => false,
                };
                assert!(ok, "{side:?} cut at {n}: {v:?}");
            }
        }
    }
    assert!(
        edge.alerts().is_empty(),
        "no truncation looks like an attack"
    );
    assert_eq!(edge.meters.counters.drops(DropReason::NoVerdict), 0);
}

// ===== counters and timing =====

#[test]
fn stage_counters_count_only_the_packets_of_their_stage() {
    let mut edge = Edge::story();
    let frames = vec![
        from_host(PA_A, RED, &udp(RED1, INTERNET_HOST, 1, 2, b"nat", true)),
        from_host(PA_A, RED, &tcp(RED1, INTERNET_HOST, 1, 2, b"nat", true)),
        from_host(
            PA_A,
            RED,
            &udp(RED1, INTERNET_HOST, 1, 2, &payload(2000, 0), true),
        ),
        from_host(PA_A, RED, &udp(RED1, CUSTOMER_HOST, 1, 2, b"esp", true)),
        from_host(PA_B, YELLOW, &udp(YELLOW1, DX_HOST, 1, 2, b"vlan", true)),
        from_host(PA_A, RED, &udp(RED1, S3_HOST, 1, 2, b"endpoint", true)),
        from_host(PA_B, RED, &udp(RED1, INTERNET_HOST, 1, 2, b"spoofed", true)),
        vec![0u8; 40],
    ];
    let pass = edge.run_fabric(&frames);
    assert_eq!(
        pass.verdicts(),
        [
            fwd(INTERNET),
            fwd(INTERNET),
            fwd(FABRIC),
            fwd(INTERNET),
            fwd(DX),
            fwd(SERVICES),
            drop(DropReason::UnknownSender),
            drop(DropReason::Malformed),
        ]
    );
    let c = &edge.meters.counters;
    let expect = [
        (StageId::VerifyRecv, 8, 2),
        (StageId::Decap, 6, 0),
        (StageId::Nat, 3, 0),
        (StageId::EspEncrypt, 1, 0),
        (StageId::Vlan, 1, 0),
        (StageId::Endpoint, 1, 0),
        (StageId::Encap, 1, 0),
        (StageId::Classify, 0, 0),
        (StageId::EspDecrypt, 0, 0),
    ];
    for (stage, packets, drops) in expect {
        assert_eq!(c.stage_packets(stage), packets, "{stage:?} packets");
        assert_eq!(c.stage_drops(stage), drops, "{stage:?} drops");
        // StepClock: every stage that ran recorded its packets once.
        assert_eq!(
            edge.meters.timing.current().get(stage).len(),
            packets,
            "{stage:?} timing"
        );
    }
    assert_eq!(c.output(INTERNET), 3);
    assert_eq!(c.output(FABRIC), 1);
    assert_eq!(c.output(DX), 1);
    assert_eq!(c.output(SERVICES), 1);
    assert_eq!(c.total_drops(), 2);
    assert_eq!(c.packets(), 8);
    assert_eq!(c.bursts(), 1);

    // Outside, internet side: 2 NAT (one for no Elastic IP), 2 ESP (one forged).
    let gw = customer_tx(&edge.vpn());
    let mut forged = sealed(&udp(CUSTOMER_HOST, RED1, 1, 2, b"forged", true), &gw);
    *forged.last_mut().unwrap() ^= 0x80;
    let frames = vec![
        from_internet(&udp(INTERNET_HOST, EIP_RED1, 1, 2, b"in", false)),
        from_internet(&udp(INTERNET_HOST, NOT_AN_EIP, 1, 2, b"lost", false)),
        sealed(&udp(CUSTOMER_HOST, RED1, 1, 2, b"vpn", true), &gw),
        forged,
    ];
    let pass = edge.run_outside(Side::Internet, &frames);
    assert_eq!(
        pass.verdicts(),
        [
            fwd(FABRIC),
            drop(DropReason::NoElasticIp),
            fwd(FABRIC),
            drop(DropReason::EspAuthFailed)
        ]
    );
    let c = &edge.meters.counters;
    assert_eq!(c.stage_packets(StageId::Classify), 4);
    assert_eq!(c.stage_drops(StageId::Classify), 1);
    assert_eq!(c.stage_packets(StageId::EspDecrypt), 2);
    assert_eq!(c.stage_drops(StageId::EspDecrypt), 1);
    assert_eq!(c.stage_packets(StageId::Nat), 3 + 1);
    assert_eq!(c.stage_packets(StageId::Encap), 1 + 2);
    assert_eq!(
        c.stage_packets(StageId::VerifyRecv),
        8,
        "fabric stages untouched"
    );
    assert_eq!(c.stage_packets(StageId::Vlan), 1);
    assert_eq!(c.stage_packets(StageId::Endpoint), 1);

    // dx and services sides count under their own stage.
    let frames = vec![
        from_dx(101, &udp(DX_HOST, YELLOW1, 1, 2, b"dx", true)),
        from_dx(7, &[0; 20]),
    ];
    edge.run_outside(Side::Dx, &frames);
    let services = vec![geneve(
        FRONT_END,
        PA_EDGE,
        RED,
        RED,
        Some(ENDPOINT_ID),
        &udp(S3_HOST, RED1, 1, 2, b"s3", true),
    )];
    edge.run_outside(Side::Services, &services);
    let c = &edge.meters.counters;
    assert_eq!(
        (c.stage_packets(StageId::Vlan), c.stage_drops(StageId::Vlan)),
        (1 + 2, 1)
    );
    assert_eq!(c.stage_packets(StageId::Endpoint), 1 + 1);
    assert_eq!(c.stage_packets(StageId::Encap), 3 + 1 + 1);
    assert_eq!(
        c.stage_packets(StageId::Classify),
        4,
        "internet classify only"
    );
    assert_eq!(c.drops(DropReason::UnknownVlan), 1);
    assert_eq!(c.bursts(), 4);
}

#[test]
fn null_clock_records_no_timing_but_counts() {
    let mut edge = Edge::build(&world_text(""), OUTPUTS, None);
    let frames = fabric_frames();
    let pass = edge.run_fabric(&frames);
    assert_eq!(
        pass.verdicts(),
        [fwd(INTERNET), fwd(INTERNET), fwd(DX), fwd(SERVICES)]
    );
    assert_eq!(edge.meters.timing.current().total(), 0);
    let c = &edge.meters.counters;
    assert_eq!(c.stage_packets(StageId::VerifyRecv), 4);
    assert_eq!(c.stage_packets(StageId::Nat), 1);
    assert_eq!(c.stage_packets(StageId::EspEncrypt), 1);
    assert_eq!(c.stage_packets(StageId::Vlan), 1);
    assert_eq!(c.stage_packets(StageId::Endpoint), 1);
    assert_eq!(c.stage_packets(StageId::Encap), 0);
}

#[test]
fn a_full_burst_of_64_is_decided() {
    let mut edge = Edge::story();
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    for k in 0..MAX_BURST {
        let (frame, v) = match k % 4 {
            0 => (
                from_host(
                    PA_A,
                    RED,
                    &udp(RED1, INTERNET_HOST, k as u16, 2, b"a", true),
                ),
                fwd(INTERNET),
            ),
            1 => (
                from_host(
                    PA_A,
                    RED,
                    &udp(RED1, CUSTOMER_HOST, k as u16, 2, b"b", true),
                ),
                fwd(INTERNET),
            ),
            2 => (
                from_host(
                    PA_B,
                    RED,
                    &udp(RED1, INTERNET_HOST, k as u16, 2, b"c", true),
                ),
                drop(DropReason::UnknownSender),
            ),
            _ => (
                from_host(
                    PA_B,
                    YELLOW,
                    &udp(YELLOW1, DX_HOST, k as u16, 2, b"d", true),
                ),
                fwd(DX),
            ),
        };
        frames.push(frame);
        expected.push(v);
    }
    let pass = edge.run_fabric(&frames);
    assert_eq!(pass.verdicts(), expected);
    assert_eq!(edge.alerts().len(), MAX_BURST / 4);
    // The 16 ESP packets took sequence numbers 1..=16, in slot order.
    let mut gw = customer_rx(&edge.vpn());
    let seqs: Vec<u32> = (0..MAX_BURST)
        .filter(|k| k % 4 == 1)
        .map(|k| open_esp(internet_ip(&pass.out[k].1), &mut gw).0)
        .collect();
    assert_eq!(seqs, (1..=16).collect::<Vec<u32>>());
}

// ===== property: NAT twice is the identity =====

/// An inner packet red-1 sends to the internet: UDP or TCP, 28..1400 bytes in all.
fn outbound_packet() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        28usize..1400,
        prop::sample::select(vec![
            INTERNET_HOST,
            Ipv4Addr::new(8, 8, 8, 8),
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(198, 51, 100, 7), // outside the S3 prefix /25
            Ipv4Addr::new(203, 0, 113, 200),
        ]),
        any::<u16>(),
        any::<u16>(),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(is_tcp, size, dst, sport, dport, df, seed)| {
            if is_tcp {
                let size = size.max(40);
                tcp(RED1, dst, sport, dport, &payload(size - 40, seed), df)
            } else {
                udp(RED1, dst, sport, dport, &payload(size - 28, seed), df)
            }
        })
}

#[test]
fn nat_out_then_nat_back_is_the_identity() {
    let edge = RefCell::new(Edge::story());
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    runner
        .run(&outbound_packet(), |orig| {
            let mut edge = edge.borrow_mut();
            let pass = edge.run_fabric(&[from_host(PA_A, RED, &orig)]);
            prop_assert_eq!(pass.verdicts(), vec![fwd(INTERNET)]);
            let out = internet_ip(&pass.out[0].1).to_vec();
            prop_assert_eq!(addr(&out, 12), EIP_RED1);
            assert_ipv4_sound(&out);
            assert_l4_sound(&out);
            // The internet host answers: addresses and ports swapped, Ethernet back on.
            let answer = swapped(&out);
            let pass = edge.run_outside(Side::Internet, &[from_internet(&answer)]);
            prop_assert_eq!(pass.verdicts(), vec![fwd(FABRIC)]);
            let back = host_inner(&pass.out[0].1, PA_A, RED);
            prop_assert_eq!(&back, &swapped(&orig));
            assert_ipv4_sound(&back);
            assert_l4_sound(&back);
            Ok(())
        })
        .unwrap();
    let edge = edge.into_inner();
    assert_eq!(edge.meters.counters.total_drops(), 0);
    assert!(edge.alerts().is_empty());
}

/// An ARP request from the upstream router for `target`, built by hand (RFC 826 layout).
fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    a.extend_from_slice(&INTERNET_NEXT_HOP_MAC.0);
    a.extend_from_slice(&INTERNET_HOST.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target.octets());
    ether(EthernetAddress([0xff; 6]), INTERNET_NEXT_HOP_MAC, 0x0806, &a)
}

#[test]
fn the_internet_side_answers_arp_for_elastic_ips_and_tunnel_addresses_only() {
    let mut edge = Edge::story();
    let frames = [arp_request(EIP_RED1), arp_request(TUNNEL_LOCAL), arp_request(NOT_AN_EIP), arp_request(RED1)];
    let pass = edge.run_outside(Side::Internet, &frames);
    assert_eq!(
        pass.verdicts(),
        vec![fwd(INTERNET), fwd(INTERNET), drop(DropReason::ArpIgnored), drop(DropReason::ArpIgnored)]
    );
    let mac = nitro::card_mac(PA_EDGE).0;
    for ((_, reply), target) in pass.out.iter().take(2).zip([EIP_RED1, TUNNEL_LOCAL]) {
        assert_eq!(reply.len(), 42);
        assert_eq!(&reply[..6], &INTERNET_NEXT_HOP_MAC.0, "to the requester");
        assert_eq!(&reply[6..12], &mac, "from the edge");
        assert_eq!(get16(reply, 12), 0x0806);
        assert_eq!(get16(reply, 20), 2, "an ARP reply");
        assert_eq!(&reply[22..28], &mac, "sender hardware address: the edge's MAC");
        assert_eq!(addr(reply, 28), target, "sender protocol address: the one asked for");
        assert_eq!(&reply[32..38], &INTERNET_NEXT_HOP_MAC.0);
        assert_eq!(addr(reply, 38), INTERNET_HOST);
    }
}

// ===== several VPNs on one edge =====

/// Two more VPNs of red on blackfoot-1: one on its own tunnel address, one sharing
/// vpn-red's, each with its own SPIs, keys, gateway and remote prefix.
const MORE_VPNS: &str = r#"
[[vpn]]
name = "vpn-red-2"
vpc = "red"
edge = "blackfoot-1"
local = "203.0.113.2"
customer_gateway = "198.51.100.2"
remote_prefixes = ["172.20.0.0/16"]
outbound = { spi = 4098, key = "101112131415161718191a1b1c1d1e1f20212223" }
inbound  = { spi = 8194, key = "303132333435363738393a3b3c3d3e3f40414243" }

[[vpn]]
name = "vpn-red-3"
vpc = "red"
edge = "blackfoot-1"
local = "203.0.113.1"
customer_gateway = "198.51.100.3"
remote_prefixes = ["172.21.0.0/16"]
outbound = { spi = 4099, key = "505152535455565758595a5b5c5d5e5f60616263" }
inbound  = { spi = 8195, key = "707172737475767778797a7b7c7d7e7f80818283" }
"#;

/// The tunnel-address set, the inbound SAs by SPI and the outbound SAs by VPN with more
/// than one VPN: each VPN's traffic goes both ways with its own SA, and a packet for one
/// VPN's SA at another tunnel address, or ESP to an address that is no tunnel address,
/// is refused as before.
#[test]
fn each_of_several_vpns_is_found_by_its_tunnel_address_spi_and_route() {
    let mut edge = Edge::with_world(&world_text(MORE_VPNS));
    let by_name = |name: &str| edge.tables.vpns().find(|v| v.name == name).unwrap().clone();
    let vpns = [by_name("vpn-red"), by_name("vpn-red-2"), by_name("vpn-red-3")];
    for (k, vpn) in vpns.iter().enumerate() {
        // In: from the VPN's gateway to its tunnel address, with its inbound SA.
        let tx = OutboundSa::with_ring(&vpn.inbound, vpn.customer_gateway, vpn.local).unwrap();
        let host = vpn.remote_prefixes[0].network().octets();
        let from = Ipv4Addr::new(host[0], host[1], 9, 9);
        let reply = udp(from, RED1, 9000, 40001, &payload(30, k as u8), true);
        let pass = edge.run_outside(Side::Internet, &[sealed(&reply, &tx)]);
        assert_eq!(host_inner(pass.only(fwd(FABRIC)), PA_A, RED), reply, "{}", vpn.name);

        // Out: to the VPN's remote prefix, with its outbound SA, to its gateway.
        let inner = udp(RED1, from, 40001, 9000, &payload(40, k as u8), true);
        let pass = edge.run_fabric(&[from_host(PA_A, RED, &inner)]);
        let ip = internet_ip(pass.only(fwd(INTERNET))).to_vec();
        assert_eq!((addr(&ip, 12), addr(&ip, 16)), (vpn.local, vpn.customer_gateway), "{}", vpn.name);
        assert_eq!(get32(&ip, 20), vpn.outbound.spi);
        let mut b = TestBuffer::from_slice(&ip[20..]);
        esp::decrypt(&mut b, &mut customer_rx(vpn)).expect("the gateway decrypts it");
        assert_eq!(b.data(), &inner[..]);
    }
    // vpn-red-2's SA at vpn-red's tunnel address: no SA of that address has the SPI.
    let tx = OutboundSa::with_ring(&vpns[1].inbound, vpns[1].customer_gateway, TUNNEL_LOCAL).unwrap();
    let stray = sealed(&udp(Ipv4Addr::new(172, 20, 9, 9), RED1, 1, 2, b"?", true), &tx);
    // ESP to an address that is no tunnel address (nor an Elastic IP).
    let tx = OutboundSa::with_ring(&vpns[0].inbound, CUSTOMER_GW, NOT_AN_EIP).unwrap();
    let lost = sealed(&udp(CUSTOMER_HOST, RED1, 1, 2, b"?", true), &tx);
    let pass = edge.run_outside(Side::Internet, &[stray, lost]);
    assert_eq!(pass.verdicts(), [drop(DropReason::UnknownSpi), drop(DropReason::NoElasticIp)]);
    // ARP: both tunnel addresses are answered.
    let pass = edge.run_outside(Side::Internet, &[arp_request(Ipv4Addr::new(203, 0, 113, 2)), arp_request(NOT_AN_EIP)]);
    assert_eq!(pass.verdicts(), [fwd(INTERNET), drop(DropReason::ArpIgnored)]);
}
