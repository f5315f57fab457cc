//! Building the demo's packets with the `wire` crate's emitters.

use std::net::Ipv4Addr;

use wire::ethernet::{self, EtherType, EthernetAddress};
use wire::{arp, icmpv4, ipv4, vpc};

/// An Ethernet frame carrying `payload` with `ethertype`.
pub fn frame(src: EthernetAddress, dst: EthernetAddress, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
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

/// A UDP datagram (checksum filled) as an IPv4 packet, DF set.
pub fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut udp = vec![0u8; 8 + data.len()];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    udp[8..].copy_from_slice(data);
    let c = wire::checksum::udp_on_wire(wire::checksum::tcp_udp_ipv4(src, dst, 17, &udp));
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    ipv4_packet(src, dst, ipv4::Protocol::UDP, &udp)
}

/// An Ethernet frame with an 802.1Q tag of `vlan` carrying the IPv4 packet `ip`.
pub fn vlan_frame(src: EthernetAddress, dst: EthernetAddress, vlan: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + ip.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(ip);
    f
}

/// A Geneve frame with the VPC endpoint ID option (what an S3 front end answers with).
pub fn geneve_endpoint_frame(encap: &vpc::Encap, endpoint_id: u64, inner: &[u8]) -> Vec<u8> {
    let len = vpc::outer_len(Some(endpoint_id));
    let mut f = vec![0u8; len + inner.len()];
    let _ = vpc::emit_outer_into(&mut f, encap, Some(endpoint_id), inner.len(), vpc::inner_flow_hash(inner));
    f[len..].copy_from_slice(inner);
    f
}
