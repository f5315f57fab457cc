//! The test world (ARCHITECTURE section 7 shaped), packet builders and a harness that runs
//! a card's egress or ingress over a burst of `TestBuffer`s.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use mapping_client::{EniId, Tables, Topology};
use nitro::{EniPort, FromInstance, FromInstanceOutputs, FromUnderlay};
use pipeline::{
    alert_channel, AlertConsumer, AlertEvent, AlertProducer, Burst, CardCtx, DropReason, HistogramConfig,
    Extra, Meters, Output, RateLimit, StepClock, TimingCollector, VecExtra, Verdict,
};
use wire::{EthernetAddress, PacketBuf, TestBuffer};

/// Hosts A, B and C (C empty until something moves there), one edge; VPCs red and yellow
/// peered, green not peered (internet gateway on the edge), blue without internet gateway.
pub const WORLD: &str = include_str!("../world.toml");

pub const PA_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const PA_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const PA_C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
pub const PA_EDGE: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);

pub const REPLY: Output = match Output::new(0) {
    Some(o) => o,
    None => panic!(),
};
pub const UNDERLAY: Output = match Output::new(1) {
    Some(o) => o,
    None => panic!(),
};

/// The output of ENI `id`'s port in the tests.
pub fn port(eni: EniId) -> Output {
    Output::new(10 + eni.0 as usize).unwrap()
}

pub fn world() -> Topology {
    Topology::from_str(WORLD, "world.toml").unwrap()
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn mac(s: &str) -> EthernetAddress {
    s.parse().unwrap()
}

/// One card: its tables, alert queue, meters and pipelines.
pub struct Card {
    pub tables: Tables,
    pub card: pipeline::CardId,
    pub alerts: AlertProducer,
    pub consumer: AlertConsumer,
    pub meters: Meters,
    pub collector: TimingCollector,
    pub egress: FromInstance,
    pub ingress: FromUnderlay,
    /// `ports[eni]`: every local ENI of the topology has a port (of the VPC MTU unless a
    /// test lowers it).
    pub ports: Vec<Option<EniPort>>,
    pub clock: StepClock,
    /// The card's ICMP limit and the time the tests pass in (ticks of 1 ms: see `LIMIT_HZ`).
    pub icmp_limit: RateLimit,
    pub now: u64,
    /// What ingress made beyond its bursts (fragments, ICMP answers), in order.
    pub extra: Vec<(TestBuffer, Output)>,
}

/// The test card's ICMP limit runs on a clock of 1000 ticks a second.
pub const LIMIT_HZ: u64 = 1000;

impl Card {
    /// The card `name` of the test world.
    pub fn on(name: &str) -> Card {
        Card::new(&world(), name)
    }

    pub fn new(topo: &Topology, name: &str) -> Card {
        let id = topo.card_by_name(name).unwrap();
        let tables = Tables::build_for_card(topo, id);
        Card::with_tables(tables, id)
    }

    pub fn with_tables(tables: Tables, card: pipeline::CardId) -> Card {
        let (alerts, consumer) = alert_channel(1024);
        let mut collector = TimingCollector::new(HistogramConfig::default()).unwrap();
        let meters = Meters::new(collector.add_worker(u64::MAX).unwrap());
        let mut card = Card {
            tables,
            card,
            alerts,
            consumer,
            meters,
            collector,
            egress: FromInstance::new(FromInstanceOutputs {
                reply: REPLY,
                underlay: UNDERLAY,
            }),
            ingress: FromUnderlay::new(UNDERLAY),
            ports: Vec::new(),
            clock: StepClock::new(0, 100),
            icmp_limit: RateLimit::new(nitro::ICMP_RATE_PER_SEC, nitro::ICMP_BURST, LIMIT_HZ),
            now: 0,
            extra: Vec::new(),
        };
        card.refresh_ports();
        card
    }

    /// Give every local ENI of the current tables a port.
    pub fn refresh_ports(&mut self) {
        self.ports = vec![None; 64];
        for e in self.tables.local_enis() {
            self.ports[e.eni.0 as usize] = Some(EniPort::vpc_mtu(port(e.eni)));
        }
    }

    pub fn eni(&self, name: &str) -> EniId {
        self.tables.local_eni_by_name(name).unwrap().eni
    }

    /// Egress of `frames` from the port of `eni`; verdicts and buffers in slot order.
    pub fn egress(&mut self, eni: EniId, frames: Vec<TestBuffer>) -> Vec<(Verdict, TestBuffer)> {
        let mut burst = burst_of(frames);
        let Card { tables, card, alerts, icmp_limit, now, egress, clock, meters, .. } = self;
        let mut ctx = CardCtx { tables: &*tables, card: *card, alerts, icmp_limit: &*icmp_limit, now: *now };
        egress.process(&mut burst, eni, &mut ctx, &*clock, meters);
        drain(&mut burst, meters)
    }

    /// Ingress of underlay `frames`; what it makes beyond the burst is added to
    /// `self.extra` (buffers of 9216 bytes after 128 of headroom, as the runtime's pool).
    pub fn ingress(&mut self, frames: Vec<TestBuffer>) -> Vec<(Verdict, TestBuffer)> {
        let mut extra = VecExtra::new(|| Some(TestBuffer::with_room(128, 9216)));
        let out = self.ingress_with(frames, &mut extra);
        self.extra.extend(extra.sent);
        out
    }

    /// Ingress of underlay `frames` with `ingress` (this card's own or another worker's)
    /// and `extra` for what it makes beyond the burst.
    pub fn ingress_through<X: Extra<TestBuffer>>(
        &mut self,
        ingress: &mut FromUnderlay,
        frames: Vec<TestBuffer>,
        extra: &mut X,
    ) -> Vec<(Verdict, TestBuffer)> {
        let mut burst = burst_of(frames);
        let Card { tables, card, alerts, icmp_limit, now, ports, clock, meters, .. } = self;
        let mut ctx = CardCtx { tables: &*tables, card: *card, alerts, icmp_limit: &*icmp_limit, now: *now };
        ingress.process(&mut burst, ports, &mut ctx, extra, &*clock, meters);
        drain(&mut burst, meters)
    }

    /// Ingress of underlay `frames` with `extra` for what it makes beyond the burst.
    pub fn ingress_with<X: Extra<TestBuffer>>(
        &mut self,
        frames: Vec<TestBuffer>,
        extra: &mut X,
    ) -> Vec<(Verdict, TestBuffer)> {
        let mut ingress = std::mem::replace(&mut self.ingress, FromUnderlay::new(UNDERLAY));
        let out = self.ingress_through(&mut ingress, frames, extra);
        self.ingress = ingress;
        out
    }

    /// Set the MTU of `eni`'s port.
    pub fn set_mtu(&mut self, eni: EniId, mtu: u16) {
        let p = self.ports[eni.0 as usize].as_mut().unwrap();
        p.mtu = mtu;
    }

    pub fn alerts(&self) -> Vec<AlertEvent> {
        std::iter::from_fn(|| self.consumer.pop()).collect()
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.meters.counters.drops(reason)
    }
}

pub fn burst_of(frames: Vec<TestBuffer>) -> Burst<TestBuffer> {
    let mut burst = Burst::new();
    for f in frames {
        burst.push(f).unwrap();
    }
    burst
}

pub fn drain(burst: &mut Burst<TestBuffer>, meters: &mut Meters) -> Vec<(Verdict, TestBuffer)> {
    let mut out = Vec::new();
    burst.drain(&mut meters.counters, |b, v| out.push((v, b)));
    out
}

pub fn verdicts(results: &[(Verdict, TestBuffer)]) -> Vec<Verdict> {
    results.iter().map(|(v, _)| *v).collect()
}

pub fn drop(reason: DropReason) -> Verdict {
    Verdict::Drop(reason)
}

// ----- packets -----

/// The IPv4 header checksum of `h` (checksum field taken as zero).
pub fn ip_checksum(h: &[u8]) -> u16 {
    wire::checksum::ipv4_header(h)
}

/// An IPv4 packet: 20-byte header (or 20 + `options`), protocol `proto`, `payload`.
pub fn ipv4_with(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let ihl = 20 + options.len();
    let total = ihl + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x40 | (ihl / 4) as u8;
    p[1] = 0x00;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    p[8] = ttl;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..ihl].copy_from_slice(options);
    let c = ip_checksum(&p[..ihl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[ihl..].copy_from_slice(payload);
    p
}

/// A UDP datagram from port 40000 to 53 with `len` payload bytes (UDP checksum 0).
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; 8 + len];
    d[0..2].copy_from_slice(&40000u16.to_be_bytes());
    d[2..4].copy_from_slice(&53u16.to_be_bytes());
    d[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    for (i, b) in d[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    ipv4_with(src, dst, 17, 64, &[], &d)
}

/// An Ethernet frame.
pub fn ether(dst: EthernetAddress, src: EthernetAddress, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An ARP request frame (broadcast) from `sha`/`spa` for `tpa`, padded to 60 bytes.
pub fn arp_request(sha: EthernetAddress, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    arp_op(1, sha, spa, tpa)
}

pub fn arp_op(op: u16, sha: EthernetAddress, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha.0);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&tpa.octets());
    let mut f = ether(EthernetAddress::BROADCAST, sha, 0x0806, &a);
    f.resize(60, 0);
    f
}

pub fn buf(bytes: &[u8]) -> TestBuffer {
    TestBuffer::from_slice(bytes)
}

/// A Geneve frame as a card would send it (built with the wire crate's emitter).
pub fn geneve(src_pa: Ipv4Addr, dst_pa: Ipv4Addr, vni: u32, source_vpc: u32, inner: &[u8]) -> Vec<u8> {
    let mut b = TestBuffer::from_slice(inner);
    let encap = wire::vpc::Encap {
        src_mac: wire::vpc::card_mac(src_pa),
        dst_mac: wire::vpc::UNDERLAY_ROUTER_MAC,
        src_pa,
        dst_pa,
        vni,
        source_vpc,
    };
    wire::vpc::push_outer(&mut b, &encap, None).unwrap();
    b.data().to_vec()
}
