//! Property: any sequence of commands, applied to every card through the service's deltas
//! only, gives exactly the tables a rebuild from the final model gives — after every step,
//! for every card. Rejected commands change nothing.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use mapping_client::{
    CardId, Client, Command, InstanceSpec, MacAddr, Service, Tables, Topology, Update,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// Four hosts, two edges, four VPCs (v3 on v0's CIDR), a peering, an Elastic IP, a VPN.
const WORLD: &str = include_str!("data/deltas-world.toml");

const NAMES: [&str; 8] = ["i0", "i1", "i2", "n0", "n1", "n2", "n3", "n4"];
const HOSTS: [&str; 5] = ["h0", "h1", "h2", "h3", "e0"];
const SUBNETS: [(&str, [u8; 3]); 5] = [
    ("s0", [10, 0, 1]),
    ("s0b", [10, 0, 2]),
    ("s1", [10, 1, 1]),
    ("s2", [10, 2, 1]),
    ("s3", [10, 0, 1]),
];
const VPCS: [&str; 4] = ["v0", "v1", "v2", "v3"];

fn command() -> impl Strategy<Value = Command> {
    let name = (0..NAMES.len()).prop_map(|i| NAMES[i].to_string());
    let host = (0..HOSTS.len()).prop_map(|i| HOSTS[i].to_string());
    let vpc = (0..VPCS.len()).prop_map(|i| VPCS[i].to_string());
    let eip = (10u8..13).prop_map(|d| Ipv4Addr::new(203, 0, 113, d));
    let register = (
        name.clone(),
        0..SUBNETS.len(),
        host.clone(),
        8u8..14,
        proptest::option::of(8u8..14),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(name, s, host, last, second, explicit_mac, m)| {
            let (subnet, [a, b, c]) = SUBNETS[s];
            InstanceSpec {
                name,
                subnet: subnet.into(),
                host,
                ip: Ipv4Addr::new(a, b, c, last),
                secondary_ips: second
                    .map(|d| Ipv4Addr::new(a, b, c, d + 10))
                    .into_iter()
                    .collect(),
                mac: explicit_mac.then_some(MacAddr([2, 9, 0, 0, 0, m])),
                source_dest_check: m % 2 == 0,
            }
        })
        .prop_map(Command::Register);
    prop_oneof![
        3 => register,
        1 => name.clone().prop_map(|instance| Command::Deregister { instance }),
        2 => (name.clone(), host).prop_map(|(instance, host)| Command::Move { instance, host }),
        1 => (eip.clone(), name).prop_map(|(ip, instance)| Command::AssociateElasticIp { ip, instance }),
        1 => eip.prop_map(|ip| Command::DisassociateElasticIp { ip }),
        2 => (vpc.clone(), vpc.clone()).prop_map(|(a, b)| Command::AddPeering { a, b }),
        1 => (vpc.clone(), vpc).prop_map(|(a, b)| Command::RemovePeering { a, b }),
    ]
}

/// Every card connected, each with a replica built only from what its client hands out.
struct World {
    service: Service,
    clients: Vec<(Client, Tables)>,
}

const T: Duration = Duration::ZERO;

impl World {
    fn new() -> World {
        let mut service = Service::new(Topology::from_str(WORLD, "world.toml").unwrap());
        let mut clients: Vec<(Client, Tables)> = service
            .topology()
            .cards()
            .map(|c| (Client::new(c), Tables::default()))
            .collect();
        for (c, _) in &mut clients {
            let req = c.poll_request(T).unwrap();
            service.handle(req, T);
        }
        let mut w = World { service, clients };
        w.deliver();
        w
    }

    fn deliver(&mut self) {
        while let Some(msg) = self.service.poll_transmit(T) {
            let (c, _) = self
                .clients
                .iter_mut()
                .find(|(c, _)| c.card() == msg.card())
                .unwrap();
            c.handle(msg, T);
        }
        for (c, tables) in &mut self.clients {
            while let Some(u) = c.poll_update() {
                match u {
                    Update::Replace { tables: t, .. } => *tables = *t,
                    Update::Apply { ops, .. } => ops.iter().for_each(|op| tables.apply(op)),
                }
            }
        }
    }

    fn check(&self, step: usize) -> Result<(), TestCaseError> {
        for (c, tables) in &self.clients {
            let card: CardId = c.card();
            prop_assert!(c.is_synced());
            prop_assert_eq!(c.stats().gaps, 0);
            prop_assert_eq!(c.stats().snapshots, 1, "only the first sync is a snapshot");
            let rebuilt = Tables::build_for_card(self.service.topology(), card);
            prop_assert!(
                *tables == rebuilt,
                "step {}: {:?} differs from a rebuild",
                step,
                card
            );
            // The index of VPC CIDRs, kept by the deltas, answers as a scan of the VPCs.
            let probes: Vec<Ipv4Addr> = (0..3u8)
                .flat_map(|b| [Ipv4Addr::new(10, b, 1, 10), Ipv4Addr::new(10, b, 2, 1), Ipv4Addr::new(10, b, 9, 9)])
                .chain([Ipv4Addr::new(8, 8, 8, 8)])
                .collect();
            common::check_cidr_index(tables, &probes, &[100, 101, 102, 103]);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn deltas_equal_rebuild(commands in proptest::collection::vec(command(), 1..50)) {
        let mut w = World::new();
        w.check(0)?;
        for (step, cmd) in commands.iter().enumerate() {
            let before = w.service.topology().clone();
            match w.service.execute(cmd) {
                Ok(()) => {}
                Err(_) => prop_assert!(w.service.topology() == &before, "a rejected command changed the model"),
            }
            w.deliver();
            w.check(step + 1)?;
        }
    }
}

#[test]
fn some_commands_are_accepted_and_some_rejected() {
    // Guards the generator: the property above is only as good as the mix it sees.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..20 {
        let mut w = World::new();
        for _ in 0..40 {
            let cmd = command().new_tree(&mut runner).unwrap().current();
            match w.service.execute(&cmd) {
                Ok(()) => ok += 1,
                Err(_) => err += 1,
            }
            w.deliver();
        }
    }
    assert!(ok > 200 && err > 100, "accepted {ok}, rejected {err}");
}
