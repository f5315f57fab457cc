//! ICMP view, Repr and quote access; an accepted message re-emits to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::icmpv4::{quote_of, Packet, Quote, Repr};

fuzz_target!(|data: &[u8]| {
    let _ = quote_of(data);
    let Ok(p) = Packet::new_checked(data) else { return };
    let _ = (p.msg_type(), p.msg_code(), p.echo_ident(), p.echo_seq_no(), p.next_hop_mtu());
    if let Ok(q) = Quote::parse(p.data()) {
        let _ = (q.src_addr(), q.dst_addr(), q.protocol(), q.ports(), q.len());
    }
    let Ok(repr) = Repr::parse(&p) else { return };
    if let Repr::DstUnreachable { quote, .. } | Repr::TimeExceeded { quote, .. } = repr {
        Quote::parse(quote).unwrap();
    }
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
    assert_eq!(Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap(), repr);
});
