//! ESP view, layouts for a few IV/ICV sizes, Repr round trip, and the trailer reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::esp::{Packet, Repr, Trailer};

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Trailer::parse(data) {
        assert_eq!(t.payload_len + t.pad_len as usize + 2, data.len());
    }
    let Ok(p) = Packet::new_checked(data) else { return };
    let _ = (p.spi(), p.sequence_number(), p.gcm_iv(), p.payload().len());
    for (iv, icv) in [(8, 16), (8, 8), (16, 12), (0, 0), (usize::MAX, 1), (1, usize::MAX)] {
        if let Ok(l) = p.layout(iv, icv) {
            assert!(l.iv.end <= l.ciphertext.start && l.ciphertext.end <= l.icv.start);
            assert_eq!(l.icv.end, data.len());
        }
    }
    let Ok(repr) = Repr::parse(&p) else { return };
    let mut out = [0u8; 8];
    repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
    assert_eq!(&out[..], &data[..8]);
});
