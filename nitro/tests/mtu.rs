//! Packets longer than the destination instance's port carries (its MTU in the runtime's
//! ENI -> port table): with DF, dropped as `mtu_exceeded` and answered with ICMP
//! fragmentation-needed that the sender's card takes; without DF, fragmented for the
//! port; the answers rate-limited per card.

mod common;

use std::net::Ipv4Addr;

use common::*;
use wire::vpc::{card_mac, subnet_router_mac, UNDERLAY_ROUTER_MAC};
use pipeline::{DropReason, StageId, VecExtra, Verdict};
use wire::vpc::parse_outer;
use wire::{icmpv4, ipv4, EthernetAddress, PacketBuf, TestBuffer};

const RED1: &str = "10.0.1.10";
const YELLOW1: &str = "10.1.1.10";

/// A UDP packet of `total` bytes from `src` to `dst`, DF as asked (the harness's `udp`
/// sets DF).
fn packet(src: &str, dst: &str, total: usize, df: bool) -> Vec<u8> {
    let mut p = udp(ip(src), ip(dst), total - 28);
    if !df {
        p[6] &= !0x40;
        p[10..12].copy_from_slice(&[0, 0]);
        let c = ip_checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// The ENI MAC of a local instance.
fn eni_mac(card: &Card, name: &str) -> EthernetAddress {
    EthernetAddress(card.tables.local_eni_by_name(name).unwrap().mac.0)
}

fn router_mac(card: &Card, name: &str) -> EthernetAddress {
    subnet_router_mac(card.tables.local_eni_by_name(name).unwrap().subnet.0)
}

/// Put fragments (IPv4 packets) back together; checks each is a well-formed fragment of
/// at most `mtu` bytes.
fn reassemble(frags: &[Vec<u8>], mtu: usize) -> Vec<u8> {
    let mut parts: Vec<(usize, bool, Vec<u8>)> = frags
        .iter()
        .map(|f| {
            let p = ipv4::Packet::new_checked(&f[..]).unwrap();
            assert!(f.len() <= mtu, "a fragment of {} bytes for an MTU of {mtu}", f.len());
            assert!(p.verify_checksum());
            assert!(!p.dont_frag());
            (usize::from(p.frag_offset()), p.more_frags(), p.payload().to_vec())
        })
        .collect();
    parts.sort_by_key(|p| p.0);
    let mut payload = Vec::new();
    for (offset, _, data) in &parts {
        assert_eq!(*offset, payload.len(), "contiguous");
        payload.extend_from_slice(data);
    }
    assert!(parts[..parts.len() - 1].iter().all(|p| p.1) && !parts[parts.len() - 1].1, "MF");
    let first = frags.iter().find(|f| ipv4::Packet::new_checked(&f[..]).unwrap().frag_offset() == 0).unwrap();
    let mut out = first[..20].to_vec();
    out.extend_from_slice(&payload);
    let mut h = ipv4::Packet::new_unchecked(&mut out[..]);
    h.set_total_len((20 + payload.len()) as u16);
    h.set_more_frags(false);
    h.fill_checksum();
    out
}

#[test]
fn df_over_the_port_mtu_is_answered_with_fragmentation_needed_the_sender_takes() {
    let topo = world();
    let (mut a, mut b) = (Card::new(&topo, "host-a"), Card::new(&topo, "host-b"));
    let (red1, yellow1) = (a.eni("red-1"), b.eni("yellow-1"));
    b.set_mtu(yellow1, 1500);
    let inner = packet(RED1, YELLOW1, 3000, true);
    // A packet of exactly the MTU passes as before.
    let fits = packet(RED1, YELLOW1, 1500, true);
    let out = b.ingress(vec![
        buf(&geneve(PA_A, PA_B, 102, 101, &inner)),
        buf(&geneve(PA_A, PA_B, 102, 101, &fits)),
    ]);
    assert_eq!(verdicts(&out), [drop(DropReason::MtuExceeded), Verdict::Forward(port(yellow1))]);
    assert_eq!(&out[1].1.data()[14..], &fits[..]);
    assert_eq!(b.drops(DropReason::MtuExceeded), 1);
    assert_eq!(b.meters.counters.stage_drops(StageId::Decap), 1, "counted at decap");
    assert!(b.alerts().is_empty(), "not a security drop");

    // One answer, towards host-a through the underlay.
    assert_eq!(b.extra.len(), 1);
    let (answer, to) = b.extra.pop().unwrap();
    assert_eq!(to, UNDERLAY);
    let f = answer.data().to_vec();
    assert_eq!((&f[0..6], &f[6..12]), (&UNDERLAY_ROUTER_MAC.0[..], &card_mac(PA_B).0[..]));
    let o = parse_outer(&f).unwrap();
    assert_eq!((o.src_pa, o.dst_pa), (PA_B, PA_A), "from yellow-1's card back to red-1's");
    assert_eq!((o.vni, o.source_vpc), (101, 102), "into red, from yellow");
    let icmp_ip = &f[o.inner_offset..];
    let h = ipv4::Packet::new_checked(icmp_ip).unwrap();
    let r = ipv4::Repr::parse(&h).unwrap();
    assert_eq!((r.src_addr, r.dst_addr), (ip(YELLOW1), ip(RED1)), "from the destination instance");
    assert_eq!((r.protocol, r.ttl, r.dont_frag, r.dscp), (ipv4::Protocol::ICMP, 64, false, 48));
    assert!(h.verify_checksum());
    let m = icmpv4::Packet::new_checked(h.payload()).unwrap();
    assert!(m.verify_checksum());
    assert_eq!(
        icmpv4::Repr::parse(&m).unwrap(),
        icmpv4::Repr::DstUnreachable { code: 4, next_hop_mtu: 1500, quote: &inner[..28] },
        "type 3 code 4, the port's MTU, the offender's header and 8 bytes"
    );

    // red-1's card takes it as coming from yellow-1 and delivers it to red-1.
    let out = a.ingress(vec![TestBuffer::from_slice(&f)]);
    assert_eq!(verdicts(&out), [Verdict::Forward(port(red1))]);
    let d = out[0].1.data();
    assert_eq!(&d[0..6], &eni_mac(&a, "red-1").0);
    assert_eq!(&d[6..12], &router_mac(&a, "red-1").0, "from outside red-1's subnet");
    assert_eq!(&d[14..], icmp_ip);
    assert_eq!(a.drops(DropReason::UnknownSender), 0);
}

#[test]
fn an_answer_to_a_packet_from_the_edge_goes_back_to_the_edge() {
    // Internet traffic for red-1 comes from the edge (VNI = source VPC = red); the answer
    // goes to the edge's PA, which takes it as red-1's (then NATs it back out).
    let mut a = Card::on("host-a");
    let red1 = a.eni("red-1");
    a.set_mtu(red1, 1400);
    let inner = packet("198.51.100.7", RED1, 2000, true);
    let out = a.ingress(vec![buf(&geneve(PA_EDGE, PA_A, 101, 101, &inner))]);
    assert_eq!(verdicts(&out), [drop(DropReason::MtuExceeded)]);
    let (answer, to) = a.extra.pop().unwrap();
    assert_eq!(to, UNDERLAY);
    let o = parse_outer(answer.data()).unwrap();
    assert_eq!((o.src_pa, o.dst_pa, o.vni, o.source_vpc), (PA_A, PA_EDGE, 101, 101));
    let h = ipv4::Packet::new_checked(&answer.data()[o.inner_offset..]).unwrap();
    assert_eq!((h.src_addr(), h.dst_addr()), (ip(RED1), ip("198.51.100.7")));
    let m = icmpv4::Packet::new_checked(h.payload()).unwrap();
    assert_eq!((m.msg_type(), m.msg_code(), m.next_hop_mtu()), (icmpv4::Message::DST_UNREACHABLE, 4, 1400));
}

#[test]
fn without_df_the_card_fragments_for_the_port() {
    let mut b = Card::on("host-b");
    let yellow1 = b.eni("yellow-1");
    for (mtu, count) in [(1500u16, 3usize), (576, 8)] {
        b.set_mtu(yellow1, mtu);
        b.extra.clear();
        let inner = packet(RED1, YELLOW1, 4000, false);
        let out = b.ingress(vec![buf(&geneve(PA_A, PA_B, 102, 101, &inner))]);
        assert_eq!(verdicts(&out), [Verdict::Forward(port(yellow1))], "MTU {mtu}");
        let mut frames = vec![out[0].1.data().to_vec()];
        for (f, to) in &b.extra {
            assert_eq!(*to, port(yellow1), "every fragment to yellow-1's port");
            frames.push(f.data().to_vec());
        }
        assert_eq!(frames.len(), count, "MTU {mtu}");
        for f in &frames {
            assert_eq!(&f[0..6], &eni_mac(&b, "yellow-1").0);
            assert_eq!(&f[6..12], &router_mac(&b, "yellow-1").0);
            assert_eq!(&f[12..14], &[0x08, 0x00]);
            assert!(f.len() <= usize::from(mtu) + 14, "{} bytes for MTU {mtu}", f.len());
        }
        let ips: Vec<Vec<u8>> = frames.iter().map(|f| f[14..].to_vec()).collect();
        assert_eq!(reassemble(&ips, usize::from(mtu)), inner, "MTU {mtu}");
    }
    assert_eq!(b.meters.counters.total_drops(), 0);
}

#[test]
fn no_answer_about_an_icmp_error_and_no_buffer_for_fragments() {
    let mut b = Card::on("host-b");
    let yellow1 = b.eni("yellow-1");
    b.set_mtu(yellow1, 1500);
    // A DF ICMP error over the MTU: dropped, never answered (RFC 1122 3.2.2).
    let mut icmp = vec![3u8, 1, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&packet(YELLOW1, RED1, 1900, true));
    let error = ipv4_with(ip(RED1), ip(YELLOW1), 1, 64, &[], &icmp);
    let out = b.ingress(vec![buf(&geneve(PA_A, PA_B, 102, 101, &error))]);
    assert_eq!(verdicts(&out), [drop(DropReason::MtuExceeded)]);
    assert!(b.extra.is_empty());
    // Fragments need buffers: without one, `no_buffer`, nothing sent.
    let inner = packet(RED1, YELLOW1, 4000, false);
    let mut none = VecExtra::new(|| None::<TestBuffer>);
    let out = b.ingress_with(vec![buf(&geneve(PA_A, PA_B, 102, 101, &inner))], &mut none);
    assert_eq!(verdicts(&out), [drop(DropReason::NoBuffer)]);
    assert!(none.sent.is_empty());
}

#[test]
fn answers_are_rate_limited_per_card() {
    let mut b = Card::on("host-b");
    let yellow1 = b.eni("yellow-1");
    b.set_mtu(yellow1, 1500);
    b.now = 5_000;
    let frames = |n: usize| {
        (0..n)
            .map(|i| buf(&geneve(PA_A, PA_B, 102, 101, &packet(RED1, YELLOW1, 2000 + i, true))))
            .collect::<Vec<_>>()
    };
    // 60 at once: the burst of 50 is answered, every one is dropped `mtu_exceeded`.
    let out = b.ingress(frames(30));
    let out2 = b.ingress(frames(30));
    assert!(out.iter().chain(&out2).all(|(v, _)| *v == drop(DropReason::MtuExceeded)));
    assert_eq!(b.drops(DropReason::MtuExceeded), 60);
    assert_eq!(b.extra.len(), nitro::ICMP_BURST as usize);
    // 10 ms later (the test clock has 1000 ticks a second): 1000 a second -> 10 more.
    b.now += 10;
    b.extra.clear();
    b.ingress(frames(20));
    assert_eq!(b.extra.len(), 10);
    assert_eq!(b.drops(DropReason::MtuExceeded), 80);
    // The limit is the card's: a second pipeline (another worker) sharing it gets nothing
    // more at the same instant.
    let mut other = nitro::FromUnderlay::new(UNDERLAY);
    let mut extra = VecExtra::new(|| Some(TestBuffer::with_room(128, 9216)));
    let out = b.ingress_through(&mut other, frames(5), &mut extra);
    assert!(out.iter().all(|(v, _)| *v == drop(DropReason::MtuExceeded)));
    assert!(extra.sent.is_empty());
}

#[test]
fn the_answer_source_is_the_destination_instance() {
    // A secondary address answers as itself: the ICMP comes from the address the sender
    // used, which the mapping places behind this card.
    let topo = world();
    let mut a = Card::new(&topo, "host-a");
    let mut b = Card::new(&topo, "host-b");
    let red1 = a.eni("red-1");
    a.set_mtu(red1, 1500);
    let inner = packet("10.0.1.20", "10.0.1.11", 1800, true);
    let out = a.ingress(vec![buf(&geneve(PA_B, PA_A, 101, 101, &inner))]);
    assert_eq!(verdicts(&out), [drop(DropReason::MtuExceeded)]);
    let (answer, _) = a.extra.pop().unwrap();
    let o = parse_outer(answer.data()).unwrap();
    let h = ipv4::Packet::new_checked(&answer.data()[o.inner_offset..]).unwrap();
    assert_eq!((h.src_addr(), h.dst_addr()), (Ipv4Addr::new(10, 0, 1, 11), ip("10.0.1.20")));
    // red-2's card takes it (same VPC, same subnet: from red-1's MAC).
    let out = b.ingress(vec![answer]);
    assert_eq!(verdicts(&out), [Verdict::Forward(port(b.eni("red-2")))]);
    assert_eq!(&out[0].1.data()[6..12], &eni_mac(&a, "red-1").0);
}
