//! Write fuzzing seeds: every packet of every capture in a directory, plus the same
//! packet from each header boundary on (so every target gets inputs that start at its
//! own layer), plus a few frames of vpcemu's own encapsulation.
//!
//! Usage: `cargo run -p wire --example fuzz_seeds -- CAPTURE_DIR OUT_DIR [MAX_PER_FILE]`

use std::net::Ipv4Addr;
use std::path::Path;

use wire::ethernet::EtherType;
use wire::{geneve, ipv4, pcap, udp, vlan, vpc};

/// Offsets where the headers of `frame` start, as far as the views can tell, and for
/// each IPv4 layer its transport payload behind the 8 address bytes (the input format of
/// the udp and tcp targets, whose checksums need the pseudo-header).
fn boundaries(frame: &[u8]) -> (Vec<usize>, Vec<Vec<u8>>) {
    let mut out = vec![0];
    let mut with_addrs = Vec::new();
    let Ok(stack) = vlan::walk(frame) else { return (out, with_addrs) };
    if stack.payload_offset > 14 {
        out.push(14);
    }
    out.push(stack.payload_offset);
    let mut at = stack.payload_offset;
    let mut ethertype = stack.ethertype;
    // Up to two IPv4 layers (outer and inner of Geneve).
    for _ in 0..2 {
        if ethertype != EtherType::IPV4 {
            break;
        }
        let ip = ipv4::Packet::new_unchecked(&frame[at..]);
        if ip.check_header_len().is_err() {
            break;
        }
        at += ip.header_len() as usize;
        out.push(at);
        let mut seed = [ip.src_addr().octets(), ip.dst_addr().octets()].concat();
        seed.extend_from_slice(ip.payload());
        with_addrs.push(seed);
        if ip.protocol() != ipv4::Protocol::UDP {
            break;
        }
        let Ok(u) = udp::Packet::new_checked(&frame[at..]) else { break };
        at += udp::HEADER_LEN;
        out.push(at);
        if u.dst_port() != geneve::PORT {
            break;
        }
        let Ok(g) = geneve::Packet::new_checked(&frame[at..]) else { break };
        out.push(at + geneve::HEADER_LEN); // the options area
        at += g.header_len();
        out.push(at);
        ethertype = g.protocol();
        if ethertype == EtherType::TEB && frame.len() >= at + 14 {
            at += 14;
            out.push(at);
            ethertype = EtherType::IPV4;
        }
    }
    out.sort_unstable();
    out.dedup();
    (out, with_addrs)
}

/// Write the seeds of one frame under `name`; returns how many.
fn write_seeds(out: &Path, name: &str, frame: &[u8]) -> std::io::Result<usize> {
    let (offsets, with_addrs) = boundaries(frame);
    for &at in &offsets {
        std::fs::write(out.join(format!("{name}-{at}")), &frame[at..])?;
    }
    for (j, seed) in with_addrs.iter().enumerate() {
        std::fs::write(out.join(format!("{name}-l4-{j}")), seed)?;
    }
    Ok(offsets.len() + with_addrs.len())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: fuzz_seeds CAPTURE_DIR OUT_DIR [MAX_PER_FILE]");
        std::process::exit(2);
    }
    let (dir, out) = (Path::new(&args[1]), Path::new(&args[2]));
    let max: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    std::fs::create_dir_all(out)?;
    let mut written = 0;
    let mut entries: Vec<_> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for path in entries.iter().filter(|p| p.extension().is_some_and(|x| x == "pcap")) {
        let bytes = std::fs::read(path)?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let Ok(reader) = pcap::Reader::new(&bytes) else { continue };
        for (i, record) in reader.enumerate().take(max) {
            let Ok(record) = record else { break };
            // Cap huge frames (BIG TCP): libFuzzer's default max_len is 4096.
            let frame = &record.data[..record.data.len().min(4096)];
            written += write_seeds(out, &format!("{stem}-{i}"), frame)?;
        }
    }
    // vpcemu's own encapsulation, with and without the endpoint-ID option, and the inner
    // packet alone.
    let inner: Vec<u8> = {
        let repr = ipv4::Repr {
            src_addr: Ipv4Addr::new(10, 0, 1, 10),
            dst_addr: Ipv4Addr::new(10, 1, 0, 20),
            protocol: ipv4::Protocol::UDP,
            payload_len: 12,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 1,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        };
        let mut b = vec![0u8; repr.buffer_len()];
        b[20..].copy_from_slice(&[0x9c, 0x40, 0x00, 0x35, 0, 12, 0, 0, 1, 2, 3, 4]);
        let _ = repr.emit(&mut ipv4::Packet::new_unchecked(&mut b[..]));
        b
    };
    let encap = vpc::Encap {
        src_mac: wire::EthernetAddress([2, 0, 0xc6, 0x12, 0, 1]),
        dst_mac: wire::EthernetAddress([2, 0, 0xc6, 0x12, 0, 2]),
        src_pa: Ipv4Addr::new(198, 18, 0, 1),
        dst_pa: Ipv4Addr::new(198, 18, 0, 2),
        vni: 101,
        source_vpc: 102,
    };
    for (name, endpoint) in [("vpc", None), ("vpc-endpoint", Some(0x0a1b_2c3d_4e5f_6a7b))] {
        let mut frame = vec![0u8; vpc::outer_len(endpoint)];
        let hash = vpc::inner_flow_hash(&inner);
        if vpc::emit_outer_into(&mut frame, &encap, endpoint, inner.len(), hash).is_ok() {
            frame.extend_from_slice(&inner);
            written += write_seeds(out, name, &frame)?;
        }
    }
    println!("{written} seeds in {}", out.display());
    Ok(())
}
