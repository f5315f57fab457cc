//! UDP view and Repr (the first 8 input bytes are the pseudo-header addresses); an
//! accepted datagram re-emits with a checksum that verifies.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use wire::udp::{Packet, Repr};

fuzz_target!(|input: &[u8]| {
    let Some((src, dst, data)) = common::pseudo_header(input) else { return };
    let Ok(p) = Packet::new_checked(data) else { return };
    let _ = (p.src_port(), p.dst_port(), p.payload().len(), p.verify_checksum(src, dst));
    let Ok(repr) = Repr::parse(&p, src, dst) else { return };
    let mut out = vec![0u8; repr.buffer_len()];
    out[8..].copy_from_slice(p.payload());
    repr.emit_with_checksum(&mut Packet::new_unchecked(&mut out[..]), src, dst).unwrap();
    let back = Packet::new_checked(&out[..]).unwrap();
    assert_ne!(back.checksum(), 0);
    assert_eq!(Repr::parse(&back, src, dst).unwrap(), repr);
});
