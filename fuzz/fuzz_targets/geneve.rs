//! Geneve view and Repr with its options; an accepted header re-emits to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::geneve::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else { return };
    let _ = (p.version(), p.oam(), p.critical(), p.protocol(), p.vni(), p.payload().len());
    for option in p.options_iter().flatten() {
        let _ = (option.source_vpc(), option.endpoint_id(), option.is_critical());
    }
    let Ok(repr) = Repr::parse(&p) else { return };
    let mut out = vec![0u8; repr.header_len()];
    repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
    // Reserved bits are zeroed on emit; everything else must come back.
    let back = Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap();
    assert_eq!(back, repr);
});
