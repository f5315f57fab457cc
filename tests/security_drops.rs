//! Security drops the runtime makes outside the cards' own pipelines, through `vpcemu run`:
//! traffic from the port of an instance that is no longer registered, and alerts of cards
//! whose indexes are 65536 apart.

mod common;

use std::fmt::Write as _;
use std::io::Write as _;

use common::*;

const GREEN1_MAC: [u8; 6] = [0x02, 0x00, 10, 2, 1, 30];
const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0xff, 0x00, 0x02];

/// green-1 is deregistered while its vNIC stays attached: what it sends next is refused
/// by host-a's verify-send as `spoofed_source` with an alert naming host-a, as Nitro
/// refuses any ENI its card does not hold (its ARP is not answered).
#[test]
fn an_unregistered_instance_port_is_spoofed_source_with_an_alert() {
    let dir = scratch("unregistered");
    let d = dir.display();
    let topo = story_world(&format!(
        "[[port]]\nname = \"green-1\"\nvdev = \"net_pcap0,rx_pcap={d}/green-1.fifo\"\nattach = \"instance:green-1\"\n"
    ));
    std::fs::write(dir.join("world.toml"), topo).unwrap();
    // Opening the FIFO for writing waits for the PMD to open it; it reads the header at
    // start, then blocks on the packets, which come after the deregistration.
    let Live { mut run, fifo: mut w, sock, stats, alerts, .. } = run_live(&dir, "green-1.fifo", "500");
    let out = ctl(&sock, &["deregister", "green-1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Seven packets green-1 was allowed to send before (its own address, to a peer in its
    // subnet), and an ARP request for that peer.
    for i in 0..7u8 {
        w.write_all(&pcap_record(&udp_frame(ROUTER_MAC, GREEN1_MAC, [10, 2, 1, 30], [10, 2, 1, 31], &[i]))).unwrap();
    }
    w.write_all(&pcap_record(&arp_request(GREEN1_MAC, [10, 2, 1, 30], [10, 2, 1, 31]))).unwrap();
    drop(w);
    assert!(run.wait().unwrap().success());

    let s = Stats::read(&stats).unwrap();
    assert_eq!((s.drop_count("spoofed_source"), s.drop_count("arp_ignored")), (Some(7), Some(1)), "{:?}", s.drops);
    assert_eq!(s.drop_count("no_route"), Some(0), "{:?}", s.drops);
    let alerts = json_lines(&alerts);
    assert!(!alerts.is_empty());
    for a in &alerts {
        assert_eq!((a["reason"].as_str(), a["stage"].as_str()), (Some("spoofed_source"), Some("verify-send")), "{a}");
        assert_eq!((a["host"].as_str(), a["src"].as_str(), a["dst"].as_str()), (Some("host-a"), Some("10.2.1.30"), Some("10.2.1.31")), "{a}");
        // The ENI is gone from the model: no instance to name.
        assert!(a["instance"].is_null(), "{a}");
    }
    assert_eq!(alerts.iter().map(|a| a["count"].as_u64().unwrap()).sum::<u64>(), 7);
}

/// 65538 hosts; the process runs h1 and h65537, each with an instance sending from an
/// address it does not own. Each alert names its own card.
#[test]
fn alerts_of_cards_65536_apart_name_their_own_card() {
    let dir = scratch("far-cards");
    let d = dir.display();
    let mut t = dataplane("0-1", 512, "off");
    for i in 0..65_538u32 {
        let [_, b, c, e] = i.to_be_bytes();
        let _ = write!(t, "[[host]]\nname = \"h{i}\"\npa = \"100.{b}.{c}.{e}\"\n");
    }
    t += "[[vpc]]\nname = \"blue\"\nvni = 201\ncidr = \"10.0.0.0/16\"\n\
          [[subnet]]\nname = \"blue-a\"\nvpc = \"blue\"\ncidr = \"10.0.1.0/24\"\n";
    for (name, host, ip) in [("i1", "h1", 10u8), ("i2", "h65537", 11)] {
        let mac = [0x02, 0x00, 10, 0, 1, ip];
        let frame = udp_frame(ROUTER_MAC, mac, [10, 0, 1, 99], [10, 0, 1, 21 - ip], b"forged");
        write_pcap(&dir.join(format!("{name}.pcap")), &[frame]);
        let n = name.trim_start_matches('i');
        let _ = write!(
            t,
            "[[instance]]\nname = \"{name}\"\nsubnet = \"blue-a\"\nhost = \"{host}\"\nip = \"10.0.1.{ip}\"\n\
             [[port]]\nname = \"{name}\"\nvdev = \"net_pcap{n},rx_pcap={d}/{name}.pcap\"\nattach = \"instance:{name}\"\n"
        );
    }
    std::fs::write(dir.join("world.toml"), t).unwrap();
    let alerts = dir.join("alerts.jsonl");
    let out = vpcemu(&[
        "run",
        dir.join("world.toml").to_str().unwrap(),
        "--cards",
        "h1,h65537",
        "--until-idle",
        "300",
        "--alerts",
        alerts.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "vpcemu run failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut got: Vec<(String, String)> = json_lines(&alerts)
        .iter()
        .map(|a| (a["instance"].as_str().unwrap().to_owned(), a["host"].as_str().unwrap().to_owned()))
        .collect();
    got.sort();
    assert_eq!(got, [("i1".to_owned(), "h1".to_owned()), ("i2".to_owned(), "h65537".to_owned())]);
}

/// An instance port whose instance lives on a card this process does not run is refused at
/// start, like any port of a card run elsewhere.
#[test]
fn an_instance_port_of_a_card_run_elsewhere_is_refused() {
    let dir = scratch("port-elsewhere");
    write_pcap(&dir.join("none.pcap"), &[]);
    let topo = story_world(&format!(
        "[[port]]\nname = \"red-1\"\nvdev = \"net_pcap0,rx_pcap={}/none.pcap\"\nattach = \"instance:red-1\"\n",
        dir.display()
    ));
    std::fs::write(dir.join("world.toml"), topo).unwrap();
    let out = vpcemu(&["run", dir.join("world.toml").to_str().unwrap(), "--cards", "host-b", "--duration", "1"]);
    assert!(!out.status.success());
    let err = stderr_lines(&out);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].contains("port red-1: its card host-a is not run in this process (--cards)"), "{}", err[0]);
}
