//! A card's tables built from the ARCHITECTURE world: what each card holds, routes, and the
//! lookups the story of section 1 needs.

use std::net::Ipv4Addr;

use mapping_client::{CardId, Route, Tables, Topology};

const EXAMPLE: &str = include_str!("data/architecture.toml");

/// The example plus VPC green on host-a (not peered with anyone, no internet gateway).
fn world() -> Topology {
    let text = format!(
        "{EXAMPLE}\n[[vpc]]\nname = \"green\"\nvni = 103\ncidr = \"10.2.0.0/16\"\ninternet_gateway = \"\"\n\
         [[subnet]]\nname = \"green-a\"\nvpc = \"green\"\ncidr = \"10.2.1.0/24\"\n\
         [[instance]]\nname = \"green-1\"\nsubnet = \"green-a\"\nhost = \"host-a\"\nip = \"10.2.1.10\"\n\
         secondary_ips = [\"10.2.1.11\"]\nsource_dest_check = false\n"
    );
    Topology::from_str(&text, "topology.toml").unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn card(t: &Topology, name: &str) -> CardId {
    t.card_by_name(name).unwrap()
}

#[test]
fn host_a_sees_its_vpcs_and_their_peers() {
    let t = world();
    let a = Tables::build_for_card(&t, card(&t, "host-a"));
    assert_eq!(a.pa(), ip("198.18.0.1"));
    assert_eq!(a.card_name(), "host-a");
    // Story 1: red-1 -> yellow-1, looked up locally, lives on host B.
    let y1 = a
        .lookup(102, ip("10.1.1.10"))
        .expect("yellow-1 mapped on host-a");
    assert_eq!(y1.pa, ip("198.18.0.2"));
    assert_eq!(y1.mac, "02:00:0a:01:01:0a".parse().unwrap());
    assert!(a.peered(101, 102) && a.peered(102, 101));
    assert!(!a.peered(101, 103) && !a.peered(102, 103));
    // Own VPC, peer, edges, internet.
    assert_eq!(a.route(101, ip("10.0.1.10")), Some(Route::Vpc { vni: 101 }));
    assert_eq!(a.route(101, ip("10.1.1.10")), Some(Route::Vpc { vni: 102 }));
    let edge_pa = ip("198.18.255.1");
    assert!(
        matches!(a.route(101, ip("172.16.3.4")), Some(Route::Vpn { edge_pa: pa, .. }) if pa == edge_pa)
    );
    assert!(
        matches!(a.route(101, ip("198.51.100.200")), Some(Route::Endpoint { edge_pa: pa, id }) if pa == edge_pa && id.0 == 0x0a1b_2c3d_4e5f_6a7b)
    );
    assert_eq!(
        a.route(101, ip("198.51.100.100")),
        Some(Route::Internet { edge_pa })
    );
    // Story 3: green is not peered with yellow and has no internet gateway: no route.
    assert_eq!(a.route(103, ip("10.1.1.10")), None);
    assert_eq!(a.route(103, ip("10.2.1.10")), Some(Route::Vpc { vni: 103 }));
    // Local ENIs by IP (secondary too) and name; yellow-1 is not local.
    let g = a.local_eni_by_name("green-1").unwrap();
    assert!(!g.source_dest_check);
    assert_eq!(a.local_eni_by_ip(103, ip("10.2.1.11")).unwrap().eni, g.eni);
    assert!(a.local_eni_by_ip(102, ip("10.1.1.10")).is_none());
    // Story 4: a green packet forged as yellow: no local ENI of yellow owns the source.
    assert!(a.local_eni_by_ip(102, ip("10.1.1.10")).is_none());
    assert_eq!(a.local_enis().count(), 2);
    // Subnets and edges.
    assert_eq!(a.subnet(y1.subnet).unwrap().name, "yellow-a");
    assert!(a.edge_serves(edge_pa, 101) && a.edge_serves(edge_pa, 102));
    assert!(!a.edge_serves(edge_pa, 103));
    assert!(!a.edge_serves(ip("198.18.0.2"), 101));
    // Host cards hold no edge tables.
    assert!(a.sa_by_spi(8193).is_none() && a.elastic_ip_target(ip("203.0.113.10")).is_none());
}

#[test]
fn host_b_does_not_see_green() {
    let t = world();
    let b = Tables::build_for_card(&t, card(&t, "host-b"));
    assert!(b.lookup(103, ip("10.2.1.10")).is_none());
    assert!(b.vpc(103).is_none());
    // Story 1, receiving side: red-1 really is on host A.
    assert_eq!(b.lookup(101, ip("10.0.1.10")).unwrap().pa, ip("198.18.0.1"));
    assert!(matches!(
        b.route(102, ip("192.168.7.7")),
        Some(Route::Dx { vlan: 101, .. })
    ));
    assert_eq!(b.mappings().len(), 2);
}

#[test]
fn edge_holds_what_it_serves() {
    let t = world();
    let e = Tables::build_for_card(&t, card(&t, "blackfoot-1"));
    assert_eq!(e.pa(), ip("198.18.255.1"));
    assert!(e.local_enis().next().is_none());
    assert!(e.lookup(101, ip("10.0.1.10")).is_some());
    assert!(e.lookup(102, ip("10.1.1.10")).is_some());
    assert!(
        e.lookup(103, ip("10.2.1.10")).is_none(),
        "green is not served by the edge"
    );
    assert_eq!(
        e.elastic_ip_of(101, ip("10.0.1.10")),
        Some(ip("203.0.113.10"))
    );
    // The homed form (hashed once, probed later) answers the same, hit or miss.
    for (vni, private) in [(101, "10.0.1.10"), (101, "10.0.1.99"), (102, "10.0.1.10")] {
        let home = e.elastic_ip_home(vni, ip(private));
        assert!(e.elastic_ip_slot_at(home).is_some());
        assert_eq!(e.elastic_ip_homed(home), e.elastic_ip_of(vni, ip(private)), "{vni} {private}");
    }
    assert_eq!(
        e.elastic_ip_target(ip("203.0.113.10")),
        Some((101, ip("10.0.1.10")))
    );
    let vpn = e.sa_by_spi(8193).unwrap();
    assert_eq!(
        (vpn.name.as_str(), vpn.vni, vpn.outbound.spi),
        ("vpn-red", 101, 4097)
    );
    assert!(
        e.sa_by_spi(4097).is_none(),
        "SAs are found by their inbound SPI"
    );
    let vif = e.vif(101).unwrap();
    assert_eq!((vif.vni, vif.name.as_str()), (102, "dx-yellow"));
    let id = mapping_client::EndpointId(0x0a1b_2c3d_4e5f_6a7b);
    let ep = e.endpoint(id).unwrap();
    assert_eq!((ep.vni, ep.front_end_pa), (101, ip("198.18.254.1")));
    assert_eq!(
        e.edge_by_pa(ip("198.18.255.1")).unwrap().vnis,
        vec![101, 102]
    );
}

#[test]
fn burst_lookup_matches_single_lookups() {
    let t = world();
    let a = Tables::build_for_card(&t, card(&t, "host-a"));
    let keys: Vec<(u32, Ipv4Addr)> = (0..70u32)
        .map(|i| match i % 5 {
            0 => (101, ip("10.0.1.10")),
            1 => (102, ip("10.1.1.10")),
            2 => (103, ip("10.2.1.11")),
            3 => (102, ip("10.2.1.11")),
            _ => (101, Ipv4Addr::from(0x0a00_0100 + i)),
        })
        .collect();
    let mut out = vec![None; keys.len()];
    a.lookup_burst(&keys, &mut out);
    for (k, o) in keys.iter().zip(&out) {
        assert_eq!(*o, a.lookup(k.0, k.1), "{k:?}");
    }
    assert_eq!(out.iter().filter(|o| o.is_some()).count(), 14 * 3);
}

#[test]
fn unknown_card_gets_empty_tables() {
    let t = world();
    let none = Tables::build_for_card(&t, CardId::Host(mapping_client::HostId(99)));
    assert_eq!(none, Tables::default());
}
