//! One card's mapping client over etcd.
//!
//! [`CardWatch`] is the sans-I/O state machine: it is told what was listed and what the
//! watches delivered, keeps a partial model of the world (every static record, and the
//! dynamic records of exactly the VPCs the card needs: for a host, the VPCs with an ENI on
//! it and their peers; for an edge, the VPCs it serves), and turns each change into the
//! embedded service's deltas: the partial model is a [`Service`], a watched change is
//! replayed on it as the [`Command`] that made it, and the card's [`Client`] turns the
//! service's messages into [`Update`]s, which the runtime hands to the card's RCU
//! publisher as it does the embedded service's.
//!
//! The driver ([`Watcher`]) does the I/O on a thread of its own: per card, a paged list of
//! what the card needs at one revision, then one watch stream (require-leader) with a watch
//! from that revision + 1 on the `world` record, the host's placement index and each VPC
//! held. A VPC that enters the card's view is listed at the revision of the event that
//! brought it in and watched from the next one; one that leaves is dropped and its watch
//! cancelled. A compacted revision, a cancelled watch, a model that refuses a change
//! (events of two VPCs seen out of order) or any error: the card lists everything again and
//! replaces its tables (what did not come back is gone); counted in [`WatchCounters`]
//! (with [`WatchConfig::resume_after_error`], a lost connection first resumes the watches
//! where they were, and only a compacted revision lists again). The etcd-client crate has
//! no reconnect loop: the driver retries with a backoff from 100 ms to 2 s, for as long as
//! it runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::layout::{self, Records, WORLD};
use super::store::{self, Listed};
use crate::client::{Client, Update};
use crate::service::{Command, InstanceSpec, Service};
use crate::topology::{CardId, Instance, Topology, VpcId};

/// A change the watch delivered (key relative to the prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Put { key: String, value: String },
    Delete { key: String },
}

impl Event {
    pub fn key(&self) -> &str {
        match self {
            Event::Put { key, .. } | Event::Delete { key } => key,
        }
    }
}

/// Why the watcher must list everything again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resync(pub String);

/// The prefixes of the static records.
pub const STATIC_PREFIXES: [&str; 8] = [WORLD, "host/", "edge/", "vpc/", "subnet/", "vpn/", "dx/", "endpoint/"];

/// The state machine of one card. See the module documentation.
#[derive(Debug)]
pub struct CardWatch {
    name: String,
    /// A host's placement index prefix (`on/NAME/`).
    index_prefix: String,
    dataplane: String,
    card: Option<CardId>,
    service: Option<Service>,
    client: Option<Client>,
    /// VPCs whose dynamic records are in the model.
    held: BTreeSet<String>,
    /// The ids of those the model knows (all of them, unless an index names a VPC the
    /// world does not have): what a reconcile compares with what the card needs.
    held_ids: BTreeSet<VpcId>,
    /// A host's placement index: instance -> VPC.
    index: BTreeMap<String, String>,
    /// How many instances of the index each VPC has (the VPCs a host holds directly).
    direct: BTreeMap<String, usize>,
    /// The view may have changed (a VPC entered or left the index, peerings, VPCs held):
    /// reconcile has work.
    dirty: bool,
    updates: Vec<Update>,
    /// VPCs held at some time.
    ever_held: BTreeSet<String>,
    /// Events received; those about VPCs the card holds; those about a VPC it never held
    /// (none: a change to a VPC a card does not hold never reaches it; an event of a VPC
    /// it just dropped may still arrive while the watch is being cancelled).
    pub events: u64,
    pub events_held: u64,
    pub events_foreign: u64,
}

fn resync(m: impl Into<String>) -> Resync {
    Resync(m.into())
}

impl CardWatch {
    /// The watcher of the card named `name`; models are built on `dataplane` (a
    /// `[dataplane]` section: only its syntax matters).
    pub fn new(name: &str, dataplane: &str) -> CardWatch {
        CardWatch {
            name: name.to_string(),
            index_prefix: layout::host_index(name),
            dataplane: dataplane.to_string(),
            card: None,
            service: None,
            client: None,
            held: BTreeSet::new(),
            held_ids: BTreeSet::new(),
            index: BTreeMap::new(),
            direct: BTreeMap::new(),
            dirty: true,
            updates: Vec::new(),
            ever_held: BTreeSet::new(),
            events: 0,
            events_held: 0,
            events_foreign: 0,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The card, once a snapshot has begun.
    pub fn card(&self) -> Option<CardId> {
        self.card
    }

    /// The partial model.
    pub fn model(&self) -> Option<&Topology> {
        self.service.as_ref().map(|s| s.topology())
    }

    /// The VPCs held.
    pub fn held(&self) -> impl Iterator<Item = &str> {
        self.held.iter().map(String::as_str)
    }

    /// Starts a snapshot from the static records (listed at one revision): the world's
    /// cards, VPCs, subnets, VPNs, DX VIFs, endpoints. Returns the next prefixes to list at
    /// the same revision.
    pub fn begin(&mut self, statics: &[Listed]) -> Result<Vec<String>, Resync> {
        self.begin_parts(&[statics])
    }

    /// [`begin`](Self::begin) from the static records in parts (read as one list).
    pub fn begin_parts(&mut self, statics: &[&[Listed]]) -> Result<Vec<String>, Resync> {
        if !statics.iter().flat_map(|p| p.iter()).any(|l| l.key == WORLD) {
            return Err(resync("no world in etcd (vpcemu mapping load)"));
        }
        let base = static_base(statics, &self.dataplane)?;
        let card = base
            .card_by_name(&self.name)
            .ok_or_else(|| resync(format!("no host or edge {:?} in the world in etcd", self.name)))?;
        self.card = Some(card);
        self.service = Some(Service::for_card(base, card));
        self.client = None;
        self.held.clear();
        self.held_ids.clear();
        self.index.clear();
        self.direct.clear();
        self.updates.clear();
        self.dirty = true;
        Ok(match card {
            CardId::Host(_) => vec![layout::host_index(&self.name)],
            CardId::Edge(_) => self.missing(),
        })
    }

    /// What was listed under `prefix` (a host index or a VPC's dynamic records).
    pub fn listed(&mut self, prefix: &str, records: &[Listed]) -> Result<(), Resync> {
        if prefix == self.index_prefix {
            for l in records {
                let inst = l.key.strip_prefix(prefix).unwrap_or("").to_string();
                self.index_put(inst, json_str(&l.value));
            }
            return Ok(());
        }
        let Some(vpc) = prefix.strip_prefix("in/").and_then(|p| p.strip_suffix('/')) else {
            return Err(resync(format!("listed an unexpected prefix {prefix}")));
        };
        self.held.insert(vpc.to_string());
        if let Some(id) = self.model().and_then(|t| t.vpc_by_name(vpc)) {
            self.held_ids.insert(id);
        }
        self.ever_held.insert(vpc.to_string());
        // A listing from etcd is in key order, each key once: read it as it is. Anything
        // else is read as a map of its records would be (a key's last value, in key order).
        let in_order = records.windows(2).all(|w| w[0].key < w[1].key);
        let sorted: Records;
        let recs: Vec<(&String, &String)> = if in_order {
            records.iter().map(|l| (&l.key, &l.value)).collect()
        } else {
            sorted = records.iter().map(|l| (l.key.clone(), l.value.clone())).collect();
            sorted.iter().collect()
        };
        if self.client.is_none() {
            // During a snapshot nobody listens for deltas yet: straight into the model,
            // with the loader's checks.
            let t = self.service.as_mut().ok_or_else(|| resync("no snapshot"))?.topology_mut();
            return layout::add_dynamic(t, recs.into_iter()).map_err(Resync);
        }
        self.import(vpc, &recs)
    }

    /// The VPC prefixes the card needs and does not hold.
    pub fn missing(&self) -> Vec<String> {
        self.missing_of(&self.wanted())
    }

    /// Those of `wanted` the card does not hold, as prefixes, in name order.
    fn missing_of(&self, wanted: &Wanted) -> Vec<String> {
        let Some(t) = self.model() else { return Vec::new() };
        let known = wanted.ids.iter().filter(|id| !self.held_ids.contains(id)).filter_map(|&id| t.vpc(id));
        let mut out: Vec<&str> = known.map(|v| v.name.as_str()).collect();
        out.extend(wanted.unknown.iter().filter(|v| !self.held.contains(**v)));
        out.sort_unstable();
        out.into_iter().map(layout::vpc_dynamic).collect()
    }

    /// Ends the snapshot: the card's tables as a replacement ([`CardWatch::take_updates`]).
    /// Returns the prefixes to watch from the snapshot's revision + 1.
    pub fn finish(&mut self) -> Vec<String> {
        if let (Some(card), Some(service)) = (self.card, self.service.as_mut()) {
            let mut client = Client::new(card);
            if let Some(req) = client.poll_request(Duration::ZERO) {
                service.handle(req, Duration::ZERO);
            }
            self.client = Some(client);
        }
        self.pump();
        self.watching()
    }

    /// Every prefix the card watches: the `world` record, a host's index, each VPC held.
    pub fn watching(&self) -> Vec<String> {
        let mut out = vec![WORLD.to_string()];
        if matches!(self.card, Some(CardId::Host(_))) {
            out.push(layout::host_index(&self.name));
        }
        out.extend(self.held.iter().map(|v| layout::vpc_dynamic(v)));
        out
    }

    /// Instance `inst` of the host's index is in `vpc`. Whether a VPC entered or left
    /// the VPCs the host holds directly (what the card needs may have changed).
    fn index_put(&mut self, inst: String, vpc: String) -> bool {
        let n = self.direct.entry(vpc.clone()).or_default();
        *n += 1;
        let entered = *n == 1;
        match self.index.insert(inst, vpc) {
            Some(old) => self.direct_less(&old) | entered,
            None => entered,
        }
    }

    /// Instance `inst` left the host's index. Whether a VPC left the VPCs the host holds
    /// directly.
    fn index_remove(&mut self, inst: &str) -> bool {
        match self.index.remove(inst) {
            Some(old) => self.direct_less(&old),
            None => false,
        }
    }

    /// Whether `vpc` left the VPCs held directly.
    fn direct_less(&mut self, vpc: &str) -> bool {
        if let Some(n) = self.direct.get_mut(vpc) {
            *n -= 1;
            if *n == 0 {
                self.direct.remove(vpc);
                return true;
            }
        }
        false
    }

    /// The VPCs the card needs now: by id, sorted, each once (built on every reconcile:
    /// ids, not names, which cost more to sort and to look for than the rest of it).
    fn wanted(&self) -> Wanted<'_> {
        let (Some(card), Some(t)) = (self.card, self.model()) else {
            return Wanted::default();
        };
        let known = |v: &VpcId| t.vpc(*v).is_some();
        let mut unknown = Vec::new();
        let mut ids: Vec<VpcId> = match card {
            CardId::Edge(e) => t.edge_vpcs(e).filter(known).collect(),
            CardId::Host(_) => {
                let mut out: Vec<VpcId> = Vec::with_capacity(self.direct.len() * 2);
                for d in self.direct.keys() {
                    match t.vpc_by_name(d) {
                        Some(id) => {
                            out.push(id);
                            out.extend(t.peers(id).filter(known));
                        }
                        None => unknown.push(d.as_str()),
                    }
                }
                out
            }
        };
        ids.sort_unstable();
        ids.dedup();
        Wanted { ids, unknown }
    }

    /// Drops the VPCs no longer wanted (their instances leave the model, with the deltas
    /// that gives) and returns (prefixes to list and watch, prefixes to stop watching).
    pub fn reconcile(&mut self) -> Result<(Vec<String>, Vec<String>), Resync> {
        if !self.dirty {
            return Ok((Vec::new(), Vec::new()));
        }
        self.dirty = false;
        let (surplus, missing): (Vec<String>, Vec<String>) = {
            let wanted = self.wanted();
            let Some(t) = self.model() else {
                // No model yet: nothing is wanted.
                let all: Vec<String> = self.held.iter().cloned().collect();
                self.held.clear();
                return Ok((Vec::new(), all.iter().map(|v| layout::vpc_dynamic(v)).collect()));
            };
            let gone = self.held_ids.iter().filter(|id| wanted.ids.binary_search(id).is_err());
            let mut surplus: Vec<String> = gone.filter_map(|&id| t.vpc(id)).map(|v| v.name.clone()).collect();
            if self.held.len() != self.held_ids.len() {
                // Names the model does not know: surplus unless the index still names them.
                let unknown = self.held.iter().filter(|v| t.vpc_by_name(v).is_none() && !wanted.unknown.contains(&v.as_str()));
                surplus.extend(unknown.cloned());
            }
            surplus.sort_unstable();
            (surplus, self.missing_of(&wanted))
        };
        let mut cancel = Vec::new();
        let dropped = !surplus.is_empty();
        for v in surplus {
            self.drop_vpc(&v)?;
            cancel.push(layout::vpc_dynamic(&v));
        }
        self.pump();
        // Dropping VPCs no longer wanted leaves what is wanted as it was (a VPC dropped is
        // no peer of a VPC held directly); look again anyway then, it is rare.
        let missing = if dropped { self.missing() } else { missing };
        // Listing what is missing may bring peers in: look again then.
        self.dirty = !missing.is_empty();
        Ok((missing, cancel))
    }

    /// Events of one watch response on `prefix`, in order.
    pub fn on_events(&mut self, prefix: &str, events: &[Event]) -> Result<(), Resync> {
        for e in events {
            self.events += 1;
            let key = e.key();
            if key == WORLD || layout::is_static_key(key) {
                return Err(resync("the world in etcd was loaded again"));
            }
            if prefix == self.index_prefix {
                self.events_held += 1;
                let inst = key.strip_prefix(prefix).unwrap_or("");
                // Only a VPC entering or leaving the index changes what the card needs.
                self.dirty |= match e {
                    Event::Put { value, .. } => self.index_put(inst.to_string(), json_str(value)),
                    Event::Delete { .. } => self.index_remove(inst),
                };
                continue;
            }
            let Some(vpc) = layout::vpc_of_key(key) else { continue };
            if !self.held.contains(vpc) {
                if !self.ever_held.contains(vpc) {
                    self.events_foreign += 1;
                }
                continue; // a watch being cancelled
            }
            self.events_held += 1;
            if key.contains("/peer/") {
                self.dirty = true;
            }
            self.apply_event(vpc, e)?;
        }
        self.pump();
        Ok(())
    }

    /// The updates for the card's publisher since the last call, in order.
    pub fn take_updates(&mut self) -> Vec<Update> {
        self.pump();
        std::mem::take(&mut self.updates)
    }

    /// Moves the service's messages through the client.
    fn pump(&mut self) {
        let (Some(service), Some(client)) = (self.service.as_mut(), self.client.as_mut()) else {
            return;
        };
        while let Some(m) = service.poll_transmit(Duration::ZERO) {
            client.handle(m, Duration::ZERO);
        }
        while let Some(u) = client.poll_update() {
            self.updates.push(u);
        }
    }

    fn register_all(&mut self, instances: Vec<Instance>) -> Result<(), Resync> {
        if instances.is_empty() {
            return Ok(());
        }
        let service = self.service.as_mut().ok_or_else(|| resync("no snapshot"))?;
        service
            .register_all(instances)
            .map_err(|e| resync(format!("the card's model refused a change ({e}): events out of order")))
    }

    fn execute(&mut self, command: &Command) -> Result<(), Resync> {
        let service = self.service.as_mut().ok_or_else(|| resync("no snapshot"))?;
        service
            .execute(command)
            .map_err(|e| resync(format!("the card's model refused a change ({e}): events out of order")))
    }

    /// A VPC's dynamic records into the model: instances (ENI order), peerings, Elastic IPs.
    fn import(&mut self, vpc: &str, records: &[(&String, &String)]) -> Result<(), Resync> {
        let t = self.model().ok_or_else(|| resync("no snapshot"))?;
        if t.vpc_by_name(vpc).is_none() {
            return Err(resync(format!("unknown vpc {vpc}")));
        }
        let mut instances: Vec<Instance> = Vec::with_capacity(records.len());
        let mut rest = Vec::new();
        for &(k, v) in records {
            if instance_key(k) {
                instances.push(layout::instance_from_record(t, v).map_err(Resync)?);
            } else if !k.contains("/ip/") {
                rest.push((k, v));
            }
        }
        instances.sort_by_key(|i| i.eni);
        // New instances go in together (one delta); one the model has (a record seen
        // twice) is replayed on its own, in order.
        let mut new = Vec::new();
        for inst in instances {
            let t = self.model().ok_or_else(|| resync("no snapshot"))?;
            if t.instance_by_name(&inst.name).is_none() {
                new.push(inst);
                continue;
            }
            self.register_all(std::mem::take(&mut new))?;
            self.apply_instance(inst)?;
        }
        self.register_all(new)?;
        for (k, v) in rest {
            self.apply_record(vpc, k, Some(v))?;
        }
        Ok(())
    }

    /// The VPC leaves the model: its instances, and its peerings with VPCs not held.
    fn drop_vpc(&mut self, vpc: &str) -> Result<(), Resync> {
        self.held.remove(vpc);
        let Some(id) = self.model().and_then(|t| t.vpc_by_name(vpc)) else { return Ok(()) };
        self.held_ids.remove(&id);
        let Some(t) = self.model() else { return Ok(()) };
        // Out of the card's view (no ENI of it or of a peer on the card): deregistering
        // its instances gives the card no delta, so they just leave the model.
        let quiet = self.card.is_some_and(|c| !crate::tables::relevant(t, c, id));
        let peers: Vec<String> = t
            .peers(id)
            .filter_map(|p| t.vpc(p).map(|p| p.name.clone()))
            .filter(|p| !self.held.contains(p))
            .collect();
        if quiet {
            if let Some(s) = self.service.as_mut() {
                s.topology_mut().remove_vpc_instances(id);
            }
        } else {
            let members: Vec<String> = t.vpc_members(id).map(|i| i.name.clone()).collect();
            for name in members {
                self.execute(&Command::Deregister { instance: name })?;
            }
        }
        for p in peers {
            self.execute(&Command::RemovePeering { a: vpc.to_string(), b: p })?;
        }
        Ok(())
    }

    /// An instance record of a held VPC, replayed as the registration or move that wrote
    /// it (nothing if the model already has it).
    fn apply_instance(&mut self, inst: Instance) -> Result<(), Resync> {
        let t = self.model().ok_or_else(|| resync("no snapshot"))?;
        let command = match t.instance_by_name(&inst.name) {
            Some(have) if have.vpc == inst.vpc && have.ip == inst.ip => {
                let same = have.mac == inst.mac
                    && have.secondary_ips == inst.secondary_ips
                    && have.source_dest_check == inst.source_dest_check
                    && have.eni == inst.eni;
                if !same {
                    return Err(resync(format!("instance {} changed beyond a move", inst.name)));
                }
                if have.host == inst.host {
                    return Ok(());
                }
                // The move, by ids (the record's host is one of the model's).
                let (eni, to) = (have.eni, inst.host);
                let service = self.service.as_mut().ok_or_else(|| resync("no snapshot"))?;
                return service
                    .execute_move(eni, to)
                    .map_err(|e| resync(format!("the card's model refused a change ({e}): events out of order")));
            }
            Some(_) => return Err(resync(format!("instance {} is elsewhere in the card's model", inst.name))),
            None => {
                let spec = InstanceSpec::registering(t, &inst);
                if let Some(s) = self.service.as_mut() {
                    s.topology_mut().set_next_eni(inst.eni.0);
                }
                Command::Register(spec)
            }
        };
        self.execute(&command)
    }

    /// One change of a held VPC's records, replayed as the command that made it.
    fn apply_event(&mut self, vpc: &str, e: &Event) -> Result<(), Resync> {
        match e {
            Event::Put { key, value } => self.apply_record(vpc, key, Some(value)),
            Event::Delete { key } => self.apply_record(vpc, key, None),
        }
    }

    /// A record of a held VPC put (`value`) or deleted (`None`), replayed as the command
    /// that made it (a listing's records are read where they are, not copied into events).
    fn apply_record(&mut self, vpc: &str, key: &str, value: Option<&str>) -> Result<(), Resync> {
        let t = self.model().ok_or_else(|| resync("no snapshot"))?;
        let vpc_id = t.vpc_by_name(vpc).ok_or_else(|| resync(format!("unknown vpc {vpc}")))?;
        let mut parts = key.split('/');
        let (kind, item) = match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("in"), Some(_), Some(kind), Some(item), None) => (kind, item),
            _ => return Ok(()),
        };
        let hex_ip = |s: &str| u32::from_str_radix(s, 16).ok().map(Ipv4Addr::from);
        let command = match (kind, value) {
            ("ip", Some(value)) => {
                let inst = layout::instance_from_record(t, value).map_err(Resync)?;
                return self.apply_instance(inst);
            }
            ("ip", None) => {
                let Some(ip) = hex_ip(item) else { return Ok(()) };
                match t.ip_owner(vpc_id, ip).and_then(|e| t.instance(e)) {
                    Some(i) if i.ip == ip => Command::Deregister { instance: i.name.clone() },
                    _ => return Ok(()),
                }
            }
            ("peer", value) => {
                let Some(other) = t.vpc_by_name(item) else { return Ok(()) };
                let peered = t.peered(vpc_id, other);
                match value {
                    Some(_) if !peered => Command::AddPeering { a: vpc.to_string(), b: item.to_string() },
                    None if peered => Command::RemovePeering { a: vpc.to_string(), b: item.to_string() },
                    _ => return Ok(()),
                }
            }
            ("eip", Some(value)) => {
                let v: Value = serde_json::from_str(value).map_err(|e| resync(format!("bad record: {e}")))?;
                let ip: Ipv4Addr = v["ip"].as_str().unwrap_or("").parse().map_err(|_| resync("bad Elastic IP record"))?;
                let instance = v["instance"].as_str().unwrap_or("").to_string();
                match t.elastic_ip_instance(ip).and_then(|e| t.instance(e)) {
                    Some(i) if i.name == instance => return Ok(()),
                    Some(_) => {
                        self.execute(&Command::DisassociateElasticIp { ip })?;
                        Command::AssociateElasticIp { ip, instance }
                    }
                    None => Command::AssociateElasticIp { ip, instance },
                }
            }
            ("eip", None) => {
                let Some(ip) = hex_ip(item) else { return Ok(()) };
                if t.elastic_ip_instance(ip).is_none() {
                    return Ok(());
                }
                Command::DisassociateElasticIp { ip }
            }
            _ => return Ok(()),
        };
        self.execute(&command)
    }
}

/// What a card needs ([`CardWatch::wanted`]): the VPCs its model knows, by id, sorted;
/// and the names in a host's index that the model does not know (listing one fails).
#[derive(Default)]
struct Wanted<'a> {
    ids: Vec<VpcId>,
    unknown: Vec<&'a str>,
}

/// Static records as listed: (key, value) in key order.
type StaticRecords = Vec<(String, String)>;

thread_local! {
    /// The last static world parsed on this thread, by its records: the cards of one
    /// watcher thread list the same static records and share one parse.
    static BASE: std::cell::RefCell<Option<(StaticRecords, String, Topology)>> = const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// The last static snapshot read on this thread: its chunks as listed (key, value) and
    /// the records they hold. The cards of one watcher thread list the same chunks and
    /// share one parse of them (about a third of a megabyte of JSON at 1,000 hosts).
    static CHUNKS: std::cell::RefCell<Option<(StaticRecords, Arc<Vec<Listed>>)>> = const { std::cell::RefCell::new(None) };
}

/// The static records in the static snapshot's `chunks` ([`layout::statics_from_chunks`]),
/// `None` for a world without one; parsed once per thread for the same chunks (compared
/// key by key and value by value with the last ones parsed).
fn static_records(chunks: &[Listed]) -> Result<Option<Arc<Vec<Listed>>>, String> {
    let same = |c: &StaticRecords| c.len() == chunks.len() && c.iter().zip(chunks).all(|((k, v), l)| *k == l.key && *v == l.value);
    if let Some(hit) = CHUNKS.with(|c| c.borrow().as_ref().filter(|(c, _)| same(c)).map(|(_, r)| r.clone())) {
        return Ok(Some(hit));
    }
    let Some(records) = layout::statics_from_chunks(chunks.iter().map(|l| (l.key.as_str(), l.value.as_str())))? else {
        return Ok(None);
    };
    let records = Arc::new(records.into_iter().map(|(key, value)| Listed { key, value, mod_revision: 0 }).collect::<Vec<_>>());
    let listed = chunks.iter().map(|l| (l.key.clone(), l.value.clone())).collect();
    CHUNKS.with(|c| *c.borrow_mut() = Some((listed, records.clone())));
    Ok(Some(records))
}

/// The model of the static records (no instance yet).
fn static_base(statics: &[&[Listed]], dataplane: &str) -> Result<Topology, Resync> {
    let mut sorted: Vec<&Listed> = statics.iter().flat_map(|p| p.iter()).collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    // A key listed twice keeps its last value, as collecting into a map does.
    sorted.dedup_by(|later, kept| {
        let same = later.key == kept.key;
        if same {
            *kept = *later;
        }
        same
    });
    let same = |r: &StaticRecords| r.len() == sorted.len() && r.iter().zip(&sorted).all(|((k, v), l)| *k == l.key && *v == l.value);
    let hit = BASE.with(|b| b.borrow().as_ref().filter(|(r, d, _)| same(r) && d == dataplane).map(|(_, _, t)| t.clone()));
    if let Some(t) = hit {
        return Ok(t);
    }
    let records: Records = sorted.iter().map(|l| (l.key.clone(), l.value.clone())).collect();
    let t = layout::world_from_records(&records, dataplane).map_err(Resync)?;
    let kept: StaticRecords = records.into_iter().collect();
    BASE.with(|b| *b.borrow_mut() = Some((kept, dataplane.to_string(), t.clone())));
    Ok(t)
}

/// Whether `key` is an instance record's (`in/VPC/ip/HHHHHHHH`: four parts split at '/',
/// the first `in`, the third `ip`), read straight along the key (a listing of a VPC is
/// mostly these).
fn instance_key(key: &str) -> bool {
    let Some(r) = key.strip_prefix("in/") else { return false };
    let Some(slash) = r.find('/') else { return false };
    r[slash + 1..].strip_prefix("ip/").is_some_and(|item| !item.contains('/'))
}

fn json_str(v: &str) -> String {
    serde_json::from_str::<String>(v).unwrap_or_default()
}

// ----- the driver ---------------------------------------------------------------------------

/// What a card's watcher tells the runtime.
#[derive(Debug)]
pub enum Note {
    /// Table updates, in order (the first after a (re)sync is a replacement).
    Updates(Vec<Update>),
    /// A snapshot is complete (first, or after a resync), or the watches run again after
    /// a lost connection; at this revision.
    Synced { revision: i64 },
    /// The mapping service cannot be reached or the watch failed; the card keeps its
    /// tables and the watcher retries.
    Lost { reason: String },
}

/// Counters of one card's watcher, shared with the runtime.
#[derive(Debug, Default)]
pub struct WatchCounters {
    pub snapshots: AtomicU64,
    /// Full resyncs after the first snapshot (compaction, errors, lost connection).
    pub resyncs: AtomicU64,
    pub events: AtomicU64,
    /// Events about what the card holds.
    pub events_held: AtomicU64,
    /// Events about a VPC the card never held (a bug if not 0).
    pub events_foreign: AtomicU64,
    /// Watch responses with events.
    pub responses: AtomicU64,
    pub failures: AtomicU64,
    /// Resyncs because the revision to resume from was compacted.
    pub compacted: AtomicU64,
}

/// One card to watch.
#[derive(Debug)]
pub struct CardSpec {
    pub name: String,
    pub notes: Sender<Note>,
    pub counters: Arc<WatchCounters>,
}

/// The watcher's stop signal: a flag the loops look at, and a wake-up for the cards
/// waiting on their watch streams (a `Notified` created before the flag is read gets the
/// wake-up of a `set` after it, so none is missed).
#[derive(Debug, Default)]
struct Stop {
    flag: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Stop {
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.flag.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }
}

/// The watcher thread of a process: a tokio runtime with one task per card.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<Stop>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Where and how to watch.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    pub url: String,
    pub prefix: String,
    /// The `[dataplane]` section the partial models are built on.
    pub dataplane: String,
    /// The CPU the watcher thread is pinned to (off the workers' CPUs), if any.
    pub cpu: Option<usize>,
    /// Connections to etcd shared by the cards (round robin).
    pub connections: usize,
    /// After a lost connection, first try to resume the watches from the last revision
    /// every watch reached (a compacted revision then means listing again). Off: any error
    /// means listing everything again, as the etcd-based systems do.
    pub resume_after_error: bool,
}

impl Watcher {
    /// Starts the watcher thread; every card gets its first snapshot as soon as etcd
    /// answers.
    pub fn start(config: WatchConfig, cards: Vec<CardSpec>) -> Result<Watcher, String> {
        Watcher::start_paced(config, cards, Duration::ZERO, Duration::ZERO)
    }

    /// As [`Watcher::start`], but the cards start one `pace` apart, in order (the `i`th
    /// after `first + i * pace`): cards that boot into a running fleet
    /// (`mapping-convergence`).
    pub fn start_paced(config: WatchConfig, cards: Vec<CardSpec>, first: Duration, pace: Duration) -> Result<Watcher, String> {
        let stop = Arc::new(Stop::default());
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("etcd-watch".into())
            .spawn(move || {
                if let Some(cpu) = config.cpu {
                    core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                }
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(run_all(config, cards, flag, first, pace));
            })
            .map_err(|e| format!("starting the etcd watcher thread: {e}"))?;
        Ok(Watcher { stop, thread: Some(thread) })
    }

    /// Stops the watcher and waits for its thread.
    pub fn stop(&mut self) {
        self.stop.set();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn run_all(config: WatchConfig, cards: Vec<CardSpec>, stop: Arc<Stop>, first: Duration, pace: Duration) {
    let mut clients: Vec<etcd_client::Client> = Vec::new();
    let wanted = config.connections.max(1);
    // Connect (and keep trying): the tonic channels reconnect by themselves afterwards.
    while clients.len() < wanted && !stop.is_set() {
        match store::connect(&config.url).await {
            Ok(c) => clients.push(c),
            Err(reason) => {
                for c in &cards {
                    c.counters.failures.fetch_add(1, Ordering::Relaxed);
                    let _ = c.notes.send(Note::Lost { reason: reason.clone() });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let mut tasks = Vec::new();
    for (i, card) in cards.into_iter().enumerate() {
        let Some(client) = clients.get(i % clients.len().max(1)).cloned() else { return };
        let config = config.clone();
        let stop = stop.clone();
        let start = tokio::time::Instant::now() + first + pace * i as u32;
        tasks.push(tokio::spawn(run_card(client, config, card, stop, start)));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// One card, forever: a session (snapshot, then watch) until it fails, then again after a
/// backoff (the reconnect loop). After a lost connection the session first resumes the
/// watches from the last revision seen; a compacted revision (or anything else the
/// watcher cannot trust) makes it list everything again.
async fn run_card(client: etcd_client::Client, config: WatchConfig, card: CardSpec, stop: Arc<Stop>, start: tokio::time::Instant) {
    while tokio::time::Instant::now() < start && !stop.is_set() {
        tokio::time::sleep_until(start.min(tokio::time::Instant::now() + Duration::from_millis(50))).await;
    }
    let mut machine = CardWatch::new(&card.name, &config.dataplane);
    let mut backoff = Duration::from_millis(100);
    let mut synced_once = false;
    let mut resume: Option<i64> = None;
    while !stop.is_set() {
        let mut c = client.clone();
        let mut progress = Progress { revision: 0, resumable: false, watching: false };
        let result = session(&mut c, &config.prefix, &mut machine, &card, &stop, &mut synced_once, resume, &mut progress).await;
        match result {
            Ok(()) => return,
            Err(reason) => {
                card.counters.failures.fetch_add(1, Ordering::Relaxed);
                let _ = card.notes.send(Note::Lost { reason });
            }
        }
        resume = (config.resume_after_error && progress.resumable).then_some(progress.revision);
        if progress.watching {
            backoff = Duration::from_millis(100);
        }
        let until = tokio::time::Instant::now() + backoff;
        while tokio::time::Instant::now() < until && !stop.is_set() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// How far a session got: the last revision the card's model is complete at, and whether
/// a new session may resume from it (the model is trusted).
struct Progress {
    revision: i64,
    resumable: bool,
    watching: bool,
}

fn err(e: etcd_client::Error) -> String {
    store::short(&e)
}

async fn list_at(c: &mut etcd_client::Client, prefix: &str, rel: &str, rev: Option<i64>) -> Result<(Vec<Listed>, i64), String> {
    bounded(rel, store::list(c, prefix, rel, rev)).await
}

/// `list`, answered within [`store::DEADLINE`] (`what`: what it lists, for the error).
async fn bounded(
    what: &str,
    list: impl std::future::Future<Output = Result<(Vec<Listed>, i64), etcd_client::Error>>,
) -> Result<(Vec<Listed>, i64), String> {
    match tokio::time::timeout(store::DEADLINE, list).await {
        Ok(r) => r.map_err(err),
        Err(_) => Err(format!("listing {what}: no answer within {} s", store::DEADLINE.as_secs())),
    }
}

/// The static snapshot's chunks at `rev`, a few per Range ([`store::STATICS_PAGE`]: a
/// page of 1000 chunks of 256 KiB would pass the client's limit on a response).
async fn list_statics_at(c: &mut etcd_client::Client, prefix: &str, rev: i64) -> Result<(Vec<Listed>, i64), String> {
    let start = format!("{prefix}{}", layout::STATICS);
    let end = store::prefix_end(&start);
    bounded(layout::STATICS, store::list_range(c, prefix, start.into_bytes(), end, Some(rev), store::STATICS_PAGE)).await
}

fn send_updates(machine: &mut CardWatch, card: &CardSpec) {
    let updates = machine.take_updates();
    if !updates.is_empty() {
        let _ = card.notes.send(Note::Updates(updates));
    }
    card.counters.events.store(machine.events, Ordering::Relaxed);
    card.counters.events_held.store(machine.events_held, Ordering::Relaxed);
    card.counters.events_foreign.store(machine.events_foreign, Ordering::Relaxed);
}

/// A snapshot at one revision, then the watches until something fails (`Err`) or the
/// watcher stops (`Ok`).
#[allow(clippy::too_many_arguments)]
async fn session(
    c: &mut etcd_client::Client,
    prefix: &str,
    machine: &mut CardWatch,
    card: &CardSpec,
    stop: &Stop,
    synced_once: &mut bool,
    resume: Option<i64>,
    progress: &mut Progress,
) -> Result<(), String> {
    let (rev, watch_list) = match resume {
        Some(rev) => (rev, machine.watching()),
        None => snapshot(c, prefix, machine, card, synced_once).await?,
    };
    progress.revision = rev;
    progress.resumable = true;
    watch(c, prefix, machine, card, stop, rev, watch_list, progress).await
}

/// Lists everything the card needs at one revision; the new tables replace the card's.
async fn snapshot(
    c: &mut etcd_client::Client,
    prefix: &str,
    machine: &mut CardWatch,
    card: &CardSpec,
    synced_once: &mut bool,
) -> Result<(i64, Vec<String>), String> {
    // The static records at the revision of the first list: from the static snapshot
    // `mapping load` wrote with them (a few values), or, for a world loaded without one,
    // listed prefix by prefix.
    let (first, rev) = list_at(c, prefix, STATIC_PREFIXES[0], None).await?;
    let mut statics = first;
    let mut from_snapshot = None;
    // No `world` (a load unfinished, or none): `begin` says so, nothing more to read.
    if statics.iter().any(|l| l.key == WORLD) {
        let (chunks, _) = list_statics_at(c, prefix, rev).await?;
        from_snapshot = static_records(&chunks)?;
        if from_snapshot.is_none() {
            for p in &STATIC_PREFIXES[1..] {
                statics.extend(list_at(c, prefix, p, Some(rev)).await?.0);
            }
        }
    }
    let mut next = match &from_snapshot {
        Some(records) => machine.begin_parts(&[&statics, records]),
        None => machine.begin(&statics),
    }
    .map_err(|r| r.0)?;
    while !next.is_empty() {
        // What is missing, a few prefixes per request (`store::list_prefixes`), within
        // the deadline once per request.
        let requests = next.len().div_ceil(store::PREFIXES_PER_TXN).max(1);
        let deadline = store::DEADLINE.saturating_mul(u32::try_from(requests).unwrap_or(u32::MAX));
        let listed = match tokio::time::timeout(deadline, store::list_prefixes(c, prefix, &next, rev)).await {
            Ok(r) => r.map_err(err)?,
            Err(_) => return Err(format!("listing {} prefixes: no answer within {} s", next.len(), deadline.as_secs())),
        };
        for (p, l) in next.iter().zip(&listed) {
            machine.listed(p, l).map_err(|r| r.0)?;
        }
        next = machine.missing();
    }
    let watch_list = machine.finish();
    if *synced_once {
        card.counters.resyncs.fetch_add(1, Ordering::Relaxed);
    }
    *synced_once = true;
    card.counters.snapshots.fetch_add(1, Ordering::Relaxed);
    send_updates(machine, card);
    let _ = card.notes.send(Note::Synced { revision: rev });
    Ok((rev, watch_list))
}

/// The watches, all on one stream, from `rev` + 1, until something fails.
#[allow(clippy::too_many_arguments)]
async fn watch(
    c: &mut etcd_client::Client,
    prefix: &str,
    machine: &mut CardWatch,
    card: &CardSpec,
    stop: &Stop,
    rev: i64,
    watch_list: Vec<String>,
    progress: &mut Progress,
) -> Result<(), String> {
    let opts = |p: &str, from: i64| {
        let o = etcd_client::WatchOptions::new().with_start_revision(from);
        if p == WORLD {
            o
        } else {
            o.with_prefix()
        }
    };
    // The watches asked for and not yet created, by the id they get: etcd and `etcd
    // grpc-proxy` both number a stream's watches 0, 1, 2, ... in the order they are asked
    // for, but a proxy may confirm them in another order (a watch it merges into one it
    // already has is confirmed at once), so a confirmation is matched by its id.
    let mut pending: HashMap<i64, String> = HashMap::new();
    let mut next_id: i64 = 0;
    let mut stream: Option<etcd_client::WatchStream> = None;
    for p in watch_list {
        match stream.as_mut() {
            None => stream = Some(c.watch(format!("{prefix}{p}"), Some(opts(&p, rev + 1))).await.map_err(err)?),
            Some(s) => s.watch(format!("{prefix}{p}"), Some(opts(&p, rev + 1))).await.map_err(err)?,
        }
        pending.insert(next_id, p);
        next_id += 1;
    }
    let Some(mut stream) = stream else { return Err("nothing to watch".into()) };
    let mut ids: HashMap<i64, String> = HashMap::new();
    let mut by_prefix: HashMap<String, i64> = HashMap::new();
    let mut cancel_on_create: BTreeSet<String> = BTreeSet::new();
    let mut reached: HashMap<String, i64> = pending.values().map(|p| (p.clone(), rev)).collect();
    loop {
        // Wait for the stream or the stop signal (no timer per message or per card).
        let stopped = stop.wake.notified();
        if stop.is_set() {
            return Ok(());
        }
        let msg = tokio::select! {
            m = stream.message() => m.map_err(err)?,
            _ = stopped => return Ok(()),
        };
        let Some(resp) = msg else { return Err("the watch stream closed".into()) };
        if resp.created() {
            let Some(p) = pending.remove(&resp.watch_id()) else {
                return Err(format!("etcd created watch {} that was not asked for", resp.watch_id()));
            };
            if cancel_on_create.remove(&p) {
                stream.cancel(resp.watch_id()).await.map_err(err)?;
            } else {
                ids.insert(resp.watch_id(), p.clone());
                by_prefix.insert(p, resp.watch_id());
            }
        }
        if resp.created() && !progress.watching && pending.is_empty() {
            progress.watching = true;
            let _ = card.notes.send(Note::Synced { revision: rev });
        }
        if resp.canceled() {
            if resp.compact_revision() > 0 {
                progress.resumable = false;
                card.counters.compacted.fetch_add(1, Ordering::Relaxed);
                return Err(format!("revision {} is compacted (oldest {}): listing again", progress.revision + 1, resp.compact_revision()));
            }
            match ids.remove(&resp.watch_id()) {
                Some(p) if by_prefix.get(&p) == Some(&resp.watch_id()) => {
                    return Err(format!("watch on {p} cancelled: {}", resp.cancel_reason()));
                }
                _ => continue, // one we cancelled
            }
        }
        if resp.events().is_empty() {
            continue;
        }
        let Some(p) = ids.get(&resp.watch_id()).cloned() else { continue };
        card.counters.responses.fetch_add(1, Ordering::Relaxed);
        let mut at = 0;
        let events: Vec<Event> = resp
            .events()
            .iter()
            .filter_map(|e| {
                let kv = e.kv()?;
                at = at.max(kv.mod_revision());
                let key = String::from_utf8_lossy(kv.key());
                let key = key.strip_prefix(prefix).unwrap_or(&key).to_string();
                Some(match e.event_type() {
                    etcd_client::EventType::Put => Event::Put { key, value: String::from_utf8_lossy(kv.value()).into_owned() },
                    etcd_client::EventType::Delete => Event::Delete { key },
                })
            })
            .collect();
        progress.resumable = false; // until the model is complete again
        machine.on_events(&p, &events).map_err(|r| r.0)?;
        loop {
            let (fetch, cancel) = machine.reconcile().map_err(|r| r.0)?;
            for x in cancel {
                reached.remove(&x);
                match by_prefix.remove(&x) {
                    Some(id) => stream.cancel(id).await.map_err(err)?,
                    None => {
                        cancel_on_create.insert(x);
                    }
                }
            }
            if fetch.is_empty() {
                break;
            }
            for f in fetch {
                let (l, _) = list_at(c, prefix, &f, Some(at)).await?;
                machine.listed(&f, &l).map_err(|r| r.0)?;
                cancel_on_create.remove(&f);
                stream.watch(format!("{prefix}{f}"), Some(opts(&f, at + 1))).await.map_err(err)?;
                reached.insert(f.clone(), at);
                pending.insert(next_id, f);
                next_id += 1;
            }
        }
        send_updates(machine, card);
        // Watches on one stream are not ordered with each other: resuming from the
        // highest revision seen could skip an event of a slower watch. Resume from the
        // lowest revision every watch has reached (its start, or its last event); what
        // is seen twice is applied idempotently.
        reached.insert(p, at);
        progress.revision = reached.values().copied().min().unwrap_or(rev);
        progress.resumable = true;
    }
}

#[cfg(test)]
mod tests {
    use super::{instance_key, static_records};
    use crate::etcd::layout::{self, Records, WORLD};
    use crate::etcd::store::Listed;
    use std::sync::Arc;

    fn listed(chunks: &[(String, String)]) -> Vec<Listed> {
        chunks.iter().enumerate().map(|(i, (k, v))| Listed { key: k.clone(), value: v.clone(), mod_revision: 10 + i as i64 }).collect()
    }

    /// The static snapshot is parsed once per thread for the same chunks: the same records
    /// as parsing them, shared; chunks that differ in one value, or in number, are parsed
    /// again; no chunk is no snapshot; a damaged chunk is an error, and not kept.
    #[test]
    fn static_records_are_parsed_once_for_the_same_chunks() {
        let mut r = Records::new();
        r.insert(WORLD.into(), "{}".into());
        for i in 0..30 {
            r.insert(format!("host/h{i}"), format!("{{\"id\":{i},\"name\":\"h{i}\",\"pa\":\"198.18.0.{i}\"}}"));
            r.insert(format!("vpc/v{i}"), format!("{{\"id\":{i},\"name\":\"v{i}\"}}"));
        }
        let chunks = listed(&layout::static_chunks(&r, 400));
        assert!(chunks.len() > 2);
        let want: Vec<(String, String)> =
            r.iter().filter(|(k, _)| k.as_str() != WORLD).map(|(k, v)| (k.clone(), v.clone())).collect();
        let read = |c: &[Listed]| static_records(c).unwrap().unwrap();
        let first = read(&chunks);
        let got: Vec<(String, String)> = first.iter().map(|l| (l.key.clone(), l.value.clone())).collect();
        assert_eq!(got, want);
        assert!(Arc::ptr_eq(&first, &read(&chunks)), "the same chunks: the same parse");

        let mut r2 = r.clone();
        r2.insert("host/h3".into(), "{\"id\":3,\"name\":\"h3\",\"pa\":\"198.18.9.9\"}".into());
        let changed = listed(&layout::static_chunks(&r2, 400));
        assert_eq!(changed.len(), chunks.len());
        let second = read(&changed);
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(second.iter().any(|l| l.key == "host/h3" && l.value.contains("198.18.9.9")));
        // Fewer chunks (the first ones of the same listing) are not the same snapshot: an
        // incomplete one is refused, not served from the last parse.
        assert!(static_records(&changed[..1]).is_err());
        assert!(Arc::ptr_eq(&second, &read(&changed)));
        assert!(static_records(&[]).unwrap().is_none());
        let mut damaged = changed.clone();
        damaged[0].value.push('x');
        assert!(static_records(&damaged).is_err());
        assert!(Arc::ptr_eq(&second, &read(&changed)), "a refused snapshot leaves the last parse");
    }

    /// `instance_key` is "four parts split at '/', the first `in`, the third `ip`".
    #[test]
    fn instance_key_is_four_parts_in_vpc_ip_item() {
        let by_parts = |k: &str| {
            let p: Vec<&str> = k.split('/').collect();
            p.len() == 4 && p[0] == "in" && p[2] == "ip"
        };
        let keys = [
            "in/v1/ip/0a000004", "in/v1/ip/", "in//ip/x", "in/ip/ip/x", "in/v1/ip", "in/v1/ip/a/b",
            "in/a/b/ip/x", "in/v1/peer/v2", "in/v1/eip/0a000004", "in/v1/ipx/y", "in/v1/xip/y", "on/h1/ip/x",
            "in", "in/", "in/v1", "in/v1/", "xin/v1/ip/x", "in/v1//ip/x", "/in/v1/ip/x", "",
        ];
        for k in keys {
            assert_eq!(instance_key(k), by_parts(k), "{k:?}");
        }
        assert!(instance_key("in/v1/ip/0a000004"));
        assert!(!instance_key("in/v1/peer/v2"));
    }
}
