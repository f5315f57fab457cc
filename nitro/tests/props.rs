//! Properties: encap on host A then decap on host B is the identity on the inner packet;
//! no input makes a stage panic or leave a packet undecided.

mod common;

use std::net::Ipv4Addr;

use common::*;
use pipeline::{DropReason, Verdict};
use proptest::prelude::*;
use wire::{EthernetAddress, PacketBuf};

/// An inner IPv4 packet from one of red-1's addresses to one of the ENIs of host B, in a
/// VPC red-1 may reach: any protocol, ports, TTL, DSCP, fragment bits, options and payload.
#[derive(Debug, Clone)]
struct Inner {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    tos: u8,
    frag: u16,
    options: Vec<u8>,
    payload: Vec<u8>,
}

fn inner() -> impl Strategy<Value = Inner> {
    (
        prop::sample::select(vec![ip("10.0.1.10"), ip("10.0.1.11")]),
        prop::sample::select(vec![ip("10.1.1.10"), ip("10.0.1.20"), ip("10.0.2.30")]),
        any::<u8>(),
        1..=255u8,
        any::<u8>(),
        prop_oneof![Just(0x4000u16), Just(0), Just(0x2000), 0u16..0x4000],
        prop::collection::vec(Just(1u8), 0..=10).prop_map(|n| vec![1u8; n.len() * 4]),
        prop::collection::vec(any::<u8>(), 0..3000),
    )
        .prop_map(
            |(src, dst, proto, ttl, tos, frag, options, payload)| Inner {
                src,
                dst,
                proto,
                ttl,
                tos,
                frag,
                options,
                payload,
            },
        )
}

impl Inner {
    fn bytes(&self) -> Vec<u8> {
        let mut p = ipv4_with(self.src, self.dst, self.proto, self.ttl, &self.options, &self.payload);
        p[1] = self.tos;
        p[6..8].copy_from_slice(&self.frag.to_be_bytes());
        let ihl = 20 + self.options.len();
        p[10..12].copy_from_slice(&[0, 0]);
        let c = ip_checksum(&p[..ihl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encap_then_decap_is_the_identity(packets in prop::collection::vec(inner(), 1..=32), pad in 0usize..20) {
        let topo = world();
        let mut a = Card::new(&topo, "host-a");
        let mut b = Card::new(&topo, "host-b");
        let red1 = a.eni("red-1");
        let red1_mac = EthernetAddress(a.tables.local_eni(red1).unwrap().mac.0);
        let inners: Vec<Vec<u8>> = packets.iter().map(Inner::bytes).collect();
        let frames = inners
            .iter()
            .map(|p| {
                let mut f = ether(wire::vpc::UNDERLAY_ROUTER_MAC, red1_mac, 0x0800, p);
                f.resize(f.len() + pad, 0xa5);
                buf(&f)
            })
            .collect();
        let out = a.egress(red1, frames);
        prop_assert!(out.iter().all(|(v, _)| *v == Verdict::Forward(UNDERLAY)), "{:?}", verdicts(&out));
        let got = b.ingress(out.into_iter().map(|(_, f)| f).collect());
        for ((v, f), (inner, p)) in got.iter().zip(inners.iter().zip(&packets)) {
            let eni = b.tables.lookup(if p.dst.octets()[1] == 1 { 102 } else { 101 }, p.dst).unwrap().eni;
            prop_assert_eq!(*v, Verdict::Forward(port(eni)));
            prop_assert_eq!(&f.data()[14..], &inner[..]);
            prop_assert_eq!(&f.data()[12..14], &[0x08, 0x00]);
        }
        prop_assert!(a.alerts().is_empty() && b.alerts().is_empty());
    }

    #[test]
    fn egress_decides_every_packet_of_any_bytes(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 1..=64)) {
        let topo = world();
        let mut a = Card::new(&topo, "host-a");
        let red1 = a.eni("red-1");
        let out = a.egress(red1, frames.iter().map(|f| buf(f)).collect());
        prop_assert_eq!(out.len(), frames.len());
        prop_assert_eq!(a.drops(DropReason::NoVerdict), 0);
    }

    #[test]
    fn egress_decides_every_mutation_of_valid_frames(at in 0usize..80, value in any::<u8>(), kind in 0u8..3) {
        let topo = world();
        let mut a = Card::new(&topo, "host-a");
        let red1 = a.eni("red-1");
        let mac = EthernetAddress(a.tables.local_eni(red1).unwrap().mac.0);
        let mut f = match kind {
            0 => ether(wire::vpc::UNDERLAY_ROUTER_MAC, mac, 0x0800, &udp(ip("10.0.1.10"), ip("10.1.1.10"), 30)),
            1 => arp_request(mac, ip("10.0.1.10"), ip("10.0.1.20")),
            _ => ether(wire::vpc::UNDERLAY_ROUTER_MAC, mac, 0x0800, &ipv4_with(ip("10.0.1.10"), ip("10.0.1.20"), 6, 9, &[1, 1, 1, 1, 1, 1, 1, 0], &[7; 40])),
        };
        let at = at % f.len();
        f[at] = value;
        let out = a.egress(red1, vec![buf(&f)]);
        prop_assert_eq!(out.len(), 1);
        prop_assert_ne!(out[0].0, Verdict::Drop(DropReason::NoVerdict));
    }

    #[test]
    fn ingress_decides_every_mutation_of_valid_frames(at in 0usize..120, value in any::<u8>(), cut in 0usize..130, src_b in any::<bool>()) {
        let topo = world();
        let mut b = Card::new(&topo, "host-b");
        let inner = udp(ip("10.0.1.10"), ip("10.1.1.10"), 40);
        let src = if src_b { PA_B } else { PA_A };
        let mut f = geneve(src, PA_B, 102, 101, &inner);
        let at = at % f.len();
        f[at] = value;
        f.truncate(cut.max(1));
        let got = b.ingress(vec![buf(&f)]);
        prop_assert_eq!(got.len(), 1);
        prop_assert_ne!(got[0].0, Verdict::Drop(DropReason::NoVerdict));
    }

    #[test]
    fn ingress_decides_every_packet_of_any_bytes(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 1..=64)) {
        let topo = world();
        let mut b = Card::new(&topo, "host-b");
        let got = b.ingress(frames.iter().map(|f| buf(f)).collect());
        prop_assert_eq!(got.len(), frames.len());
        prop_assert_eq!(b.drops(DropReason::NoVerdict), 0);
    }
}

/// A mixed burst on ingress: several senders, VPCs and destinations, good and bad, in one
/// burst (the per-burst answer caches must not leak from one packet to the next).
#[test]
fn mixed_ingress_burst() {
    let mut b = Card::on("host-b");
    let (y1, r2, r3) = (b.eni("yellow-1"), b.eni("red-2"), b.eni("red-3"));
    let ok_red_to_yellow = geneve(PA_A, PA_B, 102, 101, &udp(ip("10.0.1.10"), ip("10.1.1.10"), 1));
    let ok_red_to_red = geneve(PA_A, PA_B, 101, 101, &udp(ip("10.0.1.10"), ip("10.0.1.20"), 1));
    let bad_green = geneve(PA_A, PA_B, 101, 103, &udp(ip("10.2.1.10"), ip("10.0.1.20"), 1));
    let ok_red3 = geneve(PA_A, PA_B, 101, 101, &udp(ip("10.0.1.11"), ip("10.0.2.30"), 1));
    let frames = [&ok_red_to_yellow, &ok_red_to_red, &bad_green, &ok_red_to_yellow, &ok_red3, &ok_red_to_red]
    .into_iter()
    .cycle()
    .take(60)
    .map(|f| buf(f))
    .collect();
    let got = b.ingress(frames);
    let want = [
        Verdict::Forward(port(y1)),
        Verdict::Forward(port(r2)),
        Verdict::Drop(DropReason::UnknownSender),
        Verdict::Forward(port(y1)),
        Verdict::Forward(port(r3)),
        Verdict::Forward(port(r2)),
    ];
    for (i, (v, _)) in got.iter().enumerate() {
        assert_eq!(*v, want[i % 6], "{i}");
    }
    assert_eq!(b.alerts().len(), 10);
}
