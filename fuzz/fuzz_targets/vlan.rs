//! One VLAN tag (view and Repr, emit round trip) and the stack walk from a frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::vlan::{walk, Packet, Repr};

fuzz_target!(|data: &[u8]| {
    if let Ok(stack) = walk(data) {
        assert!(stack.payload_offset <= data.len());
        assert!(stack.tags().len() <= wire::vlan::MAX_DEPTH);
    }
    let Ok(tag) = Packet::new_checked(data) else { return };
    let _ = (tag.pcp(), tag.dei(), tag.vid(), tag.ethertype(), tag.payload().len());
    if let Ok(repr) = Repr::parse(&tag) {
        let mut out = [0u8; wire::vlan::HEADER_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(&out[..], &data[..wire::vlan::HEADER_LEN]);
    }
});
