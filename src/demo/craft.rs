//! Building the demo's packets with the `wire` crate's emitters.

use std::net::Ipv4Addr;

use wire::ethernet::{self, EtherType, EthernetAddress};
use wire::{arp, icmpv4, ipv4, vpc};

/// An Ethernet frame carrying `payload` with `ethertype`.
fn frame(src: EthernetAddress, dst: EthernetAddress, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let repr = ethernet::Repr { src_addr: src, dst_addr: dst, ethertype };
    let mut f = vec![0u8; repr.buffer_len(payload.len())];
    let _ = repr.emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    f[ethernet::HEADER_LEN..].copy_from_slice(payload);
    f
}

/// An IPv4 packet (header + payload) with protocol `proto`.
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: ipv4::Protocol, payload: &[u8]) -> Vec<u8> {
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: proto,
        payload_len: payload.len(),
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 0x1234,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    };
    let mut p = vec![0u8; repr.buffer_len()];
    let _ = repr.emit(&mut ipv4::Packet::new_unchecked(&mut p[..]));
    p[ipv4::HEADER_LEN..].copy_from_slice(payload);
    p
}

/// An ICMP echo request as an inner IPv4 packet.
pub fn echo_packet(src: Ipv4Addr, dst: Ipv4Addr, seq: u16, data: &[u8]) -> Vec<u8> {
    let repr = icmpv4::Repr::EchoRequest { ident: 0x7663, seq_no: seq, data };
    let mut icmp = vec![0u8; repr.buffer_len()];
    let _ = repr.emit(&mut icmpv4::Packet::new_unchecked(&mut icmp[..]));
    ipv4_packet(src, dst, ipv4::Protocol::ICMP, &icmp)
}

/// An ICMP echo request in an Ethernet frame.
pub fn echo_frame(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    seq: u16,
    data: &[u8],
) -> Vec<u8> {
    frame(src_mac, dst_mac, EtherType::IPV4, &echo_packet(src, dst, seq, data))
}

/// A broadcast ARP request for `target`.
pub fn arp_request(src_mac: EthernetAddress, src: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let repr = arp::Repr {
        operation: arp::Operation::REQUEST,
        source_hardware_addr: src_mac,
        source_protocol_addr: src,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut a = vec![0u8; arp::ETHERNET_IPV4_LEN];
    let _ = repr.emit(&mut arp::Packet::new_unchecked(&mut a[..]));
    frame(src_mac, EthernetAddress([0xff; 6]), EtherType::ARP, &a)
}

/// A Geneve frame as a card would send it (the forged one of story step 4).
pub fn geneve_frame(encap: &vpc::Encap, inner: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; vpc::OUTER_HEADER_LEN + inner.len()];
    let _ = vpc::emit_outer_into(&mut f, encap, None, inner.len(), vpc::inner_flow_hash(inner));
    f[vpc::OUTER_HEADER_LEN..].copy_from_slice(inner);
    f
}
