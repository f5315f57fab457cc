//! The Nitro card's underlay-side pipeline on anything: `nitro::FromUnderlay` on host-b of
//! the world of the crate's own tests, through their harness (`nitro/tests/common`), with
//! red-3's port carrying 1500-byte packets so that fragmentation and
//! fragmentation-needed run too.
//!
//! Each input is used two ways: **raw** (the bytes as underlay frames, with a copy and a
//! half in the same burst) and **wrapped** (the bytes, after an Ethernet header when they
//! start with one, made an IPv4 packet from red-1 with sound header, encapsulated from
//! host-a: to red-2 in its subnet, to red-3 in another subnet, to yellow-1 across the
//! peering; and the same to red-2 from host-c, where red-1 is not).
//!
//! Asserted: every packet is decided; what is delivered goes to a local ENI's port with
//! that ENI's MAC; the wrapped packets are delivered with the inner packet unchanged
//! behind Ethernet from the peer's MAC (same subnet) or the subnet router's, except red-3's
//! when longer than its port (fragments of at most 1500 bytes out of its port, or dropped
//! `mtu_exceeded` with DF, answered with fragmentation-needed from red-3 to host-a) and
//! the one from host-c (`unknown_sender`).
#![no_main]

#[path = "../../nitro/tests/common/mod.rs"]
mod card;
mod common;

use std::cell::RefCell;

use card::*;
use libfuzzer_sys::fuzz_target;
use pipeline::{DropReason, RateLimit, Verdict};
use common::{body_of, fix_inner, raw_frames, sent_geneve};
use wire::{vpc, PacketBuf};

const RED: u32 = 101;
const YELLOW: u32 = 102;
const SMALL_MTU: u16 = 1500;

thread_local! {
    /// host-b's card, built once (tables, meters), red-3's port at 1500 bytes.
    static CARD: RefCell<Card> = RefCell::new({
        let mut card = Card::new(&world(), "host-b");
        let red3 = card.eni("red-3");
        card.set_mtu(red3, SMALL_MTU);
        card
    });
}

fuzz_target!(|data: &[u8]| {
    CARD.with_borrow_mut(|card| {
        card.icmp_limit = RateLimit::new(nitro::ICMP_RATE_PER_SEC, nitro::ICMP_BURST, LIMIT_HZ);
        card.extra.clear();
        let red1_ip = ip("10.0.1.10");
        let red1_mac = mac("02:00:0a:00:01:0a");
        let local = |name: &str| card.tables.local_eni_by_name(name).cloned().expect("local ENI");
        let (red2, red3, yellow1) = (local("red-2"), local("red-3"), local("yellow-1"));
        let router = |e: &mapping_client::LocalEni| vpc::subnet_router_mac(e.subnet.0);
        let body = body_of(data);
        let mut frames = raw_frames(data);
        // (frame index, inner packet, destination ENI, Ethernet source, or the drop).
        let mut wrapped = Vec::new();
        for (src_pa, vni, to, eth_src) in [
            (PA_A, RED, &red2, Some(red1_mac)),
            (PA_A, RED, &red3, Some(router(&red3))),
            (PA_A, YELLOW, &yellow1, Some(router(&yellow1))),
            (PA_C, RED, &red2, None),
        ] {
            if let Some(p) = fix_inner(body, Some(red1_ip), Some(to.ip)) {
                wrapped.push((frames.len(), p.clone(), to.clone(), eth_src));
                frames.push(geneve(src_pa, PA_B, vni, RED, &p));
            }
        }
        let out = card.ingress(frames.iter().map(|f| buf(f)).collect());
        let _ = card.alerts();
        assert_eq!(out.len(), frames.len());
        for (v, b) in &out {
            match *v {
                Verdict::Forward(o) => {
                    let eni = card.tables.local_enis().find(|e| port(e.eni) == o).expect("a local ENI's port");
                    assert_eq!(&b.data()[..6], &eni.mac.0, "to the ENI's MAC");
                    assert_eq!(&b.data()[12..14], &[0x08, 0x00]);
                }
                Verdict::Drop(r) => assert_ne!(r, DropReason::NoVerdict),
                Verdict::Consumed => panic!("the underlay side consumes nothing"),
            }
        }
        for (b, o) in &card.extra {
            if *o == UNDERLAY {
                // Fragmentation-needed from the destination instance back to the sender.
                let (src_pa, _, _, _, inner) = sent_geneve(b.data());
                assert_eq!(src_pa, PA_B);
                assert_eq!((inner[9], &inner[20..22]), (1, &[3u8, 4][..]));
            } else {
                assert_eq!(*o, port(red3.eni), "only red-3's port carries less");
                assert!(b.len() <= 14 + usize::from(SMALL_MTU));
            }
        }
        for (k, p, to, eth_src) in wrapped {
            let (v, b) = &out[k];
            let Some(eth_src) = eth_src else {
                assert_eq!(*v, Verdict::Drop(DropReason::UnknownSender), "red-1 is not behind host-c");
                continue;
            };
            if to.eni == red3.eni && p.len() > usize::from(SMALL_MTU) {
                let df = p[6] & 0x40 != 0;
                let want = if df { Verdict::Drop(DropReason::MtuExceeded) } else { Verdict::Forward(port(red3.eni)) };
                assert!(*v == want || *v == Verdict::Drop(DropReason::Malformed), "{v:?} for {} bytes", p.len());
                continue;
            }
            assert_eq!(*v, Verdict::Forward(port(to.eni)));
            let f = b.data();
            assert_eq!((&f[..6], &f[6..12]), (&to.mac.0[..], &eth_src.0[..]));
            assert_eq!(&f[14..], &p[..], "inner packet unchanged");
        }
    });
});
