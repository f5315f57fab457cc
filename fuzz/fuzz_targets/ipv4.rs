//! IPv4 view, option walk and Repr; an accepted packet re-emits (without options) to a
//! packet that parses back to the same Repr and payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::ipv4::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let header = Packet::new_unchecked(data);
    if header.check_header_len().is_ok() {
        for option in header.options_iter() {
            let _ = option.map(|o| (o.kind, o.data.len(), o.copied()));
        }
        let _ = (header.src_addr(), header.dst_addr(), header.verify_checksum());
    }
    let Ok(p) = Packet::new_checked(data) else { return };
    let _ = (p.frag_offset(), p.is_fragment(), p.payload().len(), p.options().len());
    let Ok(repr) = Repr::parse(&p) else { return };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
    out[repr.header_len()..].copy_from_slice(p.payload());
    let back = Packet::new_checked(&out[..]).unwrap();
    assert_eq!(Repr::parse(&back).unwrap(), repr);
    assert_eq!(back.payload(), p.payload());
});
