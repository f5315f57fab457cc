//! Properties of every format: `parse(emit(x)) == x`; incremental checksum updates equal
//! recomputation; and every parser refuses every truncation of a valid packet with an
//! error, not a panic.
//!
//! Truncation, precisely: formats with a length field (IPv4, UDP, ARP, Geneve's options,
//! the VPC outer header) refuse every proper prefix. TCP and ICMP have no length field
//! (the IP layer bounds them): every prefix shorter than the header is refused, and a
//! prefix cut inside the payload is refused by the checksum or parses to a different
//! `Repr`, never to the original. Ethernet, VLAN and ESP `Repr`s describe the header only:
//! every prefix shorter than it is refused.

mod common;

use std::net::Ipv4Addr;

use proptest::collection::vec;
use proptest::prelude::*;
use wire::ethernet::{self, EtherType, EthernetAddress};
use wire::ipv4::{self, Ipv4Cidr, Protocol};
use wire::{arp, checksum, esp, geneve, icmpv4, tcp, udp, vlan, vpc, Error};

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ipv4_repr(max_payload: usize) -> impl Strategy<Value = ipv4::Repr> {
    (
        (addr(), addr(), any::<u8>(), 0..=max_payload, any::<u8>()),
        (0u8..64, 0u8..4, any::<u16>(), any::<bool>(), any::<bool>(), 0u16..8192),
    )
        .prop_map(|((src, dst, proto, len, ttl), (dscp, ecn, ident, df, mf, off))| {
            ipv4::Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: Protocol(proto),
                payload_len: len,
                ttl,
                dscp,
                ecn,
                ident,
                dont_frag: df,
                more_frags: mf,
                frag_offset: off * 8,
            }
        })
}

/// Geneve options built with the option emitter: class, type, data words.
fn geneve_options() -> impl Strategy<Value = Vec<u8>> {
    vec((any::<u16>(), any::<u8>(), 0usize..=3, any::<u64>()), 0..5).prop_map(|opts| {
        let mut out = Vec::new();
        for (class, kind, words, seed) in opts {
            let data: Vec<u8> = (0..words * 4).map(|i| (seed >> (i % 8 * 8)) as u8).collect();
            let mut buf = [0u8; 4 + 124];
            let n = geneve::GeneveOption { class, kind, data: &data }.emit(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    })
}

fn encap() -> impl Strategy<Value = vpc::Encap> {
    (mac(), mac(), addr(), addr(), 0..=vpc::VNI_MAX, 0..=vpc::VNI_MAX).prop_map(
        |(src_mac, dst_mac, src_pa, dst_pa, vni, source_vpc)| vpc::Encap {
            src_mac,
            dst_mac,
            src_pa,
            dst_pa,
            vni,
            source_vpc,
        },
    )
}

/// An inner IPv4 packet with a valid header (what `parse_outer` checks of it).
fn inner_packet() -> impl Strategy<Value = Vec<u8>> {
    (ipv4_repr(200), any::<u64>()).prop_map(|(repr, seed)| {
        let mut b = vec![0u8; repr.buffer_len()];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (seed >> (i % 8 * 8)) as u8;
        }
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut b[..])).unwrap();
        b
    })
}

/// Emit `repr` into a buffer of its length, parse it back to `repr`, and check that no
/// prefix of the message parses to it (one shorter than the 8-byte header is
/// `Truncated`). Returns the message.
fn icmp_round_trip(repr: &icmpv4::Repr<'_>) -> Result<Vec<u8>, TestCaseError> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut icmpv4::Packet::new_unchecked(&mut buf[..])).unwrap();
    let p = icmpv4::Packet::new_checked(&buf[..]).unwrap();
    prop_assert_eq!(icmpv4::Repr::parse(&p).unwrap(), *repr);
    for len in 0..buf.len() {
        match icmpv4::Packet::new_checked(&buf[..len]) {
            Err(e) => prop_assert!(len < 8 && e == Error::Truncated),
            Ok(p) => prop_assert_ne!(icmpv4::Repr::parse(&p), Ok(*repr)),
        }
    }
    Ok(buf)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ethernet_roundtrip(src in mac(), dst in mac(), et in 0x0600u16.., payload in vec(any::<u8>(), 0..64)) {
        let repr = ethernet::Repr { src_addr: src, dst_addr: dst, ethertype: EtherType(et) };
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        repr.emit(&mut ethernet::Frame::new_unchecked(&mut buf[..])).unwrap();
        buf[14..].copy_from_slice(&payload);
        let frame = ethernet::Frame::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(ethernet::Repr::parse(&frame).unwrap(), repr);
        prop_assert_eq!(frame.payload(), &payload[..]);
        for len in 0..ethernet::HEADER_LEN {
            prop_assert_eq!(ethernet::Frame::new_checked(&buf[..len]).err(), Some(Error::Truncated));
        }
    }

    #[test]
    fn vlan_roundtrip(pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4095, et in any::<u16>()) {
        let repr = vlan::Repr { pcp, dei, vid, ethertype: EtherType(et) };
        let mut buf = [0u8; 4];
        repr.emit(&mut vlan::Packet::new_unchecked(&mut buf[..])).unwrap();
        prop_assert_eq!(vlan::Repr::parse(&vlan::Packet::new_checked(&buf[..]).unwrap()).unwrap(), repr);
        for len in 0..4 {
            prop_assert!(vlan::Packet::new_checked(&buf[..len]).is_err());
        }
    }

    #[test]
    fn vlan_stack_roundtrip(outer in proptest::option::of((0u8..8, 0u16..4095)), inner in (0u8..8, 0u16..4095), src in mac()) {
        // Build Ethernet [S-tag] C-tag IPv4 and walk it back.
        let mut frame = vec![0u8; 14 + 8 + 20];
        let first = if outer.is_some() { EtherType::QINQ } else { EtherType::VLAN };
        ethernet::Repr { src_addr: src, dst_addr: EthernetAddress::BROADCAST, ethertype: first }
            .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..])).unwrap();
        let mut at = 14;
        if let Some((pcp, vid)) = outer {
            vlan::Repr { pcp, dei: false, vid, ethertype: EtherType::VLAN }
                .emit(&mut vlan::Packet::new_unchecked(&mut frame[at..])).unwrap();
            at += 4;
        }
        vlan::Repr { pcp: inner.0, dei: true, vid: inner.1, ethertype: EtherType::IPV4 }
            .emit(&mut vlan::Packet::new_unchecked(&mut frame[at..])).unwrap();
        at += 4;
        let stack = vlan::walk(&frame).unwrap();
        prop_assert_eq!(stack.payload_offset, at);
        prop_assert_eq!(stack.ethertype, EtherType::IPV4);
        prop_assert_eq!(stack.inner().unwrap().vid, inner.1);
        prop_assert_eq!(stack.tags().len(), if outer.is_some() { 2 } else { 1 });
        for len in 0..at {
            prop_assert_eq!(vlan::walk(&frame[..len]).err(), Some(Error::Truncated));
        }
    }

    #[test]
    fn arp_roundtrip(op in 1u16..=2, sha in mac(), spa in addr(), tha in mac(), tpa in addr()) {
        let repr = arp::Repr {
            operation: arp::Operation(op),
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        };
        let mut buf = [0u8; 28];
        repr.emit(&mut arp::Packet::new_unchecked(&mut buf[..])).unwrap();
        prop_assert_eq!(arp::Repr::parse(&arp::Packet::new_checked(&buf[..]).unwrap()).unwrap(), repr);
        for len in 0..28 {
            prop_assert_eq!(arp::Packet::new_checked(&buf[..len]).err(), Some(Error::Truncated));
        }
    }

    #[test]
    fn ipv4_roundtrip(repr in ipv4_repr(300), fill in any::<u8>()) {
        let mut buf = vec![fill; repr.buffer_len()];
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..])).unwrap();
        let p = ipv4::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(ipv4::Repr::parse(&p).unwrap(), repr);
        prop_assert_eq!(p.payload().len(), repr.payload_len);
        for len in 0..buf.len() {
            prop_assert_eq!(ipv4::Packet::new_checked(&buf[..len]).err(), Some(Error::Truncated));
        }
    }

    #[test]
    fn udp_roundtrip(src in addr(), dst in addr(), sp in any::<u16>(), dp in any::<u16>(), payload in vec(any::<u8>(), 0..300)) {
        let repr = udp::Repr { src_port: sp, dst_port: dp, payload_len: payload.len() };
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[8..].copy_from_slice(&payload);
        repr.emit_with_checksum(&mut udp::Packet::new_unchecked(&mut buf[..]), src, dst).unwrap();
        let p = udp::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_ne!(p.checksum(), 0);
        prop_assert_eq!(udp::Repr::parse(&p, src, dst).unwrap(), repr);
        prop_assert_eq!(p.payload(), &payload[..]);
        for len in 0..buf.len() {
            prop_assert_eq!(udp::Packet::new_checked(&buf[..len]).err(), Some(Error::Truncated));
        }
    }

    #[test]
    fn tcp_roundtrip(
        src in addr(), dst in addr(),
        ports in any::<(u16, u16)>(), seq in any::<u32>(), ack in any::<u32>(),
        flags in 0u16..0x200, window in any::<u16>(), urgent in any::<u16>(),
        payload in vec(any::<u8>(), 0..200),
    ) {
        let repr = tcp::Repr {
            src_port: ports.0, dst_port: ports.1, seq_number: seq, ack_number: ack,
            flags: tcp::Flags(flags), window_len: window, urgent_at: urgent, payload_len: payload.len(),
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[20..].copy_from_slice(&payload);
        repr.emit(&mut tcp::Packet::new_unchecked(&mut buf[..]), src, dst).unwrap();
        let p = tcp::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(tcp::Repr::parse(&p, src, dst).unwrap(), repr);
        for len in 0..buf.len() {
            match tcp::Packet::new_checked(&buf[..len]) {
                Err(e) => prop_assert!(len < 20 && e == Error::Truncated),
                Ok(p) => prop_assert_ne!(tcp::Repr::parse(&p, src, dst), Ok(repr)),
            }
        }
    }

    #[test]
    fn icmp_echo_roundtrip(request in any::<bool>(), ident in any::<u16>(), seq_no in any::<u16>(), data in vec(any::<u8>(), 0..100)) {
        let repr = if request {
            icmpv4::Repr::EchoRequest { ident, seq_no, data: &data }
        } else {
            icmpv4::Repr::EchoReply { ident, seq_no, data: &data }
        };
        icmp_round_trip(&repr)?;
    }

    #[test]
    fn icmp_error_roundtrip(
        kind in 0u8..3, code in 0u8..16, mtu in any::<u16>(),
        offending in inner_packet(), extra in 0usize..16,
    ) {
        let quote = &offending[..(28 + extra).min(offending.len())];
        prop_assume!(quote.len() >= 28);
        let repr = match kind {
            0 => icmpv4::Repr::DstUnreachable { code: icmpv4::unreachable::FRAG_NEEDED, next_hop_mtu: mtu, quote },
            1 => icmpv4::Repr::DstUnreachable { code: code & 3, next_hop_mtu: 0, quote },
            _ => icmpv4::Repr::TimeExceeded { code: code & 1, quote },
        };
        let buf = icmp_round_trip(&repr)?;
        let q = icmpv4::Quote::parse(&buf[icmpv4::HEADER_LEN..]).unwrap();
        let orig = ipv4::Packet::new_checked(&offending[..]).unwrap();
        prop_assert_eq!((q.src_addr(), q.dst_addr(), q.protocol()), (orig.src_addr(), orig.dst_addr(), orig.protocol()));
    }

    #[test]
    fn geneve_roundtrip(
        oam in any::<bool>(), critical in any::<bool>(), proto in any::<u16>(),
        vni in 0..=geneve::VNI_MAX, options in geneve_options(), payload in vec(any::<u8>(), 0..40),
    ) {
        prop_assume!(options.len() <= geneve::MAX_OPTIONS_LEN);
        let repr = geneve::Repr { oam, critical, protocol: EtherType(proto), vni, options: &options };
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        repr.emit(&mut geneve::Packet::new_unchecked(&mut buf[..])).unwrap();
        buf[repr.header_len()..].copy_from_slice(&payload);
        let p = geneve::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(geneve::Repr::parse(&p).unwrap(), repr);
        prop_assert_eq!(p.payload(), &payload[..]);
        for len in 0..repr.header_len() {
            prop_assert_eq!(geneve::Packet::new_checked(&buf[..len]).err(), Some(Error::Truncated));
        }
        // Every option the emitter wrote comes back out of the walk, none more.
        let walked: Vec<_> = p.options_iter().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(walked.iter().map(|o| o.len()).sum::<usize>(), options.len());
        // A cut options area never walks cleanly unless the cut falls between options.
        for cut in 0..options.len() {
            let ends: Vec<usize> = walked.iter().scan(0, |at, o| { *at += o.len(); Some(*at) }).collect();
            let ok = geneve::Options::new(&options[..cut]).all(|o| o.is_ok());
            prop_assert_eq!(ok, cut == 0 || ends.contains(&cut));
        }
    }

    #[test]
    fn geneve_walk_never_panics(bytes in vec(any::<u8>(), 0..300)) {
        let n = geneve::Options::new(&bytes).count();
        prop_assert!(n <= bytes.len() / 4 + 1);
        let _ = vpc::vpc_options(&bytes);
        if let Ok(p) = geneve::Packet::new_checked(&bytes[..]) {
            let _ = geneve::Repr::parse(&p);
        }
    }

    #[test]
    fn esp_roundtrip(spi in 1u32.., seq in any::<u32>(), payload in vec(any::<u8>(), 0..300), next in any::<u8>(), align_log in 2u32..9) {
        let repr = esp::Repr { spi, sequence_number: seq };
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        repr.emit(&mut esp::Packet::new_unchecked(&mut buf[..])).unwrap();
        let p = esp::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(esp::Repr::parse(&p).unwrap(), repr);
        let l = p.layout(esp::GCM_IV_LEN, esp::GCM_ICV_LEN).unwrap();
        prop_assert_eq!(l.ciphertext.len(), esp::encrypted_len(payload.len(), esp::GCM_ALIGN));
        for len in 0..8 {
            prop_assert_eq!(esp::Packet::new_checked(&buf[..len]).err(), Some(Error::Truncated));
        }
        // Trailer: emit then parse gives the payload length and next header back, for
        // every alignment; cutting the plaintext anywhere never yields the same trailer.
        let align = 1usize << align_log;
        let mut plain = payload.clone();
        plain.resize(payload.len() + 256 + 2, 0);
        let n = esp::Trailer::emit(&mut plain, payload.len(), Protocol(next), align).unwrap();
        prop_assert_eq!(n % align, 0);
        let t = esp::Trailer::parse(&plain[..n]).unwrap();
        prop_assert_eq!((t.payload_len, t.next_header), (payload.len(), Protocol(next)));
        for len in 0..n {
            prop_assert_ne!(esp::Trailer::parse(&plain[..len]), Ok(t));
        }
    }

    #[test]
    fn vpc_outer_roundtrip(e in encap(), endpoint in proptest::option::of(any::<u64>()), hash in any::<u32>(), inner in inner_packet(), pad in 0usize..8) {
        let mut frame = vec![0u8; vpc::outer_len(endpoint)];
        let n = vpc::emit_outer_into(&mut frame, &e, endpoint, inner.len(), hash).unwrap();
        frame.extend_from_slice(&inner);
        frame.extend(std::iter::repeat(0).take(pad));
        let o = vpc::parse_outer(&frame).unwrap();
        prop_assert_eq!(o, vpc::Outer {
            src_pa: e.src_pa, dst_pa: e.dst_pa, vni: e.vni, source_vpc: e.source_vpc,
            endpoint_id: endpoint, src_port: vpc::src_port(hash), inner_offset: n, inner_len: inner.len(),
        });
        // The views agree with the fast path.
        let eth = ethernet::Frame::new_checked(&frame[..]).unwrap();
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        let r = ipv4::Repr::parse(&ip).unwrap();
        prop_assert!(r.dont_frag && r.ttl == 64 && r.protocol == Protocol::UDP && r.ident == 0);
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        prop_assert_eq!((u.dst_port(), u.checksum()), (vpc::GENEVE_PORT, 0));
        let g = geneve::Repr::parse(&geneve::Packet::new_checked(u.payload()).unwrap()).unwrap();
        prop_assert_eq!((g.vni, g.protocol, g.oam, g.critical), (e.vni, EtherType::IPV4, false, false));
        let found = vpc::vpc_options(g.options).unwrap();
        prop_assert_eq!((found.source_vpc, found.endpoint_id), (Some(e.source_vpc), endpoint));
        // Every truncation is refused.
        for len in 0..n + inner.len() {
            prop_assert_eq!(vpc::parse_outer(&frame[..len]), Err(Error::Truncated));
        }
    }

    #[test]
    fn checksum_matches_reference(data in vec(any::<u8>(), 0..2000), start in 0usize..8) {
        let data = &data[start.min(data.len())..];
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            s += u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]) as u32;
            s = (s & 0xFFFF) + (s >> 16);
        }
        prop_assert_eq!(checksum::sum(data), s as u16);
    }

    #[test]
    fn incremental_ipv4_addr_rewrite(repr in ipv4_repr(0), new_src in addr(), new_dst in addr()) {
        let mut buf = [0u8; 20];
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..])).unwrap();
        let mut p = ipv4::Packet::new_checked(&mut buf[..]).unwrap();
        p.rewrite_src_addr(new_src);
        p.rewrite_dst_addr(new_dst);
        let incremental = p.checksum();
        p.fill_checksum();
        prop_assert_eq!(incremental, p.checksum());
    }

    #[test]
    fn incremental_tcp_nat(
        src in addr(), dst in addr(), new_addr in addr(), new_port in any::<u16>(), snat in any::<bool>(),
        ports in any::<(u16, u16)>(), seq in any::<u32>(), payload in vec(any::<u8>(), 0..64),
    ) {
        let repr = tcp::Repr {
            src_port: ports.0, dst_port: ports.1, seq_number: seq, ack_number: !seq,
            flags: tcp::Flags::ACK, window_len: 1000, urgent_at: 0, payload_len: payload.len(),
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[20..].copy_from_slice(&payload);
        repr.emit(&mut tcp::Packet::new_unchecked(&mut buf[..]), src, dst).unwrap();
        let mut p = tcp::Packet::new_checked(&mut buf[..]).unwrap();
        let (src2, dst2) = if snat {
            p.update_checksum_for_addr(src, new_addr);
            p.rewrite_src_port(new_port);
            (new_addr, dst)
        } else {
            p.update_checksum_for_addr(dst, new_addr);
            p.rewrite_dst_port(new_port);
            (src, new_addr)
        };
        let incremental = p.checksum();
        p.fill_checksum(src2, dst2);
        prop_assert_eq!(incremental, p.checksum());
    }

    #[test]
    fn incremental_udp_nat(
        src in addr(), dst in addr(), new_addr in addr(), new_port in any::<u16>(),
        ports in any::<(u16, u16)>(), payload in vec(any::<u8>(), 0..64), with_checksum in any::<bool>(),
    ) {
        let repr = udp::Repr { src_port: ports.0, dst_port: ports.1, payload_len: payload.len() };
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[8..].copy_from_slice(&payload);
        let mut p = udp::Packet::new_unchecked(&mut buf[..]);
        if with_checksum {
            repr.emit_with_checksum(&mut p, src, dst).unwrap();
        } else {
            repr.emit(&mut p).unwrap();
        }
        p.update_checksum_for_addr(src, new_addr);
        p.rewrite_src_port(new_port);
        let incremental = p.checksum();
        if with_checksum {
            p.fill_checksum(new_addr, dst);
            prop_assert_eq!(incremental, p.checksum());
            prop_assert!(p.verify_checksum(new_addr, dst));
        } else {
            prop_assert_eq!(incremental, 0);
        }
    }

    #[test]
    fn incremental_16_and_32(data in vec(any::<u8>(), 4..64), at in any::<usize>(), new in any::<u32>()) {
        // Any data with a non-zero first word (as every header has) and any aligned field.
        let mut data = data;
        data[0] |= 1;
        let words = data.len() / 2;
        let i = 1 + at % (words - 1);
        let hc = checksum::checksum(&data);
        let old16 = u16::from_be_bytes([data[2 * i], data[2 * i + 1]]);
        let mut d16 = data.clone();
        d16[2 * i..2 * i + 2].copy_from_slice(&(new as u16).to_be_bytes());
        prop_assert_eq!(checksum::update16(hc, old16, new as u16), checksum::checksum(&d16));
        if 2 * i + 4 <= data.len() {
            let old32 = u32::from_be_bytes(data[2 * i..2 * i + 4].try_into().unwrap());
            let mut d32 = data.clone();
            d32[2 * i..2 * i + 4].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(checksum::update32(hc, old32, new), checksum::checksum(&d32));
        }
    }

    #[test]
    fn cidr_text_roundtrip(a in addr(), len in 0u8..=32, probe in addr()) {
        let c = Ipv4Cidr::new(a, len).unwrap();
        let back: Ipv4Cidr = c.to_string().parse().unwrap();
        prop_assert_eq!(back, c);
        prop_assert!(c.contains(a));
        prop_assert_eq!(c.contains(probe), c.network().contains(probe));
        prop_assert_eq!(c.contains(probe), u32::from(probe) & c.mask() == u32::from(a) & c.mask());
    }

    #[test]
    fn mac_text_roundtrip(m in mac()) {
        prop_assert_eq!(m.to_string().parse::<EthernetAddress>().unwrap(), m);
    }

    #[test]
    fn no_parser_panics_on_noise(bytes in vec(any::<u8>(), 0..200)) {
        common::exercise(&bytes);
        let _ = common::dissect(&bytes);
    }
}
