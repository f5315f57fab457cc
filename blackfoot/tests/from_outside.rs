//! The edge's outside pipeline end to end on plain buffers: [`FromOutside`] (internet,
//! dx and services sides) over [`TestBuffer`]s, with the tables the edge `blackfoot-1` of
//! the story's world gets (see `common`).
//!
//! Every test checks bytes (against packets built independently, checksums recomputed
//! from scratch), verdicts, drop reasons, counters and the security alerts the pipeline
//! raises.
//!
//! [`FromOutside`]: blackfoot::FromOutside

mod common;

use common::*;

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
        assert_eq!(inner, readdressed(orig, None, Some(RED1)), "DNAT, checksums updated");
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
    let pass = edge.run_underlay(&[from_host(PA_A, RED, &orig)]);
    let out = internet_ip(pass.only(fwd(INTERNET))).to_vec();
    // The internet host quotes the whole SNATed datagram (RFC 1812 allows more than 8 bytes).
    let error = icmp(INTERNET_HOST, EIP_RED1, 3, 3, [0; 4], &out);
    let pass = edge.run_outside(Side::Internet, &[from_internet(&error)]);
    let inner = host_inner(pass.only(fwd(FABRIC)), PA_A, RED);
    let expected = icmp(INTERNET_HOST, RED1, 3, 3, [0; 4], &orig);
    assert_eq!(inner, expected, "outer destination and quoted source are red-1 again");
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
        from_internet(&ipv4(CUSTOMER_GW, NOT_AN_EIP, PROTO_ESP, false, 1, &payload(64, 1))),
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
        ether(card_mac(PA_EDGE), INTERNET_NEXT_HOP_MAC, 0x86dd, &good),
        ether(card_mac(PA_EDGE), INTERNET_NEXT_HOP_MAC, 0x0806, &[0; 28]),
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
    let reply = udp(CUSTOMER_HOST, RED1, 9000, 40001, b"from the data centre", true);
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
        [edge.alert(DropReason::EspAuthFailed, StageId::EspDecrypt, RED, None, CUSTOMER_GW, TUNNEL_LOCAL)]
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
            edge.alert(DropReason::VpnPolicy, StageId::EspDecrypt, RED, None, stranger, RED1),
            edge.alert(DropReason::VpnPolicy, StageId::EspDecrypt, RED, None, CUSTOMER_HOST, YELLOW1),
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
        ether(card_mac(PA_EDGE), DX_ROUTER_MAC, 0x0800, &from_dc),
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
        assert_eq!(host_inner(f, PA_B, YELLOW), from_dc, "to host-b, VNI 102, unchanged");
    }
    assert_eq!(edge.meters.counters.stage_packets(StageId::Vlan), frames.len() as u64);
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
        geneve(FRONT_END, PA_EDGE, RED, RED, Some(0x1111_2222_3333_4444), &answer),
        geneve(FRONT_END, PA_EDGE, YELLOW, YELLOW, Some(ENDPOINT_ID), &to_yellow),
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
            edge.alert(DropReason::EndpointMismatch, StageId::Endpoint, YELLOW, Some(RED), S3_HOST, YELLOW1),
            edge.alert(DropReason::EndpointMismatch, StageId::Endpoint, RED, None, S3_HOST, RED1),
        ]
    );
}

/// Valid frames of every outside side: (side, frame).
fn outside_frames(edge: &Edge) -> Vec<(Side, Vec<u8>)> {
    let gw = customer_tx(&edge.vpn());
    vec![
        (Side::Internet, from_internet(&udp(INTERNET_HOST, EIP_RED1, 53, 40000, &payload(30, 1), false))),
        (Side::Internet, sealed(&udp(CUSTOMER_HOST, RED1, 1, 2, &payload(30, 2), true), &gw)),
        (Side::Dx, from_dx(101, &udp(DX_HOST, YELLOW1, 1, 2, &payload(30, 3), true))),
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
    assert!(edge.alerts().is_empty(), "no truncation looks like an attack");
    assert_eq!(edge.meters.counters.drops(DropReason::NoVerdict), 0);
}

// ===== counters and timing =====


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
    let mac = card_mac(PA_EDGE).0;
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
const MORE_VPNS: &str = include_str!("worlds/more-vpns.toml");

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
        let pass = edge.run_underlay(&[from_host(PA_A, RED, &inner)]);
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

/// One burst each way with the packets of three VPNs interleaved (the ciphers take a
/// burst in one call per run of packets of one SA): every packet is sealed or opened with
/// its own SA, the sequence numbers of each SA count up in wire order, and a forged packet
/// in the middle of a run fails alone.
#[test]
fn a_burst_of_several_vpns_goes_through_each_vpns_sa() {
    let mut edge = Edge::with_world(&world_text(MORE_VPNS));
    let by_name = |name: &str| edge.tables.vpns().find(|v| v.name == name).unwrap().clone();
    let vpns = [by_name("vpn-red"), by_name("vpn-red-2"), by_name("vpn-red-3")];
    let host = |k: usize| {
        let h = vpns[k].remote_prefixes[0].network().octets();
        Ipv4Addr::new(h[0], h[1], 9, 9)
    };
    let order = [0usize, 0, 1, 2, 2, 0, 1, 1];

    // Out: each packet to its VPN's gateway under its outbound SA, numbered per SA.
    let inners: Vec<Vec<u8>> =
        order.iter().enumerate().map(|(n, &k)| udp(RED1, host(k), 40001, 9000, &payload(30 + n, n as u8), true)).collect();
    let frames: Vec<Vec<u8>> = inners.iter().map(|i| from_host(PA_A, RED, i)).collect();
    let pass = edge.run_underlay(&frames);
    assert_eq!(pass.verdicts(), vec![fwd(INTERNET); order.len()]);
    let mut gws: Vec<_> = vpns.iter().map(customer_rx).collect();
    let mut next = [1u32; 3];
    for (n, &k) in order.iter().enumerate() {
        let ip = internet_ip(&pass.out[n].1).to_vec();
        assert_eq!((addr(&ip, 16), get32(&ip, 20)), (vpns[k].customer_gateway, vpns[k].outbound.spi), "packet {n}");
        assert_eq!(get32(&ip, 24), next[k], "packet {n}: its SA's sequence number");
        let mut b = TestBuffer::from_slice(&ip[20..]);
        esp::decrypt(&mut b, &mut gws[k]).expect("its gateway decrypts it");
        assert_eq!(b.data(), &inners[n][..], "packet {n}");
        next[k] += 1;
    }

    // In: from each gateway under its inbound SA; packet 4 (vpn-red-3's second) forged.
    let txs: Vec<_> = vpns
        .iter()
        .map(|v| OutboundSa::with_ring(&v.inbound, v.customer_gateway, v.local).unwrap())
        .collect();
    let replies: Vec<Vec<u8>> =
        order.iter().enumerate().map(|(n, &k)| udp(host(k), RED1, 9000, 40001, &payload(20 + n, n as u8), true)).collect();
    let mut frames: Vec<Vec<u8>> = order.iter().zip(&replies).map(|(&k, r)| sealed(r, &txs[k])).collect();
    let last = frames[4].len() - 1;
    frames[4][last] ^= 1;
    let pass = edge.run_outside(Side::Internet, &frames);
    let want: Vec<_> = (0..order.len()).map(|n| if n == 4 { drop(DropReason::EspAuthFailed) } else { fwd(FABRIC) }).collect();
    assert_eq!(pass.verdicts(), want);
    for n in (0..order.len()).filter(|n| *n != 4) {
        assert_eq!(host_inner(&pass.out[n].1, PA_A, RED), replies[n], "packet {n}");
    }
    assert_eq!(edge.drops(DropReason::EspAuthFailed), 1);
}
