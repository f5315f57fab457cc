//! TCP view and Repr (the first 8 input bytes are the pseudo-header addresses); an
//! accepted segment re-emits (without options) to the same Repr.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use wire::tcp::{Packet, Repr};

fuzz_target!(|input: &[u8]| {
    let Some((src, dst, data)) = common::pseudo_header(input) else { return };
    let Ok(p) = Packet::new_checked(data) else { return };
    let _ = (p.seq_number(), p.ack_number(), p.flags(), p.options().len(), p.payload().len());
    let Ok(repr) = Repr::parse(&p, src, dst) else { return };
    let mut out = vec![0u8; repr.buffer_len()];
    out[20..].copy_from_slice(p.payload());
    repr.emit(&mut Packet::new_unchecked(&mut out[..]), src, dst).unwrap();
    assert_eq!(Repr::parse(&Packet::new_checked(&out[..]).unwrap(), src, dst).unwrap(), repr);
});
