//! The Nitro card's instance-side pipeline on anything: `nitro::FromInstance` for red-1's
//! port on host-a of the world of the crate's own tests, through their harness
//! (`nitro/tests/common`).
//!
//! Each input is used two ways: **raw** (the bytes as frames from red-1's vNIC, with a
//! copy and a half in the same burst) and **wrapped** (the bytes, after an Ethernet header
//! when they start with one, made an IPv4 packet from red-1 with sound header, in a frame
//! from red-1's MAC: to red-2 in its VPC, to yellow-1 across the peering, to the internet
//! through the edge, and to green-1, which red may not reach), beside an ARP request for
//! red-2.
//!
//! Asserted: every packet is decided; what goes back to the vNIC is an ARP reply to red-1;
//! what goes to the underlay is sound Geneve from host-a's PA with red as source VPC; the
//! wrapped packets go to the PA and VNI of their destination with the inner packet
//! unchanged, and the one to green is `no_route`.
#![no_main]

#[path = "../../nitro/tests/common/mod.rs"]
mod card;
mod common;

use std::cell::RefCell;

use card::*;
use libfuzzer_sys::fuzz_target;
use pipeline::{DropReason, RateLimit, Verdict};
use common::{body_of, fix_inner, raw_frames, sent_geneve};
use wire::{PacketBuf, TestBuffer};

const RED: u32 = 101;
const YELLOW: u32 = 102;

thread_local! {
    /// host-a's card, built once (tables, meters).
    static CARD: RefCell<Card> = RefCell::new(Card::new(&world(), "host-a"));
}

fuzz_target!(|data: &[u8]| {
    CARD.with_borrow_mut(|card| {
        card.icmp_limit = RateLimit::new(nitro::ICMP_RATE_PER_SEC, nitro::ICMP_BURST, LIMIT_HZ);
        let red1 = card.eni("red-1");
        let red1_mac = mac("02:00:0a:00:01:0a");
        let (red1_ip, red2_ip) = (ip("10.0.1.10"), ip("10.0.1.20"));
        let body = body_of(data);
        let mut frames = raw_frames(data);
        frames.push(arp_request(red1_mac, red1_ip, red2_ip));
        // (destination, what must become of it: the PA and VNI it goes to, or a drop).
        let mut wrapped = Vec::new();
        for (dst, must) in [
            (red2_ip, Ok((PA_B, RED))),
            (ip("10.1.1.10"), Ok((PA_B, YELLOW))),
            (ip("8.8.8.8"), Ok((PA_EDGE, RED))),
            (ip("10.2.1.10"), Err(DropReason::NoRoute)),
        ] {
            if let Some(p) = fix_inner(body, Some(red1_ip), Some(dst)) {
                wrapped.push((frames.len(), p.clone(), must));
                frames.push(ether(mac("02:00:00:ff:00:01"), red1_mac, 0x0800, &p));
            }
        }
        let bufs = frames.iter().map(|f| TestBuffer::from_slice_with_room(f, 128, 0)).collect();
        let out = card.egress(red1, bufs);
        let _ = card.alerts();
        assert_eq!(out.len(), frames.len());
        for (k, (v, b)) in out.iter().enumerate() {
            match *v {
                Verdict::Forward(REPLY) => {
                    // An ARP reply, back to the requester's sender hardware address (the
                    // frame leaves by the port the request came in on, red-1's).
                    let f = b.data();
                    let requester = &frames[k][22..28];
                    assert_eq!((&f[..6], &f[12..14], &f[20..22]), (requester, &[0x08, 0x06][..], &[0, 2][..]));
                }
                Verdict::Forward(o) => {
                    assert_eq!(o, UNDERLAY);
                    let (src_pa, _, _, source_vpc, _) = sent_geneve(b.data());
                    assert_eq!((src_pa, source_vpc), (PA_A, RED));
                }
                Verdict::Drop(r) => assert_ne!(r, DropReason::NoVerdict),
                Verdict::Consumed => panic!("the instance side consumes nothing"),
            }
        }
        for (k, p, must) in wrapped {
            let (v, b) = &out[k];
            match must {
                Ok((pa, vni)) => {
                    assert_eq!(*v, Verdict::Forward(UNDERLAY));
                    let (_, dst_pa, got_vni, _, inner) = sent_geneve(b.data());
                    assert_eq!((dst_pa, got_vni), (pa, vni));
                    assert_eq!(inner, &p[..], "inner packet unchanged");
                }
                Err(reason) => assert_eq!(*v, Verdict::Drop(reason)),
            }
        }
    });
});
