//! The Blackfoot edge's underlay-side pipeline on anything: `blackfoot::FromUnderlay` with
//! the tables of the edge `blackfoot-1` of the story's world, through the harness of the
//! crate's own tests (`blackfoot/tests/common`).
//!
//! Each input is used two ways: **raw** (the bytes as underlay frames, with a copy and a
//! half in the same burst) and **wrapped** (the bytes, after an Ethernet header when they
//! start with one, made an inner IPv4 packet with sound header, from red-1's or
//! yellow-1's host to the edge: towards the internet, the VPN, the S3 endpoint and the DX
//! VIF; the transport bytes stay the fuzzer's, which NAT, fragmentation,
//! fragmentation-needed and ESP chew on).
//!
//! Asserted: every packet is decided (the harness); what goes out is well formed for its
//! port (the internet MTU, Ethernet to the next hop, the Elastic IP as source, ESP the
//! customer gateway decrypts, VLAN 101, the endpoint option, fragmentation-needed back to
//! the sender's host); the wrapped packets bound for S3 and DX leave unchanged behind
//! their headers.
#![no_main]

#[path = "../../blackfoot/tests/common/mod.rs"]
mod edge;
mod common;

use std::cell::RefCell;

use edge::*;
use libfuzzer_sys::fuzz_target;
use common::{body_of, fix_inner, raw_frames, sent_geneve};

thread_local! {
    /// blackfoot-1, built once (tables, meters); its pipeline is renewed every run.
    static EDGE: RefCell<Edge> = RefCell::new(Edge::build(&world_text(""), OUTPUTS, None));
}

/// Whatever the pipeline sent to `out`, checked for that port.
fn check_out(frame: &[u8], out: Output, gw: &mut InboundSa<RingAesGcm>) {
    if out == INTERNET {
        let ip = internet_ip(frame);
        assert!(ip.len() <= INTERNET_MTU, "{} bytes over the internet MTU", ip.len());
        assert_ipv4_sound(ip);
        if ip[9] == PROTO_ESP && addr(ip, 12) == TUNNEL_LOCAL {
            assert_eq!(addr(ip, 16), CUSTOMER_GW);
            let mut b = TestBuffer::from_slice(&ip[20..]);
            esp::decrypt(&mut b, gw).expect("the customer gateway decrypts what the edge sends");
            assert!(b.len() <= esp::max_inner_for_mtu(INTERNET_MTU));
        } else {
            assert_eq!(addr(ip, 12), EIP_RED1, "SNAT");
        }
    } else if out == DX {
        assert_eq!(&frame[..6], &DX_ROUTER_MAC.0);
        assert_eq!(&frame[12..16], &[0x81, 0x00, 0x00, 101]);
        assert_eq!(&frame[16..18], &[0x08, 0x00]);
    } else if out == SERVICES {
        let o = vpc::parse_outer(frame).expect("valid Geneve to the front end");
        assert_eq!((o.src_pa, o.dst_pa), (PA_EDGE, FRONT_END));
        assert_eq!((o.vni, o.source_vpc, o.endpoint_id), (RED, RED, Some(ENDPOINT_ID)));
    } else {
        assert_eq!(out, FABRIC);
        // Fragmentation-needed back to the sender's host.
        let (src_pa, dst_pa, vni, source_vpc, inner) = sent_geneve(frame);
        assert_eq!((src_pa, vni), (PA_EDGE, source_vpc));
        assert!(dst_pa == PA_A || dst_pa == PA_B);
        assert_eq!((inner[9], &inner[20..22]), (PROTO_ICMP, &[3u8, 4][..]));
    }
}

fuzz_target!(|data: &[u8]| {
    EDGE.with_borrow_mut(|edge| {
        edge.underlay = FromUnderlay::new(OUTPUTS, Arc::new(EdgeSas::new(&edge.tables)));
        let body = body_of(data);
        let mut frames = raw_frames(data);
        // (host, VPC, source, destination, the output it must reach with the inner packet
        // unchanged behind `at` bytes of headers).
        let mut wrapped = Vec::new();
        for (pa, vni, src, dst, must) in [
            (PA_A, RED, RED1, None, None),
            (PA_A, RED, RED1, Some(CUSTOMER_HOST), None),
            (PA_A, RED, RED1, Some(S3_HOST), Some((SERVICES, vpc::OUTER_HEADER_LEN_WITH_ENDPOINT))),
            (PA_B, YELLOW, YELLOW1, Some(DX_HOST), Some((DX, 18))),
            (PA_B, YELLOW, YELLOW1, None, None),
        ] {
            if let Some(ip) = fix_inner(body, Some(src), dst) {
                if let Some(must) = must {
                    wrapped.push((frames.len(), ip.clone(), must));
                }
                frames.push(from_host(pa, vni, &ip));
            }
        }
        let pass = edge.run_underlay(&frames);
        let _ = edge.alerts();
        let mut gw = customer_rx(&edge.vpn());
        for (v, frame) in &pass.out {
            match *v {
                Verdict::Forward(o) => check_out(frame, o, &mut gw),
                Verdict::Drop(r) => assert_ne!(r, DropReason::NoVerdict),
                Verdict::Consumed => {}
            }
        }
        for (frame, o) in &pass.extra {
            assert_eq!(*o, INTERNET, "only internet packets are fragmented");
            check_out(frame, *o, &mut gw);
        }
        for (k, ip, (port, at)) in &wrapped {
            let (v, frame) = &pass.out[*k];
            assert_eq!(*v, Verdict::Forward(*port));
            assert_eq!(&frame[*at..], &ip[..], "inner packet unchanged");
        }
    });
});
