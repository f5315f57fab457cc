//! The Blackfoot edge's outside pipeline on anything: `blackfoot::FromOutside` on each side
//! (internet, dx, services) with the tables of the edge `blackfoot-1` of the story's world,
//! through the harness of the crate's own tests (`blackfoot/tests/common`).
//!
//! Each input is used two ways: **raw** (the bytes as a frame on every port, with a copy
//! and a half in the same burst) and **wrapped** (the bytes, after an Ethernet header when
//! they start with one, made an inner IPv4 packet with sound header, then delivered the
//! way each side expects it: from the internet to red-1's Elastic IP, sealed with the
//! customer gateway's SA, on VLAN 101, and from the S3 front end).
//!
//! Asserted: every packet is decided (the harness); what goes out is an ARP reply for one
//! of the edge's addresses on the internet side or Geneve to the host of its destination
//! in the VPC of its side; the wrapped packets that must be delivered are, byte for byte
//! where no translation applies.
#![no_main]

#[path = "../../blackfoot/tests/common/mod.rs"]
mod edge;
mod common;

use std::cell::RefCell;

use edge::*;
use libfuzzer_sys::fuzz_target;
use common::{body_of, fix_inner, raw_frames, sent_geneve};

thread_local! {
    /// blackfoot-1, built once (tables, meters); its pipeline (and so its anti-replay
    /// windows) is renewed every run.
    static EDGE: RefCell<Edge> = RefCell::new(Edge::build(&world_text(""), OUTPUTS, None));
}

/// A Geneve frame from the edge to a host: (VNI, inner packet).
fn to_host(frame: &[u8]) -> (u32, &[u8]) {
    let (src_pa, dst_pa, vni, source_vpc, inner) = sent_geneve(frame);
    assert_eq!(src_pa, PA_EDGE);
    assert!(dst_pa == PA_A || dst_pa == PA_B, "to a host: {dst_pa}");
    assert_eq!(vni, source_vpc);
    (vni, inner)
}

/// Run `frames` on `side`; every packet forwarded goes to a host of `vni` (or, on the
/// internet side, is an ARP reply for one of the edge's addresses).
fn run(edge: &mut Edge, side: Side, frames: &[Vec<u8>], vni: u32) -> Vec<(Verdict, Vec<u8>)> {
    let pass = edge.run_outside(side, frames);
    let _ = edge.alerts();
    for (v, frame) in &pass.out {
        match *v {
            Verdict::Forward(INTERNET) if side == Side::Internet => {
                assert_eq!(frame.len(), 42);
                assert_eq!(&frame[6..12], &card_mac(PA_EDGE).0);
                assert_eq!((&frame[12..14], &frame[20..22]), (&[0x08, 0x06][..], &[0, 2][..]));
                let target = addr(frame, 28);
                assert!(target == EIP_RED1 || target == TUNNEL_LOCAL, "ARP answered for {target}");
            }
            Verdict::Forward(o) => {
                assert_eq!(o, FABRIC);
                assert_eq!(to_host(frame).0, vni);
            }
            Verdict::Drop(r) => assert_ne!(r, DropReason::NoVerdict),
            Verdict::Consumed => {}
        }
    }
    pass.out
}

/// The crafted packet `ip`, frame `k` of the burst, went to the fabric unchanged.
fn delivered(out: &[(Verdict, Vec<u8>)], k: usize, ip: &[u8]) {
    let (v, frame) = &out[k];
    assert_eq!(*v, Verdict::Forward(FABRIC), "a crafted packet is delivered");
    assert_eq!(to_host(frame).1, ip);
}

fuzz_target!(|data: &[u8]| {
    EDGE.with_borrow_mut(|edge| {
        edge.outside = FromOutside::new(OUTPUTS, InboundSas::new(&edge.tables));
        let body = body_of(data);
        let raw = raw_frames(data);

        // ----- internet side -----
        let mut frames = raw.clone();
        let to_eip = fix_inner(body, None, Some(EIP_RED1));
        if let Some(ip) = &to_eip {
            frames.push(from_internet(ip));
        }
        let from_vpn = fix_inner(body, Some(CUSTOMER_HOST), Some(RED1));
        if let Some(ip) = &from_vpn {
            frames.push(sealed(ip, &customer_tx(&edge.vpn())));
        }
        let out = run(edge, Side::Internet, &frames, RED);
        let mut k = raw.len();
        if let Some(ip) = &to_eip {
            match &out[k] {
                (Verdict::Forward(_), frame) => {
                    let inner = to_host(frame).1;
                    assert_eq!(inner.len(), ip.len());
                    assert_eq!(&inner[12..16], &ip[12..16]);
                    assert_eq!(addr(inner, 16), RED1, "DNAT");
                }
                (v, _) => assert_eq!(*v, Verdict::Drop(DropReason::Malformed), "DNAT refused"),
            }
            k += 1;
        }
        if let Some(ip) = &from_vpn {
            delivered(&out, k, ip);
        }

        // ----- dx side -----
        let mut frames = raw.clone();
        let to_yellow = fix_inner(body, None, Some(YELLOW1));
        if let Some(ip) = &to_yellow {
            frames.push(from_dx(101, ip));
        }
        let out = run(edge, Side::Dx, &frames, YELLOW);
        if let Some(ip) = &to_yellow {
            delivered(&out, raw.len(), ip);
        }

        // ----- services side -----
        let mut frames = raw.clone();
        let answer = fix_inner(body, None, Some(RED1));
        if let Some(ip) = &answer {
            frames.push(geneve(FRONT_END, PA_EDGE, RED, RED, Some(ENDPOINT_ID), ip));
        }
        let out = run(edge, Side::Services, &frames, RED);
        if let Some(ip) = &answer {
            delivered(&out, raw.len(), ip);
        }
    });
});
