//! The etcd watcher's state machine without etcd: a world's records, the events a change
//! makes (the records that differ), delivered only on the prefixes a card watches, in
//! either order across watches. Property: after every command, every card's tables built
//! only from its watcher's updates equal a rebuild of the card's tables from the whole
//! world; a host never receives a change of a VPC outside its view; a full resync after
//! missed changes (a compacted revision) gives the same tables.
#![cfg(feature = "etcd")]

mod common;

use std::collections::BTreeSet;

use common::commands::{command, WORLD};
use mapping_client::etcd::layout::{self, Records};
use mapping_client::etcd::store::Listed;
use mapping_client::etcd::watch::{CardWatch, Event, STATIC_PREFIXES};
use mapping_client::{CardId, Service, Tables, Topology};
use proptest::prelude::*;

const DATAPLANE: &str = "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 64\nhugepages = \"off\"\n";

fn list(records: &Records, rel: &str) -> Vec<Listed> {
    records
        .range(rel.to_string()..)
        .take_while(|(k, _)| k.starts_with(rel))
        .map(|(k, v)| Listed { key: k.clone(), value: v.clone(), mod_revision: 1 })
        .collect()
}

struct Card {
    watch: CardWatch,
    tables: Tables,
}

impl Card {
    fn apply(&mut self) {
        self.watch.take_updates().into_iter().for_each(|u| u.apply_to(&mut self.tables));
    }

    /// A full snapshot from `records`.
    fn sync(&mut self, records: &Records) {
        let statics: Vec<Listed> = STATIC_PREFIXES.iter().flat_map(|p| list(records, p)).collect();
        let mut next = self.watch.begin(&statics).unwrap();
        while !next.is_empty() {
            for p in &next {
                self.watch.listed(p, &list(records, p)).unwrap();
            }
            next = self.watch.missing();
        }
        self.watch.finish();
        self.apply();
    }

    /// Delivers the events of one change on the prefixes watched (in `order`), fetches
    /// what enters the view from `records`; a refusal is a full resync.
    fn deliver(&mut self, events: &[Event], records: &Records, index_first: bool) -> Result<(), String> {
        let mut watching = self.watch.watching();
        if !index_first {
            watching.reverse();
        }
        for p in watching {
            let mine: Vec<Event> = events.iter().filter(|e| e.key().starts_with(p.as_str())).cloned().collect();
            if mine.is_empty() || !self.watch.watching().contains(&p) {
                continue;
            }
            let step = self.watch.on_events(&p, &mine).and_then(|()| loop {
                let (fetch, _cancel) = self.watch.reconcile()?;
                if fetch.is_empty() {
                    break Ok(());
                }
                for f in fetch {
                    self.watch.listed(&f, &list(records, &f))?;
                }
            });
            if let Err(r) = step {
                self.sync(records);
                return Err(r.0);
            }
        }
        self.apply();
        Ok(())
    }
}

fn events(old: &Records, new: &Records) -> Vec<Event> {
    let (puts, deletes) = layout::diff(old, new);
    let mut out: Vec<Event> = puts.into_iter().map(|(key, value)| Event::Put { key, value }).collect();
    out.extend(deletes.into_iter().map(|key| Event::Delete { key }));
    out
}

fn setup() -> (Service, Records, Vec<Card>) {
    let service = Service::new(Topology::from_str(WORLD, "world.toml").unwrap());
    let records = layout::records_of(service.topology()).unwrap();
    let cards = service
        .topology()
        .cards()
        .map(|c| {
            let name = service.topology().card_name(c).unwrap().to_string();
            let mut card = Card { watch: CardWatch::new(&name, DATAPLANE), tables: Tables::default() };
            card.sync(&records);
            card
        })
        .collect();
    (service, records, cards)
}

fn check(service: &Service, cards: &[Card], step: usize) -> Result<(), TestCaseError> {
    for c in cards {
        let card = c.watch.card().unwrap();
        let rebuilt = Tables::build_for_card(service.topology(), card);
        prop_assert!(c.tables == rebuilt, "step {}: {:?} differs from a rebuild", step, card);
    }
    Ok(())
}

/// The VPC names in a host's view.
fn view(t: &Topology, card: CardId) -> BTreeSet<String> {
    let CardId::Host(h) = card else { return BTreeSet::new() };
    t.host_vpcs(h)
        .flat_map(|v| std::iter::once(v).chain(t.peers(v)))
        .filter_map(|v| t.vpc(v).map(|v| v.name.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn watched_changes_equal_rebuild(
        commands in proptest::collection::vec((command(), any::<bool>()), 1..40),
    ) {
        let (mut service, mut records, mut cards) = setup();
        check(&service, &cards, 0)?;
        for (step, (cmd, index_first)) in commands.iter().enumerate() {
            let before = service.topology().clone();
            if service.execute(cmd).is_err() {
                continue;
            }
            let new = layout::records_of(service.topology()).unwrap();
            let evs = events(&records, &new);
            // What ctl writes (the records of the VPCs the command touches) is exactly
            // what changed in the whole world's records.
            let mut shadow = Service::new(before.clone());
            let (puts, deletes) = mapping_client::etcd::store::change_records(&mut shadow, cmd).unwrap();
            prop_assert_eq!((puts, deletes), layout::diff(&records, &new), "step {}: {:?}", step, cmd);
            for c in &mut cards {
                let card = c.watch.card().unwrap();
                // What reaches a host is about a VPC in its view before or after.
                let seen: BTreeSet<String> = c.watch.held().map(str::to_string).collect();
                let allowed: BTreeSet<String> =
                    view(&before, card).union(&view(service.topology(), card)).cloned().collect();
                if matches!(card, CardId::Host(_)) {
                    prop_assert!(seen.is_subset(&allowed), "step {}: {:?} holds {:?}, view {:?}", step, card, seen, allowed);
                }
                let _ = c.deliver(&evs, &new, *index_first);
            }
            records = new;
            check(&service, &cards, step + 1)?;
            // A host holds exactly its view: a VPC comes with its first ENI there (and its
            // peers with it) and goes with its last.
            for c in &cards {
                let card = c.watch.card().unwrap();
                if matches!(card, CardId::Host(_)) {
                    let held: BTreeSet<String> = c.watch.held().map(str::to_string).collect();
                    prop_assert_eq!(&held, &view(service.topology(), card), "step {}: {:?}", step, card);
                }
            }
        }
    }
}

#[test]
fn a_resync_after_missed_changes_replaces_everything() {
    let (mut service, records, mut cards) = setup();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut applied = 0;
    while applied < 30 {
        use proptest::strategy::{Strategy, ValueTree};
        let cmd = command().new_tree(&mut runner).unwrap().current();
        if service.execute(&cmd).is_ok() {
            applied += 1;
        }
    }
    let now = layout::records_of(service.topology()).unwrap();
    assert_ne!(records, now);
    // Nothing was delivered (the watch's revision was compacted): list again.
    for c in &mut cards {
        c.sync(&now);
        let rebuilt = Tables::build_for_card(service.topology(), c.watch.card().unwrap());
        assert!(c.tables == rebuilt, "{} after a resync", c.watch.name());
    }
}

#[test]
fn a_host_holds_only_its_vpcs_and_their_peers() {
    let (service, _records, cards) = setup();
    for c in &cards {
        let card = c.watch.card().unwrap();
        let held: BTreeSet<String> = c.watch.held().map(str::to_string).collect();
        match card {
            CardId::Host(_) => assert_eq!(held, view(service.topology(), card), "{}", c.watch.name()),
            CardId::Edge(e) => {
                let t = service.topology();
                let served: BTreeSet<String> = t.edge_vpcs(e).filter_map(|v| t.vpc(v).map(|v| v.name.clone())).collect();
                assert_eq!(held, served);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A snapshot's instance records are read straight into their fields (no JSON tree):
    /// the same instances as through the tree, and a world read back from its records
    /// (`world_from_records`, which the cards' snapshots and ctl use) is the world, after
    /// any accepted commands; a record mutated into something else is refused or read as
    /// the tree reads it.
    #[test]
    fn records_read_without_a_json_tree_equal_the_tree(
        commands in proptest::collection::vec(command(), 1..30),
        cut in 0usize..200,
    ) {
        let (mut service, _, _) = setup();
        for cmd in &commands {
            let _ = service.execute(cmd);
        }
        let t = service.topology();
        let records = layout::records_of(t).unwrap();
        let mut n = 0;
        for (k, v) in records.iter().filter(|(k, _)| k.starts_with("in/") && k.contains("/ip/")) {
            let tree: serde_json::Value = serde_json::from_str(v).unwrap();
            prop_assert_eq!(layout::instance_from_record(t, v), layout::instance_from_json(t, &tree), "{}", k);
            // A damaged record: the same verdict both ways.
            let cut_v = &v[..cut.min(v.len())];
            let by_tree = serde_json::from_str::<serde_json::Value>(cut_v).map_err(|e| e.to_string()).and_then(|x| layout::instance_from_json(t, &x));
            prop_assert_eq!(layout::instance_from_record(t, cut_v).is_ok(), by_tree.is_ok(), "{} cut at {}", k, cut);
            n += 1;
        }
        prop_assert!(n > 0);
        let back = layout::world_from_records(&records, DATAPLANE).unwrap();
        prop_assert_eq!(layout::records_of(&back).unwrap(), records);
        let mut a: Vec<_> = back.instances().to_vec();
        let mut b: Vec<_> = t.instances().to_vec();
        a.sort_by_key(|i| i.eni);
        b.sort_by_key(|i| i.eni);
        prop_assert_eq!(a, b);
    }
}
