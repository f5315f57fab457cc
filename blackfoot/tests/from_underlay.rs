//! The edge's underlay-side pipeline end to end on plain buffers: [`FromUnderlay`]
//! (Geneve frames hosts send to the edge) over [`TestBuffer`]s, with the tables the edge
//! `blackfoot-1` of the story's world gets (see `common`).
//!
//! Every test checks bytes (against packets built independently, checksums recomputed
//! from scratch), verdicts, drop reasons, counters and the security alerts the pipeline
//! raises. The last test is a property: NAT out then NAT back (through [`FromOutside`])
//! is the identity.
//!
//! [`FromUnderlay`]: blackfoot::FromUnderlay
//! [`FromOutside`]: blackfoot::FromOutside

mod common;

use std::cell::RefCell;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[test]
fn internet_udp_tcp_and_echo_are_snatted_to_the_elastic_ip() {
    let mut edge = Edge::story();
    let packets = [
        udp(RED1, INTERNET_HOST, 40000, 53, b"which way to the internet?", true),
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
    let pass = edge.run_underlay(&frames);
    assert_eq!(pass.verdicts(), vec![fwd(INTERNET); packets.len()]);
    assert!(pass.extra.is_empty());
    for ((_, frame), orig) in pass.out.iter().zip(&packets) {
        let ip = internet_ip(frame);
        assert_eq!(ip, &readdressed(orig, Some(EIP_RED1), None)[..], "SNAT, checksums updated");
        assert_eq!(addr(ip, 12), EIP_RED1);
        assert_eq!(addr(ip, 16), INTERNET_HOST);
        assert_eq!(ip[8], 61, "TTL not decremented");
        assert_ipv4_sound(ip);
        assert_l4_sound(ip);
    }
    assert_eq!(get16(internet_ip(&pass.out[3].1), 26), 0, "UDP checksum 0 stays 0");
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
    let pass = edge.run_underlay(&[frame]);
    let ip = internet_ip(pass.only(fwd(INTERNET)));
    assert_eq!(ip, &readdressed(&inner, Some(EIP_RED1), None)[..]);
}

#[test]
fn a_3000_byte_datagram_without_df_goes_out_in_fragments() {
    let mut edge = Edge::story();
    let orig = udp(RED1, INTERNET_HOST, 40000, 9999, &payload(3000 - 28, 3), false);
    assert_eq!(orig.len(), 3000);
    let pass = edge.run_underlay(&[from_host(PA_A, RED, &orig)]);
    let first = internet_ip(pass.only(fwd(INTERNET))).to_vec();
    assert_eq!(first.len(), INTERNET_MTU, "first fragment fills the MTU");
    assert_eq!(frag_of(&first), (0, true));
    // 2980 bytes of data: 1480 + 1480 + 20.
    assert_eq!(pass.extra.len(), 2, "the other fragments go out through Extra");
    let mut frags = vec![first];
    for (frame, out) in &pass.extra {
        assert_eq!(*out, INTERNET);
        let ip = internet_ip(frame);
        assert!(ip.len() <= INTERNET_MTU);
        assert_eq!(addr(ip, 12), EIP_RED1);
        frags.push(ip.to_vec());
    }
    assert_eq!(frags.iter().map(|f| frag_of(f).0).collect::<Vec<_>>(), [0, 1480, 2960]);
    let whole = reassemble(&frags);
    assert_eq!(whole, readdressed(&orig, Some(EIP_RED1), None), "reassembles to the SNATed original");
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
    assert_eq!((m[0], m[1]), (3, 4), "destination unreachable, fragmentation needed");
    assert_eq!(get16(m, 6), mtu, "next-hop MTU");
    assert_eq!(&m[8..], &orig[..28], "quotes the IPv4 header and 8 bytes");
    assert_l4_sound(&ip);
}

#[test]
fn a_3000_byte_datagram_with_df_gets_fragmentation_needed_back() {
    let mut edge = Edge::story();
    let orig = udp(RED1, INTERNET_HOST, 40000, 9999, &payload(3000 - 28, 4), true);
    let pass = edge.run_underlay(&[from_host(PA_A, RED, &orig)]);
    assert_frag_needed(pass.only(fwd(FABRIC)), &orig, 1500);
    assert!(pass.extra.is_empty());
    assert_eq!(edge.meters.counters.output(FABRIC), 1);
    assert_eq!(edge.meters.counters.stage_packets(StageId::Encap), 1);
}

#[test]
fn vpn_traffic_is_esp_to_the_customer_gateway_with_increasing_sequence_numbers() {
    let mut edge = Edge::story();
    let vpn = edge.vpn();
    assert_eq!((vpn.outbound.spi, vpn.inbound.spi), (OUTBOUND_SPI, INBOUND_SPI));
    let mut gw = customer_rx(&vpn);
    for (k, seq) in [1u32, 2, 3].into_iter().enumerate() {
        let inner = udp(RED1, CUSTOMER_HOST, 40001, 9000, &payload(50 + k, k as u8), true);
        let pass = edge.run_underlay(&[from_host(PA_A, RED, &inner)]);
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
    let pass = edge.run_underlay(&[from_host(PA_A, RED, &a), from_host(PA_A, RED, &b)]);
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
    let inner = udp(RED1, CUSTOMER_HOST, 40001, 9000, &payload(2000 - 28, 9), false);
    let pass = edge.run_underlay(&[from_host(PA_A, RED, &inner)]);
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
    let inner = udp(RED1, CUSTOMER_HOST, 40001, 9000, &payload(2000 - 28, 9), true);
    let pass = edge.run_underlay(&[from_host(PA_A, RED, &inner)]);
    let mtu = esp::max_inner_for_mtu(INTERNET_MTU);
    assert_eq!(mtu, 1446);
    assert_frag_needed(pass.only(fwd(FABRIC)), &inner, mtu as u16);
    // Just fits: goes out encrypted at exactly 1500 bytes.
    let fits = udp(RED1, CUSTOMER_HOST, 40001, 9000, &payload(mtu - 28, 1), true);
    let pass = edge.run_underlay(&[from_host(PA_A, RED, &fits)]);
    let ip = internet_ip(pass.only(fwd(INTERNET)));
    assert_eq!(ip.len(), INTERNET_MTU);
    let (seq, plain) = open_esp(ip, &mut customer_rx(&edge.vpn()));
    assert_eq!((seq, plain), (1, fits), "the bounce used no sequence number");
}

#[test]
fn dx_traffic_is_tagged_with_the_vifs_vlan() {
    let mut edge = Edge::story();
    let inner = udp(YELLOW1, DX_HOST, 40002, 7000, b"over the private line", true);
    let pass = edge.run_underlay(&[from_host(PA_B, YELLOW, &inner)]);
    let f = pass.only(fwd(DX));
    assert_eq!(&f[..6], &DX_ROUTER_MAC.0);
    assert_eq!(&f[6..12], &card_mac(PA_EDGE).0);
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
    let pass = edge.run_underlay(&[from_host(PA_A, RED, &inner)]);
    let f = pass.only(fwd(SERVICES));
    let o = vpc::parse_outer(f).expect("Geneve");
    assert_eq!((o.src_pa, o.dst_pa), (PA_EDGE, FRONT_END));
    assert_eq!((o.vni, o.source_vpc, o.endpoint_id), (RED, RED, Some(ENDPOINT_ID)));
    assert_eq!(o.inner_offset, vpc::OUTER_HEADER_LEN_WITH_ENDPOINT);
    assert_eq!(&f[..6], &UNDERLAY_ROUTER_MAC.0);
    assert_eq!(&f[6..12], &card_mac(PA_EDGE).0);
    // The option exactly: class 0x0108, type 1, length 2, the 64-bit ID.
    assert_eq!(&f[58..62], &[0x01, 0x08, 0x01, 0x02]);
    assert_eq!(&f[62..70], &ENDPOINT_ID.to_be_bytes());
    assert_eq!(&f[o.inner_offset..], &inner[..], "inner packet unchanged, source too");
}

#[test]
fn an_icmp_error_from_red1_has_its_quote_snatted() {
    // red-1 answers a packet the internet host sent to its Elastic IP (which the edge
    // DNATed) with port unreachable: the quote must show the Elastic IP again.
    let mut edge = Edge::story();
    let seen_by_red1 = udp(INTERNET_HOST, RED1, 5353, 9, &payload(40, 5), false);
    let on_the_internet = readdressed(&seen_by_red1, None, Some(EIP_RED1));
    let error = icmp(RED1, INTERNET_HOST, 3, 3, [0; 4], &seen_by_red1);
    let pass = edge.run_underlay(&[from_host(PA_A, RED, &error)]);
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
    let pass = edge.run_underlay(&[from_host(PA_B, RED, &inner)]);
    pass.only(drop(DropReason::UnknownSender));
    assert_eq!(
        edge.alerts(),
        [edge.alert(DropReason::UnknownSender, StageId::VerifyRecv, RED, None, RED1, INTERNET_HOST)]
    );
    assert_eq!(edge.drops(DropReason::UnknownSender), 1);
}

#[test]
fn a_vni_other_than_the_source_vpc_is_an_unknown_sender() {
    let mut edge = Edge::story();
    // red-1, really on host-a, but the VNI names yellow (a peer may not use red's gateways).
    let inner = udp(RED1, INTERNET_HOST, 1, 2, b"transit", true);
    let pass = edge.run_underlay(&[geneve(PA_A, PA_EDGE, YELLOW, RED, None, &inner)]);
    pass.only(drop(DropReason::UnknownSender));
    assert_eq!(
        edge.alerts(),
        [edge.alert(DropReason::UnknownSender, StageId::VerifyRecv, RED, Some(YELLOW), RED1, INTERNET_HOST)]
    );
}

#[test]
fn a_frame_for_another_pa_is_an_unknown_destination() {
    let mut edge = Edge::story();
    let inner = udp(RED1, INTERNET_HOST, 1, 2, b"lost", true);
    let pass = edge.run_underlay(&[geneve(PA_A, PA_B, RED, RED, None, &inner)]);
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
    let pass = edge.run_underlay(&[from_host(PA_A, GREEN, &inner)]);
    pass.only(drop(DropReason::UnknownSender));
    assert_eq!(
        edge.alerts(),
        [edge.alert(DropReason::UnknownSender, StageId::VerifyRecv, GREEN, None, GREEN1, INTERNET_HOST)]
    );
}

#[test]
fn yellow_has_no_internet_gateway_so_no_route() {
    let mut edge = Edge::story();
    let inner = udp(YELLOW1, INTERNET_HOST, 1, 2, b"out?", true);
    let pass = edge.run_underlay(&[from_host(PA_B, YELLOW, &inner)]);
    pass.only(drop(DropReason::NoRoute));
    assert_eq!(
        edge.alerts(),
        [edge.alert(DropReason::NoRoute, StageId::VerifyRecv, YELLOW, None, YELLOW1, INTERNET_HOST)]
    );
}

#[test]
fn yellow_to_red_through_the_edge_is_not_for_the_edge() {
    // A VPC route (the peer red) sent to the edge: `unknown_destination`, no alert.
    let mut edge = Edge::story();
    let inner = udp(YELLOW1, RED1, 1, 2, b"peer", true);
    let pass = edge.run_underlay(&[from_host(PA_B, YELLOW, &inner)]);
    pass.only(drop(DropReason::UnknownDestination));
    assert!(edge.alerts().is_empty());
}

#[test]
fn a_source_without_elastic_ip_is_dropped_at_nat() {
    let mut edge = Edge::with_world(&world_text(RED2_NO_EIP));
    let inner = udp(RED2, INTERNET_HOST, 1, 2, b"no eip", true);
    let pass = edge.run_underlay(&[from_host(PA_B, RED, &inner)]);
    pass.only(drop(DropReason::NoElasticIp));
    assert!(edge.alerts().is_empty());
    assert_eq!(edge.meters.counters.stage_packets(StageId::Nat), 1);
    assert_eq!(edge.meters.counters.stage_drops(StageId::Nat), 1);
    // red-2 still reaches the VPN and the S3 endpoint, which need no Elastic IP.
    let vpn = udp(RED2, CUSTOMER_HOST, 1, 2, b"vpn", true);
    let s3 = udp(RED2, S3_HOST, 1, 2, b"s3", true);
    let pass = edge.run_underlay(&[from_host(PA_B, RED, &vpn), from_host(PA_B, RED, &s3)]);
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
    let pass = edge.run_underlay(&frames);
    assert_eq!(pass.verdicts(), vec![drop(DropReason::UnknownDestination); 4]);
}

#[test]
fn a_dx_route_held_by_another_edge_is_not_sent_on_this_edges_vif() {
    // red has a VIF on blackfoot-2 with VLAN 101, the number of yellow's VIF on
    // blackfoot-1. A red packet for red's DX prefix that reaches blackfoot-1 (misdirected)
    // must not leave on yellow's VLAN 101: the route is held by another edge.
    let mut edge = Edge::with_world(&world_text(RED_DX_ON_EDGE_2));
    let inner = udp(RED1, Ipv4Addr::new(10, 99, 0, 5), 1, 2, b"to red's DC", true);
    let pass = edge.run_underlay(&[from_host(PA_A, RED, &inner)]);
    assert_eq!(
        pass.verdicts(),
        [drop(DropReason::UnknownDestination)],
        "red's packet went out on yellow's Direct Connect VIF"
    );
    // Yellow's own DX traffic still goes out.
    let ok = udp(YELLOW1, DX_HOST, 1, 2, b"dx", true);
    let pass = edge.run_underlay(&[from_host(PA_B, YELLOW, &ok)]);
    assert_eq!(pass.verdicts(), [fwd(DX)]);
    assert!(edge.topo.dxs().len() == 2);
}

/// Valid frames of every class from the fabric.
fn underlay_frames() -> Vec<Vec<u8>> {
    vec![
        from_host(PA_A, RED, &udp(RED1, INTERNET_HOST, 40000, 53, &payload(30, 1), true)),
        from_host(PA_A, RED, &tcp(RED1, CUSTOMER_HOST, 40001, 22, &payload(30, 2), true)),
        from_host(PA_B, YELLOW, &echo(YELLOW1, DX_HOST, 8, &payload(30, 3))),
        from_host(PA_A, RED, &udp(RED1, S3_HOST, 40003, 443, &payload(30, 4), true)),
    ]
}

#[test]
fn truncated_underlay_frames_are_malformed_or_unsupported_never_a_panic() {
    let mut edge = Edge::story();
    for frame in underlay_frames() {
        let cuts: Vec<Vec<u8>> = (0..frame.len()).map(|n| frame[..n].to_vec()).collect();
        for chunk in cuts.chunks(MAX_BURST) {
            let pass = edge.run_underlay(chunk);
            assert!(pass.extra.is_empty());
            for (k, (v, _)) in pass.out.iter().enumerate() {
                assert!(
                    matches!(v, Verdict::Drop(DropReason::Malformed | DropReason::Unsupported)),
                    "cut at {}: {v:?}",
                    chunk[k].len()
                );
            }
        }
        // The whole frame still goes through.
        let pass = edge.run_underlay(&[frame]);
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
    let pass = edge.run_underlay(&frames);
    assert_eq!(pass.verdicts(), vec![drop(DropReason::Malformed); 3]);
}

// ===== outside in: internet =====


#[test]
fn stage_counters_count_only_the_packets_of_their_stage() {
    let mut edge = Edge::story();
    let frames = vec![
        from_host(PA_A, RED, &udp(RED1, INTERNET_HOST, 1, 2, b"nat", true)),
        from_host(PA_A, RED, &tcp(RED1, INTERNET_HOST, 1, 2, b"nat", true)),
        from_host(PA_A, RED, &udp(RED1, INTERNET_HOST, 1, 2, &payload(2000, 0), true)),
        from_host(PA_A, RED, &udp(RED1, CUSTOMER_HOST, 1, 2, b"esp", true)),
        from_host(PA_B, YELLOW, &udp(YELLOW1, DX_HOST, 1, 2, b"vlan", true)),
        from_host(PA_A, RED, &udp(RED1, S3_HOST, 1, 2, b"endpoint", true)),
        from_host(PA_B, RED, &udp(RED1, INTERNET_HOST, 1, 2, b"spoofed", true)),
        vec![0u8; 40],
    ];
    let pass = edge.run_underlay(&frames);
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
        assert_eq!(edge.meters.timing.current().get(stage).len(), packets, "{stage:?} timing");
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
        [fwd(FABRIC), drop(DropReason::NoElasticIp), fwd(FABRIC), drop(DropReason::EspAuthFailed)]
    );
    let c = &edge.meters.counters;
    assert_eq!(c.stage_packets(StageId::Classify), 4);
    assert_eq!(c.stage_drops(StageId::Classify), 1);
    assert_eq!(c.stage_packets(StageId::EspDecrypt), 2);
    assert_eq!(c.stage_drops(StageId::EspDecrypt), 1);
    assert_eq!(c.stage_packets(StageId::Nat), 3 + 1);
    assert_eq!(c.stage_packets(StageId::Encap), 1 + 2);
    assert_eq!(c.stage_packets(StageId::VerifyRecv), 8, "fabric stages untouched");
    assert_eq!(c.stage_packets(StageId::Vlan), 1);
    assert_eq!(c.stage_packets(StageId::Endpoint), 1);

    // dx and services sides count under their own stage.
    let frames = vec![from_dx(101, &udp(DX_HOST, YELLOW1, 1, 2, b"dx", true)), from_dx(7, &[0; 20])];
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
    assert_eq!((c.stage_packets(StageId::Vlan), c.stage_drops(StageId::Vlan)), (1 + 2, 1));
    assert_eq!(c.stage_packets(StageId::Endpoint), 1 + 1);
    assert_eq!(c.stage_packets(StageId::Encap), 3 + 1 + 1);
    assert_eq!(c.stage_packets(StageId::Classify), 4, "internet classify only");
    assert_eq!(c.drops(DropReason::UnknownVlan), 1);
    assert_eq!(c.bursts(), 4);
}

#[test]
fn null_clock_records_no_timing_but_counts() {
    let mut edge = Edge::build(&world_text(""), OUTPUTS, None);
    let frames = underlay_frames();
    let pass = edge.run_underlay(&frames);
    assert_eq!(pass.verdicts(), [fwd(INTERNET), fwd(INTERNET), fwd(DX), fwd(SERVICES)]);
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
            0 => (from_host(PA_A, RED, &udp(RED1, INTERNET_HOST, k as u16, 2, b"a", true)), fwd(INTERNET)),
            1 => (from_host(PA_A, RED, &udp(RED1, CUSTOMER_HOST, k as u16, 2, b"b", true)), fwd(INTERNET)),
            2 => (
                from_host(PA_B, RED, &udp(RED1, INTERNET_HOST, k as u16, 2, b"c", true)),
                drop(DropReason::UnknownSender),
            ),
            _ => (from_host(PA_B, YELLOW, &udp(YELLOW1, DX_HOST, k as u16, 2, b"d", true)), fwd(DX)),
        };
        frames.push(frame);
        expected.push(v);
    }
    let pass = edge.run_underlay(&frames);
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
            let pass = edge.run_underlay(&[from_host(PA_A, RED, &orig)]);
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

// ===== property: endpoint's template copy is push_outer =====

/// An S3-bound packet of red-1 or red-2: UDP or TCP, 28..1400 bytes, any ports, DF or not.
fn s3_packet() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), any::<bool>(), 28usize..1400, any::<u16>(), any::<u16>(), any::<bool>(), any::<u8>()).prop_map(
        |(red2, is_tcp, size, sport, dport, df, seed)| {
            let src = if red2 { RED2 } else { RED1 };
            if is_tcp {
                tcp(src, S3_HOST, sport, dport, &payload(size.max(40) - 40, seed), df)
            } else {
                udp(src, S3_HOST, sport, dport, &payload(size - 28, seed), df)
            }
        },
    )
}

/// Bursts of S3-bound packets, some interleaved with DX-bound ones (another way out in the
/// same burst), through one edge one after the other: every S3 frame is, byte for byte,
/// the general encapsulation ([`vpc::push_outer`] with the endpoint ID) of the packet
/// sent, whatever burst its template was made in.
#[test]
fn endpoint_frames_are_push_outer_across_bursts() {
    let edge = RefCell::new(Edge::with_world(&world_text(RED2_NO_EIP)));
    let mut runner = TestRunner::new(Config { cases: 128, ..Config::default() });
    let bursts = prop::collection::vec(prop::collection::vec((s3_packet(), any::<bool>()), 1..8), 1..4);
    runner
        .run(&bursts, |bursts| {
            let mut edge = edge.borrow_mut();
            for burst in bursts {
                let mut frames = Vec::new();
                let mut want = Vec::new();
                for (inner, with_dx) in &burst {
                    if *with_dx {
                        frames.push(from_host(PA_B, YELLOW, &udp(YELLOW1, DX_HOST, 1, 2, b"dx", true)));
                        want.push(None);
                    }
                    let src_pa = if addr(inner, 12) == RED2 { PA_B } else { PA_A };
                    frames.push(from_host(src_pa, RED, inner));
                    let mut b = TestBuffer::from_slice_with_room(inner, 128, 0);
                    let encap = Encap {
                        src_mac: card_mac(PA_EDGE),
                        dst_mac: UNDERLAY_ROUTER_MAC,
                        src_pa: PA_EDGE,
                        dst_pa: FRONT_END,
                        vni: RED,
                        source_vpc: RED,
                    };
                    vpc::push_outer(&mut b, &encap, Some(ENDPOINT_ID)).expect("fits");
                    want.push(Some(b.data().to_vec()));
                }
                let pass = edge.run_underlay(&frames);
                prop_assert_eq!(pass.out.len(), want.len());
                for ((verdict, got), want) in pass.out.iter().zip(&want) {
                    match want {
                        Some(want) => {
                            prop_assert_eq!(*verdict, fwd(SERVICES));
                            prop_assert_eq!(got, want);
                        }
                        None => prop_assert_eq!(*verdict, fwd(DX)),
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    let edge = edge.into_inner();
    assert_eq!(edge.meters.counters.total_drops(), 0);
}
