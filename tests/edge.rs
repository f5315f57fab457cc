//! Story step 6 through `vpcemu run` with net_pcap ports: the four ways out of a VPC
//! through the Blackfoot edge and back in. Inputs are crafted by scapy (including the
//! customer gateway's ESP); outputs are checked by tshark (ESP decryption with the SA keys,
//! checksums, reassembly, 802.1Q, Geneve options) and by scapy's own ESP decryption.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde_json::Value;

const OUT_SPI: &str = "0x00001001";
const OUT_KEY: &str = "000102030405060708090a0b0c0d0e0f10111213";
const EDGE_MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0xff, 0x01];
const UPSTREAM_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0xfe, 0x00, 0x02];

/// tshark fields of every frame (`|`-separated), with checksum validation and the
/// outbound SA's keys, so ESP is decrypted and the inner packet dissected.
fn tshark(pcap: &Path, filter: Option<&str>, fields: &[&str]) -> Vec<Vec<String>> {
    let uat = format!(
        r#"uat:esp_sa:"IPv4","203.0.113.1","198.51.100.1","{OUT_SPI}","AES-GCM with 16 octet ICV [RFC4106]","0x{OUT_KEY}","NULL","""#
    );
    let mut options: Vec<String> = [
        "ip.check_checksum:TRUE",
        "udp.check_checksum:TRUE",
        "tcp.check_checksum:TRUE",
        "ip.defragment:TRUE",
        "esp.enable_encryption_decode:TRUE",
    ]
    .map(String::from)
    .to_vec();
    options.push(uat);
    common::tshark(pcap, &options, filter, fields)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(|x| x.as_str().expect("string").to_string()).collect()
}

fn ports(d: &str) -> String {
    let port = |n: usize, name: &str, attach: &str| {
        common::port(name, &format!("net_pcap{n},rx_pcap={d}/{name}.pcap,tx_pcap={d}/out-{name}.pcap"), attach)
    };
    [
        port(0, "red-1", "instance:red-1"),
        port(1, "yellow-1", "instance:yellow-1"),
        port(2, "internet", "edge:blackfoot-1:internet"),
        port(3, "dx", "edge:blackfoot-1:dx"),
        port(4, "services", "edge:blackfoot-1:services"),
    ]
    .concat()
}

/// All four paths both ways with DPDK's ipsec_mb `crypto_aesni_gcm` (its library, intel-ipsec-mb, called directly) as
/// the ESP cipher.
#[test]
fn edge_round_trips_through_pcap_ports_with_aesni_gcm() {
    round_trips("aesni-gcm", "aes128-gcm-aesni-gcm");
}

/// The same with ring's AES-GCM.
#[test]
fn edge_round_trips_through_pcap_ports_with_ring() {
    round_trips("ring", "aes128-gcm-ring");
}

/// The same with DPDK's below 256 bytes of data and ring's from 256 (what `auto` makes
/// where ring's measured faster on long packets): the short VPN packet and the inbound ESP
/// go to one, the longer ones and the fragments to the other, within one burst.
#[test]
fn edge_round_trips_through_pcap_ports_with_both_ciphers_by_size() {
    let ran = round_trips("aesni-gcm+ring:256", "aes128-gcm-aesni-gcm+ring");
    let stdout = String::from_utf8_lossy(&ran.out.stdout);
    assert!(stdout.contains("ESP cipher: aesni-gcm below 256 bytes of data, ring's AES-GCM from 256 (as asked)"), "{stdout}");
}

fn round_trips(cipher: &str, cipher_name: &str) -> Ran {
    let dir = scratch(&format!("edge-{cipher}"));
    python(&[&script("edge_inputs.py"), dir.to_str().unwrap()]);
    let expect: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expect.json")).unwrap()).unwrap();
    let d = dir.display().to_string();
    std::fs::write(dir.join("world.toml"), story_world(&ports(&d))).unwrap();
    let ran = run_world(&dir, &dir.join("world.toml"), &["--esp-cipher", cipher]);
    let stats = &ran.stats;
    assert_eq!(stats.run.as_ref().and_then(|r| r.esp_cipher.as_deref()), Some(cipher_name), "the ESP cipher that ran");

    // Every drop is the one crafted for it; nothing else was lost.
    let want: BTreeMap<String, u64> = expect["drops"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let got: BTreeMap<String, u64> = stats.nonzero_drops().into_iter().collect();
    assert_eq!(got, want, "drops");

    // Alerts: the bad ICV, both policy violations, the endpoint ID of another VPC, and the
    // host's no_route for yellow (which has no internet gateway).
    let alerts = &ran.alerts;
    let alert = |reason: &str, src: &str, dst: &str| {
        alerts.iter().any(|a| a["reason"] == reason && a["src"] == src && a["dst"] == dst)
    };
    assert!(alert("esp_auth_failed", "198.51.100.1", "203.0.113.1"), "{alerts:?}");
    assert!(alert("vpn_policy", "10.99.0.1", "10.0.1.10"), "{alerts:?}");
    assert!(alert("vpn_policy", "172.16.5.5", "10.1.1.20"), "{alerts:?}");
    assert!(alert("endpoint_mismatch", "198.51.100.200", "10.1.1.20"), "{alerts:?}");
    assert!(alert("no_route", "10.1.1.20", "192.0.2.80"), "{alerts:?}");
    assert!(alerts.iter().filter(|a| a["reason"] != "no_route").all(|a| a["edge"] == "blackfoot-1"), "{alerts:?}");

    internet_side(&dir, &expect);
    back_to_instances(&dir, &expect);
    dx_and_services(&dir, &expect);
    ran
}

/// What left by the internet side: SNATed packets with valid checksums, the fragments of
/// the 3000-byte datagram, and ESP that tshark and scapy both decrypt to the originals.
fn internet_side(dir: &Path, expect: &Value) {
    let pcap = dir.join("out-internet.pcap");
    let frames = read_pcap(&pcap);
    assert!(frames.iter().all(|f| f[..6] == UPSTREAM_MAC && f[6..12] == EDGE_MAC), "Ethernet to the internet next hop");
    assert!(tshark(&pcap, Some("_ws.malformed || _ws.expert.severity >= 8388608"), &["frame.number"]).is_empty(), "malformed or erroneous frames");

    // NAT: byte-identical to scapy's rewrite (fresh checksums), in order.
    let plain: Vec<String> = frames.iter().filter(|f| f[23] != 50 && (f[20] & 0x3f, f[21]) == (0, 0)).map(|f| hex(&f[14..])).collect();
    let nat: Vec<String> = expect["internet_out"].as_array().unwrap().iter().map(|v| v["ip"].as_str().unwrap().to_string()).collect();
    assert_eq!(plain, nat, "SNATed packets");
    // tshark agrees every IPv4, UDP and TCP checksum is good (1) on every plain packet.
    for row in tshark(&pcap, Some("!esp && !icmp"), &["ip.src", "ip.checksum.status", "udp.checksum.status", "tcp.checksum.status"]) {
        assert_eq!(row[0], "203.0.113.10", "{row:?}");
        assert_eq!(row[1], "1", "{row:?}");
        assert!(row[2] == "1" || row[3] == "1" || (row[2].is_empty() && row[3].is_empty()), "{row:?}");
    }
    // The fragments reassemble in tshark to the 2988-byte UDP datagram, checksum good.
    let re = tshark(&pcap, Some("ip.reassembled.length && !esp"), &["ip.reassembled.length", "udp.checksum.status", "udp.payload"]);
    assert_eq!(re.len(), 1, "{re:?}");
    assert_eq!(re[0][0], expect["fragmented_udp_len"].as_u64().unwrap().to_string());
    assert_eq!(re[0][1], "1", "reassembled UDP checksum");
    let frag_rows = tshark(&pcap, Some("ip.src == 203.0.113.10 && (ip.flags.mf == 1 || ip.frag_offset > 0)"), &["frame.len"]);
    assert_eq!(frag_rows.len(), 3, "3000 bytes at MTU 1500: 3 fragments");
    assert!(frag_rows.iter().all(|r| r[0].parse::<usize>().unwrap() <= 1514));

    // ESP: tshark decrypts every packet; sequence numbers 1..=5 in wire order.
    let esp = tshark(&pcap, Some("esp"), &["esp.spi", "esp.sequence", "ip.src", "ip.dst", "frame.len"]);
    assert_eq!(esp.len(), 5, "{esp:?}");
    for (i, row) in esp.iter().enumerate() {
        assert_eq!(row[0], OUT_SPI);
        assert_eq!(row[1], (i + 1).to_string(), "sequence numbers in order: {esp:?}");
        assert_eq!(row[2], "203.0.113.1,10.0.1.10", "decrypted inner source: {row:?}");
        assert_eq!(row[3], "198.51.100.1,172.16.5.5", "decrypted inner destination: {row:?}");
        assert!(row[4].parse::<usize>().unwrap() <= 1514, "within the internet MTU");
    }
    // The inner fragments of the 2000-byte packet reassemble inside the tunnel.
    let inner_re = tshark(&pcap, Some("esp && ip.reassembled.length"), &["ip.reassembled.length"]);
    assert_eq!(inner_re.len(), 1, "{inner_re:?}");
    assert_eq!(inner_re[0][0], "1980");
    // scapy decrypts them too, to the exact inner packets.
    let dec: Vec<Value> = serde_json::from_str(&python(&[&script("esp_decrypt.py"), pcap.to_str().unwrap(), "4097", OUT_KEY])).unwrap();
    assert_eq!(dec.len(), 5);
    assert!(dec.iter().all(|e| e.get("error").is_none()), "{dec:?}");
    let inners: Vec<String> = dec.iter().take(3).map(|e| e["inner"].as_str().unwrap().to_string()).collect();
    assert_eq!(inners, strs(&expect["vpn_inner"]), "decrypted inner packets");
    // The two fragments carry the 1980-byte datagram's payload.
    let frag: String = dec[3..].iter().map(|e| e["inner"].as_str().unwrap()[40..].to_string()).collect();
    assert!(frag.ends_with(expect["vpn_fragmented_payload"].as_str().unwrap()));
}

/// What reached red-1 and yellow-1: DNATed answers, decrypted VPN traffic, S3's answer,
/// DX's answers, and the two fragmentation-needed messages.
fn back_to_instances(dir: &Path, expect: &Value) {
    let red = read_pcap(&dir.join("out-red-1.pcap"));
    let mut got: Vec<String> = red.iter().map(|f| hex(&f[14..])).collect();
    let want: Vec<String> = expect["red_in"].as_array().unwrap().iter().map(|v| v["ip"].as_str().unwrap().to_string()).collect();
    for w in &want {
        let at = got.iter().position(|g| g == w).unwrap_or_else(|| panic!("not delivered to red-1: {w}\ngot {got:?}"));
        got.remove(at);
    }
    assert_eq!(got.len(), 2, "besides the answers, only the two fragmentation-needed messages: {got:?}");
    let icmp = tshark(
        &dir.join("out-red-1.pcap"),
        Some("icmp.type == 3 && icmp.code == 4 && ip.src == 10.0.0.1"),
        &["icmp.mtu", "icmp.checksum.status", "ip.checksum.status", "ip.dst", "udp.srcport"],
    );
    let mut mtus: Vec<&str> = icmp.iter().map(|r| r[0].as_str()).collect();
    mtus.sort_unstable();
    assert_eq!(mtus, ["1446", "1500"], "{icmp:?}");
    for r in &icmp {
        assert_eq!(r[1], "1", "ICMP checksum: {r:?}");
        assert_eq!(r[2], "1,1", "IPv4 checksums (and the quoted header's): {r:?}");
        assert!(r[3] == "10.0.1.10,192.0.2.80" || r[3] == "10.0.1.10,172.16.5.5", "quotes the offending header: {r:?}");
        assert!(r[4] == "40003" || r[4] == "41011", "quotes the UDP ports: {r:?}");
    }
    assert!(red.iter().all(|f| f[..6] == [0x02, 0x00, 0x0a, 0x00, 0x01, 0x0a]), "to red-1's MAC");
    // tshark validates the checksums of the DNATed answers too (UDP, TCP, ICMP echo and
    // the ICMP error whose quoted header was translated).
    let nat_in = tshark(
        &dir.join("out-red-1.pcap"),
        Some("ip.src == 192.0.2.80 || ip.src == 192.0.2.1"),
        &["ip.dst", "ip.checksum.status", "udp.checksum.status", "tcp.checksum.status", "icmp.checksum.status"],
    );
    assert_eq!(nat_in.len(), 4, "{nat_in:?}");
    for r in &nat_in {
        assert!(r[0].starts_with("10.0.1.10"), "{r:?}");
        assert!(r[1] == "1" || r[1] == "1,1", "IPv4 checksum: {r:?}");
        assert!(r[2] == "1" || r[3] == "1" || r[4] == "1", "L4 checksum: {r:?}");
    }

    let yellow: Vec<String> = read_pcap(&dir.join("out-yellow-1.pcap")).iter().map(|f| hex(&f[14..])).collect();
    assert_eq!(yellow, strs(&expect["yellow_in"]), "DX answers to yellow-1");
}

/// The DX side as 802.1Q VLAN 101 to the VIF's router; the services side as Geneve to
/// the S3 front end with the endpoint ID option.
fn dx_and_services(dir: &Path, expect: &Value) {
    let dx = dir.join("out-dx.pcap");
    let rows = tshark(&dx, None, &["vlan.id", "eth.dst", "ip.src", "ip.dst"]);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r[0] == "101" && r[1] == "02:dc:00:00:00:01" && r[2] == "10.1.1.20" && r[3] == "192.168.1.5"), "{rows:?}");
    let inner: Vec<String> = read_pcap(&dx).iter().map(|f| hex(&f[18..])).collect();
    assert_eq!(inner, strs(&expect["dx_out"]));

    let svc = dir.join("out-services.pcap");
    let rows = tshark(&svc, None, &["ip.src", "ip.dst", "geneve.vni", "geneve.option.class", "geneve.option.type", "geneve.option.unknown.data"]);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r[0], "198.18.255.1,10.0.1.10");
    assert_eq!(r[1], "198.18.254.1,198.51.100.200");
    assert_eq!(r[2], "0x000065", "VNI = red");
    assert_eq!(r[3], "0xfff0,0x0108");
    assert_eq!(r[4], "0x01,0x01");
    assert_eq!(r[5], "00000065,0a1b2c3d4e5f6a7b", "source VPC 101 and the 64-bit endpoint ID");
    let frames = read_pcap(&svc);
    let o = wire::vpc::parse_outer(&frames[0]).expect("our own parser reads it too");
    assert_eq!(hex(&frames[0][o.inner_offset..]), strs(&expect["services_out"])[0], "inner packet unchanged");
}

/// With the edge and host-b in this process and host-a elsewhere, what the edge sends to
/// red-1 (on host-a) leaves by the edge's own physical port, not by another card's.
#[test]
fn out_of_process_hosts_are_reached_through_the_sending_cards_port() {
    let dir = scratch("edge-split");
    let d = dir.display().to_string();
    python(&[
        "-c",
        &format!(
            "from scapy.all import *\n\
             wrpcap('{d}/internet.pcap', [Ether(src='02:00:00:fe:00:02', dst='02:00:c6:12:ff:01')/IP(src='192.0.2.80', dst='203.0.113.10')/UDP(sport=9000, dport=40000)/Raw(b'answer')])\n"
        ),
    ]);
    let ports = format!(
        "[[port]]\nname = \"internet\"\nvdev = \"net_pcap0,rx_pcap={d}/internet.pcap,tx_pcap={d}/out-internet.pcap\"\nattach = \"edge:blackfoot-1:internet\"\n\n\
         [[port]]\nname = \"edge-phys\"\nvdev = \"net_pcap1,tx_pcap={d}/out-edge-phys.pcap\"\nattach = \"underlay:blackfoot-1\"\n\n\
         [[port]]\nname = \"b-phys\"\nvdev = \"net_pcap2,tx_pcap={d}/out-b-phys.pcap\"\nattach = \"underlay:host-b\"\n"
    );
    std::fs::write(dir.join("world.toml"), story_world(&ports)).unwrap();
    run_world(&dir, &dir.join("world.toml"), &["--cards", "blackfoot-1,host-b"]);
    let edge = read_pcap(&dir.join("out-edge-phys.pcap"));
    assert_eq!(edge.len(), 1, "the DNATed answer leaves by the edge's physical port");
    let o = wire::vpc::parse_outer(&edge[0]).expect("Geneve");
    assert_eq!((o.src_pa.to_string(), o.dst_pa.to_string(), o.vni), ("198.18.255.1".into(), "198.18.0.1".into(), 101));
    assert!(read_pcap(&dir.join("out-b-phys.pcap")).is_empty(), "nothing on host-b's port");
}

/// An unknown ESP cipher is one clear error before anything starts.
#[test]
fn unknown_esp_cipher_is_refused() {
    let out = vpcemu(&["run", "examples/story-world.toml", "--esp-cipher", "des", "--duration", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auto, ring, aesni-gcm or aesni-gcm+ring:BYTES"), "{err}");
    assert!(!err.contains("EAL"), "DPDK must not start: {err}");
}
