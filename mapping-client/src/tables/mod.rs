//! The tables one card (a Nitro host card or a Blackfoot edge) reads on its packet path:
//! one immutable version at a time, published by [`crate::rcu`].
//!
//! # What a card holds
//!
//! * **mappings** — (VNI, IPv4) -> [`Location`] (the card PA the address lives behind, its
//!   ENI, MAC and subnet), for every address of every VPC in the card's view: for a host,
//!   the VPCs with an ENI on it plus their peers; for an edge, the VPCs it serves (internet
//!   gateway, VPN, DX or endpoint on it). What is not here is dropped: there is no miss path.
//! * **local ENIs** (hosts) by id, (VNI, IP) and name. Never by MAC alone: two VPCs may
//!   give their ENIs on one host the same MAC (equal addresses in overlapping VPCs get the
//!   same derived MAC), and the card knows which ENI a frame is from by its port;
//! * **VPCs** by VNI: CIDR, subnets, internet gateway and a longest-prefix route table
//!   ([`Tables::route`]) over the own CIDR, peer CIDRs, VPN/DX remote prefixes and endpoint
//!   prefixes; and the VPCs' CIDRs indexed by prefix ([`CidrIndex`]), so that "which
//!   other VPC holds this address" ([`Tables::other_vpc_holding`]) costs one hash probe per
//!   prefix length in use, not one test per VPC;
//! * **peerings** between VPCs of the view;
//! * **Elastic IPs** both ways (edges holding the VPC's internet gateway);
//! * **VPN SAs** by inbound SPI, **DX VIFs** by VLAN, **endpoints** by ID, the VPNs'
//!   **tunnel addresses** as a set ([`Tables::is_tunnel_address`]) (edges);
//! * **edges** by PA with the VNIs each serves (everyone), for verify-recv.
//!
//! # Contract
//!
//! Lookups never allocate, lock or panic. [`Tables`] changes only through
//! [`Tables::apply`] with [`TableOp`]s (what the service's deltas carry) or by being built
//! whole ([`Tables::build_for_card`]); applying the deltas the service emits to the tables
//! built from the old model gives tables equal (`==`) to the ones built from the new model.
//!
//! # Cost
//!
//! No lookup walks every VPC, VPN or card of the view: each is a hash probe, or a scan of
//! one VPC's few route prefixes ([`PrefixTable`]). The indexes derived from other tables
//! (the VPC CIDRs, the tunnel addresses) are kept up to date by the same [`TableOp`]s, on
//! the control core, in time proportional to the change, and are part of `==`.

mod build;
mod cidr_index;
mod lpm;
mod mapping;

use std::net::Ipv4Addr;

use hashbrown::{HashMap, HashSet};

use crate::net::{Cidr, MacAddr};
use crate::rcu::Absorb;
use crate::topology::{CardId, DxId, EdgeId, EndpointId, EniId, SaConfig, SubnetId, VpnId};

pub(crate) use build::{local_eni, location, relevant, vpc_entry};
pub use cidr_index::CidrIndex;
pub use lpm::PrefixTable;
pub use mapping::{ElasticIpTable, ExactTable, Home, MappingTable, Slot, SlotValue, BURST};

/// Where an address lives: the value of the mapping table, 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// PA of the host card the ENI is attached to.
    pub pa: Ipv4Addr,
    pub eni: EniId,
    /// The ENI's MAC (the Ethernet source when delivering from a peer in the same subnet).
    pub mac: MacAddr,
    pub subnet: SubnetId,
}

const _: () = assert!(std::mem::size_of::<Location>() == 16);

/// Where a VPC sends a destination, from [`Tables::route`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Inside a VPC, the sender's own or a peer: look the destination up with this VNI.
    Vpc { vni: u32 },
    /// A VPN remote prefix: to the edge, which encrypts with the VPN's outbound SA.
    Vpn { vpn: VpnId, edge_pa: Ipv4Addr },
    /// A Direct Connect remote prefix: to the edge, which tags it with the VLAN.
    Dx { vlan: u16, edge_pa: Ipv4Addr },
    /// An endpoint prefix: to the edge, which re-encapsulates with the endpoint ID.
    Endpoint { id: EndpointId, edge_pa: Ipv4Addr },
    /// No prefix matched: the VPC's internet gateway.
    Internet { edge_pa: Ipv4Addr },
}

/// A subnet of a VPC in the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetInfo {
    pub id: SubnetId,
    pub name: String,
    pub vni: u32,
    pub cidr: Cidr,
}

/// A VPC in the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcEntry {
    pub vni: u32,
    pub name: String,
    pub cidr: Cidr,
    /// PA of the edge holding the internet gateway.
    pub internet_gateway: Option<Ipv4Addr>,
    pub subnets: Vec<SubnetInfo>,
    /// Everything but the internet gateway default.
    pub routes: PrefixTable<Route>,
}

impl VpcEntry {
    /// Where this VPC sends `dst`: the longest matching prefix, else its internet gateway
    /// (the rule of [`Tables::route`], for callers that hold the entry).
    #[inline]
    pub fn route(&self, dst: Ipv4Addr) -> Option<Route> {
        self.routes
            .lookup(dst)
            .or_else(|| self.internet_gateway.map(|edge_pa| Route::Internet { edge_pa }))
    }
}

/// An ENI attached to this (host) card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalEni {
    pub eni: EniId,
    pub name: String,
    pub vni: u32,
    pub subnet: SubnetId,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub secondary_ips: Vec<Ipv4Addr>,
    pub source_dest_check: bool,
}

impl LocalEni {
    /// The primary address, then the secondary ones.
    pub fn ips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        std::iter::once(self.ip).chain(self.secondary_ips.iter().copied())
    }

    /// Whether `ip` is one of the ENI's addresses.
    pub fn owns(&self, ip: Ipv4Addr) -> bool {
        self.ip == ip || self.secondary_ips.contains(&ip)
    }
}

/// A VPN terminated on this edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpnEntry {
    pub id: VpnId,
    pub name: String,
    pub vni: u32,
    pub local: Ipv4Addr,
    pub customer_gateway: Ipv4Addr,
    pub remote_prefixes: Vec<Cidr>,
    pub outbound: SaConfig,
    pub inbound: SaConfig,
}

/// A Direct Connect VIF on this edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifEntry {
    pub id: DxId,
    pub name: String,
    pub vni: u32,
    pub vlan: u16,
    pub remote_prefixes: Vec<Cidr>,
    pub router_mac: MacAddr,
}

/// A VPC endpoint on this edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointEntry {
    pub id: EndpointId,
    pub vni: u32,
    pub service: String,
    pub prefixes: Vec<Cidr>,
    pub front_end_pa: Ipv4Addr,
}

/// An edge of the world, for verify-recv: which VPCs it may speak for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeEntry {
    pub id: EdgeId,
    pub name: String,
    pub pa: Ipv4Addr,
    /// Sorted.
    pub vnis: Vec<u32>,
}

/// One change to a card's tables. The service's deltas are lists of these; both copies of
/// a left-right pair apply the same list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableOp {
    UpsertMapping {
        vni: u32,
        ip: Ipv4Addr,
        location: Location,
    },
    RemoveMapping {
        vni: u32,
        ip: Ipv4Addr,
    },
    /// Adds or replaces a VPC (with its subnets and routes).
    UpsertVpc(Box<VpcEntry>),
    RemoveVpc {
        vni: u32,
    },
    UpsertLocalEni(Box<LocalEni>),
    RemoveLocalEni {
        eni: EniId,
    },
    AddPeering {
        a: u32,
        b: u32,
    },
    RemovePeering {
        a: u32,
        b: u32,
    },
    UpsertElasticIp {
        public: Ipv4Addr,
        vni: u32,
        private: Ipv4Addr,
    },
    RemoveElasticIp {
        public: Ipv4Addr,
    },
}

/// [`Tables::mapping_pa_homed`]'s answer for an address that is not mapped: above every
/// PA as a number.
pub const NO_PA: u64 = u64::MAX;

/// One card's tables. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    card: Option<CardId>,
    card_name: String,
    pa: Ipv4Addr,
    mappings: MappingTable,
    enis: HashMap<EniId, LocalEni>,
    eni_by_ip: HashMap<u64, EniId>,
    eni_by_name: HashMap<String, EniId>,
    vpcs: HashMap<u32, VpcEntry>,
    /// The CIDRs of `vpcs`, indexed ([`Tables::other_vpc_holding`]).
    vpc_cidrs: CidrIndex,
    subnets: HashMap<SubnetId, SubnetInfo>,
    peerings: HashSet<u64>,
    eip_in: HashMap<Ipv4Addr, (u32, Ipv4Addr)>,
    eip_out: ElasticIpTable,
    vpns: HashMap<VpnId, VpnEntry>,
    /// The `local` addresses of `vpns` ([`Tables::is_tunnel_address`]).
    tunnel_addrs: HashSet<Ipv4Addr>,
    sa_in: HashMap<u32, VpnId>,
    vifs: HashMap<u16, VifEntry>,
    endpoints: HashMap<EndpointId, EndpointEntry>,
    edges: HashMap<Ipv4Addr, EdgeEntry>,
}

impl Default for Tables {
    fn default() -> Self {
        Tables::empty(None, String::new(), Ipv4Addr::UNSPECIFIED)
    }
}

fn pair(a: u32, b: u32) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (u64::from(lo) << 32) | u64::from(hi)
}

impl Tables {
    /// Empty tables for a card (`None`: not tied to a card, e.g. synthetic benchmarks).
    pub fn empty(card: Option<CardId>, card_name: String, pa: Ipv4Addr) -> Tables {
        Tables {
            card,
            card_name,
            pa,
            mappings: MappingTable::default(),
            enis: HashMap::new(),
            eni_by_ip: HashMap::new(),
            eni_by_name: HashMap::new(),
            vpcs: HashMap::new(),
            vpc_cidrs: CidrIndex::default(),
            subnets: HashMap::new(),
            peerings: HashSet::new(),
            eip_in: HashMap::new(),
            eip_out: ElasticIpTable::default(),
            vpns: HashMap::new(),
            tunnel_addrs: HashSet::new(),
            sa_in: HashMap::new(),
            vifs: HashMap::new(),
            endpoints: HashMap::new(),
            edges: HashMap::new(),
        }
    }

    // ----- the card -----

    pub fn card(&self) -> Option<CardId> {
        self.card
    }
    pub fn card_name(&self) -> &str {
        &self.card_name
    }
    /// This card's own PA.
    pub fn pa(&self) -> Ipv4Addr {
        self.pa
    }

    // ----- mappings -----

    /// Where `ip` of VPC `vni` lives.
    #[inline]
    pub fn lookup(&self, vni: u32, ip: Ipv4Addr) -> Option<Location> {
        self.mappings.get(vni, ip)
    }

    /// Looks up `min(keys.len(), out.len())` (VNI, address) keys at once: all hashes first,
    /// then all probes (see [`MappingTable`]). `out[i]` answers `keys[i]`.
    #[inline]
    pub fn lookup_burst(&self, keys: &[(u32, Ipv4Addr)], out: &mut [Option<Location>]) {
        self.mappings.lookup_burst(keys, out)
    }

    /// The home of (`vni`, `ip`) in the mapping table, hashed once: prefetch
    /// [`mapping_slot_at`](Self::mapping_slot_at) with it while other work goes on, then
    /// [`mapping_homed`](Self::mapping_homed) or [`mapping_pa_homed`](Self::mapping_pa_homed)
    /// ([`ExactTable::home_of`]).
    #[inline(always)]
    pub fn mapping_home(&self, vni: u32, ip: Ipv4Addr) -> Home {
        self.mappings.home_of(vni, ip)
    }

    /// [`mapping_home`](Self::mapping_home), or `None` when (`vni`, `ip`) is the key of
    /// `prev` (a home from these tables, or [`Home::NONE`]): the previous packet's key is
    /// not hashed nor prefetched again ([`ExactTable::home_of_new`]).
    #[inline(always)]
    pub fn mapping_home_new(&self, prev: Home, vni: u32, ip: Ipv4Addr) -> Option<Home> {
        self.mappings.home_of_new(prev, vni, ip)
    }

    /// The mapping table's slot at `home`, to prefetch.
    #[inline(always)]
    pub fn mapping_slot_at(&self, home: Home) -> Option<&mapping::Slot<Location>> {
        self.mappings.slot_at(home)
    }

    /// The mapping of the key of `home` ([`mapping_home`](Self::mapping_home) on these
    /// tables, its slot prefetched some work ahead), in place: the probe alone.
    #[inline(always)]
    pub fn mapping_homed(&self, home: Home) -> Option<&Location> {
        self.mappings.get_homed(home)
    }

    /// Where the address of `home` ([`mapping_home`](Self::mapping_home) on these
    /// tables, its slot prefetched) lives, for a check of the sender: its host's PA as a
    /// number (`u32::from(pa)`), or [`NO_PA`] when it is not mapped (one word to keep or
    /// compare, not a copy of the [`Location`]).
    #[inline(always)]
    pub fn mapping_pa_homed(&self, home: Home) -> u64 {
        self.mappings.get_homed(home).map_or(NO_PA, |l| u64::from(u32::from(l.pa)))
    }

    pub fn mappings(&self) -> &MappingTable {
        &self.mappings
    }

    /// Reserves room for `additional` more mappings.
    pub fn reserve_mappings(&mut self, additional: usize) {
        self.mappings.reserve(additional)
    }

    // ----- local ENIs -----

    pub fn local_eni(&self, eni: EniId) -> Option<&LocalEni> {
        self.enis.get(&eni)
    }
    /// The local ENI owning `ip` (primary or secondary) in VPC `vni`.
    pub fn local_eni_by_ip(&self, vni: u32, ip: Ipv4Addr) -> Option<&LocalEni> {
        self.eni_by_ip
            .get(&mapping::pack(vni, ip))
            .and_then(|e| self.enis.get(e))
    }
    /// The local ENI of the instance `name` (what an `instance:NAME` port resolves to).
    pub fn local_eni_by_name(&self, name: &str) -> Option<&LocalEni> {
        self.eni_by_name.get(name).and_then(|e| self.enis.get(e))
    }
    pub fn local_enis(&self) -> impl Iterator<Item = &LocalEni> + '_ {
        self.enis.values()
    }

    // ----- VPCs and routes -----

    pub fn vpc(&self, vni: u32) -> Option<&VpcEntry> {
        self.vpcs.get(&vni)
    }
    pub fn vpcs(&self) -> impl Iterator<Item = &VpcEntry> + '_ {
        self.vpcs.values()
    }
    pub fn subnet(&self, id: SubnetId) -> Option<&SubnetInfo> {
        self.subnets.get(&id)
    }

    /// Where VPC `vni` sends `dst`: the longest matching prefix, else its internet
    /// gateway; `None` (`no_route`) if neither, or if the VPC is not in the view.
    #[inline]
    pub fn route(&self, vni: u32, dst: Ipv4Addr) -> Option<Route> {
        self.vpcs.get(&vni)?.route(dst)
    }

    /// A VPC of the view other than `own` whose CIDR holds `ip`: traffic `own`'s internet
    /// gateway must not carry (story step 3). Of several, the one with the most specific
    /// CIDR, then the smallest VNI. Answered by an index of the CIDRs ([`CidrIndex`]): one
    /// hash probe per prefix length in use, whatever the number of VPCs.
    #[inline]
    pub fn other_vpc_holding(&self, own: u32, ip: Ipv4Addr) -> Option<u32> {
        self.vpc_cidrs.other_than(own, ip)
    }

    /// The index of the VPCs' CIDRs.
    pub fn vpc_cidrs(&self) -> &CidrIndex {
        &self.vpc_cidrs
    }

    /// Whether VPCs `a` and `b` are peered (false for `a == b`: same-VPC traffic needs no
    /// peering).
    #[inline]
    pub fn peered(&self, a: u32, b: u32) -> bool {
        self.peerings.contains(&pair(a, b))
    }

    /// The peered pairs in the view, smaller VNI first.
    pub fn peerings(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.peerings.iter().map(|p| ((p >> 32) as u32, *p as u32))
    }

    // ----- edge tables -----

    /// SNAT: the Elastic IP of `private` in VPC `vni`.
    #[inline]
    pub fn elastic_ip_of(&self, vni: u32, private: Ipv4Addr) -> Option<Ipv4Addr> {
        self.eip_out.get(vni, private)
    }
    /// The home of (`vni`, `private`) in the Elastic IP table, hashed once: prefetch
    /// [`elastic_ip_slot_at`](Self::elastic_ip_slot_at) with it some work ahead, then
    /// look it up with [`elastic_ip_homed`](Self::elastic_ip_homed).
    #[inline(always)]
    pub fn elastic_ip_home(&self, vni: u32, private: Ipv4Addr) -> Home {
        self.eip_out.home_of(vni, private)
    }
    /// The Elastic IP table's slot at `home`, to prefetch.
    #[inline(always)]
    pub fn elastic_ip_slot_at(&self, home: Home) -> Option<&mapping::Slot<Ipv4Addr>> {
        self.eip_out.slot_at(home)
    }
    /// [`elastic_ip_of`](Self::elastic_ip_of) the key of `home` (from
    /// [`elastic_ip_home`](Self::elastic_ip_home) on these tables): the probe alone.
    #[inline(always)]
    pub fn elastic_ip_homed(&self, home: Home) -> Option<Ipv4Addr> {
        self.eip_out.get_homed(home).copied()
    }
    /// SNAT for a burst: the Elastic IPs of `min(keys.len(), out.len())` (VNI, private
    /// address) keys, all hashes and cache misses first, then the probes (as
    /// [`Tables::lookup_burst`]). `out[i]` answers `keys[i]`.
    #[inline]
    pub fn elastic_ips_burst(&self, keys: &[(u32, Ipv4Addr)], out: &mut [Option<Ipv4Addr>]) {
        self.eip_out.lookup_burst(keys, out)
    }
    /// DNAT: the (VNI, private address) behind an Elastic IP.
    #[inline]
    pub fn elastic_ip_target(&self, public: Ipv4Addr) -> Option<(u32, Ipv4Addr)> {
        self.eip_in.get(&public).copied()
    }
    /// The VPN whose inbound SA has this SPI.
    #[inline]
    pub fn sa_by_spi(&self, spi: u32) -> Option<&VpnEntry> {
        self.sa_in.get(&spi).and_then(|v| self.vpns.get(v))
    }
    pub fn vpn(&self, id: VpnId) -> Option<&VpnEntry> {
        self.vpns.get(&id)
    }
    /// The VPNs terminated on this edge.
    pub fn vpns(&self) -> impl Iterator<Item = &VpnEntry> + '_ {
        self.vpns.values()
    }
    /// Whether `ip` is the tunnel address (`local`) of a VPN on this edge: one hash probe,
    /// whatever the number of VPNs.
    #[inline]
    pub fn is_tunnel_address(&self, ip: Ipv4Addr) -> bool {
        self.tunnel_addrs.contains(&ip)
    }
    #[inline]
    pub fn vif(&self, vlan: u16) -> Option<&VifEntry> {
        self.vifs.get(&vlan)
    }
    #[inline]
    pub fn endpoint(&self, id: EndpointId) -> Option<&EndpointEntry> {
        self.endpoints.get(&id)
    }
    #[inline]
    pub fn edge_by_pa(&self, pa: Ipv4Addr) -> Option<&EdgeEntry> {
        self.edges.get(&pa)
    }
    /// Whether the edge at `pa` serves VPC `vni` (may send for it).
    #[inline]
    pub fn edge_serves(&self, pa: Ipv4Addr, vni: u32) -> bool {
        self.edges
            .get(&pa)
            .is_some_and(|e| e.vnis.binary_search(&vni).is_ok())
    }

    // ----- changes -----

    /// Applies one change. Removing what is absent and replacing what is present are fine.
    pub fn apply(&mut self, op: &TableOp) {
        match op {
            TableOp::UpsertMapping { vni, ip, location } => {
                self.mappings.insert(*vni, *ip, *location);
            }
            TableOp::RemoveMapping { vni, ip } => {
                self.mappings.remove(*vni, *ip);
            }
            TableOp::UpsertVpc(entry) => self.upsert_vpc((**entry).clone()),
            TableOp::RemoveVpc { vni } => {
                if let Some(old) = self.vpcs.remove(vni) {
                    self.vpc_cidrs.remove(old.cidr, old.vni);
                    for s in &old.subnets {
                        self.subnets.remove(&s.id);
                    }
                }
            }
            TableOp::UpsertLocalEni(eni) => self.upsert_local_eni((**eni).clone()),
            TableOp::RemoveLocalEni { eni } => self.remove_local_eni(*eni),
            TableOp::AddPeering { a, b } => {
                self.peerings.insert(pair(*a, *b));
            }
            TableOp::RemovePeering { a, b } => {
                self.peerings.remove(&pair(*a, *b));
            }
            TableOp::UpsertElasticIp {
                public,
                vni,
                private,
            } => {
                if let Some((v, p)) = self.eip_in.insert(*public, (*vni, *private)) {
                    self.eip_out.remove(v, p);
                }
                self.eip_out.insert(*vni, *private, *public);
            }
            TableOp::RemoveElasticIp { public } => {
                if let Some((v, p)) = self.eip_in.remove(public) {
                    self.eip_out.remove(v, p);
                }
            }
        }
    }

    fn upsert_vpc(&mut self, entry: VpcEntry) {
        if let Some(old) = self.vpcs.get(&entry.vni) {
            self.vpc_cidrs.remove(old.cidr, old.vni);
            for s in &old.subnets {
                self.subnets.remove(&s.id);
            }
        }
        self.vpc_cidrs.insert(entry.cidr, entry.vni);
        for s in &entry.subnets {
            self.subnets.insert(s.id, s.clone());
        }
        self.vpcs.insert(entry.vni, entry);
    }

    fn upsert_local_eni(&mut self, eni: LocalEni) {
        self.remove_local_eni(eni.eni);
        for ip in eni.ips() {
            self.eni_by_ip.insert(mapping::pack(eni.vni, ip), eni.eni);
        }
        self.eni_by_name.insert(eni.name.clone(), eni.eni);
        self.enis.insert(eni.eni, eni);
    }

    fn remove_local_eni(&mut self, id: EniId) {
        let Some(old) = self.enis.remove(&id) else {
            return;
        };
        for ip in old.ips() {
            let key = mapping::pack(old.vni, ip);
            if self.eni_by_ip.get(&key) == Some(&id) {
                self.eni_by_ip.remove(&key);
            }
        }
        if self.eni_by_name.get(&old.name) == Some(&id) {
            self.eni_by_name.remove(&old.name);
        }
    }
}

impl Absorb for Tables {
    type Op = TableOp;

    fn absorb(&mut self, op: &TableOp) {
        self.apply(op)
    }
}
