//! The embedded mapping service and its clients, driven with a virtual clock: what each
//! card is sent, validation, and the gap -> resync path under loss and reordering.

mod common;

use std::time::Duration;

use common::{ip, register, spec, Link, Rng, Sim};
use mapping_client::{
    CardId, Client, Command, CommandError, InstanceSpec, Request, Service, TableOp, Tables,
    ToClient, Topology, Update,
};

const EXAMPLE: &str = include_str!("data/architecture.toml");

/// The example plus blue (on host-b, not peered) and green (on host-a, overlapping red).
fn world() -> Topology {
    let text = format!(
        "{EXAMPLE}\n\
         [[host]]\nname = \"host-c\"\npa = \"198.18.0.3\"\n\
         [[vpc]]\nname = \"blue\"\nvni = 104\ncidr = \"10.4.0.0/16\"\n\
         [[subnet]]\nname = \"blue-a\"\nvpc = \"blue\"\ncidr = \"10.4.1.0/24\"\n\
         [[instance]]\nname = \"blue-1\"\nsubnet = \"blue-a\"\nhost = \"host-b\"\nip = \"10.4.1.10\"\n\
         [[instance]]\nname = \"blue-2\"\nsubnet = \"blue-a\"\nhost = \"host-c\"\nip = \"10.4.1.11\"\n\
         [[vpc]]\nname = \"green\"\nvni = 103\ncidr = \"10.0.0.0/16\"\n\
         [[subnet]]\nname = \"green-a\"\nvpc = \"green\"\ncidr = \"10.0.1.0/24\"\n\
         [[instance]]\nname = \"green-1\"\nsubnet = \"green-a\"\nhost = \"host-c\"\nip = \"10.0.1.10\"\n"
    );
    Topology::from_str(&text, "topology.toml").unwrap()
}

const T0: Duration = Duration::ZERO;

/// A service with every card connected and its snapshot sent.
fn connected() -> (Service, Vec<Client>) {
    let topo = world();
    let mut service = Service::new(topo);
    let mut clients: Vec<Client> = service.topology().cards().map(Client::new).collect();
    for c in &mut clients {
        let req = c.poll_request(T0).unwrap();
        service.handle(req, T0);
    }
    while let Some(msg) = service.poll_transmit(T0) {
        let c = clients.iter_mut().find(|c| c.card() == msg.card()).unwrap();
        c.handle(msg, T0);
    }
    (service, clients)
}

/// The deltas queued by the last command, by card name.
fn deltas(service: &mut Service) -> Vec<(String, u64, Vec<TableOp>)> {
    let mut out = Vec::new();
    while let Some(msg) = service.poll_transmit(T0) {
        match msg {
            ToClient::Delta { card, version, ops } => out.push((
                service.topology().card_name(card).unwrap().to_string(),
                version,
                ops,
            )),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

fn card(service: &Service, name: &str) -> CardId {
    service.topology().card_by_name(name).unwrap()
}

#[test]
fn register_sends_each_card_only_what_it_needs() {
    let (mut service, _) = connected();
    service.execute(&register("red-2", "red-a", "host-b", "10.0.1.20")).unwrap();
    let d = deltas(&mut service);
    let names: Vec<&str> = d.iter().map(|(n, _, _)| n.as_str()).collect();
    // host-a holds red (local), host-b holds red (peer of yellow), the edge serves red;
    // host-c (blue, green) does not hold red and hears nothing.
    assert_eq!(names, ["host-a", "host-b", "blackfoot-1"]);
    for (name, version, ops) in &d {
        assert_eq!(*version, 1);
        let upserts = ops
            .iter()
            .filter(|op| matches!(op, TableOp::UpsertMapping { vni: 101, .. }))
            .count();
        assert_eq!(upserts, 1, "{name}: {ops:?}");
        let local = ops
            .iter()
            .any(|op| matches!(op, TableOp::UpsertLocalEni(e) if e.name == "red-2"));
        assert_eq!(local, name == "host-b", "{name}");
        assert_eq!(
            ops.len(),
            if name == "host-b" { 2 } else { 1 },
            "{name}: {ops:?}"
        );
    }
}

#[test]
fn first_eni_of_a_vpc_on_a_host_brings_the_vpc_and_its_peers() {
    let (mut service, _) = connected();
    // host-c holds blue and green; red (and its peer yellow) arrive with red-3.
    service.execute(&register("red-3", "red-a", "host-c", "10.0.1.30")).unwrap();
    let d = deltas(&mut service);
    let (_, _, ops) = d.iter().find(|(n, _, _)| n == "host-c").unwrap();
    let vpcs: Vec<u32> = ops
        .iter()
        .filter_map(|op| {
            if let TableOp::UpsertVpc(v) = op {
                Some(v.vni)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(vpcs.len(), 2);
    assert!(vpcs.contains(&101) && vpcs.contains(&102));
    assert!(
        ops.contains(&TableOp::AddPeering { a: 101, b: 102 })
            || ops.contains(&TableOp::AddPeering { a: 102, b: 101 })
    );
    let mappings = ops
        .iter()
        .filter(|op| matches!(op, TableOp::UpsertMapping { .. }))
        .count();
    assert_eq!(mappings, 3, "red-1, red-3, yellow-1: {ops:?}");
}

#[test]
fn peering_add_brings_the_peer_vpc_with_its_mappings_and_remove_takes_it_away() {
    let mut sim = Sim::new(world(), Link::PERFECT, 1);
    sim.settle(Duration::from_secs(1));
    let host_a = card(&sim.service, "host-a");
    assert!(sim.node(host_a).tables.vpc(104).is_none());
    sim.apply(&Command::AddPeering { a: "red".into(), b: "blue".into() });
    let a = &sim.node(host_a).tables;
    assert!(a.peered(101, 104));
    assert_eq!(a.lookup(104, ip("10.4.1.10")).unwrap().pa, ip("198.18.0.2"));
    assert_eq!(a.lookup(104, ip("10.4.1.11")).unwrap().pa, ip("198.18.0.3"));
    assert_eq!(
        a.route(101, ip("10.4.1.11")),
        Some(mapping_client::Route::Vpc { vni: 104 })
    );
    assert_eq!(sim.node(host_a).client.stats().gaps, 0);
    sim.apply(&Command::RemovePeering { a: "blue".into(), b: "red".into() });
    let a = &sim.node(host_a).tables;
    assert!(
        a.vpc(104).is_none() && a.lookup(104, ip("10.4.1.10")).is_none() && !a.peered(101, 104)
    );
    assert_eq!(
        sim.node(host_a).client.stats().snapshots,
        1,
        "deltas only after the first sync"
    );
}

#[test]
fn move_and_deregister_follow_the_instance() {
    let mut sim = Sim::new(world(), Link::PERFECT, 2);
    sim.settle(Duration::from_secs(1));
    let (host_a, host_b) = (card(&sim.service, "host-a"), card(&sim.service, "host-b"));
    sim.apply(&Command::Move { instance: "red-1".into(), host: "host-b".into() });
    // host-a had nothing but red-1: red and yellow leave its view.
    assert!(sim.node(host_a).tables.mappings().is_empty());
    assert!(sim.node(host_a).tables.local_enis().next().is_none());
    let b = &sim.node(host_b).tables;
    assert_eq!(b.local_eni_by_name("red-1").unwrap().ip, ip("10.0.1.10"));
    assert_eq!(b.lookup(101, ip("10.0.1.10")).unwrap().pa, ip("198.18.0.2"));
    let edge = card(&sim.service, "blackfoot-1");
    assert_eq!(
        sim.node(edge)
            .tables
            .lookup(101, ip("10.0.1.10"))
            .unwrap()
            .pa,
        ip("198.18.0.2")
    );
    sim.apply(&Command::Deregister { instance: "red-1".into() });
    let e = &sim.node(edge).tables;
    assert!(
        e.elastic_ip_target(ip("203.0.113.10")).is_none(),
        "its Elastic IP went with it"
    );
    assert!(sim
        .service
        .topology()
        .elastic_ip_instance(ip("203.0.113.10"))
        .is_none());
}

#[test]
fn elastic_ips_reach_only_the_internet_gateway_edge() {
    let (mut service, _) = connected();
    service
        .execute(&Command::DisassociateElasticIp {
            ip: ip("203.0.113.10"),
        })
        .unwrap();
    let d = deltas(&mut service);
    assert_eq!(
        d,
        vec![(
            "blackfoot-1".into(),
            1,
            vec![TableOp::RemoveElasticIp {
                public: ip("203.0.113.10")
            }]
        )]
    );
    service
        .execute(&Command::AssociateElasticIp {
            ip: ip("203.0.113.20"),
            instance: "yellow-1".into(),
        })
        .unwrap();
    let d = deltas(&mut service);
    let op = TableOp::UpsertElasticIp {
        public: ip("203.0.113.20"),
        vni: 102,
        private: ip("10.1.1.10"),
    };
    assert_eq!(d, vec![("blackfoot-1".into(), 2, vec![op])]);
}

#[test]
fn bad_commands_change_nothing() {
    let (mut service, _) = connected();
    let before = service.topology().clone();
    let associate = |addr, instance: &str| Command::AssociateElasticIp {
        ip: ip(addr),
        instance: instance.into(),
    };
    let peer = |a: &str, b: &str| Command::AddPeering { a: a.into(), b: b.into() };
    let bad: Vec<(Command, &str)> = vec![
        (register("red-1", "red-a", "host-a", "10.0.1.40"), "duplicate instance name"),
        (register("x", "red-a", "host-a", "10.0.1.10"), "already used in VPC red"),
        (register("x", "red-a", "host-a", "10.0.2.10"), "outside subnet"),
        (register("x", "red-a", "host-a", "10.0.1.1"), "reserved"),
        (register("x", "nope", "host-a", "10.0.1.40"), "unknown subnet"),
        (register("x", "red-a", "blackfoot-1", "10.0.1.40"), "unknown host"),
        (
            Command::Register(InstanceSpec {
                secondary_ips: vec![ip("10.0.1.41"), ip("10.0.1.10")],
                ..spec("x", "red-a", "host-a", "10.0.1.40")
            }),
            "already used in VPC red",
        ),
        (Command::Deregister { instance: "ghost".into() }, "unknown instance"),
        (Command::Move { instance: "red-1".into(), host: "host-a".into() }, "already on host"),
        (associate("203.0.113.10", "yellow-1"), "already associated"),
        (associate("203.0.113.11", "red-1"), "already has Elastic IP"),
        (associate("198.18.0.1", "yellow-1"), "is the PA of host-a"),
        (Command::DisassociateElasticIp { ip: ip("203.0.113.99") }, "not associated"),
        (peer("red", "green"), "overlap"),
        (peer("yellow", "red"), "already peered"),
        (peer("red", "red"), "itself"),
        (peer("red", "purple"), "unknown vpc"),
        (Command::RemovePeering { a: "red".into(), b: "blue".into() }, "not peered"),
    ];
    for (command, message) in bad {
        let err: CommandError = service.execute(&command).unwrap_err();
        assert!(err.to_string().contains(message), "{command:?}: {err}");
        assert_eq!(service.topology(), &before, "{command:?} changed the model");
        assert_eq!(
            service.poll_transmit(T0),
            None,
            "{command:?} sent something"
        );
    }
    // A MAC already used in the VPC (red-1's, given explicitly) names the field, on any
    // host.
    let err = service
        .execute(&Command::Register(InstanceSpec {
            mac: Some("02:00:0a:00:01:0a".parse().unwrap()),
            ..spec("x", "red-a", "host-b", "10.0.1.40")
        }))
        .unwrap_err();
    assert!(matches!(err, CommandError::Invalid { field: "mac", .. }), "{err}");
    assert!(err.to_string().contains("already used in VPC red by instance red-1"), "{err}");
    assert_eq!(service.topology(), &before);
    // green-1's derived MAC equals red-1's (same address, overlapping VPCs): it may join
    // red-1 on host-a; a green instance may take blue-1's MAC beside it on host-b.
    service
        .execute(&Command::Move {
            instance: "green-1".into(),
            host: "host-a".into(),
        })
        .unwrap();
    service
        .execute(&Command::Register(InstanceSpec {
            mac: Some("02:00:0a:04:01:0a".parse().unwrap()),
            ..spec("green-2", "green-a", "host-b", "10.0.1.40")
        }))
        .unwrap();
    let t = service.topology();
    let (red1, green1) = (t.instance_by_name("red-1").unwrap(), t.instance_by_name("green-1").unwrap());
    assert_eq!((red1.host, red1.mac), (green1.host, green1.mac));
    let (blue1, green2) = (t.instance_by_name("blue-1").unwrap(), t.instance_by_name("green-2").unwrap());
    assert_eq!((blue1.host, blue1.mac), (green2.host, green2.mac));
}

#[test]
fn a_gap_is_detected_and_repaired_by_a_resync() {
    let (mut service, mut clients) = connected();
    let host_a = card(&service, "host-a");
    let client = clients.iter_mut().find(|c| c.card() == host_a).unwrap();
    while client.poll_update().is_some() {}
    service.execute(&register("red-2", "red-a", "host-b", "10.0.1.20")).unwrap();
    service.execute(&register("red-3", "red-a", "host-b", "10.0.1.21")).unwrap();
    let mut to_a: Vec<ToClient> = Vec::new();
    while let Some(m) = service.poll_transmit(T0) {
        if m.card() == host_a {
            to_a.push(m);
        }
    }
    assert_eq!(
        to_a.iter().map(ToClient::version).collect::<Vec<_>>(),
        [1, 2]
    );
    // Reordered: version 2 first. A gap: nothing applied, a resync requested.
    let t1 = Duration::from_millis(1);
    client.handle(to_a[1].clone(), t1);
    assert!(!client.is_synced());
    assert_eq!(client.poll_update(), None);
    let req = client.poll_request(t1).unwrap();
    assert_eq!(
        req,
        Request::Resync {
            card: host_a,
            have: Some(0)
        }
    );
    assert_eq!(
        client.poll_request(t1),
        None,
        "asks once per retry interval"
    );
    // The late version 1 is ignored while resyncing.
    client.handle(to_a[0].clone(), t1);
    assert_eq!(client.poll_update(), None);
    service.handle(req, t1);
    let snapshot = service.poll_transmit(t1).unwrap();
    assert!(matches!(snapshot, ToClient::Snapshot { version: 2, .. }));
    client.handle(snapshot, t1);
    assert!(client.is_synced());
    match client.poll_update() {
        Some(Update::Replace { version: 2, tables }) => {
            assert_eq!(*tables, Tables::build_for_card(service.topology(), host_a));
        }
        other => panic!("{other:?}"),
    }
    // Duplicates of old deltas are ignored.
    client.handle(to_a[1].clone(), t1);
    assert_eq!(client.poll_update(), None);
    assert_eq!(client.stats().gaps, 1);
    assert_eq!(client.stats().stale, 2);
}

#[test]
fn a_lost_last_delta_is_noticed_at_the_next_heartbeat() {
    let mut sim = Sim::new(world(), Link::PERFECT, 3);
    sim.settle(Duration::from_secs(1));
    sim.service.execute(&register("red-2", "red-a", "host-b", "10.0.1.20")).unwrap();
    // The network eats everything the service sends now.
    while sim.service.poll_transmit(sim.now).is_some() {}
    sim.step(Duration::from_millis(5));
    assert!(!sim.converged());
    // Heartbeats every 50 ms announce version 1; the clients resync.
    sim.settle(Duration::from_millis(200));
    let gaps: u64 = sim.nodes.iter().map(|n| n.client.stats().gaps).sum();
    assert_eq!(gaps, 3, "host-a, host-b and the edge missed it");
}

/// A random but valid-ish command for the world above.
fn random_command(rng: &mut Rng, n: u64) -> Command {
    let instances = [
        "red-1", "yellow-1", "blue-1", "blue-2", "green-1", "x-1", "x-2", "x-3",
    ];
    let hosts = ["host-a", "host-b", "host-c"];
    let subnets = [
        ("red-a", "10.0.1"),
        ("yellow-a", "10.1.1"),
        ("blue-a", "10.4.1"),
        ("green-a", "10.0.1"),
    ];
    let vpcs = ["red", "yellow", "blue", "green"];
    let pick = |rng: &mut Rng, xs: &[&str]| xs[rng.below(xs.len() as u64) as usize].to_string();
    match rng.below(7) {
        0 | 1 => {
            let (subnet, prefix) = subnets[rng.below(4) as usize];
            let mut s = spec(
                &pick(rng, &instances),
                subnet,
                &pick(rng, &hosts),
                &format!("{prefix}.{}", 20 + rng.below(8)),
            );
            s.mac = Some(mapping_client::MacAddr([
                2,
                1,
                0,
                0,
                (n >> 8) as u8,
                n as u8,
            ]));
            Command::Register(s)
        }
        2 => Command::Deregister {
            instance: pick(rng, &instances),
        },
        3 => Command::Move {
            instance: pick(rng, &instances),
            host: pick(rng, &hosts),
        },
        4 => Command::AssociateElasticIp {
            ip: ip(&format!("203.0.113.{}", 10 + rng.below(3))),
            instance: pick(rng, &instances),
        },
        5 => Command::DisassociateElasticIp {
            ip: ip(&format!("203.0.113.{}", 10 + rng.below(3))),
        },
        _ if rng.chance(500) => Command::AddPeering {
            a: pick(rng, &vpcs),
            b: pick(rng, &vpcs),
        },
        _ => Command::RemovePeering {
            a: pick(rng, &vpcs),
            b: pick(rng, &vpcs),
        },
    }
}

#[test]
fn lossy_reordering_duplicating_network_converges() {
    let link = Link {
        latency: Duration::from_millis(2),
        jitter: Duration::from_millis(6),
        loss_per_mille: 150,
        dup_per_mille: 50,
    };
    for seed in 0..4 {
        let mut sim = Sim::new(world(), link, 100 + seed);
        let mut rng = Rng(seed);
        let mut applied = 0;
        for n in 0..300 {
            if sim.service.execute(&random_command(&mut rng, n)).is_ok() {
                applied += 1;
            }
            sim.step(Duration::from_millis(rng.below(3)));
        }
        sim.settle(Duration::from_secs(5));
        assert!(applied > 50, "seed {seed}: only {applied} commands applied");
        let gaps: u64 = sim.nodes.iter().map(|n| n.client.stats().gaps).sum();
        let deltas: u64 = sim.nodes.iter().map(|n| n.client.stats().deltas).sum();
        assert!(
            gaps > 0 && deltas > 0,
            "seed {seed}: gaps {gaps}, deltas {deltas}: the test did not exercise resync"
        );
    }
}
