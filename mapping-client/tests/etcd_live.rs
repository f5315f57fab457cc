//! The card watchers against a real etcd (Debian's 3.4, started and stopped by the test):
//! they follow `ctl` changes, keep their tables while etcd is gone (fail-static) and list
//! everything again when it is back; with `resume_after_error`, a cut connection resumes
//! the watches, and a revision compacted meanwhile means listing everything again; through
//! an `etcd grpc-proxy` (which merges the cards' identical watches) they follow changes
//! too. Two changes checked against the same revision:
//! the second is a conflict and changes nothing.
#![cfg(feature = "etcd")]

mod common;

use std::sync::mpsc::{channel, Receiver};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::commands::{command, WORLD};
use mapping_client::etcd::layout;
use mapping_client::etcd::store::guarded_change;
use mapping_client::etcd::testing::{GrpcProxy, Proxy, TestEtcd};
use mapping_client::etcd::watch::{CardSpec, Note, WatchConfig, WatchCounters, Watcher};
use mapping_client::etcd::Store;
use mapping_client::{Command, Tables, Topology};
use proptest::strategy::{Strategy, ValueTree};

struct Card {
    name: String,
    notes: Receiver<Note>,
    counters: Arc<WatchCounters>,
    tables: Tables,
    lost: usize,
    synced: usize,
}

impl Card {
    fn drain(&mut self) {
        while let Ok(n) = self.notes.try_recv() {
            match n {
                Note::Updates(us) => {
                    us.into_iter().for_each(|u| u.apply_to(&mut self.tables));
                }
                Note::Synced { .. } => self.synced += 1,
                Note::Lost { .. } => self.lost += 1,
            }
        }
    }
}

fn watch(url: &str, world: &Topology, resume_after_error: bool) -> (Watcher, Vec<Card>) {
    let mut specs = Vec::new();
    let mut cards = Vec::new();
    for c in world.cards() {
        let name = world.card_name(c).unwrap().to_string();
        let (tx, rx) = channel();
        let counters = Arc::new(WatchCounters::default());
        specs.push(CardSpec { name: name.clone(), notes: tx, counters: counters.clone() });
        cards.push(Card { name, notes: rx, counters, tables: Tables::default(), lost: 0, synced: 0 });
    }
    let config = WatchConfig {
        url: url.to_string(),
        prefix: layout::PREFIX.to_string(),
        dataplane: layout::DUMP_DATAPLANE.to_string(),
        cpu: None,
        connections: 2,
        resume_after_error,
    };
    (Watcher::start(config, specs).unwrap(), cards)
}

/// Waits until every card's tables are the rebuild of the world in etcd.
fn converge(cards: &mut [Card], store: &Store, what: &str) {
    let (world, _) = store.read_world(layout::DUMP_DATAPLANE).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut behind = Vec::new();
        for c in cards.iter_mut() {
            c.drain();
            let card = world.card_by_name(&c.name).unwrap();
            if c.tables != Tables::build_for_card(&world, card) {
                behind.push(c.name.clone());
            }
        }
        if behind.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {behind:?} did not converge");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn accepted_commands(world: &Topology, n: usize, seed: u64) -> Vec<Command> {
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        Default::default(),
        proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[seed as u8; 32]),
    );
    let mut service = mapping_client::Service::new(world.clone());
    let mut out = Vec::new();
    while out.len() < n {
        let cmd = command().new_tree(&mut runner).unwrap().current();
        if service.execute(&cmd).is_ok() {
            out.push(cmd);
        }
    }
    out
}

/// 30 accepted changes (drawn with `seed`) through `ctl`'s path; the cards converge after
/// every 5th and after the last.
fn follow(cards: &mut [Card], store: &Store, world: &Topology, seed: u64, how: &str) {
    for (i, cmd) in accepted_commands(world, 30, seed).iter().enumerate() {
        store.execute(cmd).unwrap();
        if i % 5 == 4 {
            converge(cards, store, &format!("after {} changes{how}", i + 1));
        }
    }
    converge(cards, store, &format!("after the changes{how}"));
}

/// A private etcd holding the small world.
fn loaded() -> (TestEtcd, Topology, Store) {
    let etcd = TestEtcd::start().unwrap();
    let world = Topology::from_str(WORLD, "world.toml").unwrap();
    let store = Store::connect(&etcd.url()).unwrap();
    store.load(&world, false).unwrap();
    (etcd, world, store)
}

#[test]
fn watchers_follow_changes_fail_static_and_resync() {
    let (mut etcd, world, store) = loaded();
    let (mut watcher, mut cards) = watch(&etcd.url(), &world, false);
    converge(&mut cards, &store, "first snapshot");
    follow(&mut cards, &store, &world, 1, "");
    let count = |f: fn(&WatchCounters) -> &std::sync::atomic::AtomicU64| -> u64 {
        cards.iter().map(|c| f(&c.counters).load(Ordering::Relaxed)).sum()
    };
    let (held, all, foreign) = (count(|c| &c.events_held), count(|c| &c.events), count(|c| &c.events_foreign));
    assert!(held > 0 && foreign == 0, "no card hears of a VPC it never held ({foreign}; {held} of {all} held)");
    assert!(held * 5 >= all * 4, "few events about VPCs just dropped ({held} of {all})");

    // etcd stops: every card says so, keeps its tables, and catches up when it is back.
    let before: Vec<Tables> = cards.iter().map(|c| c.tables.clone()).collect();
    etcd.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cards.iter_mut().any(|c| {
        c.drain();
        c.lost == 0
    }) {
        assert!(Instant::now() < deadline, "the cards did not notice etcd stopping");
        std::thread::sleep(Duration::from_millis(20));
    }
    for (c, t) in cards.iter().zip(&before) {
        assert!(c.tables == *t, "{} kept its tables", c.name);
    }
    etcd.resume().unwrap();
    let store = Store::connect(&etcd.url()).unwrap();
    for cmd in accepted_commands(&store.read_world(layout::DUMP_DATAPLANE).unwrap().0, 5, 2) {
        store.execute(&cmd).unwrap();
    }
    converge(&mut cards, &store, "after etcd came back");
    for c in &cards {
        assert!(c.counters.resyncs.load(Ordering::Relaxed) >= 1, "{} listed everything again", c.name);
    }
    watcher.stop();
}

#[test]
fn watchers_behind_a_grpc_proxy_follow_changes() {
    let (etcd, world, store) = loaded();
    let proxy = GrpcProxy::start(&etcd.url()).unwrap();
    let pid = proxy.pid().unwrap();
    // Two watchers for every card: each VPC's prefix is watched by several streams, which
    // the proxy merges into one watch on etcd (and confirms out of order).
    let (mut w1, mut cards) = watch(&proxy.url(), &world, false);
    let (mut w2, more) = watch(&proxy.url(), &world, false);
    cards.extend(more);
    converge(&mut cards, &store, "first snapshot through the proxy");
    follow(&mut cards, &store, &world, 5, " through the proxy");
    for c in &cards {
        assert_eq!((c.lost, c.counters.resyncs.load(Ordering::Relaxed)), (0, 0), "{}: no watch error, no resync", c.name);
    }
    w1.stop();
    w2.stop();
    drop(proxy);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the proxy stopped when dropped");
}

#[test]
fn resumed_watches_list_again_when_their_revision_was_compacted() {
    let (etcd, world, store) = loaded();
    let proxy = Proxy::start(&etcd.url()).unwrap();
    let (mut watcher, mut cards) = watch(&proxy.url(), &world, true);
    converge(&mut cards, &store, "first snapshot");
    let cut = |cards: &mut [Card]| {
        proxy.set_down(true);
        let deadline = Instant::now() + Duration::from_secs(10);
        let lost: Vec<usize> = cards.iter().map(|c| c.lost).collect();
        while cards.iter_mut().zip(&lost).any(|(c, l)| {
            c.drain();
            c.lost == *l
        }) {
            assert!(Instant::now() < deadline, "the cards did not notice the cut");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // A cut without compaction: the watches resume where they were, nothing is listed.
    cut(&mut cards);
    for cmd in accepted_commands(&world, 5, 4) {
        store.execute(&cmd).unwrap();
    }
    proxy.set_down(false);
    converge(&mut cards, &store, "after a cut");
    for c in &cards {
        assert_eq!(c.counters.resyncs.load(Ordering::Relaxed), 0, "{} resumed", c.name);
    }

    // The network to etcd fails while changes go on and the history is compacted: the
    // revision to resume from is gone, so each card lists everything again.
    cut(&mut cards);
    for cmd in accepted_commands(&store.read_world(layout::DUMP_DATAPLANE).unwrap().0, 10, 3) {
        store.execute(&cmd).unwrap();
    }
    store.compact(store.revision().unwrap()).unwrap();
    proxy.set_down(false);
    converge(&mut cards, &store, "after the compaction");
    for c in &cards {
        assert!(c.counters.compacted.load(Ordering::Relaxed) >= 1, "{} saw the compaction", c.name);
        assert!(c.counters.resyncs.load(Ordering::Relaxed) >= 1, "{} resynced", c.name);
    }
    watcher.stop();
}

#[test]
fn a_change_checked_against_an_old_revision_is_a_conflict() {
    let (_etcd, _world, store) = loaded();
    let (topo, snap) = store.read_world(layout::DUMP_DATAPLANE).unwrap();
    // Two moves of different instances of one VPC, both checked against `snap`.
    let first = Command::Move { instance: "i0".into(), host: "h3".into() };
    let second = Command::Register(mapping_client::InstanceSpec {
        name: "n9".into(),
        subnet: "s0".into(),
        host: "h2".into(),
        ip: "10.0.1.99".parse().unwrap(),
        secondary_ips: vec![],
        mac: None,
        source_dest_check: true,
    });
    let t1 = guarded_change(store.prefix(), topo.clone(), &snap, &first).unwrap();
    let t2 = guarded_change(store.prefix(), topo, &snap, &second).unwrap();
    assert!(store.commit(t1).unwrap());
    let rev = store.revision().unwrap();
    assert!(!store.commit(t2).unwrap(), "checked against a VPC that changed since");
    assert_eq!(store.revision().unwrap(), rev, "nothing written");
    let (after, snap2) = store.read_world(layout::DUMP_DATAPLANE).unwrap();
    assert!(after.instance_by_name("n9").is_none());
    assert_eq!(snap2.records, layout::records_of(&after).unwrap());
    // Checked again, it goes through.
    store.execute(&second).unwrap();
}

/// An instance of `subnet` on `host` at `ip`, for the guard tests.
fn register(name: &str, subnet: &str, host: &str, ip: &str) -> Command {
    Command::Register(mapping_client::InstanceSpec {
        name: name.into(),
        subnet: subnet.into(),
        host: host.into(),
        ip: ip.parse().unwrap(),
        secondary_ips: vec![],
        mac: None,
        source_dest_check: true,
    })
}

/// A change is guarded by one key per VPC it touches (`ver/VPC`, which every change to
/// the VPC puts), not by a range compare over the VPC's records: checked at revision R, it
/// is a conflict once another change to one of its VPCs committed after R (an instance
/// written, one deleted, a peering written from the other VPC's side, an Elastic IP), and
/// goes through when only other VPCs changed. A load writes no guard key (absent: mod
/// revision 0), a world without them (an older build's) takes changes, and readers of the
/// world leave them out.
#[test]
fn one_guard_key_per_vpc_stands_for_its_records() {
    let (_etcd, world, store) = loaded();
    let dp = layout::DUMP_DATAPLANE;
    assert!(store.list_raw(layout::GUARDS).unwrap().is_empty(), "a load writes no guard key");
    // Checks `checked` at the current revision, commits `other`, then tries `checked`:
    // whether it went through (when not, nothing was written).
    let race = |checked: &Command, other: &Command| -> bool {
        let (topo, snap) = store.read_world(dp).unwrap();
        let txn = guarded_change(store.prefix(), topo, &snap, checked).unwrap();
        let rev = store.execute(other).unwrap();
        assert!(rev > snap.revision);
        let ok = store.commit(txn).unwrap();
        if !ok {
            assert_eq!(store.revision().unwrap(), rev, "a conflict writes nothing");
        }
        ok
    };
    // The first change of the world goes through on absent guards, and puts its VPC's.
    let rev = store.execute(&register("n0", "s0", "h2", "10.0.1.20")).unwrap();
    let guards = store.list_raw(layout::GUARDS).unwrap();
    assert_eq!(guards.len(), 1, "{guards:?}");
    assert_eq!((guards[0].key.as_str(), guards[0].value.as_str(), guards[0].mod_revision), ("ver/v0", "\"v0\"", rev));

    // Another instance of the same VPC written meanwhile: a conflict.
    assert!(!race(&Command::Move { instance: "i0".into(), host: "h3".into() }, &register("n1", "s0b", "h1", "10.0.2.20")));
    // One deleted (the range compare of older builds did not see a deletion).
    assert!(!race(&Command::Move { instance: "i0".into(), host: "h3".into() }, &Command::Deregister { instance: "n1".into() }));
    // A peering written from the other VPC's side (v2 names v0).
    assert!(!race(&register("n2", "s0", "h1", "10.0.1.21"), &Command::AddPeering { a: "v2".into(), b: "v0".into() }));
    // An Elastic IP of the VPC.
    assert!(!race(&register("n2", "s0", "h1", "10.0.1.21"), &Command::DisassociateElasticIp { ip: "203.0.113.10".parse().unwrap() }));
    assert!(!race(
        &Command::Move { instance: "n0".into(), host: "h3".into() },
        &Command::AssociateElasticIp { ip: "203.0.113.11".parse().unwrap(), instance: "i0".into() }
    ));
    // A peering guards both its VPCs: one checked from v1's side sees a change of v2.
    assert!(!race(&Command::AddPeering { a: "v1".into(), b: "v2".into() }, &register("n3", "s2", "h0", "10.2.1.30")));
    // Other VPCs changed meanwhile: it goes through.
    assert!(race(&Command::Move { instance: "i1".into(), host: "h2".into() }, &Command::Move { instance: "i0".into(), host: "h1".into() }));
    assert!(race(&register("n4", "s2", "h3", "10.2.1.40"), &Command::Move { instance: "i1".into(), host: "h0".into() }));

    // One guard per VPC ever changed (v3 never was). Readers leave them out: the
    // snapshot is exactly the records of the world it reads back as.
    let keys: Vec<String> = store.list_raw(layout::GUARDS).unwrap().into_iter().map(|l| l.key).collect();
    assert_eq!(keys, ["ver/v0", "ver/v1", "ver/v2"]);
    let (after, snap) = store.read_world(dp).unwrap();
    assert!(!snap.records.keys().any(|k| k.starts_with(layout::GUARDS)), "no guard key among the records");
    assert_eq!(snap.records, layout::records_of(&after).unwrap());

    // A world without guard keys (loaded and changed by an older build): changes go
    // through, and guard again.
    store.delete_raw_prefix(layout::GUARDS).unwrap();
    assert!(store.list_raw(layout::GUARDS).unwrap().is_empty());
    assert!(race(&Command::Move { instance: "i2".into(), host: "h0".into() }, &Command::Move { instance: "i0".into(), host: "h2".into() }));
    assert!(!race(&Command::Move { instance: "i0".into(), host: "h0".into() }, &register("n5", "s0", "h1", "10.0.1.50")));

    // A load with replace wipes them with the rest.
    assert!(!store.list_raw(layout::GUARDS).unwrap().is_empty());
    store.load(&world, true).unwrap();
    assert!(store.list_raw(layout::GUARDS).unwrap().is_empty(), "--replace deletes the guard keys");
    assert_eq!(store.snapshot().unwrap().records, layout::records_of(&world).unwrap());
}

/// `mapping load` writes the static records a second time as a static snapshot (a few
/// chunks), which the cards read instead of listing the static prefixes; `Store::snapshot`
/// (ctl, dump) leaves it out. An inconsistent snapshot is not taken (the card keeps
/// retrying, synced on nothing); a world without one (loaded by an older build) is listed
/// prefix by prefix.
#[test]
fn cards_read_the_static_snapshot_and_list_the_prefixes_without_one() {
    let (etcd, world, store) = loaded();
    let chunks = store.list_raw(layout::STATICS).unwrap();
    assert!(!chunks.is_empty());
    let statics = layout::statics_from_chunks(chunks.iter().map(|l| (l.key.as_str(), l.value.as_str()))).unwrap().unwrap();
    let records = layout::records_of(&world).unwrap();
    let want: Vec<(String, String)> =
        records.iter().filter(|(k, _)| k.as_str() != layout::WORLD && layout::is_static_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    assert!(want.len() > 5);
    assert_eq!(statics, want);
    assert_eq!(store.snapshot().unwrap().records, records);

    let (mut watcher, mut cards) = watch(&etcd.url(), &world, false);
    converge(&mut cards, &store, "from the static snapshot");
    follow(&mut cards, &store, &world, 11, " (static snapshot)");
    watcher.stop();

    // A chunk of another load: inconsistent, nobody syncs.
    let n = chunks.len();
    store.put_raw(&format!("{}{n:05}", layout::STATICS), &format!(r#"{{"chunk":{n},"chunks":{},"records":[]}}"#, n + 1)).unwrap();
    let (mut watcher, mut cards) = watch(&etcd.url(), &world, false);
    std::thread::sleep(Duration::from_millis(1500));
    for c in cards.iter_mut() {
        c.drain();
        assert_eq!(c.synced, 0, "{} synced on an inconsistent static snapshot", c.name);
        assert!(c.lost > 0, "{}", c.name);
        assert_eq!(c.tables, Tables::default(), "{}", c.name);
    }
    // No static snapshot at all: the cards list the static prefixes (within the backoff).
    store.delete_raw_prefix(layout::STATICS).unwrap();
    assert!(store.list_raw(layout::STATICS).unwrap().is_empty());
    converge(&mut cards, &store, "without a static snapshot");
    for c in cards.iter_mut() {
        assert!(c.synced > 0, "{}", c.name);
    }
    watcher.stop();
}

/// `store::list_prefixes` (a few prefixes per read-only transaction, each cut at
/// `KEYS_PER_PREFIX_IN_TXN` keys and continued page by page) lists what `store::list`
/// lists for each prefix at the same revision: more prefixes than one transaction holds,
/// a prefix with more keys than one Range of it, an empty prefix, and changes after the
/// revision (which neither may see).
#[test]
fn listing_prefixes_in_transactions_equals_listing_each() {
    use mapping_client::etcd::store::{self, KEYS_PER_PREFIX_IN_TXN, PREFIXES_PER_TXN};
    let etcd = TestEtcd::start().expect("etcd starts");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = etcd_client::Client::connect([etcd.url()], None).await.unwrap();
        let big = KEYS_PER_PREFIX_IN_TXN as usize * 2 + 37;
        let rels: Vec<String> = (0..PREFIXES_PER_TXN * 2 + 3).map(|i| format!("in/v{i}/")).collect();
        for (i, rel) in rels.iter().enumerate() {
            let n = match i {
                3 => 0,
                5 => big,
                _ => i * 7 + 1,
            };
            for k in 0..n {
                c.put(format!("/t/{rel}ip/{k:08x}"), format!("{{\"n\":{k},\"v\":{i}}}"), None).await.unwrap();
            }
        }
        // A key at the end of a prefix's range (`in/v1/` ends before `in/v10/`).
        c.put("/t/in/v1/\u{7f}", "after", None).await.unwrap();
        let rev = c.get("/t/", None).await.unwrap().header().unwrap().revision();
        // Changes after the revision: neither listing may see them.
        c.put("/t/in/v5/ip/00000000", "changed", None).await.unwrap();
        c.put("/t/in/v3/ip/00000001", "new", None).await.unwrap();
        c.delete("/t/in/v0/ip/00000000", None).await.unwrap();
        let together = store::list_prefixes(&mut c, "/t/", &rels, rev).await.unwrap();
        assert_eq!(together.len(), rels.len());
        let mut total = 0;
        for (rel, got) in rels.iter().zip(&together) {
            let (want, at) = store::list(&mut c, "/t/", rel, Some(rev)).await.unwrap();
            assert_eq!(at, rev);
            let pairs = |l: &[store::Listed]| l.iter().map(|l| (l.key.clone(), l.value.clone(), l.mod_revision)).collect::<Vec<_>>();
            assert_eq!(pairs(got), pairs(&want), "{rel}");
            total += got.len();
        }
        assert_eq!(together[5].len(), big);
        assert!(together[3].is_empty());
        assert!(together[1].iter().any(|l| l.value == "after"));
        assert!(total > big, "{total}");
        // A revision compacted away is an error, not a short listing.
        c.compact(rev + 2, None).await.unwrap();
        assert!(store::list_prefixes(&mut c, "/t/", &rels, rev).await.is_err());
    });
}
