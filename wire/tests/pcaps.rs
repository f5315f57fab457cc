//! Every packet of every capture in `tests/data` through every parser: nothing may panic,
//! and the captures that are well formed must dissect all the way down.

mod common;

use common::{captures, dissect, exercise};

/// Run every parser at every offset of the first bytes of each packet (every header
/// starts there) and at the end of it.
#[test]
fn every_packet_through_every_parser() {
    let mut packets = 0;
    for (_, frames) in captures() {
        for frame in &frames {
            packets += 1;
            for start in 0..frame.len().min(160) {
                exercise(&frame[start..]);
            }
            for end in frame.len().saturating_sub(64)..frame.len() {
                exercise(&frame[end..]);
            }
            let _ = dissect(frame);
        }
    }
    // 22 captures; arp-oobr.pcap alone holds 2282 frames.
    assert!(packets > 2282 + 39, "{packets}");
}

#[test]
fn every_truncation_of_every_packet() {
    for (name, frames) in captures() {
        if name == "arp-oobr.pcap" {
            continue; // 2282 frames of the same malformation: covered above
        }
        for frame in &frames {
            for end in 0..frame.len().min(400) {
                exercise(&frame[..end]);
                let _ = dissect(&frame[..end]);
            }
        }
    }
}

#[test]
fn good_captures_dissect_fully() {
    let expect: &[(&str, &[&str])] = &[
        ("geneve-gcp.pcap", &["eth", "ipv4", "udp", "geneve", "ipv4", "tcp"]),
        ("802.1ad_QinQ.pcap", &["eth", "vlan", "vlan", "arp"]),
        ("ipv4_tcp_http_xml.pcap", &["eth", "vlan", "ipv4", "tcp"]),
        ("02-sunrise-sunset-esp.pcap", &["eth", "ipv4", "esp"]),
        ("08-sunrise-sunset-esp2.pcap", &["eth", "ipv4", "esp"]),
        ("espudp1.pcap", &["eth", "ipv4", "udp", "esp"]),
    ];
    let all = captures();
    for (file, layers) in expect {
        let (_, frames) = all.iter().find(|(n, _)| n == file).unwrap();
        for (i, f) in frames.iter().enumerate() {
            let (found, err) = dissect(f);
            assert_eq!(err, None, "{file} #{i}");
            assert_eq!(&found.names, layers, "{file} #{i}");
        }
    }
    // geneve.pcap: every frame reaches the innermost TCP or ICMP through inner Ethernet.
    let (_, frames) = all.iter().find(|(n, _)| n == "geneve.pcap").unwrap();
    for (i, f) in frames.iter().enumerate() {
        let (found, err) = dissect(f);
        assert_eq!(err, None, "geneve.pcap #{i}");
        assert_eq!(&found.names[..5], &["eth", "ipv4", "udp", "geneve", "eth"], "#{i}");
        assert!(matches!(found.names[6], "tcp" | "icmp"), "#{i}");
    }
}

#[test]
fn broken_captures_are_refused() {
    use wire::Error;
    let all = captures();
    let first = |file: &str| dissect(&all.iter().find(|(n, _)| n == file).unwrap().1[0]).1;
    assert_eq!(first("ipv4_invalid_hdr_length.pcap"), Some(Error::Malformed));
    assert_eq!(first("ipv4_invalid_length.pcap"), Some(Error::Truncated));
    assert_eq!(first("ipv4_invalid_total_length.pcap"), Some(Error::Truncated));
    assert_eq!(first("ipv4_invalid_total_length_2.pcap"), Some(Error::Malformed));
    assert_eq!(first("bigtcp-ipv4-geneve-ipv4.pcap"), Some(Error::Malformed));
    assert_eq!(first("esp_truncated.pcap"), Some(Error::Truncated));
    for file in [
        "arp-too-long-tha.pcap",
        "heapoverflow-in_checksum.pcap",
        "heapoverflow-ip_demux_print.pcap",
        "bad-ipv4-version-pgm-heapoverflow.pcap",
        "ip_ts_opts_asan.pcap",
        "ip_printroute_asan.pcap",
        "icmp_ext_oob_poc.pcap",
    ] {
        assert!(first(file).is_some(), "{file} dissected without error");
    }
}
