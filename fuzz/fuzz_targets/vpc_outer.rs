//! The hot-path parser of the VPC encapsulation; whatever it accepts, the emitter
//! rebuilds byte for byte (our layouts) and the views agree with. Then the verify-recv
//! front end both cards run (`pipeline::underlay::receive`), for the frame's own outer
//! destination: what it accepts has a sound inner header within the VPC MTU.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::vpc::{self, parse_outer};

fuzz_target!(|data: &[u8]| {
    let _ = vpc::inner_flow_hash(data);
    let dst = data.get(30..34).and_then(|b| <[u8; 4]>::try_from(b).ok()).unwrap_or([0; 4]);
    let received = pipeline::underlay::receive(data, dst.into());
    let Ok(o) = parse_outer(data) else {
        assert!(received.is_err());
        return;
    };
    if let Ok(r) = received {
        assert_eq!(r.outer, o);
        let inner = &data[o.inner_offset..o.inner_offset + o.inner_len];
        let ip = wire::ipv4::Packet::new_checked(inner).unwrap();
        assert!(ip.verify_checksum() && o.inner_len <= vpc::VPC_MTU);
        assert_eq!((usize::from(ip.total_len()), ip.src_addr(), ip.dst_addr()), (o.inner_len, r.src, r.dst));
    }
    assert!(o.inner_offset + o.inner_len <= data.len());
    let ip = wire::ipv4::Packet::new_checked(&data[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (o.src_pa, o.dst_pa));
    // When the header is exactly one of our two layouts, emit_outer reproduces it.
    let ours = data[42] & 0x3f == if o.endpoint_id.is_some() { 5 } else { 2 }
        && data[43] == 0
        && data[49] == 0
        && data[18..20] == [0, 0]
        && data[15] == 0
        && data[20..22] == [0x40, 0]
        && data[22] == 64
        && data[40..42] == [0, 0]
        && data[50..54] == [0xff, 0xf0, 1, 1]
        && o.src_port >= vpc::SRC_PORT_BASE
        // 0xFFFF verifies like 0x0000 when the rest sums to 0xFFFF; we emit 0x0000.
        && data[24..26] != [0xff, 0xff];
    if ours && o.inner_offset == vpc::outer_len(o.endpoint_id) {
        let encap = vpc::Encap {
            src_mac: wire::EthernetAddress(data[6..12].try_into().unwrap()),
            dst_mac: wire::EthernetAddress(data[0..6].try_into().unwrap()),
            src_pa: o.src_pa,
            dst_pa: o.dst_pa,
            vni: o.vni,
            source_vpc: o.source_vpc,
        };
        let mut out = [0u8; vpc::OUTER_HEADER_LEN_WITH_ENDPOINT];
        let n =
            vpc::emit_outer_into(&mut out, &encap, o.endpoint_id, o.inner_len, o.src_port as u32)
                .unwrap();
        if o.endpoint_id.is_none() || data[58..62] == [0x01, 0x08, 0x01, 0x02] {
            assert_eq!(&out[..n], &data[..n]);
        }
    }
});
