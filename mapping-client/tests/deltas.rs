//! Property: any sequence of commands, applied to every card through the service's deltas
//! only, gives exactly the tables a rebuild from the final model gives — after every step,
//! for every card. Rejected commands change nothing.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::commands::{command, WORLD};
use mapping_client::{CardId, Client, Service, Tables, Topology, Update};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

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
