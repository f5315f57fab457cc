//! Input layouts shared by the fuzz targets.

use std::net::Ipv4Addr;

/// Split a TCP or UDP target's input: the first 8 bytes are the IPv4 pseudo-header's
/// source and destination addresses, the rest is the segment or datagram. `None` for an
/// input shorter than 8 bytes.
pub fn pseudo_header(input: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, &[u8])> {
    let (addrs, data) = input.split_first_chunk::<8>()?;
    let src = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
    let dst = Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]);
    Some((src, dst, data))
}
