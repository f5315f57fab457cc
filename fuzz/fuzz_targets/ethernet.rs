//! Ethernet frame view and Repr, then the VLAN stack walk; a parsed header re-emits to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::ethernet::{Frame, Repr};

fuzz_target!(|data: &[u8]| {
    let _ = wire::vlan::walk(data);
    let Ok(frame) = Frame::new_checked(data) else { return };
    let _ = (frame.src_addr(), frame.dst_addr(), frame.ethertype(), frame.payload().len());
    if let Ok(repr) = Repr::parse(&frame) {
        let mut out = [0u8; wire::ethernet::HEADER_LEN];
        repr.emit(&mut Frame::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(&out[..], &data[..wire::ethernet::HEADER_LEN]);
    }
});
