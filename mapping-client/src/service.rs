//! The embedded mapping service: the authoritative model, the commands that change it,
//! and a versioned stream of deltas per card.
//!
//! Sans-I/O in the manner of quinn-proto: no sockets, no clock. Commands go in through
//! [`Service::execute`], client requests through [`Service::handle`]; messages come out of
//! [`Service::poll_transmit`], each addressed to one card. Time is an argument
//! (a [`Duration`] since any origin the caller likes), used only for heartbeats.
//!
//! # Contract
//!
//! * A command is checked completely before anything changes: an `Err` leaves the model
//!   and every client untouched.
//! * Each card that has asked for a snapshot (is *connected*) has its own version counter.
//!   A command that changes what a card holds sends that card one [`ToClient::Delta`] with
//!   version + 1 and only the changes that card needs; cards it does not concern get
//!   nothing. When a change brings a VPC into a host's view (its first ENI of that VPC or
//!   of a peer arrives, or a peering is added), the delta carries the whole VPC: entry,
//!   every mapping, its peerings; when one leaves the view, the delta removes all of it.
//! * A [`Request::Resync`] is answered with a [`ToClient::Snapshot`] of the card's full
//!   tables at its current version; deltas queued and not yet sent are dropped, the
//!   snapshot supersedes them.
//! * Every connected card hears from the service at least every heartbeat interval
//!   ([`ToClient::Heartbeat`] with its current version), so a lost last delta is noticed.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::net::MacAddr;
use crate::tables::{self, Location, TableOp, Tables};
use crate::topology::{CardId, EipField, EniId, HostId, Instance, InstanceField, Topology, VpcId};

/// A new instance (ENI) to register. Same fields and defaults as `[[instance]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceSpec {
    pub name: String,
    pub subnet: String,
    pub host: String,
    pub ip: Ipv4Addr,
    pub secondary_ips: Vec<Ipv4Addr>,
    /// `None`: derived from `ip` (`02:00:a:b:c:d`).
    pub mac: Option<MacAddr>,
    pub source_dest_check: bool,
}

impl InstanceSpec {
    /// The registration that gives `inst` (an instance of `t`'s world, not necessarily in
    /// it yet): names of its subnet and host, its MAC as is.
    #[cfg(feature = "etcd")]
    pub(crate) fn registering(t: &Topology, inst: &Instance) -> InstanceSpec {
        InstanceSpec {
            name: inst.name.clone(),
            subnet: t.subnet(inst.subnet).map(|s| s.name.clone()).unwrap_or_default(),
            host: t.host(inst.host).map(|h| h.name.clone()).unwrap_or_default(),
            ip: inst.ip,
            secondary_ips: inst.secondary_ips.clone(),
            mac: Some(inst.mac),
            source_dest_check: inst.source_dest_check,
        }
    }
}

/// A change to the world, as `vpcemu ctl` sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Register(InstanceSpec),
    /// Also disassociates its Elastic IP, as terminating an instance does.
    Deregister {
        instance: String,
    },
    Move {
        instance: String,
        host: String,
    },
    AssociateElasticIp {
        ip: Ipv4Addr,
        instance: String,
    },
    DisassociateElasticIp {
        ip: Ipv4Addr,
    },
    AddPeering {
        a: String,
        b: String,
    },
    RemovePeering {
        a: String,
        b: String,
    },
}

/// Why a command was refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown instance {0:?}")]
    UnknownInstance(String),
    #[error("unknown subnet {0:?}")]
    UnknownSubnet(String),
    #[error("unknown host {0:?}")]
    UnknownHost(String),
    #[error("unknown vpc {0:?}")]
    UnknownVpc(String),
    #[error("Elastic IP {0} is not associated")]
    UnknownElasticIp(Ipv4Addr),
    #[error("instance {instance} is already on host {host}")]
    AlreadyThere { instance: String, host: String },
    #[error("{0} and {1} are not peered")]
    NotPeered(String, String),
    /// A field failed the same check the topology loader runs.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// What a client asks of the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Send me all my tables. `have`: the version the client holds, if any (informative).
    Resync { card: CardId, have: Option<u64> },
}

/// What the service sends a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToClient {
    /// Changes from `version - 1` to `version`.
    Delta {
        card: CardId,
        version: u64,
        ops: Vec<TableOp>,
    },
    /// Everything, at `version`.
    Snapshot {
        card: CardId,
        version: u64,
        tables: Box<Tables>,
    },
    /// Nothing changed for you beyond `version`.
    Heartbeat { card: CardId, version: u64 },
}

impl ToClient {
    /// The card the message is for.
    pub fn card(&self) -> CardId {
        match self {
            ToClient::Delta { card, .. }
            | ToClient::Snapshot { card, .. }
            | ToClient::Heartbeat { card, .. } => *card,
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            ToClient::Delta { version, .. }
            | ToClient::Snapshot { version, .. }
            | ToClient::Heartbeat { version, .. } => *version,
        }
    }
}

/// The service's state for one card.
#[derive(Debug, Default)]
struct Peer {
    connected: bool,
    version: u64,
    outbox: VecDeque<ToClient>,
    last_sent: Duration,
}

/// The mapping service. See the module documentation.
#[derive(Debug)]
pub struct Service {
    topo: Topology,
    peers: BTreeMap<CardId, Peer>,
    heartbeat: Duration,
    /// Which cards are clients: whose deltas are computed.
    clients: Clients,
}

/// Which cards a [`Service`] computes deltas for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Clients {
    #[default]
    All,
    One(CardId),
    None,
}

impl Clients {
    fn wants(self, card: CardId) -> bool {
        match self {
            Clients::All => true,
            Clients::One(c) => c == card,
            Clients::None => false,
        }
    }
}

/// The default heartbeat interval.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

impl Service {
    pub fn new(topology: Topology) -> Service {
        let peers = topology.cards().map(|c| (c, Peer::default())).collect();
        Service {
            topo: topology,
            peers,
            heartbeat: HEARTBEAT,
            clients: Clients::All,
        }
    }

    /// A service whose only client is `card`: commands are checked and change the model
    /// exactly as with [`Service::new`], and `card` gets the same messages, but no other
    /// card's delta is computed (a command costs what it changes for `card`, not for the
    /// world). The etcd watcher keeps one per card as the card's partial model.
    pub fn for_card(topology: Topology, card: CardId) -> Service {
        let mut peers = BTreeMap::new();
        if topology.cards().any(|c| c == card) {
            peers.insert(card, Peer::default());
        }
        Service {
            topo: topology,
            peers,
            heartbeat: HEARTBEAT,
            clients: Clients::One(card),
        }
    }

    /// A service without clients: commands are checked and change the model exactly as
    /// with [`Service::new`], and no delta is computed (`ctl --etcd` checks a command
    /// and writes the records it changes).
    pub fn without_clients(topology: Topology) -> Service {
        Service {
            topo: topology,
            peers: BTreeMap::new(),
            heartbeat: HEARTBEAT,
            clients: Clients::None,
        }
    }

    /// Sets how long a connected client may go without hearing from the service.
    pub fn with_heartbeat(mut self, interval: Duration) -> Service {
        self.heartbeat = interval;
        self
    }

    /// A copy (its clients' state with it), for tests comparing two ways to one result.
    #[cfg(test)]
    fn clone_for_test(&self) -> Service {
        Service {
            topo: self.topo.clone(),
            peers: self
                .peers
                .iter()
                .map(|(&c, p)| (c, Peer { connected: p.connected, version: p.version, outbox: p.outbox.clone(), last_sent: p.last_sent }))
                .collect(),
            heartbeat: self.heartbeat,
            clients: self.clients,
        }
    }

    /// The current model.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// The model, to change it without deltas (the etcd watcher sets the ENI id a
    /// registration takes).
    #[cfg(feature = "etcd")]
    pub(crate) fn topology_mut(&mut self) -> &mut Topology {
        &mut self.topo
    }

    /// The version `card` is at (0 before its first change).
    pub fn version(&self, card: CardId) -> Option<u64> {
        self.peers.get(&card).map(|p| p.version)
    }

    /// A client's request. Unknown cards are ignored.
    pub fn handle(&mut self, request: Request, now: Duration) {
        let Request::Resync { card, .. } = request;
        let Some(peer) = self.peers.get_mut(&card) else {
            return;
        };
        if !peer.connected {
            peer.connected = true;
            peer.last_sent = now;
        }
        peer.outbox.clear();
        let tables = Box::new(Tables::build_for_card(&self.topo, card));
        peer.outbox.push_back(ToClient::Snapshot {
            card,
            version: peer.version,
            tables,
        });
    }

    /// The next message to send, if any: queued deltas and snapshots first, then
    /// heartbeats that are due at `now`.
    pub fn poll_transmit(&mut self, now: Duration) -> Option<ToClient> {
        if let Some(peer) = self.peers.values_mut().find(|p| !p.outbox.is_empty()) {
            peer.last_sent = now;
            return peer.outbox.pop_front();
        }
        let heartbeat = self.heartbeat;
        let (&card, peer) = self
            .peers
            .iter_mut()
            .find(|(_, p)| p.connected && now.saturating_sub(p.last_sent) >= heartbeat)?;
        peer.last_sent = now;
        Some(ToClient::Heartbeat {
            card,
            version: peer.version,
        })
    }

    /// When [`Service::poll_transmit`] will next have a heartbeat to send (queued messages
    /// are ready at once).
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.peers
            .values()
            .filter(|p| p.connected)
            .map(|p| p.last_sent + self.heartbeat)
            .min()
    }

    /// Checks and applies a command, queueing a delta for every connected card it
    /// concerns. On `Err` nothing changed.
    pub fn execute(&mut self, command: &Command) -> Result<(), CommandError> {
        let mut batch = self.batch();
        match command {
            Command::Register(spec) => self.register(spec, &mut batch)?,
            Command::Deregister { instance } => self.deregister(instance, &mut batch)?,
            Command::Move { instance, host } => self.move_instance(instance, host, &mut batch)?,
            Command::AssociateElasticIp { ip, instance } => {
                self.associate(*ip, instance, &mut batch)?
            }
            Command::DisassociateElasticIp { ip } => self.disassociate(*ip, &mut batch)?,
            Command::AddPeering { a, b } => self.peering(a, b, true, &mut batch)?,
            Command::RemovePeering { a, b } => self.peering(a, b, false, &mut batch)?,
        }
        self.queue(batch);
        Ok(())
    }

    /// An empty batch of this service's clients.
    fn batch(&self) -> Batch {
        Batch {
            clients: self.clients,
            ..Batch::default()
        }
    }

    /// Queues one delta per connected card with ops in `batch`.
    fn queue(&mut self, batch: Batch) {
        for (card, ops) in batch.cards {
            match self.peers.get_mut(&card) {
                Some(peer) if peer.connected && !ops.ops.is_empty() => {
                    peer.version += 1;
                    peer.outbox.push_back(ToClient::Delta {
                        card,
                        version: peer.version,
                        ops: ops.ops,
                    });
                }
                _ => {}
            }
        }
    }

    /// Adds instances whose ENI ids are given (records of the etcd store), checked as a
    /// registration checks them, with the ops a registration of each, in order, gives;
    /// the ops of consecutive instances go out as one delta per card. An instance on a
    /// host this service computes ops for (its view may change) is registered as such.
    /// On `Err` the instances before the one refused are in.
    #[cfg(feature = "etcd")]
    pub(crate) fn register_all(&mut self, instances: Vec<Instance>) -> Result<(), String> {
        let mut batch = self.batch();
        // The cards viewing the last VPC seen. With one client (or none) an instance
        // added on a host whose ops are not computed changes no computed card's view, so
        // the viewers of a VPC stay the same until a full registration; with every card a
        // client, every instance takes the full registration above.
        let mut viewing: Option<(VpcId, BTreeSet<CardId>)> = None;
        for inst in instances {
            if batch.wants(CardId::Host(inst.host)) {
                viewing = None;
                let done = std::mem::replace(&mut batch, self.batch());
                self.queue(done);
                let spec = InstanceSpec::registering(&self.topo, &inst);
                self.topo.set_next_eni(inst.eni.0);
                self.execute(&Command::Register(spec)).map_err(|e| e.to_string())?;
                continue;
            }
            // Elsewhere: no view changes for the cards computed, only the new mappings.
            // The mappings are computed before the instance goes in (no look-up of it
            // after): a refused instance returns before the batch is queued.
            let vpc = inst.vpc;
            let viewers = match viewing.take() {
                Some((v, cards)) if v == vpc => cards,
                _ => cards_viewing(&self.topo, vpc, &batch),
            };
            let t = &self.topo;
            let (vni, loc) = (vni_of(t, vpc), tables::location(t, &inst));
            for &card in &viewers {
                batch.mappings(card, vni, &inst, loc);
            }
            self.topo.add_checked_instance(inst)?;
            viewing = Some((vpc, viewers));
        }
        self.queue(batch);
        Ok(())
    }

    fn host_named(&self, name: &str) -> Result<HostId, CommandError> {
        match self.topo.card_by_name(name) {
            Some(CardId::Host(h)) => Ok(h),
            _ => Err(CommandError::UnknownHost(name.to_string())),
        }
    }

    fn instance_named(&self, name: &str) -> Result<Instance, CommandError> {
        self.topo
            .instance_by_name(name)
            .cloned()
            .ok_or_else(|| CommandError::UnknownInstance(name.to_string()))
    }

    fn vpc_named(&self, name: &str) -> Result<VpcId, CommandError> {
        self.topo
            .vpc_by_name(name)
            .ok_or_else(|| CommandError::UnknownVpc(name.to_string()))
    }

    fn register(&mut self, spec: &InstanceSpec, batch: &mut Batch) -> Result<(), CommandError> {
        let t = &self.topo;
        let subnet = t
            .subnet_by_name(&spec.subnet)
            .ok_or_else(|| CommandError::UnknownSubnet(spec.subnet.clone()))?;
        let vpc = t.subnet(subnet).map_or(VpcId(0), |s| s.vpc);
        let host = self.host_named(&spec.host)?;
        let mut inst = Instance {
            eni: Default::default(),
            name: spec.name.clone(),
            subnet,
            vpc,
            host,
            ip: spec.ip,
            secondary_ips: spec.secondary_ips.clone(),
            mac: spec.mac.unwrap_or_else(|| MacAddr::from_ip(spec.ip)),
            source_dest_check: spec.source_dest_check,
        };
        t.check_new_instance(&inst).map_err(|(field, message)| {
            let field = match field {
                InstanceField::Name => "name",
                InstanceField::Ip => "ip",
                InstanceField::SecondaryIps => "secondary_ips",
                InstanceField::Mac => "mac",
            };
            CommandError::Invalid { field, message }
        })?;

        let candidates = with_peers(t, vpc);
        let before = view_among(t, host, &candidates, batch);
        let viewers = cards_viewing(t, vpc, batch);
        inst.eni = self.topo.allocate_eni();
        let eni = inst.eni;
        self.topo.insert_instance(inst);
        let t = &self.topo;
        let Some(inst) = t.instance(eni) else {
            return Ok(());
        };
        let after = view_among(t, host, &candidates, batch);

        let vni = vni_of(t, vpc);
        let loc = tables::location(t, inst);
        for &card in &viewers {
            batch.mappings(card, vni, inst, loc);
        }
        let card = CardId::Host(host);
        for &u in after.difference(&before) {
            add_vpc(batch, t, card, u);
        }
        batch.push(
            card,
            TableOp::UpsertLocalEni(Box::new(tables::local_eni(t, inst))),
        );
        Ok(())
    }

    fn deregister(&mut self, name: &str, batch: &mut Batch) -> Result<(), CommandError> {
        let inst = self.instance_named(name)?;
        let t = &self.topo;
        let (vpc, host) = (inst.vpc, inst.host);
        let vni = vni_of(t, vpc);
        let eip = t.elastic_ip_of(inst.eni);
        let igw = t.vpc(vpc).and_then(|v| v.internet_gateway);
        let candidates = with_peers(t, vpc);
        let before = view_among(t, host, &candidates, batch);
        let viewers = cards_viewing(t, vpc, batch);
        self.topo.remove_instance(inst.eni);
        let t = &self.topo;
        let after = view_among(t, host, &candidates, batch);
        let gone: BTreeSet<VpcId> = before.difference(&after).copied().collect();

        let card = CardId::Host(host);
        for &viewer in &viewers {
            if viewer == card && gone.contains(&vpc) {
                continue;
            }
            for ip in inst.ips() {
                batch.push(viewer, TableOp::RemoveMapping { vni, ip });
            }
        }
        let was_in_view = |x: VpcId| {
            before.contains(&x) || (!candidates.contains(&x) && tables::relevant(t, card, x))
        };
        for &u in &gone {
            let extra: Vec<Ipv4Addr> = if u == vpc {
                inst.ips().collect()
            } else {
                Vec::new()
            };
            remove_vpc(batch, t, card, u, &extra, t.peers(u), was_in_view);
        }
        batch.push(card, TableOp::RemoveLocalEni { eni: inst.eni });
        if let (Some(public), Some(edge)) = (eip, igw) {
            batch.push(CardId::Edge(edge), TableOp::RemoveElasticIp { public });
        }
        Ok(())
    }

    fn move_instance(
        &mut self,
        name: &str,
        host: &str,
        batch: &mut Batch,
    ) -> Result<(), CommandError> {
        let eni = self
            .topo
            .instance_by_name(name)
            .map(|i| i.eni)
            .ok_or_else(|| CommandError::UnknownInstance(name.to_string()))?;
        let to = self.host_named(host)?;
        self.move_eni(eni, to, batch)
    }

    /// [`Command::Move`] of the instance `eni` to `to`, by ids (the etcd watcher replays a
    /// move it read as ids: no name is looked up or copied). On `Err` nothing changed.
    #[cfg(feature = "etcd")]
    pub(crate) fn execute_move(&mut self, eni: EniId, to: HostId) -> Result<(), CommandError> {
        let mut batch = self.batch();
        self.move_eni(eni, to, &mut batch)?;
        self.queue(batch);
        Ok(())
    }

    fn move_eni(&mut self, eni: EniId, to: HostId, batch: &mut Batch) -> Result<(), CommandError> {
        let t = &self.topo;
        let Some(inst) = t.instance(eni) else {
            return Err(CommandError::UnknownInstance(format!("eni-{}", eni.0)));
        };
        let Some(to_host) = t.host(to) else {
            return Err(CommandError::UnknownHost(format!("host-{}", to.0)));
        };
        let from = inst.host;
        if from == to {
            return Err(CommandError::AlreadyThere {
                instance: inst.name.clone(),
                host: to_host.name.clone(),
            });
        }
        // The MAC stays unique in its VPC wherever the ENI goes: nothing to check.
        let vpc = inst.vpc;
        let candidates = with_peers(t, vpc);
        let before_from = view_among(t, from, &candidates, batch);
        let before_to = view_among(t, to, &candidates, batch);
        let viewers_before = cards_viewing(t, vpc, batch);
        self.topo.move_instance(eni, to);
        let t = &self.topo;
        let Some(moved) = t.instance(eni) else {
            return Ok(());
        };
        let after_from = view_among(t, from, &candidates, batch);
        let after_to = view_among(t, to, &candidates, batch);
        let viewers_after = cards_viewing(t, vpc, batch);

        let vni = vni_of(t, vpc);
        let loc = tables::location(t, moved);
        for &card in viewers_before.intersection(&viewers_after) {
            batch.mappings(card, vni, moved, loc);
        }
        let (from_card, to_card) = (CardId::Host(from), CardId::Host(to));
        let was_in_view = |x: VpcId| {
            before_from.contains(&x)
                || (!candidates.contains(&x) && tables::relevant(t, from_card, x))
        };
        for &u in before_from.difference(&after_from) {
            remove_vpc(batch, t, from_card, u, &[], t.peers(u), was_in_view);
        }
        for &u in after_to.difference(&before_to) {
            add_vpc(batch, t, to_card, u);
        }
        batch.push(from_card, TableOp::RemoveLocalEni { eni: moved.eni });
        batch.push(
            to_card,
            TableOp::UpsertLocalEni(Box::new(tables::local_eni(t, moved))),
        );
        Ok(())
    }

    fn associate(
        &mut self,
        ip: Ipv4Addr,
        name: &str,
        batch: &mut Batch,
    ) -> Result<(), CommandError> {
        let inst = self.instance_named(name)?;
        self.topo
            .check_elastic_ip(ip, inst.eni)
            .map_err(|(field, message)| {
                let field = match field {
                    EipField::Ip => "ip",
                    EipField::Instance => "instance",
                };
                CommandError::Invalid { field, message }
            })?;
        self.topo.associate_elastic_ip(ip, inst.eni);
        let t = &self.topo;
        if let Some(edge) = t.vpc(inst.vpc).and_then(|v| v.internet_gateway) {
            let op = TableOp::UpsertElasticIp {
                public: ip,
                vni: vni_of(t, inst.vpc),
                private: inst.ip,
            };
            batch.push(CardId::Edge(edge), op);
        }
        Ok(())
    }

    fn disassociate(&mut self, ip: Ipv4Addr, batch: &mut Batch) -> Result<(), CommandError> {
        let eni = self
            .topo
            .elastic_ip_instance(ip)
            .ok_or(CommandError::UnknownElasticIp(ip))?;
        self.topo.disassociate_elastic_ip(ip);
        let t = &self.topo;
        let igw = t
            .instance(eni)
            .and_then(|i| t.vpc(i.vpc))
            .and_then(|v| v.internet_gateway);
        if let Some(edge) = igw {
            batch.push(CardId::Edge(edge), TableOp::RemoveElasticIp { public: ip });
        }
        Ok(())
    }

    fn peering(
        &mut self,
        a: &str,
        b: &str,
        add: bool,
        batch: &mut Batch,
    ) -> Result<(), CommandError> {
        let (va, vb) = (self.vpc_named(a)?, self.vpc_named(b)?);
        let t = &self.topo;
        if add {
            t.check_peering(va, vb)
                .map_err(|message| CommandError::Invalid {
                    field: "vpcs",
                    message,
                })?;
        } else if !t.peered(va, vb) {
            return Err(CommandError::NotPeered(a.to_string(), b.to_string()));
        }
        let candidates = BTreeSet::from([va, vb]);
        let hosts: BTreeSet<HostId> = t
            .vpc_hosts(va)
            .chain(t.vpc_hosts(vb))
            .filter(|&h| batch.wants(CardId::Host(h)))
            .collect();
        let before: BTreeMap<HostId, BTreeSet<VpcId>> = hosts
            .iter()
            .map(|&h| (h, view_among(t, h, &candidates, batch)))
            .collect();
        let viewers_a = cards_viewing(t, va, batch);
        let viewers_b = cards_viewing(t, vb, batch);
        if add {
            self.topo.add_peering(va, vb);
        } else {
            self.topo.remove_peering(va, vb);
        }
        let t = &self.topo;
        let mut changed: BTreeMap<CardId, BTreeSet<VpcId>> = BTreeMap::new();
        for (&h, before_h) in &before {
            let card = CardId::Host(h);
            let after_h = view_among(t, h, &candidates, batch);
            if add {
                for &u in after_h.difference(before_h) {
                    add_vpc(batch, t, card, u);
                    changed.entry(card).or_default().insert(u);
                }
            } else {
                let was_in_view = |x: VpcId| {
                    before_h.contains(&x)
                        || (!candidates.contains(&x) && tables::relevant(t, card, x))
                };
                for &u in before_h.difference(&after_h) {
                    let other = if u == va { vb } else { va };
                    let peers_before = t.peers(u).chain(std::iter::once(other));
                    remove_vpc(batch, t, card, u, &[], peers_before, was_in_view);
                    changed.entry(card).or_default().insert(u);
                }
            }
        }
        // Cards that keep a VPC of the pair: its routes changed, and maybe the pair itself.
        let flipped = |card: CardId, v: VpcId| changed.get(&card).is_some_and(|s| s.contains(&v));
        for (v, viewers) in [(va, &viewers_a), (vb, &viewers_b)] {
            // The entry is built only for a card that keeps the VPC (building it walks
            // the world's subnets, VPNs, DX VIFs and endpoints).
            let keeping: Vec<CardId> = viewers.iter().copied().filter(|&c| !flipped(c, v)).collect();
            if keeping.is_empty() {
                continue;
            }
            let Some(entry) = tables::vpc_entry(t, v) else {
                continue;
            };
            for card in keeping {
                batch.push(card, TableOp::UpsertVpc(Box::new(entry.clone())));
            }
        }
        let (ka, kb) = (vni_of(t, va), vni_of(t, vb));
        for &card in viewers_a.intersection(&viewers_b) {
            if !flipped(card, va) && !flipped(card, vb) {
                batch.peering(card, add, ka, kb);
            }
        }
        Ok(())
    }
}

/// The ops of one command, per card.
#[derive(Default)]
struct Batch {
    cards: BTreeMap<CardId, CardOps>,
    /// The cards whose ops are computed.
    clients: Clients,
}

#[derive(Default)]
struct CardOps {
    ops: Vec<TableOp>,
    /// Peering pairs already in `ops` (a pair can be reached from both of its VPCs).
    pairs: HashSet<(u32, u32)>,
}

impl Batch {
    /// Whether `card`'s ops are computed.
    fn wants(&self, card: CardId) -> bool {
        self.clients.wants(card)
    }

    fn push(&mut self, card: CardId, op: TableOp) {
        if !self.wants(card) {
            return;
        }
        self.cards.entry(card).or_default().ops.push(op);
    }

    /// Room for `more` ops of `card` (a VPC entering or leaving a view: one per address,
    /// grown once instead of doubling along).
    fn reserve(&mut self, card: CardId, more: usize) {
        if self.wants(card) {
            self.cards.entry(card).or_default().ops.reserve(more);
        }
    }

    /// Every address of `inst`, mapped in `vni` to `location`, for `card`.
    fn mappings(&mut self, card: CardId, vni: u32, inst: &Instance, location: Location) {
        for ip in inst.ips() {
            self.push(card, TableOp::UpsertMapping { vni, ip, location });
        }
    }

    fn peering(&mut self, card: CardId, add: bool, a: u32, b: u32) {
        if !self.wants(card) {
            return;
        }
        let ops = self.cards.entry(card).or_default();
        if ops.pairs.insert((a.min(b), a.max(b))) {
            ops.ops.push(if add {
                TableOp::AddPeering { a, b }
            } else {
                TableOp::RemovePeering { a, b }
            });
        }
    }
}

fn vni_of(t: &Topology, vpc: VpcId) -> u32 {
    t.vpc(vpc).map_or(0, |v| v.vni)
}

/// `vpc` and its peers: the VPCs whose presence in a host's view can change when an ENI
/// of `vpc` comes or goes.
fn with_peers(t: &Topology, vpc: VpcId) -> BTreeSet<VpcId> {
    std::iter::once(vpc).chain(t.peers(vpc)).collect()
}

/// Those of `candidates` in `host`'s view; none if `batch` computes no ops for `host`
/// (the view is only used for that host's ops).
fn view_among(
    t: &Topology,
    host: HostId,
    candidates: &BTreeSet<VpcId>,
    batch: &Batch,
) -> BTreeSet<VpcId> {
    if !batch.wants(CardId::Host(host)) {
        return BTreeSet::new();
    }
    candidates
        .iter()
        .copied()
        .filter(|&v| tables::relevant(t, CardId::Host(host), v))
        .collect()
}

/// Every card whose view holds `vpc` (of those `batch` computes ops for). A host views
/// `vpc` when it has an ENI of it or of a peer, an edge when it serves it: with one
/// client, one look at that card instead of a walk over every host of `vpc` and its peers.
fn cards_viewing(t: &Topology, vpc: VpcId, batch: &Batch) -> BTreeSet<CardId> {
    match batch.clients {
        Clients::All => {}
        Clients::One(card) if tables::relevant(t, card, vpc) => return BTreeSet::from([card]),
        Clients::One(_) | Clients::None => return BTreeSet::new(),
    }
    let hosts = std::iter::once(vpc)
        .chain(t.peers(vpc))
        .flat_map(|v| t.vpc_hosts(v))
        .map(CardId::Host);
    hosts
        .chain(t.vpc_edges(vpc).map(CardId::Edge))
        .filter(|&c| batch.wants(c))
        .collect()
}

/// `u` enters `card`'s view: its entry, every mapping, its peerings inside the view.
fn add_vpc(batch: &mut Batch, t: &Topology, card: CardId, u: VpcId) {
    if !batch.wants(card) {
        return;
    }
    let Some(entry) = tables::vpc_entry(t, u) else {
        return;
    };
    let vni = entry.vni;
    batch.reserve(card, t.vpc_member_count(u) + 1);
    batch.push(card, TableOp::UpsertVpc(Box::new(entry)));
    for inst in t.vpc_members(u) {
        batch.mappings(card, vni, inst, tables::location(t, inst));
    }
    for x in t.peers(u).filter(|&x| tables::relevant(t, card, x)) {
        batch.peering(card, true, vni, vni_of(t, x));
    }
}

/// `u` leaves `card`'s view. `t` is the new model: `extra` are addresses of `u` that were
/// mapped and are gone from `t`, `peers_before` the peers `u` had, `was_in_view` the old
/// view.
fn remove_vpc(
    batch: &mut Batch,
    t: &Topology,
    card: CardId,
    u: VpcId,
    extra: &[Ipv4Addr],
    peers_before: impl Iterator<Item = VpcId>,
    was_in_view: impl Fn(VpcId) -> bool,
) {
    if !batch.wants(card) {
        return;
    }
    let vni = vni_of(t, u);
    batch.reserve(card, t.vpc_member_count(u) + extra.len() + 1);
    batch.push(card, TableOp::RemoveVpc { vni });
    // Every address of `u`'s instances, from the VPC's own address index (one small map)
    // rather than instance by instance through the model.
    for ip in t.vpc_addresses(u) {
        batch.push(card, TableOp::RemoveMapping { vni, ip });
    }
    for &ip in extra {
        batch.push(card, TableOp::RemoveMapping { vni, ip });
    }
    for x in peers_before.filter(|&x| was_in_view(x)) {
        batch.peering(card, false, vni, vni_of(t, x));
    }
}

#[cfg(all(test, feature = "etcd"))]
mod tests {
    use super::*;

    /// Every message a service has queued, heartbeats aside.
    fn drain(s: &mut Service) -> Vec<ToClient> {
        std::iter::from_fn(|| s.poll_transmit(Duration::ZERO)).collect()
    }

    /// A move by ids ([`Service::execute_move`], the etcd watcher's) is the move by names:
    /// the same model, the same messages to every card, the same refusal, for every
    /// instance to every host, with every card a client and with one.
    #[test]
    fn execute_move_is_the_move_command() {
        let world = include_str!("../tests/data/deltas-world.toml");
        let t = Topology::from_str(world, "deltas-world.toml").unwrap();
        let mut services: Vec<Service> = vec![Service::new(t.clone())];
        services.extend(t.cards().map(|c| Service::for_card(t.clone(), c)));
        let mut moves = 0;
        for mut base in services {
            for card in t.cards() {
                base.handle(Request::Resync { card, have: None }, Duration::ZERO);
            }
            drain(&mut base);
            for inst in t.instances() {
                for host in t.hosts() {
                    let (mut by_name, mut by_id) = (base.clone_for_test(), base.clone_for_test());
                    let named = by_name.execute(&Command::Move { instance: inst.name.clone(), host: host.name.clone() });
                    let ided = by_id.execute_move(inst.eni, host.id);
                    assert_eq!(named, ided, "{} to {}", inst.name, host.name);
                    assert_eq!(by_name.topology(), by_id.topology());
                    assert_eq!(drain(&mut by_name), drain(&mut by_id), "{} to {}", inst.name, host.name);
                    moves += named.is_ok() as usize;
                }
            }
        }
        assert!(moves > 20, "{moves} moves");
    }
}
