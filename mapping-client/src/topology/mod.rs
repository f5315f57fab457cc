//! The world model: hosts, edges, VPCs, subnets, instances (ENIs), peerings, Elastic IPs,
//! VPNs, Direct Connect VIFs, VPC endpoints and DPDK ports, as ARCHITECTURE section 7
//! describes them.
//!
//! # Contract
//!
//! A [`Topology`] is always valid: it is only made by the loader ([`Topology::from_str`],
//! [`Topology::load`]), which rejects a bad file with one [`LoadError`], and only changed by
//! the mapping service ([`crate::Service`]), which runs the same checks before every change.
//! Every reference is resolved to an id (an index into the matching list, except
//! [`EniId`], which is assigned once and never reused). Readers get shared references only.
//!
//! The invariants the rest of the crate relies on:
//! * names are unique per kind (hosts and edges share one namespace, since `attach`
//!   names either); VNIs are unique and in `1..=16777215`; PAs are unique;
//! * a subnet is inside its VPC and overlaps no other subnet of that VPC;
//! * an instance's addresses are inside its subnet, none reserved (network, `.1` router,
//!   `.2` DNS, `.3`, broadcast), none used twice in the VPC; its MAC is unique within its
//!   VPC (two VPCs may share a MAC, on one host or not: each vNIC is its own link, and
//!   nothing looks an ENI up by MAC without its VPC, so the default MAC derived from equal
//!   addresses in overlapping VPCs is fine);
//! * peered VPCs do not overlap, and a pair is peered at most once;
//! * an Elastic IP is used once, by an instance whose VPC has an internet gateway, and an
//!   instance has at most one.

mod load;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

// The indexes are looked up on every change a card's watcher applies (names, placements,
// members): hashbrown's default hasher, several times cheaper than SipHash on short keys.
use hashbrown::{HashMap, HashSet};

use crate::net::{Cidr, MacAddr};

pub use load::LoadError;

/// A host ([`Topology::hosts`] index), an edge ([`Topology::edges`] index), either card:
/// the workspace's one card id, defined in `wire`.
pub use wire::card::{CardId, EdgeId, HostId};
/// Index of a VPC in [`Topology::vpcs`] (not its VNI).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct VpcId(pub u32);
/// Index of a subnet in [`Topology::subnets`]; 16 bits so that it packs into a
/// [`crate::Location`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct SubnetId(pub u16);
/// The id of an ENI (one per instance): assigned at load (file order, from 1) or at
/// registration, never reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct EniId(pub u32);
/// Index of a VPN in [`Topology::vpns`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct VpnId(pub u32);
/// Index of a Direct Connect VIF in [`Topology::dxs`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct DxId(pub u32);

/// A VPC endpoint ID: the 64-bit value carried on the wire, written `vpce-` + 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u64);

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vpce-{:016x}", self.0)
    }
}

impl fmt::Debug for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `[dataplane]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataplane {
    /// The lcores in the order written; the first is the control core.
    pub lcores: Vec<u32>,
    pub memory_mb: u32,
    pub hugepages: Hugepages,
}

impl Dataplane {
    /// The main lcore: mapping client, publisher, stats, alerts, control socket.
    pub fn control_lcore(&self) -> u32 {
        self.lcores.first().copied().unwrap_or(0)
    }

    /// The polling lcores (at least one).
    pub fn worker_lcores(&self) -> &[u32] {
        self.lcores.get(1..).unwrap_or(&[])
    }
}

/// `hugepages = "auto" | "on" | "off"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hugepages {
    Auto,
    On,
    Off,
}

/// `[[host]]`: a physical host and its Nitro card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub id: HostId,
    pub name: String,
    /// The card's underlay (physical) address.
    pub pa: Ipv4Addr,
}

/// `[[edge]]`: a Blackfoot edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub id: EdgeId,
    pub name: String,
    pub pa: Ipv4Addr,
}

/// `[[vpc]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpc {
    pub id: VpcId,
    pub name: String,
    pub vni: u32,
    pub cidr: Cidr,
    /// The edge holding the VPC's internet gateway, if any.
    pub internet_gateway: Option<EdgeId>,
}

/// `[[subnet]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub id: SubnetId,
    pub name: String,
    pub vpc: VpcId,
    pub cidr: Cidr,
}

/// `[[instance]]`: one ENI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub eni: EniId,
    pub name: String,
    pub subnet: SubnetId,
    /// The subnet's VPC (kept here so nobody has to look it up).
    pub vpc: VpcId,
    pub host: HostId,
    pub ip: Ipv4Addr,
    pub secondary_ips: Vec<Ipv4Addr>,
    pub mac: MacAddr,
    pub source_dest_check: bool,
}

impl Instance {
    /// The primary address, then the secondary ones.
    pub fn ips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        std::iter::once(self.ip).chain(self.secondary_ips.iter().copied())
    }
}

/// One direction of an ESP security association: AES-128-GCM (RFC 4106).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SaConfig {
    pub spi: u32,
    pub key: [u8; 16],
    pub salt: [u8; 4],
}

impl fmt::Debug for SaConfig {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaConfig")
            .field("spi", &self.spi)
            .finish_non_exhaustive()
    }
}

/// `[[vpn]]`: a site-to-site VPN of one VPC, terminated on an edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpn {
    pub id: VpnId,
    pub name: String,
    pub vpc: VpcId,
    pub edge: EdgeId,
    /// The edge's tunnel address.
    pub local: Ipv4Addr,
    pub customer_gateway: Ipv4Addr,
    pub remote_prefixes: Vec<Cidr>,
    pub outbound: SaConfig,
    pub inbound: SaConfig,
}

/// `[[dx]]`: a Direct Connect private VIF of one VPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dx {
    pub id: DxId,
    pub name: String,
    pub vpc: VpcId,
    pub edge: EdgeId,
    pub vlan: u16,
    pub remote_prefixes: Vec<Cidr>,
    pub router_mac: MacAddr,
}

/// `[[endpoint]]`: a gateway VPC endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub vpc: VpcId,
    pub edge: EdgeId,
    pub service: String,
    pub prefixes: Vec<Cidr>,
    pub front_end_pa: Ipv4Addr,
}

/// `[[port]]`: a DPDK port (`vdev` is handed to the EAL as is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub vdev: String,
    pub attach: Attach,
}

/// What a port is attached to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attach {
    /// `instance:NAME`: the instance's vNIC (by name: the ENI id changes if the instance is
    /// deregistered and registered again).
    Instance(String),
    /// `underlay:HOST` / `underlay:EDGE`: that card's physical port.
    Underlay(CardId),
    /// `edge:EDGE:internet`: IGW and VPN side.
    EdgeInternet(EdgeId),
    /// `edge:EDGE:dx`.
    EdgeDx(EdgeId),
    /// `edge:EDGE:services`: S3 front ends.
    EdgeServices(EdgeId),
    /// `fabric`: a copy of everything that crosses the in-process fabric.
    Fabric,
}

/// The validated world. See the module documentation for its invariants.
///
/// `==` is structural: two models built by different histories may hold their instances
/// in a different order and compare unequal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    dataplane: Dataplane,
    // The static lists (written only while a file or a world's records are loaded) are
    // shared by the clones of a model: the etcd watcher's partial models, one per card,
    // all start as clones of one parsed world and then read them on every event.
    hosts: Arc<Vec<Host>>,
    edges: Arc<Vec<Edge>>,
    vpcs: Arc<Vec<Vpc>>,
    subnets: Arc<Vec<Subnet>>,
    instances: Vec<Instance>,
    peerings: BTreeSet<(VpcId, VpcId)>,
    elastic_ips: BTreeMap<Ipv4Addr, EniId>,
    vpns: Vec<Vpn>,
    dxs: Vec<Dx>,
    endpoints: Vec<Endpoint>,
    ports: Vec<Port>,
    next_eni: u32,
    ix: Indexes,
}

/// Lookup structures of the static lists (cards, VPCs, subnets): set while loading only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StaticIndexes {
    pub(crate) cards: HashMap<String, CardId>,
    pub(crate) pas: HashMap<Ipv4Addr, CardId>,
    pub(crate) vpc_names: HashMap<String, VpcId>,
    pub(crate) vnis: HashMap<u32, VpcId>,
    pub(crate) subnet_names: HashMap<String, SubnetId>,
}

/// Lookup structures kept in step with the lists by every change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Indexes {
    /// The indexes of the static lists, shared as they are.
    statics: Arc<StaticIndexes>,
    instance_names: HashMap<String, EniId>,
    instance_pos: HashMap<EniId, usize>,
    /// Per VPC: address (primary or secondary) -> its ENI. Per VPC, so that a VPC's
    /// addresses are one small map to walk ([`Topology::vpc_addresses`]) and to drop.
    ip_owner: Vec<HashMap<Ipv4Addr, EniId>>,
    /// Per VPC: MAC -> its ENI.
    vpc_macs: Vec<HashMap<MacAddr, EniId>>,
    /// Per host: VPC -> number of its ENIs on the host.
    host_vpcs: Vec<HashMap<VpcId, u32>>,
    /// Per VPC: host -> number of the VPC's ENIs on it.
    vpc_hosts: Vec<HashMap<HostId, u32>>,
    /// Per VPC: its ENIs.
    vpc_members: Vec<HashSet<EniId>>,
    /// Per VPC: its peers.
    peers: Vec<BTreeSet<VpcId>>,
    /// Per VPC: the edges serving it (IGW, VPN, DX, endpoint).
    vpc_edges: Vec<BTreeSet<EdgeId>>,
    /// Per edge: the VPCs it serves.
    edge_vpcs: Vec<BTreeSet<VpcId>>,
    eip_of: HashMap<EniId, Ipv4Addr>,
}

impl Topology {
    /// `[dataplane]`.
    pub fn dataplane(&self) -> &Dataplane {
        &self.dataplane
    }
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }
    pub fn vpcs(&self) -> &[Vpc] {
        &self.vpcs
    }
    pub fn subnets(&self) -> &[Subnet] {
        &self.subnets
    }
    /// The registered instances, in no particular order (registration and removal reorder
    /// them).
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }
    pub fn vpns(&self) -> &[Vpn] {
        &self.vpns
    }
    pub fn dxs(&self) -> &[Dx] {
        &self.dxs
    }
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// The peered pairs, each once, smaller id first.
    pub fn peerings(&self) -> impl Iterator<Item = (VpcId, VpcId)> + '_ {
        self.peerings.iter().copied()
    }

    /// Elastic IP -> instance.
    pub fn elastic_ips(&self) -> impl Iterator<Item = (Ipv4Addr, EniId)> + '_ {
        self.elastic_ips.iter().map(|(ip, eni)| (*ip, *eni))
    }

    pub fn host(&self, id: HostId) -> Option<&Host> {
        self.hosts.get(id.0 as usize)
    }
    pub fn edge(&self, id: EdgeId) -> Option<&Edge> {
        self.edges.get(id.0 as usize)
    }
    pub fn vpc(&self, id: VpcId) -> Option<&Vpc> {
        self.vpcs.get(id.0 as usize)
    }
    pub fn subnet(&self, id: SubnetId) -> Option<&Subnet> {
        self.subnets.get(usize::from(id.0))
    }
    pub fn instance(&self, eni: EniId) -> Option<&Instance> {
        self.ix
            .instance_pos
            .get(&eni)
            .and_then(|&i| self.instances.get(i))
    }

    /// A host or edge by name.
    pub fn card_by_name(&self, name: &str) -> Option<CardId> {
        self.ix.statics.cards.get(name).copied()
    }
    /// The host or edge whose PA this is.
    pub fn card_by_pa(&self, pa: Ipv4Addr) -> Option<CardId> {
        self.ix.statics.pas.get(&pa).copied()
    }
    pub fn vpc_by_name(&self, name: &str) -> Option<VpcId> {
        self.ix.statics.vpc_names.get(name).copied()
    }
    pub fn vpc_by_vni(&self, vni: u32) -> Option<VpcId> {
        self.ix.statics.vnis.get(&vni).copied()
    }
    pub fn subnet_by_name(&self, name: &str) -> Option<SubnetId> {
        self.ix.statics.subnet_names.get(name).copied()
    }
    pub fn instance_by_name(&self, name: &str) -> Option<&Instance> {
        self.ix
            .instance_names
            .get(name)
            .and_then(|eni| self.instance(*eni))
    }
    /// The instance owning `ip` (primary or secondary) in `vpc`.
    pub fn ip_owner(&self, vpc: VpcId, ip: Ipv4Addr) -> Option<EniId> {
        self.ix.ip_owner.get(vpc.0 as usize)?.get(&ip).copied()
    }
    /// Every address (primary and secondary) of `vpc`'s instances, in no particular order:
    /// what the instances of [`Topology::vpc_members`] hold, read from one per-VPC index
    /// instead of instance by instance.
    pub(crate) fn vpc_addresses(&self, vpc: VpcId) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.ix.ip_owner.get(vpc.0 as usize).into_iter().flat_map(|m| m.keys().copied())
    }
    /// The instance that the Elastic IP `ip` is associated with.
    pub fn elastic_ip_instance(&self, ip: Ipv4Addr) -> Option<EniId> {
        self.elastic_ips.get(&ip).copied()
    }
    /// The Elastic IP associated with `eni`, if any.
    pub fn elastic_ip_of(&self, eni: EniId) -> Option<Ipv4Addr> {
        self.ix.eip_of.get(&eni).copied()
    }

    /// Every card: the hosts, then the edges.
    pub fn cards(&self) -> impl Iterator<Item = CardId> + '_ {
        let hosts = self.hosts.iter().map(|h| CardId::Host(h.id));
        hosts.chain(self.edges.iter().map(|e| CardId::Edge(e.id)))
    }
    pub fn card_name(&self, card: CardId) -> Option<&str> {
        match card {
            CardId::Host(h) => self.host(h).map(|h| h.name.as_str()),
            CardId::Edge(e) => self.edge(e).map(|e| e.name.as_str()),
        }
    }
    pub fn card_pa(&self, card: CardId) -> Option<Ipv4Addr> {
        match card {
            CardId::Host(h) => self.host(h).map(|h| h.pa),
            CardId::Edge(e) => self.edge(e).map(|e| e.pa),
        }
    }

    /// Whether `a` and `b` are peered.
    pub fn peered(&self, a: VpcId, b: VpcId) -> bool {
        self.peerings.contains(&ordered(a, b))
    }
    /// The peers of `vpc`.
    pub fn peers(&self, vpc: VpcId) -> impl Iterator<Item = VpcId> + '_ {
        self.ix
            .peers
            .get(vpc.0 as usize)
            .into_iter()
            .flatten()
            .copied()
    }
    /// The ENIs of `vpc`.
    pub fn vpc_members(&self, vpc: VpcId) -> impl Iterator<Item = &Instance> + '_ {
        let members = self
            .ix
            .vpc_members
            .get(vpc.0 as usize)
            .into_iter()
            .flatten();
        members.filter_map(|eni| self.instance(*eni))
    }
    /// How many ENIs `vpc` has.
    pub(crate) fn vpc_member_count(&self, vpc: VpcId) -> usize {
        self.ix.vpc_members.get(vpc.0 as usize).map_or(0, |m| m.len())
    }
    /// The hosts with at least one ENI of `vpc`.
    pub fn vpc_hosts(&self, vpc: VpcId) -> impl Iterator<Item = HostId> + '_ {
        self.ix
            .vpc_hosts
            .get(vpc.0 as usize)
            .into_iter()
            .flat_map(|m| m.keys().copied())
    }
    /// The VPCs with at least one ENI on `host`.
    pub fn host_vpcs(&self, host: HostId) -> impl Iterator<Item = VpcId> + '_ {
        self.ix
            .host_vpcs
            .get(host.0 as usize)
            .into_iter()
            .flat_map(|m| m.keys().copied())
    }
    /// Whether `host` has an ENI of `vpc`.
    pub fn host_has_vpc(&self, host: HostId, vpc: VpcId) -> bool {
        self.ix
            .host_vpcs
            .get(host.0 as usize)
            .is_some_and(|m| m.contains_key(&vpc))
    }
    /// The edges serving `vpc` (its internet gateway, VPNs, DX VIFs, endpoints).
    pub fn vpc_edges(&self, vpc: VpcId) -> impl Iterator<Item = EdgeId> + '_ {
        self.ix
            .vpc_edges
            .get(vpc.0 as usize)
            .into_iter()
            .flatten()
            .copied()
    }
    /// The VPCs `edge` serves.
    pub fn edge_vpcs(&self, edge: EdgeId) -> impl Iterator<Item = VpcId> + '_ {
        self.ix
            .edge_vpcs
            .get(edge.0 as usize)
            .into_iter()
            .flatten()
            .copied()
    }
    /// Whether `edge` serves `vpc`.
    pub fn edge_serves(&self, edge: EdgeId, vpc: VpcId) -> bool {
        self.ix
            .edge_vpcs
            .get(edge.0 as usize)
            .is_some_and(|s| s.contains(&vpc))
    }

    // ----- checks shared by the loader and the service. They return the message only; the
    // caller adds where (a line, a command).

    /// `ip` may be an address of an ENI in `subnet`: inside it and not reserved.
    pub(crate) fn check_instance_ip(&self, subnet: SubnetId, ip: Ipv4Addr) -> Result<(), String> {
        let Some(s) = self.subnet(subnet) else {
            return Err("unknown subnet".into());
        };
        if !s.cidr.contains(ip) {
            return Err(format!("{ip} is outside subnet {} ({})", s.name, s.cidr));
        }
        let offset = u32::from(ip) - s.cidr.network_u32();
        let reserved = match offset {
            0 => Some("the network address"),
            1 => Some("the subnet router"),
            2 => Some("the DNS server"),
            3 => Some("reserved for future use"),
            _ if ip == s.cidr.broadcast() => Some("the broadcast address"),
            _ => None,
        };
        match reserved {
            Some(what) => Err(format!("{ip} is reserved in subnet {} ({what})", s.name)),
            None => Ok(()),
        }
    }

    /// Checks a new ENI against everything registered (names, addresses, MAC in its VPC).
    pub(crate) fn check_new_instance(
        &self,
        inst: &Instance,
    ) -> Result<(), (InstanceField, String)> {
        if inst.name.is_empty() {
            return Err((InstanceField::Name, "must not be empty".into()));
        }
        if self.ix.instance_names.contains_key(&inst.name) {
            return Err((
                InstanceField::Name,
                format!("duplicate instance name {:?}", inst.name),
            ));
        }
        self.check_instance_ip(inst.subnet, inst.ip)
            .map_err(|m| (InstanceField::Ip, m))?;
        if let Some(other) = self.ip_owner(inst.vpc, inst.ip) {
            return Err((InstanceField::Ip, self.ip_taken(inst.vpc, inst.ip, other)));
        }
        // Without secondary addresses there is nothing more to check (and no set to build:
        // the etcd watcher checks every instance of a VPC entering its card's view).
        if inst.secondary_ips.is_empty() {
            return self.check_mac(inst.vpc, inst.mac).map_err(|m| (InstanceField::Mac, m));
        }
        let mut seen: HashSet<Ipv4Addr> = HashSet::from([inst.ip]);
        for &ip in &inst.secondary_ips {
            self.check_instance_ip(inst.subnet, ip)
                .map_err(|m| (InstanceField::SecondaryIps, m))?;
            if !seen.insert(ip) {
                let m = format!("{ip} is listed twice for this instance");
                return Err((InstanceField::SecondaryIps, m));
            }
            if let Some(other) = self.ip_owner(inst.vpc, ip) {
                return Err((
                    InstanceField::SecondaryIps,
                    self.ip_taken(inst.vpc, ip, other),
                ));
            }
        }
        self.check_mac(inst.vpc, inst.mac)
            .map_err(|m| (InstanceField::Mac, m))
    }

    fn ip_taken(&self, vpc: VpcId, ip: Ipv4Addr, other: EniId) -> String {
        let owner = self.instance(other).map_or("?", |i| i.name.as_str());
        let vpc = self.vpc(vpc).map_or("?", |v| v.name.as_str());
        format!("{ip} is already used in VPC {vpc} by instance {owner}")
    }

    /// `mac` may be used by a new ENI of `vpc`: unicast, and no other ENI of the VPC has it
    /// (whatever its host). ENIs of different VPCs may share a MAC.
    pub(crate) fn check_mac(&self, vpc: VpcId, mac: MacAddr) -> Result<(), String> {
        if !mac.is_unicast() || mac.is_zero() {
            return Err(format!("{mac} is not a unicast address"));
        }
        let owner = self
            .ix
            .vpc_macs
            .get(vpc.0 as usize)
            .and_then(|m| m.get(&mac));
        match owner.and_then(|eni| self.instance(*eni)) {
            Some(other) => {
                let vpc = self.vpc(vpc).map_or("?", |v| v.name.as_str());
                Err(format!(
                    "{mac} is already used in VPC {vpc} by instance {}",
                    other.name
                ))
            }
            None => Ok(()),
        }
    }

    /// `a` and `b` may be peered.
    pub(crate) fn check_peering(&self, a: VpcId, b: VpcId) -> Result<(), String> {
        let (Some(va), Some(vb)) = (self.vpc(a), self.vpc(b)) else {
            return Err("unknown VPC".into());
        };
        if a == b {
            return Err(format!("a VPC cannot peer with itself ({})", va.name));
        }
        if self.peered(a, b) {
            return Err(format!("{} and {} are already peered", va.name, vb.name));
        }
        if va.cidr.overlaps(&vb.cidr) {
            return Err(format!(
                "CIDRs of peered VPCs overlap: {} {} and {} {}",
                va.name, va.cidr, vb.name, vb.cidr
            ));
        }
        Ok(())
    }

    /// The Elastic IP `ip` may be associated with `eni`.
    pub(crate) fn check_elastic_ip(
        &self,
        ip: Ipv4Addr,
        eni: EniId,
    ) -> Result<(), (EipField, String)> {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
            return Err((EipField::Ip, format!("{ip} is not a unicast address")));
        }
        if let Some(other) = self.elastic_ip_instance(ip) {
            let owner = self.instance(other).map_or("?", |i| i.name.as_str());
            let m = format!("Elastic IP {ip} is already associated with instance {owner}");
            return Err((EipField::Ip, m));
        }
        if let Some(card) = self.card_by_pa(ip) {
            let name = self.card_name(card).unwrap_or("?");
            return Err((EipField::Ip, format!("{ip} is the PA of {name}")));
        }
        let Some(inst) = self.instance(eni) else {
            return Err((EipField::Instance, "unknown instance".into()));
        };
        if let Some(have) = self.elastic_ip_of(eni) {
            let m = format!("instance {} already has Elastic IP {have}", inst.name);
            return Err((EipField::Instance, m));
        }
        let vpc = self.vpc(inst.vpc);
        if vpc.is_some_and(|v| v.internet_gateway.is_none()) {
            let vpc = vpc.map_or("?", |v| v.name.as_str());
            let m = format!(
                "VPC {vpc} of instance {} has no internet gateway",
                inst.name
            );
            return Err((EipField::Instance, m));
        }
        Ok(())
    }

    /// The ENI id the next registration gets.
    pub fn next_eni(&self) -> u32 {
        self.next_eni
    }

    /// Makes the next ENI id at least `next` (ids are never reused).
    #[cfg(feature = "etcd")]
    pub(crate) fn raise_next_eni(&mut self, next: u32) {
        self.next_eni = self.next_eni.max(next);
    }

    /// Gives the world the `[dataplane]` and ports of another model of the same world
    /// (`vpcemu run FILE --etcd URL`: FILE's sections, checked against the world in etcd).
    #[cfg(feature = "etcd")]
    pub(crate) fn set_frame(&mut self, dataplane: Dataplane, ports: Vec<Port>) {
        self.dataplane = dataplane;
        self.ports = ports;
    }

    /// Sets the ENI id the next registration takes (the etcd watcher replays a
    /// registration with the id the store gave it).
    #[cfg(feature = "etcd")]
    pub(crate) fn set_next_eni(&mut self, next: u32) {
        self.next_eni = next;
    }

    /// Adds an instance whose ENI id is already set (a record of the etcd store), after
    /// the loader's checks; the message says what is wrong.
    #[cfg(feature = "etcd")]
    pub(crate) fn add_checked_instance(&mut self, inst: Instance) -> Result<(), String> {
        if inst.eni.0 == 0 || self.instance(inst.eni).is_some() {
            return Err(format!("ENI id {} is not free", inst.eni.0));
        }
        self.check_new_instance(&inst).map_err(|(_, m)| m)?;
        self.raise_next_eni(inst.eni.0.saturating_add(1));
        self.insert_instance(inst);
        Ok(())
    }

    // ----- changes. Callers have run the matching check.

    /// The next ENI id to hand out.
    pub(crate) fn allocate_eni(&mut self) -> EniId {
        let eni = EniId(self.next_eni);
        self.next_eni = self.next_eni.saturating_add(1);
        eni
    }

    pub(crate) fn insert_instance(&mut self, inst: Instance) {
        let (eni, vpc, host) = (inst.eni, inst.vpc, inst.host);
        if let Some(m) = self.ix.ip_owner.get_mut(vpc.0 as usize) {
            for ip in inst.ips() {
                m.insert(ip, eni);
            }
        }
        if let Some(m) = self.ix.vpc_macs.get_mut(vpc.0 as usize) {
            m.insert(inst.mac, eni);
        }
        self.count_placement(host, vpc, true);
        if let Some(m) = self.ix.vpc_members.get_mut(vpc.0 as usize) {
            m.insert(eni);
        }
        self.ix.instance_names.insert(inst.name.clone(), eni);
        self.ix.instance_pos.insert(eni, self.instances.len());
        self.instances.push(inst);
    }

    pub(crate) fn remove_instance(&mut self, eni: EniId) -> Option<Instance> {
        let pos = self.ix.instance_pos.remove(&eni)?;
        let inst = self.instances.swap_remove(pos);
        if let Some(moved) = self.instances.get(pos) {
            self.ix.instance_pos.insert(moved.eni, pos);
        }
        if let Some(m) = self.ix.ip_owner.get_mut(inst.vpc.0 as usize) {
            for ip in inst.ips() {
                m.remove(&ip);
            }
        }
        if let Some(m) = self.ix.vpc_macs.get_mut(inst.vpc.0 as usize) {
            m.remove(&inst.mac);
        }
        self.count_placement(inst.host, inst.vpc, false);
        if let Some(m) = self.ix.vpc_members.get_mut(inst.vpc.0 as usize) {
            m.remove(&eni);
        }
        self.ix.instance_names.remove(&inst.name);
        if let Some(ip) = self.ix.eip_of.remove(&eni) {
            self.elastic_ips.remove(&ip);
        }
        Some(inst)
    }

    /// Removes every instance of `vpc`, as [`Topology::remove_instance`] of each of its
    /// members in `vpc_members` order does, with the VPC's own indexes (its MACs, members
    /// and placement counts) cleared at once instead of entry by entry: the etcd watcher
    /// dropping a VPC out of its card's view.
    #[cfg(feature = "etcd")]
    pub(crate) fn remove_vpc_instances(&mut self, vpc: VpcId) {
        let Some(members) = self.ix.vpc_members.get_mut(vpc.0 as usize).map(std::mem::take) else {
            return;
        };
        if let Some(m) = self.ix.vpc_macs.get_mut(vpc.0 as usize) {
            m.clear();
        }
        if let Some(m) = self.ix.ip_owner.get_mut(vpc.0 as usize) {
            m.clear();
        }
        if let Some(hosts) = self.ix.vpc_hosts.get_mut(vpc.0 as usize) {
            for (h, _) in hosts.drain() {
                if let Some(m) = self.ix.host_vpcs.get_mut(h.0 as usize) {
                    m.remove(&vpc);
                }
            }
        }
        for eni in members {
            let Some(pos) = self.ix.instance_pos.remove(&eni) else { continue };
            let inst = self.instances.swap_remove(pos);
            if let Some(moved) = self.instances.get(pos) {
                self.ix.instance_pos.insert(moved.eni, pos);
            }
            self.ix.instance_names.remove(&inst.name);
            if let Some(ip) = self.ix.eip_of.remove(&eni) {
                self.elastic_ips.remove(&ip);
            }
        }
    }

    pub(crate) fn move_instance(&mut self, eni: EniId, to: HostId) {
        let Some(&pos) = self.ix.instance_pos.get(&eni) else {
            return;
        };
        let Some(inst) = self.instances.get_mut(pos) else {
            return;
        };
        let (from, vpc) = (inst.host, inst.vpc);
        inst.host = to;
        self.count_placement(from, vpc, false);
        self.count_placement(to, vpc, true);
    }

    fn count_placement(&mut self, host: HostId, vpc: VpcId, add: bool) {
        fn bump<K: std::hash::Hash + Eq>(m: &mut HashMap<K, u32>, k: K, add: bool) {
            if add {
                *m.entry(k).or_insert(0) += 1;
            } else if let Some(n) = m.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&k);
                }
            }
        }
        if let Some(m) = self.ix.host_vpcs.get_mut(host.0 as usize) {
            bump(m, vpc, add);
        }
        if let Some(m) = self.ix.vpc_hosts.get_mut(vpc.0 as usize) {
            bump(m, host, add);
        }
    }

    pub(crate) fn add_peering(&mut self, a: VpcId, b: VpcId) {
        self.peerings.insert(ordered(a, b));
        if let Some(p) = self.ix.peers.get_mut(a.0 as usize) {
            p.insert(b);
        }
        if let Some(p) = self.ix.peers.get_mut(b.0 as usize) {
            p.insert(a);
        }
    }

    pub(crate) fn remove_peering(&mut self, a: VpcId, b: VpcId) {
        self.peerings.remove(&ordered(a, b));
        if let Some(p) = self.ix.peers.get_mut(a.0 as usize) {
            p.remove(&b);
        }
        if let Some(p) = self.ix.peers.get_mut(b.0 as usize) {
            p.remove(&a);
        }
    }

    pub(crate) fn associate_elastic_ip(&mut self, ip: Ipv4Addr, eni: EniId) {
        self.elastic_ips.insert(ip, eni);
        self.ix.eip_of.insert(eni, ip);
    }

    pub(crate) fn disassociate_elastic_ip(&mut self, ip: Ipv4Addr) -> Option<EniId> {
        let eni = self.elastic_ips.remove(&ip)?;
        self.ix.eip_of.remove(&eni);
        Some(eni)
    }
}

/// Which field of an instance a check rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InstanceField {
    Name,
    Ip,
    SecondaryIps,
    Mac,
}

/// Which field of an Elastic IP association a check rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EipField {
    Ip,
    Instance,
}

pub(crate) fn ordered(a: VpcId, b: VpcId) -> (VpcId, VpcId) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

#[cfg(all(test, feature = "etcd"))]
mod tests {
    use super::*;

    /// Two hosts, an edge; red (with an Elastic IP and secondary addresses) and yellow,
    /// both spread over both hosts, with members interleaved in the instance list.
    fn world() -> String {
        let mut t = String::from(
            "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 64\nhugepages = \"off\"\n\
             [[host]]\nname = \"host-a\"\npa = \"198.18.0.1\"\n\
             [[host]]\nname = \"host-b\"\npa = \"198.18.0.2\"\n\
             [[edge]]\nname = \"edge-1\"\npa = \"198.18.255.1\"\n\
             [[vpc]]\nname = \"red\"\nvni = 101\ncidr = \"10.0.0.0/16\"\ninternet_gateway = \"edge-1\"\n\
             [[vpc]]\nname = \"yellow\"\nvni = 102\ncidr = \"10.1.0.0/16\"\ninternet_gateway = \"\"\n\
             [[subnet]]\nname = \"red-a\"\nvpc = \"red\"\ncidr = \"10.0.1.0/24\"\n\
             [[subnet]]\nname = \"yellow-a\"\nvpc = \"yellow\"\ncidr = \"10.1.1.0/24\"\n",
        );
        for i in 0..12 {
            let (vpc, net) = if i % 3 == 0 { ("yellow", 1) } else { ("red", 0) };
            let host = if i % 2 == 0 { "host-a" } else { "host-b" };
            t += &format!("[[instance]]\nname = \"i{i}\"\nsubnet = \"{vpc}-a\"\nhost = \"{host}\"\nip = \"10.{net}.1.{}\"\n", 10 + i);
            if i == 4 {
                t += "secondary_ips = [\"10.0.1.200\", \"10.0.1.201\"]\n";
            }
        }
        t += "[[peering]]\nvpcs = [\"red\", \"yellow\"]\n[[elastic_ip]]\nip = \"203.0.113.10\"\ninstance = \"i5\"\n";
        t
    }

    /// Removing a VPC's instances at once leaves the model exactly as removing them one by
    /// one (in `vpc_members` order) does: lists, every index, the Elastic IPs.
    #[test]
    fn remove_vpc_instances_is_remove_instance_of_each() {
        let t = Topology::from_str(&world(), "w.toml").unwrap();
        for name in ["red", "yellow"] {
            let vpc = t.vpc_by_name(name).unwrap();
            let mut one_by_one = t.clone();
            let members: Vec<EniId> = t.vpc_members(vpc).map(|i| i.eni).collect();
            assert!(members.len() >= 4);
            for eni in members {
                one_by_one.remove_instance(eni).unwrap();
            }
            let mut at_once = t.clone();
            at_once.remove_vpc_instances(vpc);
            assert_eq!(at_once, one_by_one, "{name}");
            assert_eq!(at_once.vpc_members(vpc).count(), 0);
            assert_eq!(at_once.vpc_addresses(vpc).count(), 0);
            assert_ne!(at_once, t);
        }
    }

    /// A VPC's addresses are exactly those of its instances (primary and secondary), each
    /// once, and follow registrations and removals; other VPCs' are not among them.
    #[test]
    fn vpc_addresses_are_its_instances_addresses() {
        let mut t = Topology::from_str(&world(), "w.toml").unwrap();
        let of_members = |t: &Topology, vpc: VpcId| -> Vec<Ipv4Addr> {
            let mut v: Vec<Ipv4Addr> = t.vpc_members(vpc).flat_map(|i| i.ips().collect::<Vec<_>>()).collect();
            v.sort_unstable();
            v
        };
        let sorted = |t: &Topology, vpc: VpcId| -> Vec<Ipv4Addr> {
            let mut v: Vec<Ipv4Addr> = t.vpc_addresses(vpc).collect();
            v.sort_unstable();
            v
        };
        let (red, yellow) = (t.vpc_by_name("red").unwrap(), t.vpc_by_name("yellow").unwrap());
        for vpc in [red, yellow] {
            let want = of_members(&t, vpc);
            assert!(want.len() >= 4);
            assert_eq!(sorted(&t, vpc), want);
        }
        // The instance with secondary addresses goes: its three addresses go with it.
        let before = sorted(&t, red).len() + sorted(&t, yellow).len();
        let eni = t.instances().iter().find(|i| !i.secondary_ips.is_empty()).map(|i| i.eni).unwrap();
        t.remove_instance(eni).unwrap();
        assert_eq!(sorted(&t, red).len() + sorted(&t, yellow).len(), before - 3);
        for vpc in [red, yellow] {
            assert_eq!(sorted(&t, vpc), of_members(&t, vpc));
        }
    }
}
