//! `mapping-convergence`: how fast a change in the etcd-backed mapping service reaches
//! every host that holds the VPC it is about.
//!
//! A private etcd (Debian's 3.4) gets a world of `--instances` instances in VPCs of 100
//! (each VPC's instances on 20 consecutive hosts of `--hosts`, every even VPC peered with
//! the next one). Every host is simulated in this process by the real mapping client code
//! up to its tables: one `CardWatch` per host (the watcher `vpcemu run --etcd` runs, on
//! one thread, or `--watch-threads N` of them with the hosts dealt round robin, sharing 4
//! etcd connections), its updates applied to a `Tables` as a card's publisher applies
//! them. After every host's first snapshot (`initial_sync_*`), a driver
//! thread applies `--changes` changes at `--rate` per second (moves 50%, registrations
//! 20%, deregistrations 20%, peerings removed or added 10%), each one guarded transaction
//! as `vpcemu ctl --etcd` writes it; no instance or pair is changed again before its last
//! change is visible. A change is visible when every host that must hold it (the hosts
//! viewing the VPC afterwards; for a deregistration, before; for a peering, the hosts with
//! an instance in either VPC) has it in its tables; `visible_*` is from the transaction's
//! commit to then (`visible_by_kind`: the same per kind of change). Each host keeps its own
//! watches; with `--proxy` the hosts' connections go to an `etcd grpc-proxy` in front of
//! etcd (it merges identical watches into one), the load and the driver's transactions
//! still to etcd itself.
//!
//! First sync: with `--start-rate 0` (the default) every host starts at the same instant
//! (a cold start of the whole fleet: each lists the static records and its VPCs at once);
//! `cold_start_all_ms` is from that instant to the last host's first complete snapshot.
//! With `--start-rate R` the hosts start one after another, R per second (hosts booting
//! into a running fleet), and `cold_start_all_ms` is null. Either way
//! `initial_sync_p50_ms` / `initial_sync_p99_ms` / `initial_sync_max_ms` are over the
//! hosts, each timed from its own start to its first complete snapshot, and
//! `start_rate_hosts_per_s` says which start it was (0: all at once). CPU seconds
//! (`etcd_cpu_s`, `hosts_watch_cpu_s`, `hosts_apply_cpu_s`, `driver_cpu_s`, `proxy_cpu_s`)
//! are counted from the first change on; those of the first syncs, from the hosts' start
//! until every host has its first snapshot, are `initial_sync_etcd_cpu_s`,
//! `initial_sync_hosts_cpu_s` (the watcher threads and the applying thread) and
//! `initial_sync_proxy_cpu_s` (null without `--proxy`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mapping_client::etcd::store::{change_records, guarded_txn};
use mapping_client::etcd::testing::{GrpcProxy, TestEtcd};
use mapping_client::etcd::watch::{CardSpec, Note, WatchConfig, WatchCounters, Watcher};
use mapping_client::etcd::{layout, Store};
use mapping_client::{Command, InstanceSpec, Service, Tables, Topology, VpcId};
use serde_json::{json, Value};

/// What to run: simulated hosts, instances (in VPCs of 100), changes, changes per second,
/// and whether the hosts reach etcd through an `etcd grpc-proxy`.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    hosts: usize,
    instances: usize,
    changes: usize,
    rate: f64,
    proxy: bool,
    /// Hosts started per second; 0: all at once.
    start_rate: f64,
    /// Watcher threads the hosts are spread over (round robin).
    watch_threads: usize,
}

impl Setup {
    pub fn new(hosts: usize, instances: usize, changes: usize, rate: f64, proxy: bool, start_rate: f64, watch_threads: usize) -> Setup {
        Setup {
            hosts: hosts.max(1),
            instances: instances.max(1),
            changes,
            rate: rate.max(0.001),
            proxy,
            start_rate: start_rate.max(0.0),
            watch_threads: watch_threads.clamp(1, hosts.max(1)),
        }
    }

    /// How long after the first host the `i`th starts.
    fn start_of(&self, i: usize) -> Duration {
        self.pace() * i as u32
    }

    fn pace(&self) -> Duration {
        if self.start_rate > 0.0 {
            Duration::from_secs_f64(1.0 / self.start_rate)
        } else {
            Duration::ZERO
        }
    }
}

const PER_VPC: usize = 100;
const SPREAD: usize = 20;

fn vpc_base(v: usize) -> u32 {
    u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (v as u32) * 512
}

/// The world as a topology file.
fn world_text(s: &Setup) -> String {
    let vpcs = s.instances.div_ceil(PER_VPC).max(1);
    let mut t = String::from("[dataplane]\nlcores = \"0-1\"\nmemory_mb = 64\nhugepages = \"off\"\n");
    for h in 0..s.hosts {
        t += &format!("[[host]]\nname = \"h{h}\"\npa = \"198.18.{}.{}\"\n", h / 250, h % 250 + 1);
    }
    for v in 0..vpcs {
        let base = Ipv4Addr::from(vpc_base(v));
        t += &format!("[[vpc]]\nname = \"v{v}\"\nvni = {}\ncidr = \"{base}/23\"\n", 1000 + v);
        t += &format!("[[subnet]]\nname = \"s{v}\"\nvpc = \"v{v}\"\ncidr = \"{base}/24\"\n");
    }
    for j in 0..s.instances {
        let (v, k) = (j / PER_VPC, j % PER_VPC);
        let ip = Ipv4Addr::from(vpc_base(v) + 4 + k as u32);
        let host = (v * 13 + k % SPREAD) % s.hosts;
        t += &format!("[[instance]]\nname = \"i{j}\"\nsubnet = \"s{v}\"\nhost = \"h{host}\"\nip = \"{ip}\"\n");
    }
    for v in (0..vpcs.saturating_sub(1)).step_by(2) {
        t += &format!("[[peering]]\nvpcs = [\"v{v}\", \"v{}\"]\n", v + 1);
    }
    t
}

/// What a host's tables show once it has applied a change.
#[derive(Debug, Clone, Copy)]
enum Check {
    Mapping { vni: u32, ip: Ipv4Addr, pa: Option<Ipv4Addr> },
    Peering { a: u32, b: u32, present: bool },
}

impl Check {
    fn holds(&self, t: &Tables) -> bool {
        match *self {
            Check::Mapping { vni, ip, pa } => t.lookup(vni, ip).map(|l| l.pa) == pa,
            Check::Peering { a, b, present } => t.peered(a, b) == present,
        }
    }
}

struct Change {
    kind: &'static str,
    committed: Instant,
    check: Check,
    holders: Vec<usize>,
    /// The VPCs it locks until visible: its own and their peers (a change there could
    /// change which hosts must show this one).
    lock: Vec<u32>,
}

/// Hosts viewing `vpc` in `t`: an instance of it or of a peer.
fn viewers(t: &Topology, vpc: VpcId) -> BTreeSet<usize> {
    std::iter::once(vpc).chain(t.peers(vpc)).flat_map(|v| t.vpc_hosts(v)).map(|h| h.0 as usize).collect()
}

fn direct(t: &Topology, vpcs: &[VpcId]) -> BTreeSet<usize> {
    vpcs.iter().flat_map(|&v| t.vpc_hosts(v)).map(|h| h.0 as usize).collect()
}

/// A tiny deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

type Locks = HashSet<u32>;

/// `vpcs` and their peers, if none is locked.
fn lock_set(t: &Topology, vpcs: &[VpcId], locked: &Locks) -> Option<Vec<u32>> {
    let set: BTreeSet<u32> = vpcs.iter().flat_map(|&v| std::iter::once(v).chain(t.peers(v))).map(|v| v.0).collect();
    set.iter().all(|v| !locked.contains(v)).then(|| set.into_iter().collect())
}

/// A change, what it must show, the hosts that must show it, the VPCs it locks.
type Picked = (Command, Check, Vec<usize>, Vec<u32>);

/// The kind of a change, for the breakdown of the visibility times.
fn kind_of(cmd: &Command) -> &'static str {
    match cmd {
        Command::Register(_) => "register",
        Command::Deregister { .. } => "deregister",
        Command::Move { .. } => "move",
        Command::AddPeering { .. } => "peering_add",
        Command::RemovePeering { .. } => "peering_remove",
        Command::AssociateElasticIp { .. } | Command::DisassociateElasticIp { .. } => "eip",
    }
}

/// Picks a change no pending change locks, and what it must show where.
fn pick(rng: &mut Rng, t: &Topology, s: &Setup, locked: &Locks, serial: usize) -> Option<Picked> {
    let vpcs = t.vpcs().len();
    let roll = rng.below(100);
    let vni = |v: VpcId| t.vpc(v).map_or(0, |v| v.vni);
    if roll < 10 && vpcs >= 2 {
        let a = rng.below(vpcs / 2) * 2;
        let (va, vb) = (VpcId(a as u32), VpcId(a as u32 + 1));
        let lock = lock_set(t, &[va, vb], locked)?;
        let present = !t.peered(va, vb);
        let (na, nb) = (format!("v{a}"), format!("v{}", a + 1));
        let cmd = if present { Command::AddPeering { a: na, b: nb } } else { Command::RemovePeering { a: na, b: nb } };
        let holders = direct(t, &[va, vb]).into_iter().collect();
        return Some((cmd, Check::Peering { a: vni(va), b: vni(vb), present }, holders, lock));
    }
    if roll < 30 {
        // A new instance in a random VPC, at a free address of its subnet.
        let v = rng.below(vpcs);
        let ip = Ipv4Addr::from(vpc_base(v) + 110 + rng.below(140) as u32);
        let vid = VpcId(v as u32);
        let lock = lock_set(t, &[vid], locked)?;
        if t.ip_owner(vid, ip).is_some() {
            return None;
        }
        let host = (v * 13 + rng.below(SPREAD)) % s.hosts;
        let spec = InstanceSpec {
            name: format!("n{serial}"),
            subnet: format!("s{v}"),
            host: format!("h{host}"),
            ip,
            secondary_ips: Vec::new(),
            mac: None,
            source_dest_check: true,
        };
        let pa = t.host(mapping_client::HostId(host as u32)).map(|h| h.pa);
        let mut holders = viewers(t, vid);
        holders.insert(host);
        return Some((Command::Register(spec), Check::Mapping { vni: vni(vid), ip, pa }, holders.into_iter().collect(), lock));
    }
    let inst = t.instances().get(rng.below(t.instances().len()))?;
    let lock = lock_set(t, &[inst.vpc], locked)?;
    if roll < 50 {
        let holders = viewers(t, inst.vpc).into_iter().collect();
        let check = Check::Mapping { vni: vni(inst.vpc), ip: inst.ip, pa: None };
        return Some((Command::Deregister { instance: inst.name.clone() }, check, holders, lock));
    }
    let v = inst.vpc.0 as usize;
    let to = (v * 13 + rng.below(SPREAD)) % s.hosts;
    if to == inst.host.0 as usize {
        return None;
    }
    let pa = t.host(mapping_client::HostId(to as u32)).map(|h| h.pa);
    let mut holders = viewers(t, inst.vpc);
    holders.insert(to);
    let cmd = Command::Move { instance: inst.name.clone(), host: format!("h{to}") };
    Some((cmd, Check::Mapping { vni: vni(inst.vpc), ip: inst.ip, pa }, holders.into_iter().collect(), lock))
}

/// A change on its way to etcd.
struct Job {
    txn: mapping_client::etcd::store::Txn,
    change: Change,
    puts: Vec<String>,
    deletes: Vec<String>,
    register: bool,
}

/// What the driver did: changes committed, their rate, the first error, its CPU time.
struct Driven {
    done: usize,
    rate: f64,
    failed: Option<String>,
    cpu_ns: u64,
}

/// How many transactions may be in flight at once (one committer thread each).
const COMMITTERS: usize = 8;

/// The driver: the changes at the rate, each as one guarded transaction, up to
/// [`COMMITTERS`] in flight (registrations one at a time: each writes `next-eni`). The model
/// changes in order here; a change's VPCs stay locked until it is visible, so no two
/// transactions in flight touch the same records.
fn drive(
    store: &Store,
    world: Topology,
    snap: mapping_client::etcd::store::Snapshot,
    s: Setup,
    out: Sender<Change>,
    locked: Arc<Mutex<Locks>>,
) -> Result<Driven, String> {
    let mut mod_revisions = snap.mod_revisions;
    let mut revision = snap.revision;
    let mut service = Service::without_clients(world);
    let mut rng = Rng(7);
    let (job_tx, job_rx) = channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = channel::<Result<(Option<i64>, Job), String>>();
    let mut committers = Vec::new();
    for i in 0..COMMITTERS {
        let (jobs, done, url) = (job_rx.clone(), done_tx.clone(), store.url().to_string());
        committers.push(
            std::thread::Builder::new()
                .name(format!("commit-{i}"))
                .spawn(move || {
                    let Ok(store) = Store::connect(&url) else { return };
                    loop {
                        let job = match jobs.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(mut job) = job else { return };
                        let r = store.commit_at(job.txn.clone());
                        job.change.committed = Instant::now();
                        let _ = done.send(r.map(|rev| (rev, job)));
                    }
                })
                .map_err(|e| e.to_string())?,
        );
    }
    drop(done_tx);
    let start = Instant::now();
    let (mut sent, mut done, mut serial, mut in_flight, mut register_in_flight) = (0, 0, 0, 0, false);
    // The first change etcd did not take (an overloaded etcd times requests out): no new
    // change after it; the row says so.
    let mut failed: Option<String> = None;
    let finish = |r: Result<(Option<i64>, Job), String>,
                      mod_revisions: &mut HashMap<String, i64>,
                      revision: &mut i64|
     -> Result<bool, String> {
        let (rev, job) = r?;
        let Some(rev) = rev else {
            return Err("a change conflicted: the benchmark is the only writer".to_string());
        };
        *revision = (*revision).max(rev);
        for k in &job.puts {
            mod_revisions.insert(k.clone(), rev);
        }
        for k in &job.deletes {
            mod_revisions.remove(k);
        }
        let _ = out.send(job.change);
        Ok(job.register)
    };
    let settle = |r, mod_revisions: &mut HashMap<String, i64>, revision: &mut i64, failed: &mut Option<String>| {
        match finish(r, mod_revisions, revision) {
            Ok(register) => (1, register),
            Err(e) => {
                failed.get_or_insert(e);
                (0, true)
            }
        }
    };
    while in_flight > 0 || (failed.is_none() && sent < s.changes) {
        while let Ok(r) = done_rx.try_recv() {
            in_flight -= 1;
            let (ok, register) = settle(r, &mut mod_revisions, &mut revision, &mut failed);
            done += ok;
            register_in_flight &= !register;
        }
        // Nothing to send yet (all sent, the next not due, every committer busy): wait for
        // a transaction to finish or the next change to be due, whichever comes first
        // (not a poll: the driver's CPU is part of what the row measures).
        let due = start + Duration::from_secs_f64(sent as f64 / s.rate);
        let wait = if sent == s.changes || failed.is_some() || in_flight >= COMMITTERS {
            Some(Duration::from_millis(50))
        } else {
            due.checked_duration_since(Instant::now())
        };
        if let Some(wait) = wait {
            if let Ok(r) = done_rx.recv_timeout(wait) {
                in_flight -= 1;
                let (ok, register) = settle(r, &mut mod_revisions, &mut revision, &mut failed);
                done += ok;
                register_in_flight &= !register;
            }
            continue;
        }
        serial += 1;
        let picked = {
            let l = locked.lock().map_err(|_| "lock poisoned")?;
            pick(&mut rng, service.topology(), &s, &l, serial)
        };
        let Some((cmd, check, holders, lock)) = picked else {
            // Everything drawn is locked by a change not yet visible: wait a little.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let register = matches!(cmd, Command::Register(_));
        if register && register_in_flight {
            continue;
        }
        // A refused command changes nothing (the service checks before it changes).
        let (puts, deletes) = match change_records(&mut service, &cmd) {
            Ok(pd) => pd,
            Err(_) => continue,
        };
        let txn = guarded_txn(store.prefix(), &puts, &deletes, &mod_revisions, revision)?;
        if let Ok(mut l) = locked.lock() {
            l.extend(lock.iter().copied());
        }
        let kind = kind_of(&cmd);
        let change = Change { kind, committed: Instant::now(), check, holders, lock };
        let job = Job { txn, change, puts: puts.into_iter().map(|(k, _)| k).collect(), deletes, register };
        job_tx.send(job).map_err(|_| "the committers stopped")?;
        sent += 1;
        in_flight += 1;
        register_in_flight |= register;
    }
    // The driver's CPU (this thread and the committers), read while they all still run.
    let cpu = cpu_ns(std::process::id(), |n| n == "changes" || n.starts_with("commit-"));
    drop(job_tx);
    for c in committers {
        let _ = c.join();
    }
    Ok(Driven { done, rate: done as f64 / start.elapsed().as_secs_f64(), failed, cpu_ns: cpu })
}

/// Nanoseconds the threads of `pid` whose name `keep` accepts have run (schedstat).
fn cpu_ns(pid: u32, keep: impl Fn(&str) -> bool) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter(|t| keep(std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim()))
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Nanoseconds as seconds.
fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Host {
    notes: Receiver<Note>,
    /// Why the watcher listed everything again, if it had to (reported on stderr).
    lost: Vec<String>,
    counters: Arc<WatchCounters>,
    tables: Tables,
    synced: Option<Duration>,
}

impl Host {
    /// Applies what arrived; whether anything did.
    fn drain(&mut self, since: Instant) -> bool {
        let mut any = false;
        while let Ok(n) = self.notes.try_recv() {
            match n {
                Note::Updates(us) => {
                    us.into_iter().for_each(|u| u.apply_to(&mut self.tables));
                    any = true;
                }
                Note::Synced { .. } => {
                    self.synced.get_or_insert(since.elapsed());
                }
                Note::Lost { reason } => self.lost.push(reason),
            }
        }
        any
    }
}

/// Runs the scenario; one JSON row.
pub fn run(s: &Setup) -> Result<Value, String> {
    let etcd = TestEtcd::start()?;
    let store = Store::connect(&etcd.url())?;
    let version = store.server_version()?;
    let world = Topology::from_str(&world_text(s), "mapping-convergence").map_err(|e| e.to_string())?;
    eprintln!("vpcemu-bench: mapping-convergence: loading {} hosts, {} instances, {} VPCs", s.hosts, s.instances, world.vpcs().len());
    store.load(&world, false)?;
    // What the driver's guards start from (nothing changes until it runs).
    let snap = store.snapshot()?;
    let etcd_pid = etcd.pid().unwrap_or(0);
    let me = std::process::id();
    // Dropped (stopped) when this function returns, on error too.
    let proxy = if s.proxy { Some(GrpcProxy::start(&etcd.url())?) } else { None };
    let proxy_pid = proxy.as_ref().and_then(GrpcProxy::pid);
    let hosts_url = proxy.as_ref().map_or_else(|| etcd.url(), GrpcProxy::url);

    // Host h on watcher thread h % watch_threads.
    let mut groups: Vec<Vec<CardSpec>> = (0..s.watch_threads).map(|_| Vec::new()).collect();
    let mut hosts = Vec::new();
    for h in 0..s.hosts {
        let (tx, rx) = channel();
        let counters = Arc::new(WatchCounters::default());
        groups[h % s.watch_threads].push(CardSpec { name: format!("h{h}"), notes: tx, counters: counters.clone() });
        hosts.push(Host { notes: rx, lost: Vec::new(), counters, tables: Tables::default(), synced: None });
    }
    let config = WatchConfig {
        url: hosts_url,
        prefix: layout::PREFIX.to_string(),
        dataplane: layout::DUMP_DATAPLANE.to_string(),
        cpu: None,
        // 4 connections in all.
        connections: 4usize.div_ceil(s.watch_threads),
        resume_after_error: false,
    };
    let world_for_driver = world.clone();
    let setup = *s;
    let url = etcd.url();
    // The hosts' side: the watcher thread, and this thread applying their updates.
    let apply = std::thread::Builder::new()
        .name("hosts-apply".into())
        .spawn(move || -> Result<Value, String> {
            let started = Instant::now();
            // CPU of the first syncs: etcd's and the hosts' (watcher and this thread) from
            // the hosts' start until every host has its first snapshot.
            let sync_etcd_cpu0 = cpu_ns(etcd_pid, |_| true);
            let sync_proxy_cpu0 = proxy_pid.map_or(0, |p| cpu_ns(p, |_| true));
            let sync_hosts_cpu0 = cpu_ns(me, |n| n == "etcd-watch" || n == "hosts-apply");
            let mut watchers = Vec::new();
            for (w, cards) in groups.into_iter().enumerate() {
                let pace = setup.pace() * setup.watch_threads as u32;
                watchers.push(Watcher::start_paced(config.clone(), cards, setup.start_of(w), pace)?);
            }
            let deadline = started + Duration::from_secs(600);
            while hosts.iter().any(|h| h.synced.is_none()) {
                for h in hosts.iter_mut() {
                    h.drain(started);
                }
                if Instant::now() > deadline {
                    return Err("the hosts' first snapshots took over 600 s".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // Each host's first sync from its own start.
            let mut syncs: Vec<f64> = hosts
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.synced.map(|d| d.saturating_sub(setup.start_of(i)).as_secs_f64() * 1000.0))
                .collect();
            syncs.sort_by(f64::total_cmp);
            let all_synced_ms = started.elapsed().as_secs_f64() * 1000.0;
            eprintln!("vpcemu-bench: mapping-convergence: every host synced in {all_synced_ms:.0} ms; changing");
            // CPU from here on: etcd's, the watcher thread's, this thread's.
            let etcd_cpu0 = cpu_ns(etcd_pid, |_| true);
            let proxy_cpu0 = proxy_pid.map_or(0, |p| cpu_ns(p, |_| true));
            let watch_cpu0 = cpu_ns(me, |n| n == "etcd-watch");
            let apply_cpu0 = cpu_ns(me, |n| n == "hosts-apply");
            let sync_etcd_cpu = secs(etcd_cpu0.saturating_sub(sync_etcd_cpu0));
            let sync_proxy_cpu = proxy_pid.map(|_| secs(proxy_cpu0.saturating_sub(sync_proxy_cpu0)));
            let sync_hosts_cpu = secs((watch_cpu0 + apply_cpu0).saturating_sub(sync_hosts_cpu0));
            let events0: u64 = hosts.iter().map(|h| h.counters.events.load(Ordering::Relaxed)).sum();
            let held0: u64 = hosts.iter().map(|h| h.counters.events_held.load(Ordering::Relaxed)).sum();

            let locked = Arc::new(Mutex::new(Locks::new()));
            let (ch_tx, ch_rx) = channel::<Change>();
            let l2 = locked.clone();
            let driver = std::thread::Builder::new()
                .name("changes".into())
                .spawn(move || -> Result<Driven, String> {
                    let store = Store::connect(&url)?;
                    drive(&store, world_for_driver, snap, setup, ch_tx, l2)
                })
                .map_err(|e| e.to_string())?;
            let mut pending: HashMap<usize, (Change, HashSet<usize>)> = HashMap::new();
            let mut waiting_on: HashMap<usize, Vec<usize>> = HashMap::new();
            let mut next_id = 0;
            let mut visible: Vec<(&str, f64)> = Vec::new();
            let mut no_holder = 0;
            let mut quiet_since: Option<Instant> = None;
            loop {
                while let Ok(c) = ch_rx.try_recv() {
                    let id = next_id;
                    next_id += 1;
                    let mut rest: HashSet<usize> = HashSet::new();
                    for &h in &c.holders {
                        if !c.check.holds(&hosts[h].tables) {
                            rest.insert(h);
                            waiting_on.entry(h).or_default().push(id);
                        }
                    }
                    if c.holders.is_empty() {
                        no_holder += 1;
                    }
                    if rest.is_empty() {
                        visible.push((c.kind, c.committed.elapsed().as_secs_f64() * 1000.0));
                        if let Ok(mut l) = locked.lock() {
                            c.lock.iter().for_each(|v| {
                                l.remove(v);
                            });
                        }
                    } else {
                        pending.insert(id, (c, rest));
                    }
                }
                for (h, host) in hosts.iter_mut().enumerate() {
                    if !host.drain(started) {
                        continue;
                    }
                    let Some(ids) = waiting_on.get_mut(&h) else { continue };
                    ids.retain(|id| {
                        let Some((c, rest)) = pending.get_mut(id) else { return false };
                        if !c.check.holds(&host.tables) {
                            return true;
                        }
                        rest.remove(&h);
                        if rest.is_empty() {
                            visible.push((c.kind, c.committed.elapsed().as_secs_f64() * 1000.0));
                            if let Ok(mut l) = locked.lock() {
                                c.lock.iter().for_each(|v| {
                                    l.remove(v);
                                });
                            }
                            pending.remove(id);
                        }
                        false
                    });
                }
                if driver.is_finished() && pending.is_empty() {
                    break;
                }
                if driver.is_finished() {
                    let q = *quiet_since.get_or_insert_with(Instant::now);
                    if q.elapsed() > Duration::from_secs(30) {
                        break;
                    }
                }
                // A pass polls every host's channel: every 500 us (adds at most that).
                std::thread::sleep(Duration::from_micros(500));
            }
            for (c, rest) in pending.values().take(5) {
                let shown: Vec<String> = rest
                    .iter()
                    .map(|&h| {
                        let t = &hosts[h].tables;
                        match c.check {
                            Check::Mapping { vni, ip, .. } => format!("h{h}: has {:?} (vpc held: {})", t.lookup(vni, ip).map(|l| l.pa), t.vpc(vni).is_some()),
                            Check::Peering { a, b, .. } => format!("h{h}: peered {}", t.peered(a, b)),
                        }
                    })
                    .collect();
                eprintln!("vpcemu-bench: mapping-convergence: not visible: {:?} (VPCs {:?}): {}", c.check, c.lock, shown.join("; "));
            }
            let Driven { done: changes, rate, failed, cpu_ns: driver_cpu_ns } = driver.join().map_err(|_| "the driver panicked")??;
            let events: u64 = hosts.iter().map(|h| h.counters.events.load(Ordering::Relaxed)).sum::<u64>() - events0;
            let held: u64 = hosts.iter().map(|h| h.counters.events_held.load(Ordering::Relaxed)).sum::<u64>() - held0;
            let resyncs: u64 = hosts.iter().map(|h| h.counters.resyncs.load(Ordering::Relaxed)).sum();
            let etcd_cpu = secs(cpu_ns(etcd_pid, |_| true).saturating_sub(etcd_cpu0));
            let proxy_cpu = proxy_pid.map(|p| secs(cpu_ns(p, |_| true).saturating_sub(proxy_cpu0)));
            let watch_cpu = secs(cpu_ns(me, |n| n == "etcd-watch").saturating_sub(watch_cpu0));
            let apply_cpu = secs(cpu_ns(me, |n| n == "hosts-apply").saturating_sub(apply_cpu0));
            let driver_cpu = secs(driver_cpu_ns);
            watchers.iter_mut().for_each(Watcher::stop);
            let mut reasons: HashMap<String, usize> = HashMap::new();
            for r in hosts.iter().flat_map(|h| &h.lost) {
                let short: String = r.chars().take(90).collect();
                *reasons.entry(short).or_default() += 1;
            }
            for (r, n) in &reasons {
                eprintln!("vpcemu-bench: mapping-convergence: {n} x lost/resync: {r}");
            }
            let mut by_kind: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            for &(k, ms) in &visible {
                by_kind.entry(k).or_default().push(ms);
            }
            let by_kind: serde_json::Map<String, Value> = by_kind
                .into_iter()
                .map(|(k, mut v)| {
                    v.sort_by(f64::total_cmp);
                    let row = json!({
                        "n": v.len(),
                        "p50_ms": percentile(&v, 0.5),
                        "p99_ms": percentile(&v, 0.99),
                        "max_ms": v.last().copied().unwrap_or(0.0),
                    });
                    (k.to_string(), row)
                })
                .collect();
            let mut visible: Vec<f64> = visible.into_iter().map(|(_, ms)| ms).collect();
            visible.sort_by(f64::total_cmp);
            Ok(json!({
                "changes": changes,
                "rate_per_s": rate,
                "visible_p50_ms": percentile(&visible, 0.5),
                "visible_p99_ms": percentile(&visible, 0.99),
                "visible_max_ms": visible.last().copied().unwrap_or(0.0),
                "unconverged": pending.len(),
                "changes_without_holder": no_holder,
                "visible_by_kind": Value::Object(by_kind),
                "start_rate_hosts_per_s": setup.start_rate,
                "watch_threads": setup.watch_threads,
                "initial_sync_p50_ms": percentile(&syncs, 0.5),
                "initial_sync_p99_ms": percentile(&syncs, 0.99),
                "cold_start_all_ms": (setup.start_rate == 0.0).then_some(all_synced_ms),
                "initial_sync_max_ms": syncs.last().copied().unwrap_or(0.0),
                "initial_sync_etcd_cpu_s": sync_etcd_cpu,
                "initial_sync_proxy_cpu_s": sync_proxy_cpu,
                "initial_sync_hosts_cpu_s": sync_hosts_cpu,
                "events_per_host_mean": events as f64 / hosts.len().max(1) as f64,
                "interest_ratio": if held == 0 { 0.0 } else { events as f64 / held as f64 },
                "resyncs": resyncs,
                "error": failed,
                "etcd_cpu_s": etcd_cpu,
                "proxy_cpu_s": proxy_cpu,
                "hosts_cpu_s": watch_cpu + apply_cpu,
                "hosts_watch_cpu_s": watch_cpu,
                "hosts_apply_cpu_s": apply_cpu,
                "driver_cpu_s": driver_cpu,
            }))
        })
        .map_err(|e| e.to_string())?;
    let mut row = apply.join().map_err(|_| "the hosts' thread panicked")??;
    if let Some(o) = row.as_object_mut() {
        o.insert("name".into(), json!("mapping-convergence"));
        o.insert("hosts".into(), json!(s.hosts));
        o.insert("instances".into(), json!(s.instances));
        o.insert("vpcs".into(), json!(world.vpcs().len()));
        o.insert("rate_target_per_s".into(), json!(s.rate));
        o.insert("etcd_version".into(), json!(version));
        o.insert("proxy".into(), json!(s.proxy));
    }
    Ok(row)
}
