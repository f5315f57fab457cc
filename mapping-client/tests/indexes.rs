//! The tables' derived indexes — the VPC CIDRs ([`Tables::other_vpc_holding`]) and the
//! VPNs' tunnel addresses ([`Tables::is_tunnel_address`]) — kept right through the
//! service's deltas: VPCs entering and leaving a host's view, peerings added and removed.
//! At every step the index answers what the scan it replaces (over every VPC or VPN of the
//! tables) answers, and the tables equal a rebuild from the model.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{ip, register, Link, Sim};
use mapping_client::{CardId, Command, Tables, Topology};

/// host-a holds red; host-b holds blue, green (red's CIDR) and tan (inside blue's CIDR).
/// edge-1 terminates two VPNs sharing a tunnel address and a third with its own; edge-2 one.
const WORLD: &str = include_str!("data/indexes-world.toml");

const VNIS: [u32; 5] = [101, 103, 104, 105, 999];

/// Addresses in and around every CIDR of the world, and outside all of them.
fn probes() -> Vec<Ipv4Addr> {
    let mut v = Vec::new();
    for b in [0u8, 1, 4, 5] {
        for c in [0u8, 1, 127, 128, 130, 143, 144, 255] {
            v.push(Ipv4Addr::new(10, b, c, 10));
        }
    }
    v.extend([ip("8.8.8.8"), ip("172.16.0.1"), ip("0.0.0.0"), ip("255.255.255.254")]);
    v
}

fn check_cidrs(t: &Tables) {
    common::check_cidr_index(t, &probes(), &VNIS);
}

struct World {
    sim: Sim,
    host_a: CardId,
}

impl World {
    fn new() -> World {
        let topo = Topology::from_str(WORLD, "world.toml").unwrap();
        let mut sim = Sim::new(topo, Link::PERFECT, 7);
        sim.settle(Duration::from_secs(1));
        let host_a = sim.service.topology().card_by_name("host-a").unwrap();
        World { sim, host_a }
    }

    /// Run `cmd`, deliver its deltas; every card must equal a rebuild and answer as the
    /// scan. Returns host-a's tables.
    fn run(&mut self, cmd: Command) -> &Tables {
        self.sim.apply(&cmd);
        for n in &self.sim.nodes {
            check_cidrs(&n.tables);
            assert_eq!(n.client.stats().snapshots, 1, "deltas only after the first sync");
        }
        &self.sim.node(self.host_a).tables
    }

    fn host_a(&self) -> &Tables {
        &self.sim.node(self.host_a).tables
    }
}

#[test]
fn vpcs_entering_and_leaving_a_view_through_deltas() {
    let mut w = World::new();
    let a = w.host_a();
    check_cidrs(a);
    let vnis = |t: &Tables| {
        let mut v: Vec<u32> = t.vpcs().map(|v| v.vni).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(vnis(a), [101]);
    assert_eq!(a.other_vpc_holding(101, ip("10.0.1.10")), None);
    assert_eq!(a.other_vpc_holding(101, ip("10.4.1.10")), None);

    // green (red's very CIDR) enters host-a's view with an instance there, and leaves with it.
    let a = w.run(register("green-2", "green-a", "host-a", "10.0.1.20"));
    assert_eq!(vnis(a), [101, 103]);
    assert_eq!(a.other_vpc_holding(101, ip("10.0.1.10")), Some(103));
    assert_eq!(a.other_vpc_holding(103, ip("10.0.1.10")), Some(101));
    let a = w.run(Command::Deregister { instance: "green-2".into() });
    assert_eq!(vnis(a), [101]);
    assert_eq!(a.other_vpc_holding(101, ip("10.0.1.10")), None);

    // A peering brings blue into the view; tan (inside blue's CIDR) comes with an instance.
    let a = w.run(Command::AddPeering { a: "red".into(), b: "blue".into() });
    assert_eq!(vnis(a), [101, 104]);
    assert_eq!(a.other_vpc_holding(101, ip("10.4.1.10")), Some(104));
    assert_eq!(a.other_vpc_holding(101, ip("10.4.130.10")), Some(104));
    let a = w.run(register("tan-2", "tan-a", "host-a", "10.4.130.20"));
    assert_eq!(vnis(a), [101, 104, 105]);
    assert_eq!(a.other_vpc_holding(101, ip("10.4.130.10")), Some(105), "the most specific");
    assert_eq!(a.other_vpc_holding(105, ip("10.4.130.10")), Some(104));
    assert_eq!(a.other_vpc_holding(101, ip("10.4.1.10")), Some(104));

    // The peering goes: blue leaves the view, tan stays.
    let a = w.run(Command::RemovePeering { a: "blue".into(), b: "red".into() });
    assert_eq!(vnis(a), [101, 105]);
    assert_eq!(a.other_vpc_holding(101, ip("10.4.1.10")), None);
    assert_eq!(a.other_vpc_holding(101, ip("10.4.130.10")), Some(105));
    assert_eq!(a.other_vpc_holding(105, ip("10.4.130.10")), None);

    // The last instance of tan moves away: tan leaves too.
    let a = w.run(Command::Move { instance: "tan-2".into(), host: "host-b".into() });
    assert_eq!(vnis(a), [101]);
    assert!(a.vpc_cidrs().len() == 1);
}

#[test]
fn tunnel_addresses_are_the_edges_vpn_locals() {
    let w = World::new();
    let t = w.sim.service.topology();
    let candidates: Vec<Ipv4Addr> = t
        .vpns()
        .iter()
        .flat_map(|v| [v.local, v.customer_gateway])
        .chain([ip("203.0.113.3"), ip("198.18.255.1"), ip("10.0.1.10")])
        .collect();
    let mut seen = 0;
    for n in &w.sim.nodes {
        let tables = &n.tables;
        for &a in &candidates {
            // The scan the set replaced.
            let scanned = tables.vpns().any(|v| v.local == a);
            assert_eq!(tables.is_tunnel_address(a), scanned, "{} {a}", tables.card_name());
            seen += usize::from(scanned);
        }
    }
    // edge-1: 203.0.113.1 (listed twice, two VPNs) and .2; edge-2: .9; hosts: none.
    assert_eq!(seen, 4);
    let edge = |name: &str| &w.sim.node(t.card_by_name(name).unwrap()).tables;
    assert!(edge("edge-1").is_tunnel_address(ip("203.0.113.1")));
    assert!(edge("edge-1").is_tunnel_address(ip("203.0.113.2")));
    assert!(!edge("edge-1").is_tunnel_address(ip("203.0.113.9")));
    assert!(edge("edge-2").is_tunnel_address(ip("203.0.113.9")));
    assert!(!edge("host-a").is_tunnel_address(ip("203.0.113.1")));
}
