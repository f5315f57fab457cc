//! Micro-benchmarks of the `wire` hot path.
//!
//! `cargo bench -p vpcemu-bench --bench wire`
//!
//! * parse: `vpc::parse_outer` on Ethernet + IPv4 + UDP + Geneve (source-VPC option) +
//!   inner IPv4/UDP, alone and followed by the inner IPv4 view check; and the same walk
//!   done with the general views (`ethernet::Frame` -> `ipv4::Packet` with checksum ->
//!   `udp::Packet` -> `geneve::Packet` and its option walk -> inner `ipv4::Packet`).
//! * checksum: the Internet checksum over 1500 bytes (throughput) and a 20-byte header.
//! * incremental: RFC 1624 updates for a NAT rewrite of an address and a port.
//! * emit: `vpc::emit_outer` (58 bytes), with the endpoint option (70 bytes), and
//!   `push_outer` on a test buffer (flow hash of the inner packet included).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wire::ethernet::{self, EthernetAddress};
use wire::{checksum, geneve, ipv4, tcp, udp, vpc, PacketBuf, TestBuffer};

fn encap() -> vpc::Encap {
    vpc::Encap {
        src_mac: EthernetAddress([0x02, 0, 0xc6, 0x12, 0, 1]),
        dst_mac: EthernetAddress([0x02, 0, 0xc6, 0x12, 0, 2]),
        src_pa: Ipv4Addr::new(198, 18, 0, 1),
        dst_pa: Ipv4Addr::new(198, 18, 0, 2),
        vni: 101,
        source_vpc: 102,
    }
}

/// A 64-byte inner IPv4/UDP packet with valid checksums.
fn inner_packet() -> Vec<u8> {
    let (src, dst) = (Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 1, 0, 20));
    let udp_repr = udp::Repr { src_port: 40000, dst_port: 53, payload_len: 36 };
    let ip_repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: ipv4::Protocol::UDP,
        payload_len: udp_repr.buffer_len(),
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 7,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    };
    let mut b = vec![0x5a; ip_repr.buffer_len()];
    ip_repr.emit(&mut ipv4::Packet::new_unchecked(&mut b[..])).unwrap();
    udp_repr.emit_with_checksum(&mut udp::Packet::new_unchecked(&mut b[20..]), src, dst).unwrap();
    b
}

fn encapsulated_frame() -> Vec<u8> {
    let inner = inner_packet();
    let mut frame = vec![0u8; vpc::OUTER_HEADER_LEN];
    let hash = vpc::inner_flow_hash(&inner);
    vpc::emit_outer_into(&mut frame, &encap(), None, inner.len(), hash).unwrap();
    frame.extend_from_slice(&inner);
    frame
}

/// The general walk with the views, validating as a receiver would.
fn view_walk(frame: &[u8]) -> wire::Result<(Ipv4Addr, u32, u32, Ipv4Addr)> {
    let eth = ethernet::Frame::new_checked(frame)?;
    if eth.ethertype() != ethernet::EtherType::IPV4 {
        return Err(wire::Error::Unsupported);
    }
    let ip = ipv4::Packet::new_checked(eth.payload())?;
    if !ip.verify_checksum() {
        return Err(wire::Error::Checksum);
    }
    let u = udp::Packet::new_checked(ip.payload())?;
    if u.dst_port() != vpc::GENEVE_PORT {
        return Err(wire::Error::Unsupported);
    }
    let g = geneve::Packet::new_checked(u.payload())?;
    let mut source_vpc = None;
    for option in g.options_iter() {
        if let Some(v) = option?.source_vpc() {
            source_vpc = Some(v);
        }
    }
    let inner = ipv4::Packet::new_checked(g.payload())?;
    Ok((ip.src_addr(), g.vni(), source_vpc.ok_or(wire::Error::Malformed)?, inner.src_addr()))
}

fn parse(c: &mut Criterion) {
    let frame = encapsulated_frame();
    assert!(vpc::parse_outer(&frame).is_ok() && view_walk(&frame).is_ok());
    let mut g = c.benchmark_group("parse");
    g.bench_function("parse_outer", |b| b.iter(|| vpc::parse_outer(black_box(&frame))));
    g.bench_function("parse_outer+inner_ipv4", |b| {
        b.iter(|| {
            let frame = black_box(&frame[..]);
            let o = vpc::parse_outer(frame)?;
            let inner =
                ipv4::Packet::new_checked(&frame[o.inner_offset..o.inner_offset + o.inner_len])?;
            Ok::<_, wire::Error>((o.source_vpc, inner.src_addr(), inner.dst_addr()))
        })
    });
    g.bench_function("view_walk", |b| b.iter(|| view_walk(black_box(&frame))));
    g.finish();
}

fn checksums(c: &mut Criterion) {
    let data: Vec<u8> = (0..1500u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut g = c.benchmark_group("checksum");
    g.throughput(Throughput::Bytes(1500));
    g.bench_function("sum_1500B", |b| b.iter(|| checksum::sum(black_box(&data))));
    g.finish();
    let header = &encapsulated_frame()[14..34];
    let header = header.to_vec();
    let mut g = c.benchmark_group("checksum");
    g.throughput(Throughput::Bytes(20));
    g.bench_function("ipv4_header_20B", |b| b.iter(|| checksum::ipv4_header(black_box(&header))));
    g.finish();
}

fn incremental(c: &mut Criterion) {
    let (old, new) = (Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(203, 0, 113, 10));
    let mut g = c.benchmark_group("incremental");
    g.bench_function("update_addr", |b| {
        b.iter(|| checksum::update_addr(black_box(0x1234), black_box(old), black_box(new)))
    });
    g.bench_function("update16_port", |b| {
        b.iter(|| checksum::update16(black_box(0x1234), black_box(40000), black_box(1024)))
    });
    // A whole SNAT of a TCP/IPv4 packet: IP source, IP checksum, TCP port, TCP checksum.
    let mut packet = inner_packet();
    packet[9] = 6;
    packet.resize(20 + 20 + 24, 0);
    let total = packet.len() as u16;
    ipv4::Packet::new_unchecked(&mut packet[..]).set_total_len(total);
    ipv4::Packet::new_unchecked(&mut packet[..]).fill_checksum();
    let repr = tcp::Repr {
        src_port: 40000,
        dst_port: 443,
        seq_number: 1,
        ack_number: 2,
        flags: tcp::Flags::ACK,
        window_len: 1000,
        urgent_at: 0,
        payload_len: 24,
    };
    let (src, dst) = (Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 1, 0, 20));
    repr.emit(&mut tcp::Packet::new_unchecked(&mut packet[20..]), src, dst).unwrap();
    let mut flip = false;
    g.bench_function("snat_tcp_ipv4", |b| {
        b.iter(|| {
            flip = !flip;
            let (addr, port) = if flip { (new, 1024) } else { (old, 40000) };
            let mut ip = ipv4::Packet::new_unchecked(black_box(&mut packet[..]));
            let was = ip.rewrite_src_addr(addr);
            let mut t = tcp::Packet::new_unchecked(&mut packet[20..]);
            t.update_checksum_for_addr(was, addr);
            t.rewrite_src_port(port);
        })
    });
    g.finish();
    assert!(ipv4::Packet::new_checked(&packet[..]).unwrap().verify_checksum());
}

fn emit(c: &mut Criterion) {
    let e = encap();
    let mut g = c.benchmark_group("emit");
    let mut out = [0u8; vpc::OUTER_HEADER_LEN];
    g.bench_function("emit_outer", |b| {
        b.iter(|| {
            vpc::emit_outer(
                black_box(&mut out),
                black_box(&e),
                black_box(64),
                black_box(0x1234_5678),
            )
        })
    });
    let mut out70 = [0u8; vpc::OUTER_HEADER_LEN_WITH_ENDPOINT];
    g.bench_function("emit_outer_with_endpoint", |b| {
        b.iter(|| {
            vpc::emit_outer_with_endpoint(
                black_box(&mut out70),
                black_box(&e),
                0x0a1b_2c3d_4e5f_6a7b,
                64,
                7,
            )
        })
    });
    let inner = inner_packet();
    g.bench_function("flow_hash_inner", |b| b.iter(|| vpc::inner_flow_hash(black_box(&inner))));
    let mut buf = TestBuffer::from_slice(&inner);
    g.bench_function("push_pop_outer", |b| {
        b.iter(|| {
            vpc::push_outer(black_box(&mut buf), &e, None).unwrap();
            vpc::pop_outer(black_box(&mut buf)).unwrap()
        })
    });
    g.finish();
    assert_eq!(buf.data(), &inner[..]);
}

criterion_group!(benches, parse, checksums, incremental, emit);
criterion_main!(benches);
