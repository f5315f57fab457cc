//! What the edge pipeline tests share: the story's world as blackfoot-1 sees it
//! (`examples/story-world.toml` through [`Tables::build_for_card`]), a harness that runs
//! both pipelines ([`FromUnderlay`], [`FromOutside`]) over [`TestBuffer`]s and keeps their
//! meters and alerts, packets built here without the crate under test, and the checks of
//! what comes out (checksums recomputed from scratch, ESP opened from the customer
//! gateway's side).
#![allow(dead_code, unused_imports)]

// What the tests use too, re-exported: `use common::*` brings it.
pub use std::net::Ipv4Addr;
pub use std::sync::Arc;

pub use blackfoot::aead::RingAesGcm;
pub use blackfoot::esp::{self, InboundSa, OutboundSa};
pub use blackfoot::{
    EdgeOutputs, EdgeSas, FromOutside, FromUnderlay, InboundSas, Side, VecExtra, INTERNET_MTU,
    INTERNET_NEXT_HOP_MAC,
};
pub use mapping_client::topology::SaConfig;
pub use mapping_client::{Tables, Topology, VpnEntry};
pub use pipeline::{
    alert_channel, AlertConsumer, AlertEvent, AlertProducer, Burst, CardCtx, CardId, DropReason,
    HistogramConfig, Meters, NullClock, Output, RateLimit, StageId, StepClock, TimingCollector,
    Verdict, MAX_BURST,
};
pub use wire::checksum;
pub use wire::vpc::{self, card_mac, Encap, UNDERLAY_ROUTER_MAC};
pub use wire::{EthernetAddress, PacketBuf, TestBuffer};

// ----- the world -----

pub const PA_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const PA_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const PA_EDGE: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);
pub const FRONT_END: Ipv4Addr = Ipv4Addr::new(198, 18, 254, 1);

pub const RED: u32 = 101;
pub const YELLOW: u32 = 102;
pub const GREEN: u32 = 103;

pub const RED1: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
pub const RED2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 20);
pub const YELLOW1: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 20);
pub const GREEN1: Ipv4Addr = Ipv4Addr::new(10, 2, 1, 30);
/// The VPC router of red (10.0.0.0/16): where fragmentation-needed comes from.
pub const RED_ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

pub const EIP_RED1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const NOT_AN_EIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 99);
pub const INTERNET_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
pub const TUNNEL_LOCAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const CUSTOMER_GW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const CUSTOMER_HOST: Ipv4Addr = Ipv4Addr::new(172, 16, 5, 5);
pub const DX_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 5);
pub const S3_HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);

pub const ENDPOINT_ID: u64 = 0x0a1b_2c3d_4e5f_6a7b;
pub const DX_ROUTER_MAC: EthernetAddress = EthernetAddress([0x02, 0xdc, 0, 0, 0, 1]);
pub const OUTBOUND_SPI: u32 = 4097;
pub const INBOUND_SPI: u32 = 8193;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ESP: u8 = 50;

pub const fn output(i: usize) -> Output {
    match Output::new(i) {
        Some(o) => o,
        None => panic!("output index"),
    }
}

pub const FABRIC: Output = output(0);
pub const INTERNET: Output = output(1);
pub const DX: Output = output(2);
pub const SERVICES: Output = output(3);

pub const OUTPUTS: EdgeOutputs = EdgeOutputs {
    fabric: FABRIC,
    internet: Some(INTERNET),
    dx: Some(DX),
    services: Some(SERVICES),
};

/// The story's world, with the `[dataplane]` section the loader wants, and `extra` after.
pub fn world_text(extra: &str) -> String {
    format!(
        "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 64\nhugepages = \"off\"\n\n{}\n{extra}",
        include_str!("../../../examples/story-world.toml")
    )
}

/// red-2: a second red instance, on host-b, without an Elastic IP.
pub const RED2_NO_EIP: &str = include_str!("../worlds/red2-no-eip.toml");

/// A second edge holding a Direct Connect VIF of red on the same VLAN number (101) as
/// yellow's VIF on blackfoot-1 (VLANs are unique per edge only).
pub const RED_DX_ON_EDGE_2: &str = include_str!("../worlds/red-dx-on-edge-2.toml");

// ----- the harness -----

/// Verdicts and bytes of one pass, in slot order, and what went out through `Extra`.
pub struct Pass {
    pub out: Vec<(Verdict, Vec<u8>)>,
    pub extra: Vec<(Vec<u8>, Output)>,
}

impl Pass {
    pub fn verdicts(&self) -> Vec<Verdict> {
        self.out.iter().map(|(v, _)| *v).collect()
    }

    /// The bytes of the single packet of the pass, which must have `verdict`.
    pub fn only(&self, verdict: Verdict) -> &[u8] {
        assert_eq!(self.verdicts(), [verdict]);
        &self.out[0].1
    }
}

/// blackfoot-1: its tables, alert queue, meters and both pipelines.
pub struct Edge {
    pub topo: Topology,
    pub tables: Tables,
    pub card: CardId,
    pub alerts: AlertProducer,
    pub consumer: AlertConsumer,
    pub icmp_limit: RateLimit,
    pub meters: Meters,
    pub _collector: TimingCollector,
    pub underlay: FromUnderlay,
    pub outside: FromOutside,
    /// `None`: timing off ([`NullClock`]).
    pub clock: Option<StepClock>,
}

/// Run `$run` with the edge's card context as `$ctx` and its clock (or [`NullClock`]) as
/// `$clock`.
macro_rules! with_ctx {
    ($edge:expr, |$pipe:ident: $field:ident, $ctx:ident, $clock:ident, $meters:ident| $run:expr) => {{
        let Edge { tables, card, alerts, icmp_limit, meters: $meters, $field: $pipe, clock, .. } = $edge;
        let mut $ctx = CardCtx { tables: &*tables, card: *card, alerts, icmp_limit: &*icmp_limit, now: 0 };
        match clock {
            Some($clock) => $run,
            None => {
                let $clock = &NullClock;
                $run
            }
        }
    }};
}

impl Edge {
    pub fn story() -> Edge {
        Edge::with_world(&world_text(""))
    }

    pub fn with_world(text: &str) -> Edge {
        Edge::build(text, OUTPUTS, Some(StepClock::new(0, 100)))
    }

    pub fn build(text: &str, outputs: EdgeOutputs, clock: Option<StepClock>) -> Edge {
        let topo = Topology::from_str(text, "story-world.toml").expect("world loads");
        let id = topo.card_by_name("blackfoot-1").expect("edge blackfoot-1");
        let mapping_client::CardId::Edge(edge) = id else { panic!("blackfoot-1 is an edge") };
        let tables = Tables::build_for_card(&topo, id);
        let (alerts, consumer) = alert_channel(1024);
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        let meters = Meters::new(collector.add_worker(u64::MAX).unwrap());
        let underlay = FromUnderlay::new(outputs, Arc::new(EdgeSas::new(&tables)));
        let outside = FromOutside::new(outputs, InboundSas::new(&tables));
        Edge {
            card: CardId::Edge(edge),
            topo,
            tables,
            alerts,
            consumer,
            icmp_limit: RateLimit::new(1000, 50, 1_000_000),
            meters,
            _collector: collector,
            underlay,
            outside,
            clock,
        }
    }

    pub fn vpn(&self) -> VpnEntry {
        self.tables.vpns().next().expect("vpn-red").clone()
    }

    /// Underlay in: `frames` as one burst.
    pub fn run_underlay(&mut self, frames: &[Vec<u8>]) -> Pass {
        let mut burst = burst_of(frames);
        let mut extra = VecExtra::new(|| Some(TestBuffer::with_room(128, 2048)));
        with_ctx!(self, |pipe: underlay, ctx, clock, meters| pipe.process(&mut burst, &mut ctx, &mut extra, clock, meters));
        let extra = extra.sent.into_iter().map(|(b, o)| (b.data().to_vec(), o)).collect();
        Pass { out: self.drained(&mut burst, "FromUnderlay"), extra }
    }

    /// Outside in on `side`: `frames` as one burst.
    pub fn run_outside(&mut self, side: Side, frames: &[Vec<u8>]) -> Pass {
        let mut burst = burst_of(frames);
        with_ctx!(self, |pipe: outside, ctx, clock, meters| pipe.process(side, &mut burst, &mut ctx, clock, meters));
        Pass { out: self.drained(&mut burst, "FromOutside"), extra: Vec::new() }
    }

    /// The verdicts and bytes of `burst`, which `pipeline` must have decided whole.
    fn drained(&mut self, burst: &mut Burst<TestBuffer>, pipeline: &str) -> Vec<(Verdict, Vec<u8>)> {
        assert_eq!(burst.live_mask(), 0, "{pipeline} left packets undecided");
        drain(burst, &mut self.meters)
    }

    pub fn alerts(&self) -> Vec<AlertEvent> {
        std::iter::from_fn(|| self.consumer.pop()).collect()
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.meters.counters.drops(reason)
    }

    /// The one alert a drop raised.
    pub fn alert(
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

pub fn burst_of(frames: &[Vec<u8>]) -> Burst<TestBuffer> {
    let mut burst = Burst::new();
    for f in frames {
        burst
            .push(TestBuffer::from_slice(f))
            .expect("burst has room");
    }
    burst
}

pub fn drain(burst: &mut Burst<TestBuffer>, meters: &mut Meters) -> Vec<(Verdict, Vec<u8>)> {
    let mut out = Vec::new();
    burst.drain(&mut meters.counters, |b, v| {
        out.push((v, b.data().to_vec()))
    });
    out
}

pub fn drop(reason: DropReason) -> Verdict {
    Verdict::Drop(reason)
}

pub fn fwd(out: Output) -> Verdict {
    Verdict::Forward(out)
}

// ----- packets, built here without the crate under test -----

pub fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

pub fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

pub fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// An IPv4 packet with a 20-byte header: TTL 61, ident `ident`, DF as asked.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, df: bool, ident: u16, body: &[u8]) -> Vec<u8> {
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

pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8], df: bool) -> Vec<u8> {
    let mut s = vec![0u8; 8 + data.len()];
    put16(&mut s, 0, sport);
    put16(&mut s, 2, dport);
    put16(&mut s, 4, (8 + data.len()) as u16);
    s[8..].copy_from_slice(data);
    let c = checksum::udp_on_wire(checksum::tcp_udp_ipv4(src, dst, PROTO_UDP, &s));
    put16(&mut s, 6, c);
    ipv4(src, dst, PROTO_UDP, df, 0x1001, &s)
}

pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8], df: bool) -> Vec<u8> {
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
pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 8 + data.len()];
    m[0] = ty;
    m[1] = code;
    m[4..8].copy_from_slice(&rest);
    m[8..].copy_from_slice(data);
    let c = checksum::checksum(&m);
    put16(&mut m, 2, c);
    ipv4(src, dst, PROTO_ICMP, false, 0x3003, &m)
}

pub fn echo(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, data: &[u8]) -> Vec<u8> {
    icmp(src, dst, ty, 0, [0x00, 0x2a, 0x00, 0x07], data)
}

/// A Geneve frame from `src_pa` to `dst_pa` (the layout of ARCHITECTURE section 3),
/// written with the wire crate's emitter.
pub fn geneve(
    src_pa: Ipv4Addr,
    dst_pa: Ipv4Addr,
    vni: u32,
    source_vpc: u32,
    endpoint: Option<u64>,
    inner: &[u8],
) -> Vec<u8> {
    let encap = Encap {
        src_mac: card_mac(src_pa),
        dst_mac: UNDERLAY_ROUTER_MAC,
        src_pa,
        dst_pa,
        vni,
        source_vpc,
    };
    let len = vpc::outer_len(endpoint);
    let mut f = vec![0u8; len + inner.len()];
    let n = vpc::emit_outer_into(&mut f, &encap, endpoint, inner.len(), vpc::inner_flow_hash(inner))
    .expect("emit outer");
    assert_eq!(n, len);
    f[len..].copy_from_slice(inner);
    f
}

/// What a host's card sends the edge for an instance of VPC `vni`.
pub fn from_host(src_pa: Ipv4Addr, vni: u32, inner: &[u8]) -> Vec<u8> {
    geneve(src_pa, PA_EDGE, vni, vni, None, inner)
}

pub fn ether(dst: EthernetAddress, src: EthernetAddress, ethertype: u16, body: &[u8]) -> Vec<u8> {
    [&dst.0[..], &src.0, &ethertype.to_be_bytes(), body].concat()
}

/// What the upstream router hands the edge's internet port.
pub fn from_internet(ip: &[u8]) -> Vec<u8> {
    ether(card_mac(PA_EDGE), INTERNET_NEXT_HOP_MAC, 0x0800, ip)
}

/// What the DX router sends on VLAN `vid`.
pub fn from_dx(vid: u16, ip: &[u8]) -> Vec<u8> {
    let mut tagged = Vec::with_capacity(4 + ip.len());
    tagged.extend_from_slice(&vid.to_be_bytes());
    tagged.extend_from_slice(&[0x08, 0x00]);
    tagged.extend_from_slice(ip);
    ether(card_mac(PA_EDGE), DX_ROUTER_MAC, 0x8100, &tagged)
}

/// `ip` with its source or destination replaced, every checksum recomputed from scratch
/// (UDP checksum 0 stays 0): the oracle for NAT.
pub fn readdressed(ip: &[u8], src: Option<Ipv4Addr>, dst: Option<Ipv4Addr>) -> Vec<u8> {
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
pub fn swapped(ip: &[u8]) -> Vec<u8> {
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
pub fn assert_ipv4_sound(ip: &[u8]) {
    assert!(ip.len() >= 20, "short IPv4 packet");
    assert_eq!(ip[0] >> 4, 4, "version");
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    assert!(checksum::ipv4_header_ok(&ip[..ihl]), "IPv4 header checksum");
    assert_eq!(usize::from(get16(ip, 2)), ip.len(), "IPv4 total length");
}

/// The transport checksum of an unfragmented packet verifies (UDP 0 = none).
pub fn assert_l4_sound(ip: &[u8]) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let seg = &ip[ihl..];
    let (src, dst) = (addr(ip, 12), addr(ip, 16));
    match ip[9] {
        PROTO_TCP => assert!(checksum::tcp_udp_ipv4_ok(src, dst, PROTO_TCP, seg), "TCP checksum"),
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
pub fn internet_ip(frame: &[u8]) -> &[u8] {
    assert!(frame.len() >= 14 + 20);
    assert_eq!(&frame[..6], &INTERNET_NEXT_HOP_MAC.0, "Ethernet destination");
    assert_eq!(&frame[6..12], &card_mac(PA_EDGE).0, "Ethernet source");
    assert_eq!(&frame[12..14], &[0x08, 0x00], "EtherType");
    &frame[14..]
}

/// The inner packet of a Geneve frame from the edge to the host at `pa`, VNI = source
/// VPC = `vni`, without endpoint option.
pub fn host_inner(frame: &[u8], pa: Ipv4Addr, vni: u32) -> Vec<u8> {
    let o = vpc::parse_outer(frame).expect("a valid VPC encapsulation");
    assert_eq!(&frame[..6], &UNDERLAY_ROUTER_MAC.0, "outer Ethernet destination");
    assert_eq!(&frame[6..12], &card_mac(PA_EDGE).0, "outer Ethernet source");
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
pub fn frag_of(ip: &[u8]) -> (usize, bool) {
    let f = get16(ip, 6);
    (usize::from(f & 0x1fff) * 8, f & 0x2000 != 0)
}

/// Reassemble fragments (any order) into the datagram: the first fragment's header with
/// the full length, MF and offset cleared, checksum recomputed.
pub fn reassemble(fragments: &[Vec<u8>]) -> Vec<u8> {
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
pub fn customer_rx(vpn: &VpnEntry) -> InboundSa<RingAesGcm> {
    InboundSa::with_ring(&vpn.outbound).expect("key")
}

/// The customer gateway encrypts what it sends the edge: an outbound SA made of the VPN's
/// *inbound* configuration, from the gateway to the tunnel address.
pub fn customer_tx(vpn: &VpnEntry) -> OutboundSa<RingAesGcm> {
    OutboundSa::with_ring(&vpn.inbound, CUSTOMER_GW, TUNNEL_LOCAL).expect("key")
}

/// Check the outer header of an ESP packet from the edge and decrypt it: (sequence
/// number, inner packet).
pub fn open_esp(ip: &[u8], sa: &mut InboundSa<RingAesGcm>) -> (u32, Vec<u8>) {
    assert_ipv4_sound(ip);
    assert!(ip.len() <= INTERNET_MTU, "tunnel packet over the internet MTU");
    assert_eq!(ip[9], PROTO_ESP);
    assert_eq!((addr(ip, 12), addr(ip, 16)), (TUNNEL_LOCAL, CUSTOMER_GW));
    assert_eq!(get32(ip, 20), OUTBOUND_SPI);
    let seq = get32(ip, 24);
    let mut b = TestBuffer::from_slice(&ip[20..]);
    esp::decrypt(&mut b, sa).expect("the customer gateway decrypts it");
    (seq, b.data().to_vec())
}

/// What the customer gateway sends: `inner` sealed with `sa`, in an Ethernet frame.
pub fn sealed(inner: &[u8], sa: &OutboundSa<RingAesGcm>) -> Vec<u8> {
    let mut b = TestBuffer::from_slice(inner);
    esp::encrypt(&mut b, sa).expect("encrypt");
    from_internet(b.data())
}

// ===== from the fabric =====

