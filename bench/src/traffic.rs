//! Synthetic traffic for the line-rate scenarios, written as classic pcap files that
//! net_pcap replays with `infinite_rx=1`.

use std::net::Ipv4Addr;
use std::path::Path;

use wire::vpc;

/// A 64-byte Ethernet/IPv4/UDP frame (the minimum Ethernet frame) for flow `i`: the
/// destination address and the UDP ports vary so that flow hashes spread.
pub fn udp64(i: u32) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes()); // 20 IPv4 + 8 UDP + 22 payload
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 1, 10]);
    ip[16..20].copy_from_slice(&[10, 1, (i >> 8) as u8, i as u8]);
    let sum = wire::checksum::ipv4_header(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
    udp[2..4].copy_from_slice(&5001u16.to_be_bytes());
    udp[4..6].copy_from_slice(&30u16.to_be_bytes());
    f
}

/// Recompute the header checksum of the 20-byte IPv4 header `h`.
pub fn fix_ipv4_checksum(h: &mut [u8]) {
    let sum = wire::checksum::ipv4_header(h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// An IPv4/UDP packet of exactly `len` bytes (at least 28) from `src:sport` to
/// `dst:dport`, DF set, TTL 64, identification `id`, with both checksums right (the UDP
/// one over the pseudo-header), so that NAT's incremental updates work on real sums.
pub fn udp_ipv4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, id: u16, len: usize) -> Vec<u8> {
    let len = len.clamp(28, usize::from(u16::MAX));
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    fix_ipv4_checksum(&mut p[..20]);
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    for (k, b) in p[28..].iter_mut().enumerate() {
        *b = k as u8;
    }
    let sum = wire::checksum::udp_on_wire(wire::checksum::tcp_udp_ipv4(src, dst, 17, &p[20..]));
    p[26..28].copy_from_slice(&sum.to_be_bytes());
    p
}

/// A Geneve frame (ARCHITECTURE section 3, no endpoint option) carrying `inner`, as a
/// card would send it: the outer UDP source port from the inner flow hash.
pub fn geneve(encap: &vpc::Encap, inner: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; vpc::OUTER_HEADER_LEN + inner.len()];
    let _ = vpc::emit_outer_into(&mut f, encap, None, inner.len(), vpc::inner_flow_hash(inner));
    f[vpc::OUTER_HEADER_LEN..].copy_from_slice(inner);
    f
}

/// Write `frames` as a classic (microsecond) pcap file with Ethernet link type.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) -> std::io::Result<()> {
    wire::pcap::write_file(path, frames)
}
