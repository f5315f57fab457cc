//! The etcd watchers' own CPU per change, without etcd, gRPC or threads: the world of
//! `vpcemu-bench mapping-convergence` (VPCs of 100 instances on 20 consecutive hosts, every
//! even VPC peered with the next), a card watcher per host synced from the world's
//! records, then changes of the same mix (moves 50%, registrations 20%,
//! deregistrations 20%, peerings removed or added 10%) written as `ctl --etcd` writes
//! them; each host gets the events of the prefixes it watches and lists what enters its
//! view from the records. Prints the time spent in the watchers (events, reconcile,
//! listings, updates out, applied to tables, and the delivery itself) as this thread's
//! CPU time per change, for the fastest of RUNS runs (one thread doing nothing else:
//! comparable across builds on a busy machine), and per kind of change (move, register,
//! deregister, peering add, peering remove) for every run. The hosts' tables are checked
//! against a rebuild at the end.
//!
//! `cargo run --release -p mapping-client --features etcd --example watch_replay -- HOSTS
//! INSTANCES CHANGES RUNS` (defaults 200 20000 1000 5).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use mapping_client::etcd::layout::{self, Records};
use mapping_client::etcd::store::{change_records, Listed};
use mapping_client::etcd::watch::{CardWatch, Event, STATIC_PREFIXES};
use mapping_client::{Command, InstanceSpec, Service, Tables, Topology, VpcId};

const DATAPLANE: &str = "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 64\nhugepages = \"off\"\n";

fn world(hosts: usize, instances: usize) -> String {
    let mut t = String::from(DATAPLANE);
    let base = |v: usize| u32::from(Ipv4Addr::new(10, 0, 0, 0)) + v as u32 * 512;
    (0..hosts).for_each(|h| t += &format!("[[host]]\nname = \"h{h}\"\npa = \"198.18.{}.{}\"\n", h / 250, h % 250 + 1));
    let vpcs = instances.div_ceil(100).max(1);
    for v in 0..vpcs {
        let net = Ipv4Addr::from(base(v));
        t += &format!("[[vpc]]\nname = \"v{v}\"\nvni = {}\ncidr = \"{net}/23\"\n", 1000 + v);
        t += &format!("[[subnet]]\nname = \"s{v}\"\nvpc = \"v{v}\"\ncidr = \"{net}/24\"\n");
        if v % 2 == 1 {
            t += &format!("[[peering]]\nvpcs = [\"v{}\", \"v{v}\"]\n", v - 1);
        }
    }
    for j in 0..instances {
        let ip = Ipv4Addr::from(base(j / 100) + 4 + (j % 100) as u32);
        let host = ((j / 100) * 13 + j % 20) % hosts;
        t += &format!("[[instance]]\nname = \"i{j}\"\nsubnet = \"s{}\"\nhost = \"h{host}\"\nip = \"{ip}\"\n", j / 100);
    }
    t
}

/// splitmix64.
fn rand(state: &mut u64) -> usize {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as usize
}

fn change(t: &Topology, hosts: usize, rng: &mut u64, serial: usize) -> Option<Command> {
    let vpcs = t.vpcs().len();
    let roll = rand(rng) % 100;
    if roll < 10 && vpcs >= 2 {
        let a = rand(rng) % (vpcs / 2) * 2;
        let (na, nb) = (format!("v{a}"), format!("v{}", a + 1));
        return Some(if t.peered(VpcId(a as u32), VpcId(a as u32 + 1)) {
            Command::RemovePeering { a: na, b: nb }
        } else {
            Command::AddPeering { a: na, b: nb }
        });
    }
    if roll < 30 {
        let v = rand(rng) % vpcs;
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + v as u32 * 512 + 110 + (rand(rng) % 140) as u32);
        return Some(Command::Register(InstanceSpec {
            name: format!("n{serial}"),
            subnet: format!("s{v}"),
            host: format!("h{}", (v * 13 + rand(rng) % 20) % hosts),
            ip,
            secondary_ips: Vec::new(),
            mac: None,
            source_dest_check: true,
        }));
    }
    let inst = t.instances().get(rand(rng) % t.instances().len().max(1))?;
    if roll < 50 {
        return Some(Command::Deregister { instance: inst.name.clone() });
    }
    let to = (inst.vpc.0 as usize * 13 + rand(rng) % 20) % hosts;
    Some(Command::Move { instance: inst.name.clone(), host: format!("h{to}") })
}

/// The kinds of change, in the order [`kind_of`] numbers them.
const KINDS: [&str; 6] = ["move", "register", "deregister", "peering add", "peering remove", "other"];

fn kind_of(cmd: &Command) -> usize {
    match cmd {
        Command::Move { .. } => 0,
        Command::Register(_) => 1,
        Command::Deregister { .. } => 2,
        Command::AddPeering { .. } => 3,
        Command::RemovePeering { .. } => 4,
        _ => 5,
    }
}

fn listing(records: &Records, prefix: &str) -> Vec<Listed> {
    let under = records.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix));
    under.map(|(k, v)| Listed { key: k.clone(), value: v.clone(), mod_revision: 1 }).collect()
}

struct Host {
    watch: CardWatch,
    tables: Tables,
}

/// CPU time this thread has run (schedstat; exact over long spans).
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(s.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0))
}

/// The CPU time of delivering `changes` changes to every host (the watchers' work, their
/// updates applied to tables, and the delivery itself), how many changes, and the CPU
/// time of every host's first sync (listings read into models, the tables built).
fn run(hosts: usize, instances: usize, changes: usize) -> (Duration, usize, Duration) {
    let topo = Topology::from_str(&world(hosts, instances), "world").expect("the world loads");
    let initial = layout::records_of(&topo).expect("records");
    // The changes first, each as the events its transaction makes: not timed.
    let mut service = Service::without_clients(topo);
    let mut rng = 7u64;
    let mut all: Vec<(usize, Vec<Event>)> = Vec::new();
    for serial in 0..changes * 2 {
        if all.len() == changes {
            break;
        }
        let Some(cmd) = change(service.topology(), hosts, &mut rng, serial) else { continue };
        let kind = kind_of(&cmd);
        let Ok((puts, deletes)) = change_records(&mut service, &cmd) else { continue };
        let mut events: Vec<Event> = puts.into_iter().map(|(key, value)| Event::Put { key, value }).collect();
        events.extend(deletes.into_iter().map(|key| Event::Delete { key }));
        all.push((kind, events));
    }
    let mut records = initial;
    let statics: Vec<Listed> = STATIC_PREFIXES.iter().flat_map(|p| listing(&records, p)).collect();
    let sync0 = thread_cpu();
    let mut cards: Vec<Host> = (0..hosts)
        .map(|h| {
            let mut watch = CardWatch::new(&format!("h{h}"), DATAPLANE);
            let mut next = watch.begin(&statics).expect("a snapshot begins");
            while !next.is_empty() {
                next.iter().for_each(|p| watch.listed(p, &listing(&records, p)).expect("listed"));
                next = watch.missing();
            }
            watch.finish();
            let mut tables = Tables::default();
            watch.take_updates().into_iter().for_each(|u| u.apply_to(&mut tables));
            Host { watch, tables }
        })
        .collect();
    // Which VPCs each host holds (what it watches), refreshed when its view changes: the
    // delivery below then costs a lookup per host and prefix, not a walk over the host's
    // VPCs (that walk was most of this loop's time at 1000 hosts).
    let sync = thread_cpu().saturating_sub(sync0);
    let holding = |w: &CardWatch| -> HashSet<String> { w.held().map(str::to_string).collect() };
    let mut held: Vec<HashSet<String>> = cards.iter().map(|c| holding(&c.watch)).collect();
    // And the other way round: the hosts holding each VPC, so that a change is offered
    // only to the hosts etcd would send it to (as a host's own watches would), not to
    // every host (offering it to 1,000 hosts was about a fifth of this loop's samples
    // in a profile: work etcd does, not the watchers).
    let mut holders: HashMap<String, BTreeSet<usize>> = HashMap::new();
    for (h, vs) in held.iter().enumerate() {
        vs.iter().for_each(|v| {
            holders.entry(v.clone()).or_default().insert(h);
        });
    }
    let mut by_kind = [(0usize, Duration::ZERO); KINDS.len()];
    let cpu0 = thread_cpu();
    let mut last = cpu0;
    for (kind, events) in &all {
        // One watch response per prefix with events (`on/HOST/`, `in/VPC/`; the name and
        // Elastic IP claims are watched by nobody).
        let mut by_prefix: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for e in events {
            match e {
                Event::Put { key, value } => records.insert(key.clone(), value.clone()),
                Event::Delete { key } => records.remove(key),
            };
            let mut parts = e.key().splitn(3, '/');
            if let (Some(kind @ ("on" | "in")), Some(name)) = (parts.next(), parts.next()) {
                by_prefix.entry(format!("{kind}/{name}/")).or_default().push(e.clone());
            }
        }
        // The hosts a watch of theirs gets the change to: the holders of its VPCs, the
        // hosts of the placement indexes it writes.
        let mut to: BTreeSet<usize> = BTreeSet::new();
        for p in by_prefix.keys() {
            if let Some(v) = p.strip_prefix("in/").and_then(|v| v.strip_suffix('/')) {
                to.extend(holders.get(v).into_iter().flatten());
            } else if let Some(h) = p.strip_prefix("on/h").and_then(|h| h.strip_suffix('/')).and_then(|h| h.parse::<usize>().ok()) {
                to.insert(h);
            }
        }
        for h in to {
            let Some(host) = cards.get_mut(h) else { continue };
            let index = format!("on/h{h}/");
            for (p, evs) in &by_prefix {
                let vpc = p.strip_prefix("in/").and_then(|v| v.strip_suffix('/'));
                let watched = *p == index || vpc.is_some_and(|v| held[h].contains(v));
                if !watched {
                    continue;
                }
                host.watch.on_events(p, evs).expect("events apply");
                let mut changed = false;
                loop {
                    let (fetch, cancel) = host.watch.reconcile().expect("reconcile");
                    changed |= !fetch.is_empty() || !cancel.is_empty();
                    if fetch.is_empty() {
                        break;
                    }
                    for f in fetch {
                        host.watch.listed(&f, &listing(&records, &f)).expect("listed");
                    }
                }
                if changed {
                    let now = holding(&host.watch);
                    for v in held[h].difference(&now) {
                        if let Some(hs) = holders.get_mut(v) {
                            hs.remove(&h);
                        }
                    }
                    for v in now.difference(&held[h]) {
                        holders.entry(v.clone()).or_default().insert(h);
                    }
                    held[h] = now;
                }
                host.watch.take_updates().into_iter().for_each(|u| u.apply_to(&mut host.tables));
            }
        }
        // One read of the thread's CPU time per change (a read of schedstat, counted in
        // the total: a few microseconds).
        let now = thread_cpu();
        if let Some(k) = by_kind.get_mut(*kind) {
            k.0 += 1;
            k.1 += now.saturating_sub(last);
        }
        last = now;
    }
    let cpu = thread_cpu().saturating_sub(cpu0);
    for (i, (n, t)) in by_kind.iter().enumerate() {
        let per = t.as_secs_f64() * 1e6 / (*n).max(1) as f64;
        eprintln!("  {:<16} {n:>6} changes, {per:>8.0} us of CPU each", KINDS[i]);
    }
    for (h, host) in cards.iter().enumerate() {
        let rebuilt = Tables::build_for_card(service.topology(), mapping_client::CardId::Host(mapping_client::HostId(h as u32)));
        assert!(host.tables == rebuilt, "h{h}: the watched tables differ from a rebuild");
    }
    (cpu, all.len(), sync)
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let arg = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (hosts, instances, changes, runs) = (arg(0, 200), arg(1, 20000), arg(2, 1000), arg(3, 5));
    let mut best: Option<(Duration, usize)> = None;
    let mut best_sync: Option<Duration> = None;
    for _ in 0..runs.max(1) {
        let (cpu, n, sync) = run(hosts, instances, changes);
        eprintln!("run: {cpu:?} of CPU over {n} changes; first sync of every host {sync:?}");
        if best.is_none_or(|b| cpu < b.0) {
            best = Some((cpu, n));
        }
        best_sync = Some(best_sync.map_or(sync, |b| b.min(sync)));
    }
    if let Some((cpu, n)) = best {
        let per = cpu.as_secs_f64() * 1e6 / n.max(1) as f64;
        println!("hosts {hosts} instances {instances} changes {n}: {per:.0} us of CPU per change in the hosts' watchers (with their updates applied and delivered; fastest of {runs})");
    }
    if let Some(sync) = best_sync {
        let per = sync.as_secs_f64() * 1e6 / hosts.max(1) as f64;
        println!("first sync: {per:.0} us of CPU per host (listings read into models, tables built; fastest of {runs})");
    }
}
