//! Overlapping VPCs on one host, through `vpcemu run` with net_pcap ports: two VPCs with
//! the same CIDR (172.31.0.0/16, every AWS account's default VPC) and instances at the
//! same addresses with the same derived MACs on the same hosts, and a third VPC peered
//! with only one of them. Every frame is crafted here; every output is read back.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;

use common::*;
use mapping_client::Topology;

/// h1: blue-1 and green-1, both 172.31.1.10 with the derived MAC 02:00:ac:1f:01:0a.
/// h2: blue-2 and green-2, both 172.31.1.20 (green-2 with a MAC of its own, so that the
/// answers and deliveries of the two VPCs can be told apart), and red-1, whose VPC is
/// peered with blue only.
const WORLD: &str = r#"
[[host]]
name = "h1"
pa = "198.18.0.1"

[[host]]
name = "h2"
pa = "198.18.0.2"

[[vpc]]
name = "blue"
vni = 201
cidr = "172.31.0.0/16"

[[vpc]]
name = "green"
vni = 202
cidr = "172.31.0.0/16"

[[vpc]]
name = "red"
vni = 203
cidr = "10.9.0.0/16"

[[subnet]]
name = "blue-a"
vpc = "blue"
cidr = "172.31.1.0/24"

[[subnet]]
name = "green-a"
vpc = "green"
cidr = "172.31.1.0/24"

[[subnet]]
name = "red-a"
vpc = "red"
cidr = "10.9.1.0/24"

[[instance]]
name = "blue-1"
subnet = "blue-a"
host = "h1"
ip = "172.31.1.10"

[[instance]]
name = "green-1"
subnet = "green-a"
host = "h1"
ip = "172.31.1.10"

[[instance]]
name = "blue-2"
subnet = "blue-a"
host = "h2"
ip = "172.31.1.20"

[[instance]]
name = "green-2"
subnet = "green-a"
host = "h2"
ip = "172.31.1.20"
mac = "02:00:00:00:02:20"

[[instance]]
name = "red-1"
subnet = "red-a"
host = "h2"
ip = "10.9.1.10"

[[peering]]
vpcs = ["blue", "red"]
"#;

const X10: [u8; 4] = [172, 31, 1, 10];
const X20: [u8; 4] = [172, 31, 1, 20];
const RED1: [u8; 4] = [10, 9, 1, 10];
/// The derived MACs (02:00 + the address) and green-2's own.
const MAC_X10: [u8; 6] = [0x02, 0x00, 172, 31, 1, 10];
const MAC_X20: [u8; 6] = [0x02, 0x00, 172, 31, 1, 20];
const MAC_GREEN2: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x02, 0x20];
const MAC_RED1: [u8; 6] = [0x02, 0x00, 10, 9, 1, 10];
const ANY_ROUTER: [u8; 6] = [0x02, 0x00, 0x00, 0xff, 0x00, 0x00];

/// Ethernet/IPv4/UDP from `src` to `dst`, the payload naming the packet.
fn udp(src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], payload: &str) -> Vec<u8> {
    udp_frame(ANY_ROUTER, src_mac, src, dst, payload.as_bytes())
}

/// What came out of an instance port: ARP replies as (asked address, answered MAC), and
/// IPv4 deliveries as (destination MAC, source MAC, inner source, payload).
struct Out {
    arp: Vec<(Ipv4Addr, [u8; 6])>,
    delivered: Vec<([u8; 6], [u8; 6], Ipv4Addr, String)>,
}

fn out_of(dir: &Path, port: &str) -> Out {
    let mut out = Out { arp: Vec::new(), delivered: Vec::new() };
    for f in read_pcap(&dir.join(format!("out-{port}.pcap"))) {
        let mac = |at: usize| -> [u8; 6] { f[at..at + 6].try_into().unwrap() };
        let addr = |at: usize| Ipv4Addr::new(f[at], f[at + 1], f[at + 2], f[at + 3]);
        match (f[12], f[13]) {
            (0x08, 0x06) => {
                assert_eq!(&f[20..22], &[0, 2], "{port}: an ARP reply");
                assert_eq!(mac(22), mac(6), "{port}: the reply comes from the MAC it announces");
                out.arp.push((addr(28), mac(22)));
            }
            (0x08, 0x00) => {
                let payload = String::from_utf8_lossy(&f[14 + 28..]).into_owned();
                out.delivered.push((mac(0), mac(6), addr(26), payload));
            }
            other => panic!("{port}: unexpected EtherType {other:?}"),
        }
    }
    out.delivered.sort_by(|a, b| a.3.cmp(&b.3));
    out
}

#[test]
fn overlapping_vpcs_on_one_host_stay_apart() {
    let dir = scratch("isolation");
    let d = dir.display();
    // Inputs, per instance port.
    let inputs: [(&str, Vec<Vec<u8>>); 5] = [
        (
            "blue-1",
            vec![
                arp_request(MAC_X10, X10, X20),
                udp(MAC_X10, X10, X20, "blue-1 to 172.31.1.20"),
                udp(MAC_X10, X10, RED1, "blue-1 to red-1"),
            ],
        ),
        (
            "green-1",
            vec![
                arp_request(MAC_X10, X10, X20),
                udp(MAC_X10, X10, X20, "green-1 to 172.31.1.20"),
                // green is not peered with red: no route, whatever the address.
                udp(MAC_X10, X10, RED1, "green-1 to red-1"),
            ],
        ),
        ("blue-2", vec![udp(MAC_X20, X20, X10, "blue-2 to 172.31.1.10")]),
        ("green-2", vec![udp(MAC_GREEN2, X20, X10, "green-2 to 172.31.1.10")]),
        (
            "red-1",
            vec![udp(MAC_RED1, RED1, X10, "red-1 to 172.31.1.10"), udp(MAC_RED1, RED1, X20, "red-1 to 172.31.1.20")],
        ),
    ];
    let mut ports = String::new();
    for (i, (name, frames)) in inputs.iter().enumerate() {
        write_pcap(&dir.join(format!("{name}.pcap")), frames);
        ports += &port(name, &format!("net_pcap{i},rx_pcap={d}/{name}.pcap,tx_pcap={d}/out-{name}.pcap"), &format!("instance:{name}"));
    }
    let text = format!("{}{WORLD}{ports}", dataplane("0-1", 512, "off"));
    let world = dir.join("world.toml");
    std::fs::write(&world, &text).unwrap();

    // The world loads, with the derived MAC shared by blue-1 and green-1 on h1.
    let check = vpcemu(&["check", world.to_str().unwrap()]);
    assert!(check.status.success(), "check refused the world: {}", String::from_utf8_lossy(&check.stderr));
    let topo = Topology::from_str(&text, "world.toml").unwrap();
    let router = |subnet: &str| wire::vpc::subnet_router_mac(topo.subnet_by_name(subnet).unwrap().0).0;

    let ran = run_world(&dir, &world, &[]);

    let x10 = Ipv4Addr::from(X10);
    let (x20, red1) = (Ipv4Addr::from(X20), Ipv4Addr::from(RED1));
    let s = |t: &str| t.to_string();

    // blue-1: its ARP for .20 is answered with blue's .20 (blue-2), not green's; it gets
    // blue-2's packet (from blue-2's MAC: same subnet) and red-1's (from blue-a's router:
    // another VPC), never green-2's.
    let blue1 = out_of(&dir, "blue-1");
    assert_eq!(blue1.arp, [(x20, MAC_X20)]);
    assert_eq!(
        blue1.delivered,
        [(MAC_X10, MAC_X20, x20, s("blue-2 to 172.31.1.10")), (MAC_X10, router("blue-a"), red1, s("red-1 to 172.31.1.10"))]
    );
    // green-1: the same question gets green-2's MAC; only green-2's packet arrives.
    let green1 = out_of(&dir, "green-1");
    assert_eq!(green1.arp, [(x20, MAC_GREEN2)]);
    assert_eq!(green1.delivered, [(MAC_X10, MAC_GREEN2, x20, s("green-2 to 172.31.1.10"))]);
    // blue-2 gets blue-1's and red-1's packets; green-2 gets green-1's only.
    let blue2 = out_of(&dir, "blue-2");
    assert!(blue2.arp.is_empty());
    assert_eq!(
        blue2.delivered,
        [(MAC_X20, MAC_X10, x10, s("blue-1 to 172.31.1.20")), (MAC_X20, router("blue-a"), red1, s("red-1 to 172.31.1.20"))]
    );
    let green2 = out_of(&dir, "green-2");
    assert!(green2.arp.is_empty());
    assert_eq!(green2.delivered, [(MAC_GREEN2, MAC_X10, x10, s("green-1 to 172.31.1.20"))]);
    // red-1, peered with blue only, hears from blue-1 alone.
    let red = out_of(&dir, "red-1");
    assert!(red.arp.is_empty());
    assert_eq!(red.delivered, [(MAC_RED1, router("red-a"), x10, s("blue-1 to red-1"))]);

    // The one drop: green-1 -> red-1, no route, with an alert naming green-1.
    assert_eq!(ran.stats.nonzero_drops(), [(s("no_route"), 1)], "{:?}", ran.stats.drops);
    let alerts = &ran.alerts;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!((a["reason"].as_str(), a["host"].as_str(), a["instance"].as_str()), (Some("no_route"), Some("h1"), Some("green-1")));
    assert_eq!((a["vpc"].as_str(), a["src"].as_str(), a["dst"].as_str()), (Some("green"), Some("172.31.1.10"), Some("10.9.1.10")));
}
