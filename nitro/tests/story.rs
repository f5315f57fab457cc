//! The story of ARCHITECTURE section 1 through the Nitro stages, and every drop reason.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use mapping_client::{Command, Request, Service, SubnetId, TableOp, ToClient};
use wire::vpc::{card_mac, subnet_router_mac, UNDERLAY_ROUTER_MAC};
use pipeline::{DropReason, StageId, Verdict};
use wire::vpc::{inner_flow_hash, parse_outer, src_port};
use wire::{EthernetAddress, PacketBuf, TestBuffer};

fn subnet_mac(card: &Card, name: &str) -> EthernetAddress {
    let s = card.tables.local_eni_by_name(name).unwrap().subnet;
    subnet_router_mac(s.0)
}

fn eni_mac(card: &Card, name: &str) -> EthernetAddress {
    EthernetAddress(card.tables.local_eni_by_name(name).unwrap().mac.0)
}

/// A frame from a local instance of `card` (its own MAC as source) to the router.
fn from_instance(card: &Card, name: &str, inner: &[u8]) -> TestBuffer {
    let src = eni_mac(card, name);
    buf(&ether(subnet_mac(card, name), src, 0x0800, inner))
}

#[test]
fn red1_to_yellow1_encapsulated_then_delivered() {
    let topo = world();
    let mut a = Card::new(&topo, "host-a");
    let mut b = Card::new(&topo, "host-b");
    let inner = udp(ip("10.0.1.10"), ip("10.1.1.10"), 100);
    let red1 = a.eni("red-1");
    let out = a.egress(red1, vec![from_instance(&a, "red-1", &inner)]);
    assert_eq!(verdicts(&out), [Verdict::Forward(UNDERLAY)]);
    let f = out[0].1.data().to_vec();
    assert_eq!(f.len(), 58 + inner.len());

    // Outer Ethernet.
    assert_eq!(&f[0..6], &UNDERLAY_ROUTER_MAC.0);
    assert_eq!(&f[6..12], &card_mac(PA_A).0);
    assert_eq!(&f[6..12], &[0x02, 0x00, 198, 18, 0, 1]);
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    // Outer IPv4.
    assert_eq!(f[14], 0x45, "version 4, IHL 5");
    assert_eq!(f[15], 0, "DSCP/ECN");
    assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, 44 + inner.len(), "total length");
    assert_eq!(&f[18..20], &[0, 0], "ident");
    assert_eq!(&f[20..22], &[0x40, 0x00], "DF, offset 0");
    assert_eq!(f[22], 64, "TTL");
    assert_eq!(f[23], 17, "UDP");
    assert!(wire::checksum::ipv4_header_ok(&f[14..34]), "header checksum");
    assert_eq!(&f[26..30], &PA_A.octets());
    assert_eq!(&f[30..34], &PA_B.octets());
    // UDP.
    let sport = u16::from_be_bytes([f[34], f[35]]);
    assert_eq!(sport, src_port(inner_flow_hash(&inner)));
    assert!((49152..=65535).contains(&sport));
    assert_eq!(u16::from_be_bytes([f[36], f[37]]), 6081);
    assert_eq!(u16::from_be_bytes([f[38], f[39]]) as usize, 24 + inner.len(), "UDP length");
    assert_eq!(&f[40..42], &[0, 0], "UDP checksum 0");
    // Geneve: ver 0, opt_len 2, O 0 C 0, protocol IPv4, VNI = yellow (102), reserved 0.
    assert_eq!(&f[42..50], &[0x02, 0x00, 0x08, 0x00, 0x00, 0x00, 102, 0x00]);
    // Option: class 0xFFF0, type 1, len 1, source VPC = red (101).
    assert_eq!(&f[50..58], &[0xff, 0xf0, 0x01, 0x01, 0x00, 0x00, 0x00, 101]);
    // The inner packet, untouched (TTL included).
    assert_eq!(&f[58..], &inner[..]);
    assert!(a.alerts().is_empty());

    // Host B: checks red-1 really is on host A, delivers to yellow-1.
    let yellow1 = b.eni("yellow-1");
    let got = b.ingress(vec![buf(&f)]);
    assert_eq!(verdicts(&got), [Verdict::Forward(port(yellow1))]);
    let d = got[0].1.data();
    assert_eq!(&d[0..6], &eni_mac(&b, "yellow-1").0, "to yellow-1");
    assert_eq!(&d[6..12], &subnet_mac(&b, "yellow-1").0, "from the router: another VPC");
    assert_eq!(&d[12..14], &[0x08, 0x00]);
    assert_eq!(&d[14..], &inner[..]);
    assert!(b.alerts().is_empty());

    // Stage accounting: every stage ran once over one packet and was timed.
    for s in [StageId::Classify, StageId::VerifySend, StageId::Route, StageId::Encap] {
        assert_eq!(a.meters.counters.stage_packets(s), 1, "{s}");
        assert_eq!(a.meters.timing.current().get(s).len(), 1, "{s}");
    }
    for s in [StageId::VerifyRecv, StageId::Decap] {
        assert_eq!(b.meters.counters.stage_packets(s), 1, "{s}");
        assert_eq!(b.meters.timing.current().get(s).len(), 1, "{s}");
    }
    assert_eq!(a.meters.counters.output(UNDERLAY), 1);
    assert_eq!(b.meters.counters.total_drops(), 0);
}

#[test]
fn peer_mac_within_subnet_router_mac_across_subnets() {
    let topo = world();
    let mut a = Card::new(&topo, "host-a");
    let mut b = Card::new(&topo, "host-b");
    let red1 = a.eni("red-1");
    let to_red2 = udp(ip("10.0.1.10"), ip("10.0.1.20"), 10);
    let to_red3 = udp(ip("10.0.1.11"), ip("10.0.2.30"), 10); // from the secondary address
    let out = a.egress(
        red1,
        vec![from_instance(&a, "red-1", &to_red2), from_instance(&a, "red-1", &to_red3)],
    );
    assert_eq!(verdicts(&out), [Verdict::Forward(UNDERLAY), Verdict::Forward(UNDERLAY)]);
    for (_, f) in &out {
        let o = parse_outer(f.data()).unwrap();
        assert_eq!((o.src_pa, o.dst_pa, o.vni, o.source_vpc), (PA_A, PA_B, 101, 101));
    }
    let got = b.ingress(out.into_iter().map(|(_, f)| f).collect());
    let (red2, red3) = (b.eni("red-2"), b.eni("red-3"));
    assert_eq!(verdicts(&got), [Verdict::Forward(port(red2)), Verdict::Forward(port(red3))]);
    let red1_mac = mac("02:00:0a:00:01:0a");
    assert_eq!(&got[0].1.data()[..12], [eni_mac(&b, "red-2").0, red1_mac.0].concat().as_slice());
    assert_eq!(&got[0].1.data()[14..], &to_red2[..]);
    assert_eq!(
        &got[1].1.data()[..12],
        [eni_mac(&b, "red-3").0, subnet_mac(&b, "red-3").0]
            .concat()
            .as_slice()
    );
    assert_eq!(&got[1].1.data()[14..], &to_red3[..]);
}

#[test]
fn same_host_traffic_hairpins_through_the_underlay() {
    let mut a = Card::on("host-a");
    let (g1, g2) = (a.eni("green-1"), a.eni("green-2"));
    let inner = udp(ip("10.2.1.10"), ip("10.2.1.20"), 30);
    let out = a.egress(g1, vec![from_instance(&a, "green-1", &inner)]);
    assert_eq!(verdicts(&out), [Verdict::Forward(UNDERLAY)]);
    let o = parse_outer(out[0].1.data()).unwrap();
    assert_eq!((o.src_pa, o.dst_pa, o.vni), (PA_A, PA_A, 103));
    let got = a.ingress(out.into_iter().map(|(_, f)| f).collect());
    assert_eq!(verdicts(&got), [Verdict::Forward(port(g2))]);
    assert_eq!(&got[0].1.data()[6..12], &eni_mac(&a, "green-1").0);
}

#[test]
fn edge_routes_and_internet() {
    let mut a = Card::on("host-a");
    let red1 = a.eni("red-1");
    let green1 = a.eni("green-1");
    let vpn = udp(ip("10.0.1.10"), ip("172.16.3.4"), 10);
    let internet = udp(ip("10.0.1.10"), ip("8.8.8.8"), 10);
    let out = a.egress(red1, vec![from_instance(&a, "red-1", &vpn), from_instance(&a, "red-1", &internet)]);
    assert_eq!(verdicts(&out), [Verdict::Forward(UNDERLAY); 2]);
    for (_, f) in &out {
        let o = parse_outer(f.data()).unwrap();
        assert_eq!((o.dst_pa, o.vni, o.source_vpc), (PA_EDGE, 101, 101));
    }
    let out = a.egress(green1, vec![from_instance(&a, "green-1", &udp(ip("10.2.1.10"), ip("1.1.1.1"), 1))]);
    assert_eq!(verdicts(&out), [Verdict::Forward(UNDERLAY)]);
    let o = parse_outer(out[0].1.data()).unwrap();
    assert_eq!((o.dst_pa, o.vni, o.source_vpc), (PA_EDGE, 103, 103));
}

#[test]
fn edge_may_speak_for_the_vpcs_it_serves() {
    let mut b = Card::on("host-b");
    let red2 = b.eni("red-2");
    // Internet return traffic for red-2: from the edge, source VPC red, any inner source.
    let inner = udp(ip("8.8.8.8"), ip("10.0.1.20"), 20);
    let got = b.ingress(vec![buf(&geneve(PA_EDGE, PA_B, 101, 101, &inner))]);
    assert_eq!(verdicts(&got), [Verdict::Forward(port(red2))]);
    assert_eq!(&got[0].1.data()[6..12], &subnet_mac(&b, "red-2").0);
    assert_eq!(&got[0].1.data()[14..], &inner[..]);
    // The edge does not serve green: B does not even know it.
    let forged = udp(ip("8.8.8.8"), ip("10.1.1.10"), 20);
    let got = b.ingress(vec![buf(&geneve(PA_EDGE, PA_B, 102, 103, &forged))]);
    assert_eq!(verdicts(&got), [drop(DropReason::UnknownSender)]);
}

#[test]
fn green_to_yellow_has_no_route_and_raises_an_alert() {
    let mut a = Card::on("host-a");
    let green1 = a.eni("green-1");
    let inner = udp(ip("10.2.1.10"), ip("10.1.1.10"), 10);
    let out = a.egress(green1, vec![from_instance(&a, "green-1", &inner)]);
    assert_eq!(verdicts(&out), [drop(DropReason::NoRoute)]);
    let alerts = a.alerts();
    assert_eq!(alerts.len(), 1);
    let al = alerts[0];
    assert_eq!((al.reason, al.stage, al.card), (DropReason::NoRoute, StageId::Route, a.card));
    assert_eq!((al.eni, al.vni, al.peer_vni), (Some(green1.0), 103, Some(102)));
    assert_eq!((al.src, al.dst), (ip("10.2.1.10"), ip("10.1.1.10")));
    assert_eq!(a.drops(DropReason::NoRoute), 1);
    assert_eq!(a.meters.counters.stage_drops(StageId::Route), 1);

    // Blue has no internet gateway at all.
    let blue1 = a.eni("blue-1");
    let out = a.egress(blue1, vec![from_instance(&a, "blue-1", &udp(ip("10.3.1.10"), ip("8.8.8.8"), 1))]);
    assert_eq!(verdicts(&out), [drop(DropReason::NoRoute)]);
    assert_eq!(a.alerts()[0].peer_vni, None);
}

#[test]
fn not_peered_route_is_dropped_with_an_alert() {
    let mut a = Card::on("host-a");
    // The peering goes away before the routes do.
    a.tables.apply(&TableOp::RemovePeering { a: 101, b: 102 });
    let red1 = a.eni("red-1");
    let out = a.egress(red1, vec![from_instance(&a, "red-1", &udp(ip("10.0.1.10"), ip("10.1.1.10"), 1))]);
    assert_eq!(verdicts(&out), [drop(DropReason::NotPeered)]);
    let al = a.alerts()[0];
    assert_eq!((al.reason, al.vni, al.peer_vni), (DropReason::NotPeered, 101, Some(102)));
}

#[test]
fn no_mapping_is_dropped_without_alert() {
    let mut a = Card::on("host-a");
    let red1 = a.eni("red-1");
    let frames = vec![
        from_instance(&a, "red-1", &udp(ip("10.0.1.10"), ip("10.0.1.99"), 1)),
        from_instance(&a, "red-1", &udp(ip("10.0.1.10"), ip("10.0.1.20"), 1)),
        from_instance(&a, "red-1", &udp(ip("10.0.1.10"), ip("10.1.9.9"), 1)),
    ];
    let out = a.egress(red1, frames);
    assert_eq!(
        verdicts(&out),
        [drop(DropReason::NoMapping), Verdict::Forward(UNDERLAY), drop(DropReason::NoMapping)]
    );
    assert!(a.alerts().is_empty());
}

#[test]
fn green_forging_a_yellow_source_is_spoofed() {
    let topo = world();
    let mut a = Card::new(&topo, "host-a");
    let green1 = a.eni("green-1");
    let forged = udp(ip("10.1.1.10"), ip("10.2.1.20"), 10);
    let wrong_mac = buf(&ether(
        subnet_mac(&a, "green-1"),
        mac("02:00:0a:01:01:0a"),
        0x0800,
        &udp(ip("10.2.1.10"), ip("10.2.1.20"), 1),
    ));
    let out = a.egress(green1, vec![from_instance(&a, "green-1", &forged), wrong_mac]);
    assert_eq!(verdicts(&out), [drop(DropReason::SpoofedSource); 2]);
    let alerts = a.alerts();
    assert_eq!(alerts.len(), 2);
    let al = alerts[0];
    assert_eq!((al.reason, al.stage), (DropReason::SpoofedSource, StageId::VerifySend));
    assert_eq!((al.eni, al.vni, al.src, al.dst), (Some(green1.0), 103, ip("10.1.1.10"), ip("10.2.1.20")));
    assert_eq!(a.drops(DropReason::SpoofedSource), 2);

    // A port whose ENI is not registered on this card may not send at all.
    let b_only = mapping_client::EniId(topo.instance_by_name("yellow-1").unwrap().eni.0);
    let out = a.egress(
        b_only,
        vec![
            buf(&ether(
                UNDERLAY_ROUTER_MAC,
                mac("02:00:0a:01:01:0a"),
                0x0800,
                &udp(ip("10.1.1.10"), ip("10.1.1.11"), 1),
            )),
            buf(&arp_request(mac("02:00:0a:01:01:0a"), ip("10.1.1.10"), ip("10.1.1.1"))),
        ],
    );
    assert_eq!(verdicts(&out), [drop(DropReason::SpoofedSource), drop(DropReason::ArpIgnored)]);
    assert_eq!(a.alerts().len(), 1);
}

#[test]
fn source_dest_check_off_allows_a_foreign_source() {
    let mut a = Card::on("host-a");
    let green2 = a.eni("green-2"); // source_dest_check = false
    let green1 = a.eni("green-1");
    let foreign = udp(ip("192.0.2.7"), ip("10.2.1.10"), 10);
    let out = a.egress(green2, vec![from_instance(&a, "green-2", &foreign)]);
    assert_eq!(verdicts(&out), [Verdict::Forward(UNDERLAY)]);
    assert!(a.alerts().is_empty());
    // The MAC is still checked.
    let wrong_mac = buf(&ether(UNDERLAY_ROUTER_MAC, mac("02:00:0a:02:01:0a"), 0x0800, &foreign));
    let out = a.egress(green2, vec![wrong_mac]);
    assert_eq!(verdicts(&out), [drop(DropReason::SpoofedSource)]);
    // The same foreign source from green-1 (check on) is spoofed.
    let out = a.egress(green1, vec![from_instance(&a, "green-1", &foreign)]);
    assert_eq!(verdicts(&out), [drop(DropReason::SpoofedSource)]);
}

#[test]
fn forged_geneve_from_the_wrong_host_is_an_unknown_sender() {
    let mut b = Card::on("host-b");
    let yellow1 = b.eni("yellow-1");
    let inner = udp(ip("10.0.1.10"), ip("10.1.1.10"), 10);
    // Claims red-1 (which is on host A) but comes from host C's PA.
    let wrong_host = geneve(PA_C, PA_B, 102, 101, &inner);
    // Right host, but claims the source VPC is yellow, where 10.0.1.10 is nobody.
    let wrong_vpc = geneve(PA_A, PA_B, 102, 102, &inner);
    // Right host and VPC, but an address red-1 does not own.
    let wrong_ip = geneve(PA_A, PA_B, 102, 101, &udp(ip("10.0.1.12"), ip("10.1.1.10"), 10));
    // Green (103) into red (101): not peered, whatever the mapping says.
    let green = geneve(PA_A, PA_B, 101, 103, &udp(ip("10.2.1.10"), ip("10.0.1.20"), 10));
    let good = geneve(PA_A, PA_B, 102, 101, &inner);
    let got = b.ingress(vec![buf(&wrong_host), buf(&wrong_vpc), buf(&wrong_ip), buf(&green), buf(&good)]);
    assert_eq!(
        verdicts(&got),
        [
            drop(DropReason::UnknownSender),
            drop(DropReason::UnknownSender),
            drop(DropReason::UnknownSender),
            drop(DropReason::UnknownSender),
            Verdict::Forward(port(yellow1)),
        ]
    );
    let alerts = b.alerts();
    assert_eq!(alerts.len(), 4);
    let al = alerts[0];
    assert_eq!((al.reason, al.stage, al.card), (DropReason::UnknownSender, StageId::VerifyRecv, b.card));
    assert_eq!((al.eni, al.vni, al.peer_vni), (Some(yellow1.0), 101, Some(102)));
    assert_eq!((al.src, al.dst), (ip("10.0.1.10"), ip("10.1.1.10")));
    assert_eq!(alerts[1].peer_vni, None);
    assert_eq!(b.drops(DropReason::UnknownSender), 4);
}

#[test]
fn unknown_destinations() {
    let mut b = Card::on("host-b");
    let inner = udp(ip("10.0.1.10"), ip("10.1.1.10"), 10);
    let not_our_pa = geneve(PA_A, PA_C, 102, 101, &inner);
    // red-1 lives on host A, not here.
    let not_here = geneve(PA_A, PA_B, 101, 101, &udp(ip("10.0.1.10"), ip("10.0.1.11"), 1));
    let unmapped = geneve(PA_A, PA_B, 102, 101, &udp(ip("10.0.1.10"), ip("10.1.1.99"), 1));
    let got = b.ingress(vec![buf(&not_our_pa), buf(&not_here), buf(&unmapped)]);
    assert_eq!(verdicts(&got), [drop(DropReason::UnknownDestination); 3]);
    // yellow-1 has no port in this process.
    let y = b.eni("yellow-1");
    b.ports[y.0 as usize] = None;
    let got = b.ingress(vec![buf(&geneve(PA_A, PA_B, 102, 101, &inner))]);
    assert_eq!(verdicts(&got), [drop(DropReason::UnknownDestination)]);
    assert!(b.alerts().is_empty());
}

#[test]
fn arp_proxy_answers_in_place() {
    let mut a = Card::on("host-a");
    let red1 = a.eni("red-1");
    let red1_mac = eni_mac(&a, "red-1");
    let red2_mac = EthernetAddress(a.tables.lookup(101, ip("10.0.1.20")).unwrap().mac.0);
    let router = subnet_mac(&a, "red-1");
    let req = |t: &str| buf(&arp_request(red1_mac, ip("10.0.1.10"), ip(t)));
    let frames = vec![
        req("10.0.1.20"), // peer in the subnet (on host B): its MAC
        req("10.0.1.1"),  // the router
        req("10.0.1.2"),  // DNS
        req("10.0.2.30"), // another subnet of the VPC
        req("10.0.1.99"), // unassigned, in the VPC
        req("8.8.8.8"),   // outside the VPC: not answered
        req("10.1.1.10"), // a peered VPC: not answered
        req("10.0.1.11"), // its own secondary address (DAD): not answered
        buf(&arp_op(2, red1_mac, ip("10.0.1.10"), ip("10.0.1.20"))), // a reply
    ];
    let out = a.egress(red1, frames);
    let v = verdicts(&out);
    assert_eq!(&v[..5], &[Verdict::Forward(REPLY); 5]);
    assert_eq!(&v[5..], &[drop(DropReason::ArpIgnored); 4]);
    let expect = |answer: EthernetAddress, target: &str| {
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 2];
        arp.extend_from_slice(&answer.0);
        arp.extend_from_slice(&ip(target).octets());
        arp.extend_from_slice(&red1_mac.0);
        arp.extend_from_slice(&ip("10.0.1.10").octets());
        ether(red1_mac, answer, 0x0806, &arp)
    };
    assert_eq!(out[0].1.data(), expect(red2_mac, "10.0.1.20").as_slice());
    assert_eq!(out[1].1.data(), expect(router, "10.0.1.1").as_slice());
    assert_eq!(out[2].1.data(), expect(router, "10.0.1.2").as_slice());
    assert_eq!(out[3].1.data(), expect(router, "10.0.2.30").as_slice());
    assert_eq!(out[4].1.data(), expect(router, "10.0.1.99").as_slice());
    // The router MAC: 02:00:00:ff + subnet id.
    let red_a = a.tables.local_eni(red1).unwrap().subnet;
    assert_eq!(router, subnet_router_mac(red_a.0));
    assert_eq!(router.0[..4], [0x02, 0x00, 0x00, 0xff]);
    assert_ne!(subnet_router_mac(SubnetId(1).0), subnet_router_mac(SubnetId(2).0));
    assert_eq!(a.drops(DropReason::ArpIgnored), 4);
    assert!(a.alerts().is_empty());
}

#[test]
fn mtu_exceeded() {
    let topo = world();
    let mut a = Card::new(&topo, "host-a");
    let red1 = a.eni("red-1");
    let max = udp(ip("10.0.1.10"), ip("10.1.1.10"), 9001 - 28);
    let over = udp(ip("10.0.1.10"), ip("10.1.1.10"), 9002 - 28);
    assert_eq!((max.len(), over.len()), (9001, 9002));
    let out = a.egress(red1, vec![from_instance(&a, "red-1", &max), from_instance(&a, "red-1", &over)]);
    assert_eq!(verdicts(&out), [Verdict::Forward(UNDERLAY), drop(DropReason::MtuExceeded)]);
    assert_eq!(out[0].1.len(), 9001 + 58);
    // A receiving card refuses the same.
    let mut b = Card::new(&topo, "host-b");
    let got = b.ingress(vec![out[0].1.clone(), buf(&geneve(PA_A, PA_B, 102, 101, &over))]);
    assert_eq!(verdicts(&got), [Verdict::Forward(port(b.eni("yellow-1"))), drop(DropReason::MtuExceeded)]);
}

#[test]
fn no_headroom_is_no_room() {
    let mut a = Card::on("host-a");
    let red1 = a.eni("red-1");
    let frame = ether(
        subnet_mac(&a, "red-1"),
        eni_mac(&a, "red-1"),
        0x0800,
        &udp(ip("10.0.1.10"), ip("10.1.1.10"), 1),
    );
    let tight = TestBuffer::from_slice_with_room(&frame, 43, 0);
    let enough = TestBuffer::from_slice_with_room(&frame, 44, 0);
    let out = a.egress(red1, vec![tight, enough]);
    assert_eq!(verdicts(&out), [drop(DropReason::NoRoom), Verdict::Forward(UNDERLAY)]);
}

#[test]
fn ethernet_padding_is_removed_both_ways() {
    let topo = world();
    let mut a = Card::new(&topo, "host-a");
    let mut b = Card::new(&topo, "host-b");
    let inner = udp(ip("10.0.1.10"), ip("10.1.1.10"), 0); // 28 bytes: a 42-byte frame
    let mut frame = ether(subnet_mac(&a, "red-1"), eni_mac(&a, "red-1"), 0x0800, &inner);
    frame.resize(60, 0xee);
    let out = a.egress(a.eni("red-1"), vec![buf(&frame)]);
    assert_eq!(verdicts(&out), [Verdict::Forward(UNDERLAY)]);
    assert_eq!(&out[0].1.data()[58..], &inner[..]);
    let mut f = out[0].1.data().to_vec();
    f.extend_from_slice(&[0xee; 8]);
    let got = b.ingress(vec![buf(&f)]);
    assert_eq!(verdicts(&got), [Verdict::Forward(port(b.eni("yellow-1")))]);
    assert_eq!(&got[0].1.data()[14..], &inner[..]);
}

#[test]
fn egress_malformed_inputs_are_counted_drops() {
    let mut a = Card::on("host-a");
    let red1 = a.eni("red-1");
    let ipf = from_instance(&a, "red-1", &udp(ip("10.0.1.10"), ip("10.1.1.10"), 10))
        .data()
        .to_vec();
    let arpf = arp_request(eni_mac(&a, "red-1"), ip("10.0.1.10"), ip("10.0.1.20"));
    // Every truncation of a valid IPv4 frame and of a valid ARP frame.
    let mut total = 0u64;
    for (frame, keep) in [(&ipf, ipf.len()), (&arpf, 42)] {
        for len in 0..keep {
            let out = a.egress(red1, vec![buf(&frame[..len])]);
            assert_eq!(verdicts(&out), [drop(DropReason::Malformed)], "len {len}");
            total += 1;
        }
    }
    let with = |at: usize, v: &[u8]| {
        let mut f = ipf.clone();
        f[at..at + v.len()].copy_from_slice(v);
        buf(&f)
    };
    let mut ipv6 = ipf.clone();
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut vlan = ipf.clone();
    vlan[12..14].copy_from_slice(&[0x81, 0x00]);
    let multicast = ether(
        subnet_mac(&a, "red-1"),
        eni_mac(&a, "red-1"),
        0x0800,
        &udp(ip("10.0.1.10"), ip("224.0.0.251"), 1),
    );
    let bcast = ether(
        subnet_mac(&a, "red-1"),
        eni_mac(&a, "red-1"),
        0x0800,
        &udp(ip("0.0.0.0"), ip("255.255.255.255"), 1),
    );
    let options = ether(
        subnet_mac(&a, "red-1"),
        eni_mac(&a, "red-1"),
        0x0800,
        &ipv4_with(ip("10.0.1.10"), ip("10.1.1.10"), 17, 64, &[1, 1, 1, 0], &[0; 8]),
    );
    let mut bad_options = options.clone();
    bad_options[14 + 22] = 7; // an option byte changed: checksum fails
    let mut bad_arp_len = arpf.clone();
    bad_arp_len[14 + 4] = 8; // hlen 8: longer than declared, truncated inside 60 bytes? 8+2*(8+4)=32
    let mut other_htype = arpf.clone();
    other_htype[14 + 1] = 6;
    let frames = vec![
        with(14, &[0x44]),       // IHL 4
        with(14, &[0x65]),       // version 6 in an IPv4 frame
        with(16, &[0x00, 0x13]), // total length 19 < IHL
        with(16, &[0x40, 0x00]), // total length past the frame
        with(24, &[0xde, 0xad]), // bad header checksum
        with(14, &[0x4f]),       // IHL 15: 60 bytes, more than the packet's header
        buf(&ipv6),
        buf(&vlan),
        buf(&multicast),
        buf(&bcast),
        buf(&options),
        buf(&bad_options),
        buf(&bad_arp_len),
        buf(&other_htype),
    ];
    let out = a.egress(red1, frames);
    use DropReason::*;
    assert_eq!(
        verdicts(&out),
        [
            drop(Malformed),
            drop(Malformed),
            drop(Malformed),
            drop(Malformed),
            drop(Malformed),
            drop(Malformed),
            drop(NotIpv4),
            drop(NotIpv4),
            drop(Unsupported),
            drop(Unsupported),
            Verdict::Forward(UNDERLAY),
            drop(Malformed),
            drop(Malformed),
            drop(ArpIgnored),
        ]
    );
    assert_eq!(a.drops(Malformed), total + 8);
    assert_eq!(a.drops(NoVerdict), 0);
    assert!(a.alerts().is_empty());
}

#[test]
fn ingress_malformed_inputs_are_counted_drops() {
    let mut b = Card::on("host-b");
    let good = geneve(PA_A, PA_B, 102, 101, &udp(ip("10.0.1.10"), ip("10.1.1.10"), 10));
    let mut n = 0;
    for len in 0..good.len() {
        let got = b.ingress(vec![buf(&good[..len])]);
        assert_eq!(verdicts(&got), [drop(DropReason::Malformed)], "len {len}");
        n += 1;
    }
    let with = |at: usize, v: &[u8]| {
        let mut f = good.clone();
        f[at..at + v.len()].copy_from_slice(v);
        f
    };
    let fix_ip = |mut f: Vec<u8>| {
        f[24..26].copy_from_slice(&[0, 0]);
        let c = ip_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    };
    use DropReason::*;
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (with(42, &[0x03]), Malformed), // opt_len 3: option walk runs into the inner packet
        (with(42, &[0x3f]), Malformed), // options past the end
        (with(42, &[0x00]), Malformed), // no options: no source VPC
        (with(53, &[0x02]), Malformed), // source-VPC option length 2
        (with(53, &[0x1f]), Malformed), // option length past the options
        (with(52, &[0x81]), Unsupported), // unknown critical option
        (with(42, &[0x42]), Unsupported), // Geneve version 1
        (with(36, &[0x12, 0xb5]), Unsupported), // VXLAN port
        (with(12, &[0x86, 0xdd]), Unsupported), // outer IPv6
        (fix_ip(with(23, &[6])), Unsupported), // outer TCP
        (with(14, &[0x44]), Malformed), // outer IHL 4
        (with(24, &[0, 0]), Malformed), // outer checksum
        (with(58, &[0x60]), Malformed), // inner IPv6
        (with(58, &[0x44]), Malformed), // inner IHL 4
        (with(60, &[0x00, 0x10]), Malformed), // inner total length shorter than Geneve payload
        (with(60, &[0x01, 0x00]), Malformed), // inner total length longer
    ];
    let frames: Vec<TestBuffer> = cases.iter().map(|(f, _)| buf(f)).collect();
    let want: Vec<Verdict> = cases.iter().map(|(_, r)| drop(*r)).collect();
    let got = b.ingress(frames);
    assert_eq!(verdicts(&got), want);
    let malformed = cases.iter().filter(|(_, r)| *r == Malformed).count() as u64;
    assert_eq!(b.drops(Malformed), n + malformed);
    assert_eq!(b.drops(NoVerdict), 0);
    assert!(b.alerts().is_empty());
}

/// Hand every message the service has to the card it is for.
fn deliver(service: &mut Service, cards: &mut [(&mut Card, mapping_client::CardId)]) {
    while let Some(msg) = service.poll_transmit(Duration::ZERO) {
        let Some((card, _)) = cards.iter_mut().find(|(_, id)| *id == msg.card()) else {
            continue;
        };
        match msg {
            ToClient::Snapshot { tables, .. } => card.tables = *tables,
            ToClient::Delta { ops, .. } => ops.iter().for_each(|op| card.tables.apply(op)),
            ToClient::Heartbeat { .. } => {}
        }
        card.refresh_ports();
    }
}

#[test]
fn a_live_move_sends_traffic_to_the_new_pa() {
    let topo = world();
    let [card_a, card_b, card_c] =
        ["host-a", "host-b", "host-c"].map(|n| topo.card_by_name(n).unwrap());
    let mut service = Service::new(topo);
    let now = Duration::ZERO;
    let mut a = Card::with_tables(mapping_client::Tables::default(), card_a);
    let mut b = Card::with_tables(mapping_client::Tables::default(), card_b);
    let mut c = Card::with_tables(mapping_client::Tables::default(), card_c);
    // Connect the three cards: snapshots, then deltas.
    for card in [card_a, card_b, card_c] {
        service.handle(Request::Resync { card, have: None }, now);
    }
    deliver(&mut service, &mut [(&mut a, card_a), (&mut b, card_b), (&mut c, card_c)]);
    let red1 = a.eni("red-1");
    let inner = udp(ip("10.0.1.10"), ip("10.1.1.10"), 40);
    let send = |a: &mut Card| {
        let f = from_instance(a, "red-1", &inner);
        let out = a.egress(red1, vec![f]);
        assert_eq!(verdicts(&out), [Verdict::Forward(UNDERLAY)]);
        out.into_iter().next().unwrap().1
    };
    let before = send(&mut a);
    assert_eq!(parse_outer(before.data()).unwrap().dst_pa, PA_B);
    let yellow_on_b = b.eni("yellow-1");
    assert_eq!(verdicts(&b.ingress(vec![before.clone()])), [Verdict::Forward(port(yellow_on_b))]);

    // yellow-1 moves from host B to host C.
    service
        .execute(&Command::Move {
            instance: "yellow-1".into(),
            host: "host-c".into(),
        })
        .unwrap();
    deliver(&mut service, &mut [(&mut a, card_a), (&mut b, card_b), (&mut c, card_c)]);
    let after = send(&mut a);
    assert_eq!(parse_outer(after.data()).unwrap().dst_pa, PA_C);
    let yellow1 = c.eni("yellow-1");
    let got = c.ingress(vec![after]);
    assert_eq!(verdicts(&got), [Verdict::Forward(port(yellow1))]);
    assert_eq!(&got[0].1.data()[14..], &inner[..]);
    // A packet still in flight towards the old host is refused there.
    let got = b.ingress(vec![before]);
    assert_eq!(verdicts(&got), [drop(DropReason::UnknownDestination)]);
    // And the new host rejects a sender claiming yellow-1 from its old PA.
    let stale = geneve(PA_B, PA_A, 101, 102, &udp(ip("10.1.1.10"), ip("10.0.1.10"), 1));
    let got = a.ingress(vec![buf(&stale)]);
    assert_eq!(verdicts(&got), [drop(DropReason::UnknownSender)]);
    let from_c = geneve(PA_C, PA_A, 101, 102, &udp(ip("10.1.1.10"), ip("10.0.1.10"), 1));
    let got = a.ingress(vec![buf(&from_c)]);
    assert_eq!(verdicts(&got), [Verdict::Forward(port(red1))]);
}

#[test]
fn a_full_burst_of_mixed_traffic_is_all_decided() {
    let mut a = Card::on("host-a");
    let red1 = a.eni("red-1");
    let mut frames = Vec::new();
    for i in 0..32u8 {
        let dst = match i % 4 {
            0 => Ipv4Addr::new(10, 1, 1, 10),
            1 => Ipv4Addr::new(10, 0, 1, 20),
            2 => Ipv4Addr::new(10, 0, 9, i),
            _ => Ipv4Addr::new(8, 8, 8, i),
        };
        frames.push(from_instance(&a, "red-1", &udp(ip("10.0.1.10"), dst, usize::from(i))));
    }
    let out = a.egress(red1, frames);
    for (i, (v, f)) in out.iter().enumerate() {
        let want = if i % 4 == 2 {
            drop(DropReason::NoMapping)
        } else {
            Verdict::Forward(UNDERLAY)
        };
        assert_eq!(*v, want, "{i}");
        if let Verdict::Forward(_) = v {
            let o = parse_outer(f.data()).unwrap();
            let want_pa = [PA_B, PA_B, PA_B, PA_EDGE][i % 4];
            assert_eq!(o.dst_pa, want_pa, "{i}");
        }
    }
    assert_eq!(a.meters.counters.packets(), 32);
    assert_eq!(a.drops(DropReason::NoVerdict), 0);
}

#[test]
fn null_clock_counts_without_timing() {
    let mut a = Card::on("host-a");
    let red1 = a.eni("red-1");
    let mut burst = burst_of(vec![from_instance(&a, "red-1", &udp(ip("10.0.1.10"), ip("10.1.1.10"), 1))]);
    let mut ctx = pipeline::CardCtx {
        tables: &a.tables,
        card: a.card,
        alerts: &mut a.alerts,
        icmp_limit: &a.icmp_limit,
        now: a.now,
    };
    a.egress.process(&mut burst, red1, &mut ctx, &pipeline::NullClock, &mut a.meters);
    assert_eq!(burst.verdict(0), Some(Verdict::Forward(UNDERLAY)));
    assert_eq!(a.meters.counters.stage_packets(StageId::Encap), 1);
    assert!(a.meters.timing.current().get(StageId::Encap).is_empty());
}

#[test]
fn eni_ports_may_be_a_closure() {
    let mut b = Card::on("host-b");
    let (y, r2) = (b.eni("yellow-1"), b.eni("red-2"));
    let to_y = geneve(PA_A, PA_B, 102, 101, &udp(ip("10.0.1.10"), ip("10.1.1.10"), 1));
    let to_r2 = geneve(PA_A, PA_B, 101, 101, &udp(ip("10.0.1.10"), ip("10.0.1.20"), 1));
    let mut burst = burst_of(vec![buf(&to_y), buf(&to_r2)]);
    let ports = |eni: mapping_client::EniId| (eni == y).then_some(port(y));
    let mut ctx = pipeline::CardCtx {
        tables: &b.tables,
        card: b.card,
        alerts: &mut b.alerts,
        icmp_limit: &b.icmp_limit,
        now: b.now,
    };
    let mut extra = pipeline::VecExtra::new(|| None::<TestBuffer>);
    b.ingress.process(&mut burst, &ports, &mut ctx, &mut extra, &pipeline::NullClock, &mut b.meters);
    assert_eq!(burst.verdict(0), Some(Verdict::Forward(port(y))));
    assert_eq!(burst.verdict(1), Some(drop(DropReason::UnknownDestination)));
    let _ = r2;
}

#[test]
fn repeated_keys_share_their_lookup() {
    let topo = world();
    let mut a = Card::new(&topo, "host-a");
    let mut b = Card::new(&topo, "host-b");
    let red1 = a.eni("red-1");
    let dsts = [
        "10.1.1.10",
        "10.1.1.10",
        "10.0.1.20",
        "10.0.1.20",
        "10.1.1.10",
        "10.0.1.99",
        "10.0.1.99",
        "10.0.2.30",
    ];
    let frames = dsts
        .iter()
        .map(|d| from_instance(&a, "red-1", &udp(ip("10.0.1.10"), ip(d), 3)))
        .collect();
    let out = a.egress(red1, frames);
    let f = Verdict::Forward(UNDERLAY);
    let nm = drop(DropReason::NoMapping);
    assert_eq!(verdicts(&out), [f, f, f, f, f, nm, nm, f]);
    for (i, (v, p)) in out.iter().enumerate() {
        if *v == f {
            let o = parse_outer(p.data()).unwrap();
            let vni = if dsts[i].starts_with("10.1.") {
                102
            } else {
                101
            };
            assert_eq!((o.dst_pa, o.vni), (PA_B, vni), "{i}");
        }
    }
    // Ingress: runs of equal sources with changing destinations and the reverse.
    let (y, r2, r3) = (b.eni("yellow-1"), b.eni("red-2"), b.eni("red-3"));
    let g = |src: &str, vni: u32, dst: &str, from: Ipv4Addr| {
        buf(&geneve(from, PA_B, vni, 101, &udp(ip(src), ip(dst), 1)))
    };
    let frames = vec![
        g("10.0.1.10", 102, "10.1.1.10", PA_A),
        g("10.0.1.10", 101, "10.0.1.20", PA_A),
        g("10.0.1.10", 101, "10.0.1.20", PA_C), // same keys, wrong host
        g("10.0.1.11", 101, "10.0.1.20", PA_A),
        g("10.0.1.11", 101, "10.0.2.30", PA_A),
        g("10.0.1.12", 101, "10.0.2.30", PA_A), // not red-1's
    ];
    let got = b.ingress(frames);
    assert_eq!(
        verdicts(&got),
        [
            Verdict::Forward(port(y)),
            Verdict::Forward(port(r2)),
            drop(DropReason::UnknownSender),
            Verdict::Forward(port(r2)),
            Verdict::Forward(port(r3)),
            drop(DropReason::UnknownSender),
        ]
    );
    // Same subnet keeps the sender's MAC, another subnet gets the router's.
    assert_eq!(&got[3].1.data()[6..12], &[0x02, 0x00, 0x0a, 0x00, 0x01, 0x0a]);
    assert_eq!(&got[4].1.data()[6..12], &subnet_mac(&b, "red-3").0);
}

#[test]
fn a_zero_key_never_borrows_another_packets_answer() {
    // VNI 0 and destination 0.0.0.0 from a sender that is mapped: nothing is delivered.
    let mut b = Card::on("host-b");
    let mut inner = udp(ip("10.0.1.20"), ip("0.0.0.0"), 1);
    inner[10..12].copy_from_slice(&[0, 0]);
    let c = ip_checksum(&inner[..20]);
    inner[10..12].copy_from_slice(&c.to_be_bytes());
    let got = b.ingress(vec![buf(&geneve(PA_B, PA_B, 0, 101, &inner))]);
    assert_eq!(verdicts(&got), [drop(DropReason::UnknownSender)]);
    let got = b.ingress(vec![buf(&geneve(PA_B, PA_B, 101, 101, &inner))]);
    assert_eq!(verdicts(&got), [drop(DropReason::UnknownDestination)]);
}
