//! The TOML loader: parse with `toml` keeping every value's span, then check section by
//! section in a fixed order (dataplane, host, edge, vpc, subnet, instance, peering,
//! elastic_ip, vpn, dx, endpoint, port), stopping at the first problem.
//!
//! Every problem becomes one [`LoadError`] naming the line (from the span of the offending
//! value, or of its table when a field is missing) and the field as `section.key`
//! (`vpc.vni`, `vpn.outbound.spi`). Errors found by `toml` itself (syntax, unknown or
//! missing fields, wrong types) get their field from the error message or from the keys on
//! the reported line.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::*;

/// A topology file that cannot be used, and why. Displayed as
/// `FILE:LINE: FIELD: message` (or `FILE: message` when no line applies, e.g. the file
/// cannot be read).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// The file name as given to the loader.
    pub file: String,
    /// 1-based line; 0 when the problem is not on a line.
    pub line: usize,
    /// `section.key`, e.g. `vpc.vni`; empty when the problem is not on a field.
    pub field: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.field.is_empty()) {
            (0, true) => write!(f, "{}: {}", self.file, self.message),
            (0, false) => write!(f, "{}: {}: {}", self.file, self.field, self.message),
            (line, _) => write!(
                f,
                "{}:{}: {}: {}",
                self.file, line, self.field, self.message
            ),
        }
    }
}

impl Topology {
    /// Loads and validates a topology from its text. `file_name` is only used in errors.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, file_name: &str) -> std::result::Result<Topology, LoadError> {
        Topology::parse(text, file_name, None)
    }

    /// [`from_str`](Self::from_str), with `[dataplane]` (`dataplane`, a section's text)
    /// when `text` has none.
    fn parse(text: &str, file_name: &str, dataplane: Option<&str>) -> std::result::Result<Topology, LoadError> {
        let mut raw: RawFile = toml::from_str(text).map_err(|e| toml_error(text, file_name, &e))?;
        if raw.dataplane.is_none() {
            if let Some(d) = dataplane {
                raw.dataplane = toml::from_str::<RawFile>(d).map_err(|e| toml_error(d, "[dataplane]", &e))?.dataplane;
            }
        }
        Loader {
            text,
            file: file_name,
        }
        .load(raw)
    }

    /// Reads and validates the topology file at `path`.
    pub fn load(path: impl AsRef<Path>) -> std::result::Result<Topology, LoadError> {
        let (text, name) = read(path.as_ref())?;
        Topology::from_str(&text, &name)
    }

    /// [`load`](Self::load) for a file whose world is what counts (`vpcemu mapping load`):
    /// a `[dataplane]` is not part of a world, so a file without one (world sections alone)
    /// is read with `dataplane` (a section's text) in its place.
    pub fn load_world(path: impl AsRef<Path>, dataplane: &str) -> std::result::Result<Topology, LoadError> {
        let (text, name) = read(path.as_ref())?;
        Topology::parse(&text, &name, Some(dataplane))
    }
}

/// The text of the file at `path` and its name for errors.
fn read(path: &Path) -> std::result::Result<(String, String), LoadError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        file: name.clone(),
        line: 0,
        field: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    Ok((text, name))
}

// ----- the file as written ------------------------------------------------------------------

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    dataplane: Option<S<RawDataplane>>,
    #[serde(default)]
    host: Vec<S<RawCard>>,
    #[serde(default)]
    edge: Vec<S<RawCard>>,
    #[serde(default)]
    vpc: Vec<S<RawVpc>>,
    #[serde(default)]
    subnet: Vec<S<RawSubnet>>,
    #[serde(default)]
    instance: Vec<S<RawInstance>>,
    #[serde(default)]
    peering: Vec<S<RawPeering>>,
    #[serde(default)]
    elastic_ip: Vec<S<RawElasticIp>>,
    #[serde(default)]
    vpn: Vec<S<RawVpn>>,
    #[serde(default)]
    dx: Vec<S<RawDx>>,
    #[serde(default)]
    endpoint: Vec<S<RawEndpoint>>,
    #[serde(default)]
    port: Vec<S<RawPort>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataplane {
    lcores: S<String>,
    memory_mb: S<i64>,
    hugepages: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCard {
    name: S<String>,
    pa: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVpc {
    name: S<String>,
    vni: S<i64>,
    cidr: S<String>,
    internet_gateway: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubnet {
    name: S<String>,
    vpc: S<String>,
    cidr: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    name: S<String>,
    subnet: S<String>,
    host: S<String>,
    ip: S<String>,
    #[serde(default)]
    secondary_ips: Vec<S<String>>,
    mac: Option<S<String>>,
    source_dest_check: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeering {
    vpcs: S<Vec<S<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawElasticIp {
    ip: S<String>,
    instance: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVpn {
    name: S<String>,
    vpc: S<String>,
    edge: S<String>,
    local: S<String>,
    customer_gateway: S<String>,
    remote_prefixes: S<Vec<S<String>>>,
    outbound: S<RawSa>,
    inbound: S<RawSa>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSa {
    spi: S<i64>,
    key: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDx {
    name: S<String>,
    vpc: S<String>,
    edge: S<String>,
    vlan: S<i64>,
    remote_prefixes: S<Vec<S<String>>>,
    router_mac: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    id: S<String>,
    vpc: S<String>,
    edge: S<String>,
    service: S<String>,
    prefixes: S<Vec<S<String>>>,
    front_end_pa: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: S<String>,
    vdev: S<String>,
    attach: S<String>,
}

// ----- checking -----------------------------------------------------------------------------

/// The smallest and largest prefix length AWS accepts for a VPC or a subnet.
const MIN_PREFIX: u8 = 16;
const MAX_PREFIX: u8 = 28;
/// VNIs are 24 bits; 0 is not a VPC.
const MAX_VNI: i64 = 0xff_ffff;
/// Lcore ids must be below DPDK's `RTE_MAX_LCORE` (1024 covers every build).
const MAX_LCORE: u32 = 1024;

struct Loader<'a> {
    text: &'a str,
    file: &'a str,
}

type Result<T> = std::result::Result<T, LoadError>;

impl Loader<'_> {
    fn err(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self.file.to_string(),
            line: line_of(self.text, span.start),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn load(&self, raw: RawFile) -> Result<Topology> {
        let Some(dp) = raw.dataplane else {
            let e = LoadError {
                file: self.file.to_string(),
                line: 1,
                field: "dataplane".into(),
                message: "missing [dataplane] section".into(),
            };
            return Err(e);
        };
        let mut t = Topology {
            dataplane: self.dataplane(dp.into_inner())?,
            hosts: Arc::new(Vec::new()),
            edges: Arc::new(Vec::new()),
            vpcs: Arc::new(Vec::new()),
            subnets: Arc::new(Vec::new()),
            instances: Vec::new(),
            peerings: BTreeSet::new(),
            elastic_ips: Default::default(),
            vpns: Vec::new(),
            dxs: Vec::new(),
            endpoints: Vec::new(),
            ports: Vec::new(),
            next_eni: 1,
            ix: Indexes::default(),
        };
        for h in raw.host {
            let (name, pa) = self.card(&t, h.into_inner(), "host")?;
            let id = HostId(t.hosts.len() as u32);
            Arc::make_mut(&mut t.ix.statics).cards.insert(name.clone(), CardId::Host(id));
            Arc::make_mut(&mut t.ix.statics).pas.insert(pa, CardId::Host(id));
            t.ix.host_vpcs.push(Default::default());
            Arc::make_mut(&mut t.hosts).push(Host { id, name, pa });
        }
        for e in raw.edge {
            let (name, pa) = self.card(&t, e.into_inner(), "edge")?;
            let id = EdgeId(t.edges.len() as u32);
            Arc::make_mut(&mut t.ix.statics).cards.insert(name.clone(), CardId::Edge(id));
            Arc::make_mut(&mut t.ix.statics).pas.insert(pa, CardId::Edge(id));
            t.ix.edge_vpcs.push(BTreeSet::new());
            Arc::make_mut(&mut t.edges).push(Edge { id, name, pa });
        }
        for v in raw.vpc {
            self.vpc(&mut t, v.into_inner())?;
        }
        for s in raw.subnet {
            self.subnet(&mut t, s.into_inner())?;
        }
        for i in raw.instance {
            self.instance(&mut t, i.into_inner())?;
        }
        for p in raw.peering {
            self.peering(&mut t, p.into_inner())?;
        }
        for e in raw.elastic_ip {
            self.elastic_ip(&mut t, e.into_inner())?;
        }
        let mut routed = HashMap::new();
        let mut spis = HashMap::new();
        for v in raw.vpn {
            self.vpn(&mut t, v.into_inner(), &mut routed, &mut spis)?;
        }
        let mut vlans = HashMap::new();
        for d in raw.dx {
            self.dx(&mut t, d.into_inner(), &mut routed, &mut vlans)?;
        }
        for e in raw.endpoint {
            self.endpoint(&mut t, e.into_inner(), &mut routed)?;
        }
        let mut attached = HashMap::new();
        for p in raw.port {
            self.port(&mut t, p.into_inner(), &mut attached)?;
        }
        index_edges(&mut t);
        Ok(t)
    }

    fn dataplane(&self, raw: RawDataplane) -> Result<Dataplane> {
        let lcores = parse_lcores(raw.lcores.get_ref())
            .map_err(|m| self.err(raw.lcores.span(), "dataplane.lcores", m))?;
        let memory_mb = u32::try_from(*raw.memory_mb.get_ref())
            .ok()
            .filter(|&m| m > 0)
            .ok_or_else(|| {
                let m = format!(
                    "{} is not a size in MiB (1..=4294967295)",
                    raw.memory_mb.get_ref()
                );
                self.err(raw.memory_mb.span(), "dataplane.memory_mb", m)
            })?;
        let hugepages = match raw.hugepages.get_ref().as_str() {
            "auto" => Hugepages::Auto,
            "on" => Hugepages::On,
            "off" => Hugepages::Off,
            other => {
                let m = format!("{other:?} is not one of auto, on, off");
                return Err(self.err(raw.hugepages.span(), "dataplane.hugepages", m));
            }
        };
        Ok(Dataplane {
            lcores,
            memory_mb,
            hugepages,
        })
    }

    fn name(&self, raw: &S<String>, field: &str) -> Result<String> {
        let name = raw.get_ref().trim();
        if name.is_empty() {
            return Err(self.err(raw.span(), field, "must not be empty"));
        }
        if name != raw.get_ref() {
            return Err(self.err(raw.span(), field, "must not start or end with spaces"));
        }
        Ok(name.to_string())
    }

    /// [`name`](Self::name) of a `[[kind]]` entry (field `kind.name`), refused as a
    /// duplicate when `taken` says an earlier entry has it.
    fn new_name(
        &self,
        raw: &S<String>,
        kind: &str,
        taken: impl FnOnce(&str) -> bool,
    ) -> Result<String> {
        let field = format!("{kind}.name");
        let name = self.name(raw, &field)?;
        if taken(&name) {
            let m = format!("duplicate {kind} name {name:?}");
            return Err(self.err(raw.span(), &field, m));
        }
        Ok(name)
    }

    fn ip(&self, raw: &S<String>, field: &str) -> Result<Ipv4Addr> {
        raw.get_ref().parse().map_err(|_| {
            let m = format!("{:?} is not an IPv4 address (a.b.c.d)", raw.get_ref());
            self.err(raw.span(), field, m)
        })
    }

    fn unicast_ip(&self, raw: &S<String>, field: &str) -> Result<Ipv4Addr> {
        let ip = self.ip(raw, field)?;
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return Err(self.err(raw.span(), field, format!("{ip} is not a unicast address")));
        }
        Ok(ip)
    }

    fn cidr(&self, raw: &S<String>, field: &str) -> Result<Cidr> {
        raw.get_ref()
            .parse()
            .map_err(|e: crate::net::AddrParseError| {
                let m = format!("{:?} is not a CIDR: {e}", raw.get_ref());
                self.err(raw.span(), field, m)
            })
    }

    fn mac(&self, raw: &S<String>, field: &str) -> Result<MacAddr> {
        let mac: MacAddr = raw
            .get_ref()
            .parse()
            .map_err(|e: crate::net::AddrParseError| {
                let m = format!("{:?} is not a MAC address: {e}", raw.get_ref());
                self.err(raw.span(), field, m)
            })?;
        if !mac.is_unicast() || mac.is_zero() {
            return Err(self.err(raw.span(), field, format!("{mac} is not a unicast address")));
        }
        Ok(mac)
    }

    fn vpc_ref(&self, t: &Topology, raw: &S<String>, field: &str) -> Result<VpcId> {
        t.vpc_by_name(raw.get_ref()).ok_or_else(|| {
            self.err(
                raw.span(),
                field,
                format!("unknown vpc {:?}", raw.get_ref()),
            )
        })
    }

    fn host_ref(&self, t: &Topology, raw: &S<String>, field: &str) -> Result<HostId> {
        match t.card_by_name(raw.get_ref()) {
            Some(CardId::Host(h)) => Ok(h),
            Some(CardId::Edge(_)) => Err(self.err(
                raw.span(),
                field,
                format!("{:?} is an edge, not a host", raw.get_ref()),
            )),
            None => Err(self.err(
                raw.span(),
                field,
                format!("unknown host {:?}", raw.get_ref()),
            )),
        }
    }

    fn edge_ref(&self, t: &Topology, raw: &S<String>, field: &str) -> Result<EdgeId> {
        edge_named(t, raw.get_ref()).map_err(|m| self.err(raw.span(), field, m))
    }

    fn card(&self, t: &Topology, raw: RawCard, kind: &str) -> Result<(String, Ipv4Addr)> {
        let field = format!("{kind}.name");
        let name = self.name(&raw.name, &field)?;
        if let Some(other) = t.card_by_name(&name) {
            let what = if matches!(other, CardId::Host(_)) {
                "host"
            } else {
                "edge"
            };
            let m =
                format!("duplicate name {name:?} (already a {what}; hosts and edges share names)");
            return Err(self.err(raw.name.span(), &field, m));
        }
        let field = format!("{kind}.pa");
        let pa = self.unicast_ip(&raw.pa, &field)?;
        if let Some(other) = t.card_by_pa(pa) {
            let m = format!(
                "PA {pa} is already used by {}",
                t.card_name(other).unwrap_or("?")
            );
            return Err(self.err(raw.pa.span(), &field, m));
        }
        Ok((name, pa))
    }

    fn vpc(&self, t: &mut Topology, raw: RawVpc) -> Result<()> {
        let name = self.new_name(&raw.name, "vpc", |n| t.vpc_by_name(n).is_some())?;
        let vni = *raw.vni.get_ref();
        if !(1..=MAX_VNI).contains(&vni) {
            let m = format!("VNI {vni} is out of range 1..=16777215");
            return Err(self.err(raw.vni.span(), "vpc.vni", m));
        }
        let vni = vni as u32;
        if let Some(other) = t.vpc_by_vni(vni).and_then(|v| t.vpc(v)) {
            let m = format!("VNI {vni} is already used by vpc {}", other.name);
            return Err(self.err(raw.vni.span(), "vpc.vni", m));
        }
        let cidr = self.cidr(&raw.cidr, "vpc.cidr")?;
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&cidr.prefix_len()) {
            let m = format!("{cidr}: a VPC CIDR must be /{MIN_PREFIX} to /{MAX_PREFIX}");
            return Err(self.err(raw.cidr.span(), "vpc.cidr", m));
        }
        let internet_gateway = match &raw.internet_gateway {
            None if t.edges.len() == 1 => Some(EdgeId(0)),
            None => None,
            Some(s) if s.get_ref().is_empty() => None,
            Some(s) => Some(self.edge_ref(t, s, "vpc.internet_gateway")?),
        };
        let id = VpcId(t.vpcs.len() as u32);
        Arc::make_mut(&mut t.ix.statics).vpc_names.insert(name.clone(), id);
        Arc::make_mut(&mut t.ix.statics).vnis.insert(vni, id);
        t.ix.vpc_hosts.push(Default::default());
        t.ix.vpc_macs.push(Default::default());
        t.ix.ip_owner.push(Default::default());
        t.ix.vpc_members.push(Default::default());
        t.ix.peers.push(BTreeSet::new());
        t.ix.vpc_edges.push(BTreeSet::new());
        Arc::make_mut(&mut t.vpcs).push(Vpc {
            id,
            name,
            vni,
            cidr,
            internet_gateway,
        });
        Ok(())
    }

    fn subnet(&self, t: &mut Topology, raw: RawSubnet) -> Result<()> {
        let name = self.new_name(&raw.name, "subnet", |n| t.subnet_by_name(n).is_some())?;
        let vpc = self.vpc_ref(t, &raw.vpc, "subnet.vpc")?;
        let cidr = self.cidr(&raw.cidr, "subnet.cidr")?;
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&cidr.prefix_len()) {
            let m = format!("{cidr}: a subnet CIDR must be /{MIN_PREFIX} to /{MAX_PREFIX}");
            return Err(self.err(raw.cidr.span(), "subnet.cidr", m));
        }
        let (vpc_name, vpc_cidr) = t.vpc(vpc).map(|v| (v.name.clone(), v.cidr)).unzip();
        if let (Some(vpc_name), Some(vpc_cidr)) = (vpc_name, vpc_cidr) {
            if !vpc_cidr.contains_cidr(&cidr) {
                let m = format!("{cidr} is outside vpc {vpc_name} ({vpc_cidr})");
                return Err(self.err(raw.cidr.span(), "subnet.cidr", m));
            }
        }
        if let Some(other) = t
            .subnets
            .iter()
            .find(|s| s.vpc == vpc && s.cidr.overlaps(&cidr))
        {
            let m = format!("{cidr} overlaps subnet {} ({})", other.name, other.cidr);
            return Err(self.err(raw.cidr.span(), "subnet.cidr", m));
        }
        let Ok(id) = u16::try_from(t.subnets.len()) else {
            return Err(self.err(raw.name.span(), "subnet.name", "more than 65536 subnets"));
        };
        let id = SubnetId(id);
        Arc::make_mut(&mut t.ix.statics).subnet_names.insert(name.clone(), id);
        Arc::make_mut(&mut t.subnets).push(Subnet {
            id,
            name,
            vpc,
            cidr,
        });
        Ok(())
    }

    fn instance(&self, t: &mut Topology, raw: RawInstance) -> Result<()> {
        let name = self.name(&raw.name, "instance.name")?;
        let subnet = t.subnet_by_name(raw.subnet.get_ref()).ok_or_else(|| {
            let m = format!("unknown subnet {:?}", raw.subnet.get_ref());
            self.err(raw.subnet.span(), "instance.subnet", m)
        })?;
        let vpc = t.subnet(subnet).map_or(VpcId(0), |s| s.vpc);
        let host = self.host_ref(t, &raw.host, "instance.host")?;
        let ip = self.ip(&raw.ip, "instance.ip")?;
        let secondary_ips = raw
            .secondary_ips
            .iter()
            .map(|s| self.ip(s, "instance.secondary_ips"))
            .collect::<Result<Vec<_>>>()?;
        let mac = match &raw.mac {
            Some(m) => self.mac(m, "instance.mac")?,
            None => MacAddr::from_ip(ip),
        };
        let inst = Instance {
            eni: EniId(t.next_eni),
            name,
            subnet,
            vpc,
            host,
            ip,
            secondary_ips,
            mac,
            source_dest_check: raw.source_dest_check.unwrap_or(true),
        };
        if let Err((field, m)) = t.check_new_instance(&inst) {
            let (span, field) = match field {
                InstanceField::Name => (raw.name.span(), "instance.name"),
                InstanceField::Ip => (raw.ip.span(), "instance.ip"),
                InstanceField::SecondaryIps => {
                    // Point at the offending entry: the first one the message names.
                    let span = raw
                        .secondary_ips
                        .iter()
                        .find(|s| m.starts_with(&format!("{} ", s.get_ref())))
                        .map_or(raw.ip.span(), |s| s.span());
                    (span, "instance.secondary_ips")
                }
                InstanceField::Mac => {
                    let span = raw.mac.as_ref().map_or(raw.ip.span(), |m| m.span());
                    (span, "instance.mac")
                }
            };
            return Err(self.err(span, field, m));
        }
        let eni = t.allocate_eni();
        t.insert_instance(Instance { eni, ..inst });
        Ok(())
    }

    fn peering(&self, t: &mut Topology, raw: RawPeering) -> Result<()> {
        let names = raw.vpcs.get_ref();
        let [a, b] = names.as_slice() else {
            let m = format!("expected two VPC names, found {}", names.len());
            return Err(self.err(raw.vpcs.span(), "peering.vpcs", m));
        };
        let va = self.vpc_ref(t, a, "peering.vpcs")?;
        let vb = self.vpc_ref(t, b, "peering.vpcs")?;
        t.check_peering(va, vb)
            .map_err(|m| self.err(raw.vpcs.span(), "peering.vpcs", m))?;
        t.add_peering(va, vb);
        Ok(())
    }

    fn elastic_ip(&self, t: &mut Topology, raw: RawElasticIp) -> Result<()> {
        let ip = self.ip(&raw.ip, "elastic_ip.ip")?;
        let inst = t
            .instance_by_name(raw.instance.get_ref())
            .map(|i| i.eni)
            .ok_or_else(|| {
                let m = format!("unknown instance {:?}", raw.instance.get_ref());
                self.err(raw.instance.span(), "elastic_ip.instance", m)
            })?;
        if let Err((field, m)) = t.check_elastic_ip(ip, inst) {
            return Err(match field {
                EipField::Ip => self.err(raw.ip.span(), "elastic_ip.ip", m),
                EipField::Instance => self.err(raw.instance.span(), "elastic_ip.instance", m),
            });
        }
        t.associate_elastic_ip(ip, inst);
        Ok(())
    }

    /// Remote or endpoint prefixes of a VPC: CIDRs, none inside the VPC, none routed twice
    /// in the VPC.
    fn prefixes(
        &self,
        t: &Topology,
        raw: &S<Vec<S<String>>>,
        field: &str,
        vpc: VpcId,
        owner: &str,
        routed: &mut HashMap<(VpcId, Cidr), String>,
    ) -> Result<Vec<Cidr>> {
        if raw.get_ref().is_empty() {
            return Err(self.err(raw.span(), field, "needs at least one prefix"));
        }
        let mut out = Vec::new();
        for p in raw.get_ref() {
            let cidr = self.cidr(p, field)?;
            if let Some(v) = t.vpc(vpc).filter(|v| v.cidr.overlaps(&cidr)) {
                let m = format!("{cidr} overlaps the CIDR of vpc {} ({})", v.name, v.cidr);
                return Err(self.err(p.span(), field, m));
            }
            if let Some(other) = routed.get(&(vpc, cidr)) {
                let m = format!("{cidr} is already routed to {other} in this VPC");
                return Err(self.err(p.span(), field, m));
            }
            routed.insert((vpc, cidr), owner.to_string());
            out.push(cidr);
        }
        Ok(out)
    }

    fn sa(&self, raw: &S<RawSa>, field: &str) -> Result<SaConfig> {
        let raw = raw.get_ref();
        let spi = *raw.spi.get_ref();
        let spi_field = format!("{field}.spi");
        let spi = match spi {
            0 => return Err(self.err(raw.spi.span(), &spi_field, "SPI 0 is reserved (RFC 4303)")),
            1..=255 => {
                let m = format!("SPI {spi} is reserved by IANA (RFC 4303): use 256..=4294967295");
                return Err(self.err(raw.spi.span(), &spi_field, m));
            }
            _ => u32::try_from(spi).map_err(|_| {
                self.err(
                    raw.spi.span(),
                    &spi_field,
                    format!("SPI {spi} does not fit 32 bits"),
                )
            })?,
        };
        let key_field = format!("{field}.key");
        let material = parse_hex(raw.key.get_ref(), 20).and_then(|bytes| {
            let key: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
            let salt: [u8; 4] = bytes.get(16..)?.try_into().ok()?;
            Some((key, salt))
        });
        let Some((key, salt)) = material else {
            let m = "expected 40 hex digits: a 16-byte AES-128 key, then a 4-byte salt";
            return Err(self.err(raw.key.span(), &key_field, m));
        };
        Ok(SaConfig { spi, key, salt })
    }

    fn vpn(
        &self,
        t: &mut Topology,
        raw: RawVpn,
        routed: &mut HashMap<(VpcId, Cidr), String>,
        spis: &mut HashMap<(EdgeId, u32), String>,
    ) -> Result<()> {
        let name = self.new_name(&raw.name, "vpn", |n| t.vpns.iter().any(|v| v.name == n))?;
        let vpc = self.vpc_ref(t, &raw.vpc, "vpn.vpc")?;
        let edge = self.edge_ref(t, &raw.edge, "vpn.edge")?;
        let local = self.unicast_ip(&raw.local, "vpn.local")?;
        let customer_gateway = self.unicast_ip(&raw.customer_gateway, "vpn.customer_gateway")?;
        let owner = format!("vpn {name}");
        let remote_prefixes = self.prefixes(
            t,
            &raw.remote_prefixes,
            "vpn.remote_prefixes",
            vpc,
            &owner,
            routed,
        )?;
        let outbound = self.sa(&raw.outbound, "vpn.outbound")?;
        let inbound = self.sa(&raw.inbound, "vpn.inbound")?;
        if let Some(other) = spis.get(&(edge, inbound.spi)) {
            let m = format!(
                "inbound SPI {} is already used on this edge by {other}",
                inbound.spi
            );
            return Err(self.err(raw.inbound.get_ref().spi.span(), "vpn.inbound.spi", m));
        }
        spis.insert((edge, inbound.spi), owner);
        let id = VpnId(t.vpns.len() as u32);
        t.vpns.push(Vpn {
            id,
            name,
            vpc,
            edge,
            local,
            customer_gateway,
            remote_prefixes,
            outbound,
            inbound,
        });
        Ok(())
    }

    fn dx(
        &self,
        t: &mut Topology,
        raw: RawDx,
        routed: &mut HashMap<(VpcId, Cidr), String>,
        vlans: &mut HashMap<(EdgeId, u16), String>,
    ) -> Result<()> {
        let name = self.new_name(&raw.name, "dx", |n| t.dxs.iter().any(|d| d.name == n))?;
        let vpc = self.vpc_ref(t, &raw.vpc, "dx.vpc")?;
        let edge = self.edge_ref(t, &raw.edge, "dx.edge")?;
        let vlan = *raw.vlan.get_ref();
        let vlan = u16::try_from(vlan)
            .ok()
            .filter(|v| (1..=4094).contains(v))
            .ok_or_else(|| {
                self.err(
                    raw.vlan.span(),
                    "dx.vlan",
                    format!("VLAN {vlan} is out of range 1..=4094"),
                )
            })?;
        if let Some(other) = vlans.get(&(edge, vlan)) {
            let m = format!("VLAN {vlan} is already used on this edge by {other}");
            return Err(self.err(raw.vlan.span(), "dx.vlan", m));
        }
        let owner = format!("dx {name}");
        vlans.insert((edge, vlan), owner.clone());
        let remote_prefixes = self.prefixes(
            t,
            &raw.remote_prefixes,
            "dx.remote_prefixes",
            vpc,
            &owner,
            routed,
        )?;
        let router_mac = self.mac(&raw.router_mac, "dx.router_mac")?;
        let id = DxId(t.dxs.len() as u32);
        t.dxs.push(Dx {
            id,
            name,
            vpc,
            edge,
            vlan,
            remote_prefixes,
            router_mac,
        });
        Ok(())
    }

    fn endpoint(
        &self,
        t: &mut Topology,
        raw: RawEndpoint,
        routed: &mut HashMap<(VpcId, Cidr), String>,
    ) -> Result<()> {
        let text = raw.id.get_ref();
        let id = text
            .strip_prefix("vpce-")
            .and_then(|hex| parse_hex(hex, 8))
            .map(|b| b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
            .map(EndpointId)
            .ok_or_else(|| {
                let m =
                    format!("{text:?} is not an endpoint ID: expected \"vpce-\" and 16 hex digits");
                self.err(raw.id.span(), "endpoint.id", m)
            })?;
        if t.endpoints.iter().any(|e| e.id == id) {
            return Err(self.err(
                raw.id.span(),
                "endpoint.id",
                format!("duplicate endpoint ID {id}"),
            ));
        }
        let vpc = self.vpc_ref(t, &raw.vpc, "endpoint.vpc")?;
        let edge = self.edge_ref(t, &raw.edge, "endpoint.edge")?;
        let service = self.name(&raw.service, "endpoint.service")?;
        let owner = format!("endpoint {id}");
        let prefixes = self.prefixes(t, &raw.prefixes, "endpoint.prefixes", vpc, &owner, routed)?;
        let front_end_pa = self.unicast_ip(&raw.front_end_pa, "endpoint.front_end_pa")?;
        t.endpoints.push(Endpoint {
            id,
            vpc,
            edge,
            service,
            prefixes,
            front_end_pa,
        });
        Ok(())
    }

    fn port(
        &self,
        t: &mut Topology,
        raw: RawPort,
        attached: &mut HashMap<Attach, String>,
    ) -> Result<()> {
        let name = self.new_name(&raw.name, "port", |n| t.ports.iter().any(|p| p.name == n))?;
        let vdev = self.name(&raw.vdev, "port.vdev")?;
        let attach = parse_attach(t, raw.attach.get_ref())
            .map_err(|m| self.err(raw.attach.span(), "port.attach", m))?;
        if attach != Attach::Fabric {
            if let Some(other) = attached.get(&attach) {
                let m = format!(
                    "{} is already attached to port {other}",
                    raw.attach.get_ref()
                );
                return Err(self.err(raw.attach.span(), "port.attach", m));
            }
            attached.insert(attach.clone(), name.clone());
        }
        t.ports.push(Port { name, vdev, attach });
        Ok(())
    }
}

fn edge_named(t: &Topology, name: &str) -> std::result::Result<EdgeId, String> {
    match t.card_by_name(name) {
        Some(CardId::Edge(e)) => Ok(e),
        Some(CardId::Host(_)) => Err(format!("{name:?} is a host, not an edge")),
        None => Err(format!("unknown edge {name:?}")),
    }
}

fn parse_attach(t: &Topology, s: &str) -> std::result::Result<Attach, String> {
    const EXPECTED: &str = "expected instance:NAME, underlay:HOST, underlay:EDGE, \
        edge:EDGE:internet, edge:EDGE:dx, edge:EDGE:services or fabric";
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        ["fabric"] => Ok(Attach::Fabric),
        ["instance", name] => match t.instance_by_name(name) {
            Some(_) => Ok(Attach::Instance((*name).to_string())),
            None => Err(format!("unknown instance {name:?}")),
        },
        ["underlay", name] => match t.card_by_name(name) {
            Some(card) => Ok(Attach::Underlay(card)),
            None => Err(format!("unknown host or edge {name:?}")),
        },
        ["edge", name, side] => {
            let edge = edge_named(t, name)?;
            match *side {
                "internet" => Ok(Attach::EdgeInternet(edge)),
                "dx" => Ok(Attach::EdgeDx(edge)),
                "services" => Ok(Attach::EdgeServices(edge)),
                _ => Err(format!("unknown edge side {side:?}: {EXPECTED}")),
            }
        }
        _ => Err(format!("{s:?}: {EXPECTED}")),
    }
}

/// Which VPCs each edge serves: its internet gateways, VPNs, DX VIFs and endpoints.
fn index_edges(t: &mut Topology) {
    let mut pairs: Vec<(VpcId, EdgeId)> = Vec::new();
    pairs.extend(
        t.vpcs
            .iter()
            .filter_map(|v| v.internet_gateway.map(|e| (v.id, e))),
    );
    pairs.extend(t.vpns.iter().map(|v| (v.vpc, v.edge)));
    pairs.extend(t.dxs.iter().map(|d| (d.vpc, d.edge)));
    pairs.extend(t.endpoints.iter().map(|e| (e.vpc, e.edge)));
    for (vpc, edge) in pairs {
        if let Some(s) = t.ix.vpc_edges.get_mut(vpc.0 as usize) {
            s.insert(edge);
        }
        if let Some(s) = t.ix.edge_vpcs.get_mut(edge.0 as usize) {
            s.insert(vpc);
        }
    }
}

/// `"0-1"`, `"0,2-3"`: the lcores in the order written, at least two (a control core and a
/// worker), none twice.
fn parse_lcores(s: &str) -> std::result::Result<Vec<u32>, String> {
    let bad = |what: &str| format!("{s:?}: {what} (expected a list like \"0-1\" or \"0,2-3\")");
    let number = |n: &str| -> std::result::Result<u32, String> {
        let n = n.trim();
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(&format!("{n:?} is not an lcore number")));
        }
        match n.parse::<u32>() {
            Ok(v) if v < MAX_LCORE => Ok(v),
            _ => Err(bad(&format!("lcore {n} is not below {MAX_LCORE}"))),
        }
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for item in s.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(item)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(bad(&format!("range {lo}-{hi} is reversed")));
        }
        for l in lo..=hi {
            if !seen.insert(l) {
                return Err(bad(&format!("lcore {l} is listed twice")));
            }
            out.push(l);
        }
    }
    if out.len() < 2 {
        return Err(bad(
            "needs at least two lcores: the control core and a worker",
        ));
    }
    Ok(out)
}

/// Exactly `2 * len` hex digits.
fn parse_hex(s: &str, len: usize) -> Option<Vec<u8>> {
    if s.len() != 2 * len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..len)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn line_of(text: &str, offset: usize) -> usize {
    text.bytes().take(offset).filter(|&b| b == b'\n').count() + 1
}

// ----- errors found by the toml parser ------------------------------------------------------

fn toml_error(text: &str, file: &str, e: &toml::de::Error) -> LoadError {
    let message = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return LoadError {
            file: file.to_string(),
            line: 0,
            field: String::new(),
            message,
        };
    };
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    let field = if text.is_char_boundary(start) && text.is_char_boundary(end) {
        toml_field(text, start..end, &message)
    } else {
        String::new()
    };
    LoadError {
        file: file.to_string(),
        line: line_of(text, start),
        field,
        message,
    }
}

/// Best effort: `section.key...` for a parser error at `span`. The section is the last
/// table header at or before the span; a missing field is named by the message; otherwise
/// the keys written on the line up to the span (following inline tables). `span` lies on
/// character boundaries.
fn toml_field(text: &str, span: Range<usize>, message: &str) -> String {
    let (before, after) = text.split_at(span.start);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = after.find('\n').map_or(text.len(), |i| span.start + i);
    let (upto_line_end, _) = text.split_at(line_end);
    let line = upto_line_end.get(line_start..).unwrap_or("");
    let section = upto_line_end
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let mut path: Vec<String> = section.into_iter().filter(|s| !s.is_empty()).collect();
    if let Some(missing) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        path.push(missing.to_string());
        return path.join(".");
    }
    if line.trim_start().starts_with('[') {
        return path.join(".");
    }
    path.extend(keys_before(line, span.end - line_start));
    path.join(".")
}

/// The nested keys (`outbound`, `spi`) open at byte `upto` of a `key = value` line.
fn keys_before(line: &str, upto: usize) -> Vec<String> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let (mut depth, mut token_start, mut in_str) = (0usize, 0usize, None::<u8>);
    for (i, b) in line.bytes().enumerate() {
        match (in_str, b) {
            (Some(q), _) if b == q => in_str = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => in_str = Some(b),
            (None, b'{') => {
                depth += 1;
                token_start = i + 1;
            }
            (None, b'}') => depth = depth.saturating_sub(1),
            (None, b',') => token_start = i + 1,
            (None, b'#') => break,
            (None, b'=') => {
                if token_start >= upto {
                    break;
                }
                // Both ends follow or precede an ASCII byte: character boundaries.
                let key = line
                    .get(token_start..i)
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"')
                    .to_string();
                stack.retain(|(d, _)| *d < depth);
                stack.push((depth, key));
            }
            _ => {}
        }
    }
    stack.into_iter().map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_file_needs_no_dataplane() {
        let world = "[[host]]\nname = \"h\"\npa = \"198.18.0.1\"\n";
        let dataplane = "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 64\nhugepages = \"off\"\n";
        let path = std::env::temp_dir().join(format!("vpcemu-load-world-{}.toml", std::process::id()));
        std::fs::write(&path, world).unwrap();
        let e = Topology::load(&path).unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("dataplane", "missing [dataplane] section"));
        let t = Topology::load_world(&path, dataplane).unwrap();
        assert_eq!(t, Topology::from_str(&format!("{dataplane}{world}"), "w").unwrap());
        // A file's own [dataplane] stays; its errors keep the file's lines.
        let own = "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 128\nhugepages = \"off\"\n";
        std::fs::write(&path, format!("{own}{world}")).unwrap();
        assert_eq!(Topology::load_world(&path, dataplane).unwrap(), Topology::from_str(&format!("{own}{world}"), "w").unwrap());
        std::fs::write(&path, format!("{world}[[vpc]]\nname = \"v\"\nvni = 0\ncidr = \"10.0.0.0/16\"\n")).unwrap();
        let e = Topology::load_world(&path, dataplane).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn lcores() {
        assert_eq!(parse_lcores("0-1").unwrap(), vec![0, 1]);
        assert_eq!(parse_lcores("2, 0-1,8").unwrap(), vec![2, 0, 1, 8]);
        assert!(parse_lcores("0").is_err());
        assert!(parse_lcores("1-0").is_err());
        assert!(parse_lcores("0-2,1").is_err());
        assert!(parse_lcores("0-").is_err());
        assert!(parse_lcores("a,b").is_err());
        assert!(parse_lcores("0,99999").is_err());
        assert!(parse_lcores("").is_err());
    }

    #[test]
    fn keys_on_a_line() {
        let line = r#"outbound = { spi = "x", key = "y" }"#;
        assert_eq!(
            keys_before(line, line.find("\"x\"").unwrap() + 3),
            ["outbound", "spi"]
        );
        assert_eq!(keys_before("pa = 5", 6), ["pa"]);
        assert_eq!(keys_before("colour = 3", 6), ["colour"]);
    }
}
