//! Helpers shared by the integration tests: the captures in `tests/data`, a dissector
//! built from the views, and a function that runs every parser over any bytes.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;

use wire::ethernet::{self, EtherType};
use wire::ipv4::{self, Protocol};
use wire::{arp, esp, geneve, icmpv4, pcap, tcp, udp, vlan, vpc};

/// Every capture in `tests/data` with its packets, sorted by file name.
pub fn captures() -> Vec<(String, Vec<Vec<u8>>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            let packets =
                pcap::Reader::new(&bytes).unwrap().map(|r| r.unwrap().data.to_vec()).collect();
            (path.file_name().unwrap().to_string_lossy().into_owned(), packets)
        })
        .collect()
}

/// What [`dissect`] found, outermost first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layers {
    pub names: Vec<&'static str>,
    /// Offsets where each layer starts.
    pub offsets: Vec<usize>,
}

impl Layers {
    fn push(&mut self, name: &'static str, offset: usize) {
        self.names.push(name);
        self.offsets.push(offset);
    }
}

/// Walk a frame with the views as far as they go, verifying every checksum and length.
/// Returns the layers reached and the error that stopped the walk, if any.
pub fn dissect(frame: &[u8]) -> (Layers, Option<wire::Error>) {
    let mut layers = Layers::default();
    let err = dissect_ethernet(frame, 0, &mut layers).err();
    (layers, err)
}

fn dissect_ethernet(frame: &[u8], base: usize, layers: &mut Layers) -> wire::Result<()> {
    ethernet::Repr::parse(&ethernet::Frame::new_checked(frame)?)?;
    layers.push("eth", base);
    let stack = vlan::walk(frame)?;
    for _ in stack.tags() {
        layers.push("vlan", base + 14);
    }
    let payload = &frame[stack.payload_offset..];
    let at = base + stack.payload_offset;
    match stack.ethertype {
        EtherType::IPV4 => dissect_ipv4(payload, at, layers),
        EtherType::ARP => {
            arp::Repr::parse(&arp::Packet::new_checked(payload)?)?;
            layers.push("arp", at);
            Ok(())
        }
        _ => Err(wire::Error::Unsupported),
    }
}

fn dissect_ipv4(bytes: &[u8], base: usize, layers: &mut Layers) -> wire::Result<()> {
    let ip = ipv4::Packet::new_checked(bytes)?;
    let repr = ipv4::Repr::parse(&ip)?;
    layers.push("ipv4", base);
    let at = base + ip.header_len() as usize;
    if ip.is_fragment() && ip.frag_offset() != 0 {
        return Ok(());
    }
    let (src, dst) = (repr.src_addr, repr.dst_addr);
    match repr.protocol {
        Protocol::UDP => {
            let u = udp::Packet::new_checked(ip.payload())?;
            udp::Repr::parse(&u, src, dst)?;
            layers.push("udp", at);
            match (u.src_port(), u.dst_port()) {
                (_, geneve::PORT) => {
                    let g = geneve::Packet::new_checked(u.payload())?;
                    geneve::Repr::parse(&g)?;
                    layers.push("geneve", at + 8);
                    let inner = at + 8 + g.header_len();
                    match g.protocol() {
                        EtherType::IPV4 => dissect_ipv4(g.payload(), inner, layers),
                        EtherType::TEB => dissect_ethernet(g.payload(), inner, layers),
                        _ => Err(wire::Error::Unsupported),
                    }
                }
                (esp::NAT_T_PORT, esp::NAT_T_PORT) => {
                    esp::Repr::parse(&esp::Packet::new_checked(u.payload())?)?;
                    layers.push("esp", at + 8);
                    Ok(())
                }
                _ => Ok(()),
            }
        }
        Protocol::TCP => {
            tcp::Repr::parse(&tcp::Packet::new_checked(ip.payload())?, src, dst)?;
            layers.push("tcp", at);
            Ok(())
        }
        Protocol::ICMP => {
            icmpv4::Repr::parse(&icmpv4::Packet::new_checked(ip.payload())?)?;
            layers.push("icmp", at);
            Ok(())
        }
        Protocol::ESP => {
            esp::Repr::parse(&esp::Packet::new_checked(ip.payload())?)?;
            layers.push("esp", at);
            Ok(())
        }
        _ => Err(wire::Error::Unsupported),
    }
}

/// Run every parser, every accessor of every checked view, and every walker over `bytes`.
/// The only expectation is that nothing panics.
pub fn exercise(bytes: &[u8]) {
    let a = Ipv4Addr::new(10, 0, 0, 1);
    let b = Ipv4Addr::new(10, 0, 0, 2);

    if let Ok(f) = ethernet::Frame::new_checked(bytes) {
        let _ = (f.src_addr(), f.dst_addr(), f.ethertype(), f.payload().len());
        let _ = ethernet::Repr::parse(&f);
    }
    let _ = vlan::walk(bytes);
    if let Ok(t) = vlan::Packet::new_checked(bytes) {
        let _ = (t.pcp(), t.dei(), t.vid(), t.ethertype(), t.payload().len());
        let _ = vlan::Repr::parse(&t);
    }
    if let Ok(p) = arp::Packet::new_checked(bytes) {
        let _ = (p.hardware_type(), p.protocol_type(), p.operation());
        let _ = (p.source_hardware_addr(), p.source_protocol_addr());
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
        let _ = arp::Repr::parse(&p);
    }
    let header = ipv4::Packet::new_unchecked(bytes);
    if header.check_header_len().is_ok() {
        let _ = (header.src_addr(), header.dst_addr(), header.protocol(), header.frag_offset());
        let _ = header.options_iter().count();
        let _ = header.payload().len();
        let _ = header.verify_checksum();
    }
    if let Ok(p) = ipv4::Packet::new_checked(bytes) {
        let _ = (p.dscp(), p.ecn(), p.ident(), p.ttl(), p.dont_frag(), p.more_frags());
        let _ = ipv4::Repr::parse(&p);
        let _ = p.payload().len();
    }
    if let Ok(u) = udp::Packet::new_checked(bytes) {
        let _ = (u.src_port(), u.dst_port(), u.payload().len(), u.verify_checksum(a, b));
        let _ = udp::Repr::parse(&u, a, b);
    }
    if let Ok(t) = tcp::Packet::new_checked(bytes) {
        let _ = (t.seq_number(), t.ack_number(), t.flags(), t.window_len(), t.urgent_at());
        let _ = (t.options().len(), t.payload().len());
        let _ = tcp::Repr::parse(&t, a, b);
    }
    if let Ok(i) = icmpv4::Packet::new_checked(bytes) {
        let _ = (i.msg_type(), i.msg_code(), i.echo_ident(), i.next_hop_mtu());
        if let Ok(
            icmpv4::Repr::DstUnreachable { quote, .. } | icmpv4::Repr::TimeExceeded { quote, .. },
        ) = icmpv4::Repr::parse(&i)
        {
            let q = icmpv4::Quote::parse(quote).unwrap();
            let _ = (q.src_addr(), q.ports());
        }
        if let Ok(q) = icmpv4::Quote::parse(i.data()) {
            let _ = (q.dst_addr(), q.protocol(), q.ports(), q.header().total_len());
        }
    }
    let _ = icmpv4::quote_of(bytes);
    if let Ok(g) = geneve::Packet::new_checked(bytes) {
        let _ = (g.version(), g.oam(), g.critical(), g.protocol(), g.vni(), g.payload().len());
        for o in g.options_iter().flatten() {
            let _ = (o.source_vpc(), o.endpoint_id(), o.is_critical());
        }
        let _ = geneve::Repr::parse(&g);
    }
    let _ = geneve::Options::new(bytes).count();
    let _ = vpc::vpc_options(bytes);
    if let Ok(e) = esp::Packet::new_checked(bytes) {
        let _ = (e.spi(), e.sequence_number(), e.gcm_iv(), e.layout(8, 16), e.layout(16, 12));
        let _ = esp::Repr::parse(&e);
    }
    let _ = esp::Trailer::parse(bytes);
    let _ = vpc::parse_outer(bytes);
    let _ = vpc::inner_flow_hash(bytes);
    if let Ok(r) = pcap::Reader::new(bytes) {
        let _ = r.count();
    }
}
