//! ARP view with any declared address lengths; an accepted IPv4-over-Ethernet packet
//! re-emits to the same 28 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::arp::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else { return };
    let _ = (p.hardware_type(), p.protocol_type(), p.operation(), p.packet_len());
    let _ = (p.source_hardware_addr(), p.source_protocol_addr());
    let _ = (p.target_hardware_addr(), p.target_protocol_addr());
    if let Ok(repr) = Repr::parse(&p) {
        let mut out = [0u8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(&out[..], &data[..28]);
    }
});
