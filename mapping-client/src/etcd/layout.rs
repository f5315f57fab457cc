//! The key layout of the world in etcd (`mapping-client/ETCD.md`), and the conversions
//! between a [`Topology`] and its records. Sans-I/O: records are `key -> JSON text`, keys
//! relative to the prefix (`/vpcemu/`).
//!
//! Static records (written only by `mapping load`): `world`, `host/NAME`, `edge/NAME`,
//! `vpc/NAME`, `subnet/NAME`, `vpn/NAME`, `dx/NAME`, `endpoint/ID`, each with the `id` the
//! loader gave it (its position in the file's list). Dynamic records (changed by `ctl`):
//! `next-eni`, and per VPC under `in/VPC/`: `ip/HEX` (an instance, by its primary address
//! as 8 hex digits, so that a subnet is a key range), `peer/VPC` (both ways), `eip/HEX`;
//! plus three indexes that make claims unique and let a host find its VPCs: `name/NAME`,
//! `eip/HEX`, `on/HOST/NAME`.
//!
//! The JSON fields of a record are those of its topology file section, plus `id` (static
//! records) or `eni` (instances), so a topology file is the records' tables in order.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::net::MacAddr;
use crate::topology::{EniId, Instance, SaConfig, Topology, VpcId};

/// The default key prefix.
pub const PREFIX: &str = "/vpcemu/";
/// The world record: present once a world is loaded; its value says the format.
pub const WORLD: &str = "world";
/// The next ENI id (a register takes it and writes it + 1).
pub const NEXT_ENI: &str = "next-eni";
/// The format the `world` record announces.
pub const FORMAT: u64 = 1;

/// Records: key (relative to the prefix) -> JSON text.
pub type Records = BTreeMap<String, String>;

/// The prefix of the static snapshot: every static record but `world`, in chunks
/// (`statics/00000`, `statics/00001`, ...), written by `mapping load` with the records
/// themselves, so that a card reads a few values instead of listing thousands of keys.
pub const STATICS: &str = "statics/";
/// Bytes of records in one chunk of the static snapshot: a value well under etcd's
/// 1.5 MiB request limit, and two of them within one of the load's transactions.
pub const STATIC_CHUNK_BYTES: usize = 256 * 1024;

/// One chunk of the static snapshot.
#[derive(serde::Deserialize)]
struct StaticChunk {
    chunk: usize,
    chunks: usize,
    records: Vec<(String, String)>,
}

/// The static snapshot of `records`: every static record but `world`, in key order, in
/// chunks of at most `max_bytes` of JSON each (a record longer than that gets a chunk of
/// its own). Each chunk is `{"chunk":I,"chunks":N,"records":[[KEY,VALUE],...]}`, under
/// `statics/` with I as 5 digits (the keys sort in chunk order). No static record: none.
pub fn static_chunks(records: &Records, max_bytes: usize) -> Vec<(String, String)> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut bytes = 0;
    for (k, v) in records.iter().filter(|(k, _)| k.as_str() != WORLD && is_static_key(k)) {
        let piece = serde_json::to_string(&(k, v)).unwrap_or_default();
        match groups.last_mut() {
            Some(g) if bytes + piece.len() < max_bytes => {
                bytes += piece.len() + 1;
                g.push(piece);
            }
            _ => {
                bytes = piece.len();
                groups.push(vec![piece]);
            }
        }
    }
    let n = groups.len();
    groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            (format!("{STATICS}{i:05}"), format!("{{\"chunk\":{i},\"chunks\":{n},\"records\":[{}]}}", g.join(",")))
        })
        .collect()
}

/// The static records of a static snapshot's chunks (`(key, value)` as listed, in any
/// order). `Ok(None)`: there is none (a world loaded without one). An incomplete or
/// inconsistent snapshot, or a record in it that is not static: an error.
pub fn statics_from_chunks<'a>(
    chunks: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Option<Vec<(String, String)>>, String> {
    let mut parsed: Vec<StaticChunk> = Vec::new();
    for (key, value) in chunks {
        let c: StaticChunk = serde_json::from_str(value).map_err(|e| format!("static snapshot {key}: {e}"))?;
        if key.strip_prefix(STATICS).and_then(|i| i.parse::<usize>().ok()) != Some(c.chunk) {
            return Err(format!("static snapshot {key}: holds chunk {}", c.chunk));
        }
        parsed.push(c);
    }
    if parsed.is_empty() {
        return Ok(None);
    }
    parsed.sort_by_key(|c| c.chunk);
    let n = parsed.len();
    for (i, c) in parsed.iter().enumerate() {
        if c.chunk != i || c.chunks != n {
            return Err(format!("static snapshot incomplete: chunk {} of {} where {i} of {n} was expected", c.chunk, c.chunks));
        }
    }
    let mut out = Vec::new();
    for c in parsed {
        for (k, v) in c.records {
            if k == WORLD || !is_static_key(&k) {
                return Err(format!("static snapshot: {k} is not a static record"));
            }
            out.push((k, v));
        }
    }
    Ok(Some(out))
}

/// An IPv4 address as 8 lowercase hex digits: the order of the keys is the order of the
/// addresses, so a subnet's instances are one key range.
pub fn hex_ip(ip: Ipv4Addr) -> String {
    format!("{:08x}", u32::from(ip))
}

/// The key range `[start, end)` of the instances of `vpc` in `cidr`.
pub fn subnet_range(vpc: &str, cidr: crate::net::Cidr) -> (String, String) {
    let start = format!("in/{vpc}/ip/{}", hex_ip(cidr.network()));
    let end = match u32::from(cidr.broadcast()).checked_add(1) {
        Some(next) => format!("in/{vpc}/ip/{:08x}", next),
        None => format!("in/{vpc}/ip0"),
    };
    (start, end)
}

/// The prefix of everything that changes about `vpc` (its instances, peerings, Elastic IPs).
pub fn vpc_dynamic(vpc: &str) -> String {
    format!("in/{vpc}/")
}

/// The prefix of the VPCs' guard keys (`ver/VPC`): every change that writes under
/// `in/VPC/` also puts `ver/VPC`, and a change validated at revision R succeeds only if
/// `ver/VPC`'s mod revision is at most R (one key compared per VPC, not the VPC's whole
/// range). Not under `in/`, so no card watches it; readers of the world leave it out.
pub const GUARDS: &str = "ver/";

/// The guard key of `vpc` (see [`GUARDS`]).
pub fn vpc_guard(vpc: &str) -> String {
    format!("{GUARDS}{vpc}")
}

/// The prefix of the placement index of `host` (`on/HOST/INSTANCE` -> VPC name).
pub fn host_index(host: &str) -> String {
    format!("on/{host}/")
}

/// A name may be written into a key: not empty, no `/`, no control characters.
pub fn check_key_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!(
            "{kind} name {name:?} cannot be an etcd key part (no '/', no control characters)"
        ));
    }
    Ok(())
}

fn text(v: Value) -> String {
    v.to_string()
}

fn sa(s: &SaConfig) -> Value {
    let mut hex = String::with_capacity(40);
    for b in s.key.iter().chain(s.salt.iter()) {
        hex.push_str(&format!("{b:02x}"));
    }
    json!({ "spi": s.spi, "key": hex })
}

fn cidrs(list: &[crate::net::Cidr]) -> Value {
    Value::from(list.iter().map(|c| c.to_string()).collect::<Vec<_>>())
}

/// Every record of `t` (its `[dataplane]` and ports are not part of the world).
pub fn records_of(t: &Topology) -> Result<Records, String> {
    let mut r = Records::new();
    let vpc_name = |v: VpcId| t.vpc(v).map_or("?", |v| v.name.as_str());
    let edge_name = |e| t.edge(e).map_or("?", |e| e.name.as_str());
    r.insert(WORLD.into(), text(json!({ "format": FORMAT })));
    let next = t
        .instances()
        .iter()
        .map(|i| i.eni.0 + 1)
        .max()
        .unwrap_or(1)
        .max(t.next_eni());
    r.insert(NEXT_ENI.into(), text(json!(next)));
    for h in t.hosts() {
        check_key_name("host", &h.name)?;
        let v = json!({ "id": h.id.0, "name": h.name, "pa": h.pa.to_string() });
        r.insert(format!("host/{}", h.name), text(v));
    }
    for e in t.edges() {
        check_key_name("edge", &e.name)?;
        let v = json!({ "id": e.id.0, "name": e.name, "pa": e.pa.to_string() });
        r.insert(format!("edge/{}", e.name), text(v));
    }
    for v in t.vpcs() {
        check_key_name("vpc", &v.name)?;
        // "" is none (an absent field would mean the only edge, in a file).
        let igw = v.internet_gateway.map_or("", edge_name);
        let o = json!({ "id": v.id.0, "name": v.name, "vni": v.vni, "cidr": v.cidr.to_string(), "internet_gateway": igw });
        r.insert(format!("vpc/{}", v.name), text(o));
    }
    for s in t.subnets() {
        check_key_name("subnet", &s.name)?;
        let o = json!({ "id": s.id.0, "name": s.name, "vpc": vpc_name(s.vpc), "cidr": s.cidr.to_string() });
        r.insert(format!("subnet/{}", s.name), text(o));
    }
    for v in t.vpns() {
        check_key_name("vpn", &v.name)?;
        let o = json!({
            "id": v.id.0, "name": v.name, "vpc": vpc_name(v.vpc), "edge": edge_name(v.edge),
            "local": v.local.to_string(), "customer_gateway": v.customer_gateway.to_string(),
            "remote_prefixes": cidrs(&v.remote_prefixes),
            "outbound": sa(&v.outbound), "inbound": sa(&v.inbound),
        });
        r.insert(format!("vpn/{}", v.name), text(o));
    }
    for d in t.dxs() {
        check_key_name("dx", &d.name)?;
        let o = json!({
            "id": d.id.0, "name": d.name, "vpc": vpc_name(d.vpc), "edge": edge_name(d.edge),
            "vlan": d.vlan, "remote_prefixes": cidrs(&d.remote_prefixes),
            "router_mac": d.router_mac.to_string(),
        });
        r.insert(format!("dx/{}", d.name), text(o));
    }
    for (i, e) in t.endpoints().iter().enumerate() {
        let o = json!({
            "id": i, "endpoint_id": e.id.to_string(), "vpc": vpc_name(e.vpc), "edge": edge_name(e.edge),
            "service": e.service, "prefixes": cidrs(&e.prefixes),
            "front_end_pa": e.front_end_pa.to_string(),
        });
        r.insert(format!("endpoint/{}", e.id), text(o));
    }
    let all: Vec<VpcId> = t.vpcs().iter().map(|v| v.id).collect();
    r.extend(records_of_vpcs(t, &all)?);
    Ok(r)
}

/// The dynamic records of `vpcs` (instances with their `name/` and `on/` indexes,
/// peerings, Elastic IPs with their `eip/` claims) and `next-eni`: what a change to those
/// VPCs can touch.
pub fn records_of_vpcs(t: &Topology, vpcs: &[VpcId]) -> Result<Records, String> {
    let state = DynamicState::of(t, vpcs);
    state.records(t, |_| true)
}

/// What the dynamic records of some VPCs are made of, without their text: a copy of each
/// member with its Elastic IP, each VPC's peers, the next ENI id. Two states of the same
/// VPCs give their records' changes by writing out only the members that differ
/// ([`changed_records`]): a change costs what it changes, not the size of its VPCs.
#[derive(Clone, Debug)]
pub struct DynamicState {
    vpcs: Vec<VpcId>,
    members: HashMap<EniId, (Instance, Option<Ipv4Addr>)>,
    peers: Vec<Vec<VpcId>>,
    next: u32,
}

impl DynamicState {
    pub fn of(t: &Topology, vpcs: &[VpcId]) -> DynamicState {
        let members: HashMap<EniId, (Instance, Option<Ipv4Addr>)> = vpcs
            .iter()
            .flat_map(|&v| t.vpc_members(v))
            .map(|i| (i.eni, (i.clone(), t.elastic_ip_of(i.eni))))
            .collect();
        // A whole world's next ENI id is above every ENI it has (the loader, registrations
        // and records all raise it): only the members of `vpcs` need a look, not the world's.
        let next = members.keys().map(|e| e.0 + 1).max().unwrap_or(1).max(t.next_eni());
        let peers = vpcs.iter().map(|&v| t.peers(v).collect()).collect();
        DynamicState { vpcs: vpcs.to_vec(), members, peers, next }
    }

    /// The records of the members `keep` accepts, every peering and `next-eni`; names of
    /// VPCs, subnets and hosts from `t` (static records: the same before and after a
    /// change).
    fn records(&self, t: &Topology, keep: impl Fn(EniId) -> bool) -> Result<Records, String> {
        let mut r = Records::new();
        let vpc_name = |v: VpcId| t.vpc(v).map_or("?", |v| v.name.as_str());
        r.insert(NEXT_ENI.into(), text(json!(self.next)));
        let mut members: Vec<&(Instance, Option<Ipv4Addr>)> =
            self.members.iter().filter(|(&e, _)| keep(e)).map(|(_, m)| m).collect();
        members.sort_by_key(|(i, _)| i.eni);
        for (i, eip) in members {
            let vpc = vpc_name(i.vpc);
            check_key_name("instance", &i.name)?;
            let key = format!("in/{vpc}/ip/{}", hex_ip(i.ip));
            r.insert(key.clone(), text(instance_json(t, i)));
            r.insert(format!("name/{}", i.name), text(json!(key)));
            let host = t.host(i.host).map_or("?", |h| h.name.as_str());
            r.insert(format!("on/{host}/{}", i.name), text(json!(vpc)));
            if let Some(ip) = eip {
                let o = json!({ "ip": ip.to_string(), "instance": i.name });
                r.insert(format!("in/{vpc}/eip/{}", hex_ip(*ip)), text(o));
                r.insert(format!("eip/{}", hex_ip(*ip)), text(json!(vpc)));
            }
        }
        for (&v, peers) in self.vpcs.iter().zip(&self.peers) {
            let vpc = vpc_name(v);
            for &p in peers {
                let other = vpc_name(p);
                r.insert(format!("in/{vpc}/peer/{other}"), text(json!(other)));
            }
        }
        Ok(r)
    }
}

/// The records to put and to delete to go from `before` to `after` (two states of the same
/// VPCs; `t` gives the static names): exactly `diff(records_of_vpcs(before),
/// records_of_vpcs(after))`, with only the members that changed written out. A member
/// that is the same in both has the same records in both, and no other member has one
/// of its keys (addresses, names and Elastic IPs are unique), so it adds nothing to the
/// difference.
pub fn changed_records(t: &Topology, before: &DynamicState, after: &DynamicState) -> Result<super::store::RecordChanges, String> {
    let same = |e: EniId| before.members.get(&e) == after.members.get(&e);
    let old = before.records(t, |e| !same(e))?;
    let new = after.records(t, |e| !same(e))?;
    Ok(diff(&old, &new))
}

/// The VPCs whose records `command` may change in `t` (before it runs).
pub fn affected_vpcs(t: &Topology, command: &crate::service::Command) -> Vec<VpcId> {
    use crate::service::Command;
    let of_instance = |name: &str| t.instance_by_name(name).map(|i| i.vpc);
    let v = match command {
        Command::Register(spec) => vec![t.subnet_by_name(&spec.subnet).and_then(|s| t.subnet(s)).map(|s| s.vpc)],
        Command::Deregister { instance } | Command::Move { instance, .. } => vec![of_instance(instance)],
        Command::AssociateElasticIp { ip, instance } => {
            vec![of_instance(instance), t.elastic_ip_instance(*ip).and_then(|e| t.instance(e)).map(|i| i.vpc)]
        }
        Command::DisassociateElasticIp { ip } => vec![t.elastic_ip_instance(*ip).and_then(|e| t.instance(e)).map(|i| i.vpc)],
        Command::AddPeering { a, b } | Command::RemovePeering { a, b } => vec![t.vpc_by_name(a), t.vpc_by_name(b)],
    };
    let mut v: Vec<VpcId> = v.into_iter().flatten().collect();
    v.sort();
    v.dedup();
    v
}

fn instance_json(t: &Topology, i: &Instance) -> Value {
    let ips: Vec<String> = i.secondary_ips.iter().map(|ip| ip.to_string()).collect();
    json!({
        "eni": i.eni.0,
        "name": i.name,
        "subnet": t.subnet(i.subnet).map_or("?", |s| s.name.as_str()),
        "host": t.host(i.host).map_or("?", |h| h.name.as_str()),
        "ip": i.ip.to_string(),
        "secondary_ips": ips,
        "mac": i.mac.to_string(),
        "source_dest_check": i.source_dest_check,
    })
}

/// Where a record goes in a topology file, by its key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Section {
    Host,
    Edge,
    Vpc,
    Subnet,
    Instance,
    Peering,
    ElasticIp,
    Vpn,
    Dx,
    Endpoint,
}

impl Section {
    fn table(self) -> &'static str {
        match self {
            Section::Host => "host",
            Section::Edge => "edge",
            Section::Vpc => "vpc",
            Section::Subnet => "subnet",
            Section::Instance => "instance",
            Section::Peering => "peering",
            Section::ElasticIp => "elastic_ip",
            Section::Vpn => "vpn",
            Section::Dx => "dx",
            Section::Endpoint => "endpoint",
        }
    }

    /// The section of a key, `None` for indexes and meta records.
    fn of(key: &str) -> Option<Section> {
        let parts: Vec<&str> = key.split('/').collect();
        match parts.as_slice() {
            ["host", _] => Some(Section::Host),
            ["edge", _] => Some(Section::Edge),
            ["vpc", _] => Some(Section::Vpc),
            ["subnet", _] => Some(Section::Subnet),
            ["vpn", _] => Some(Section::Vpn),
            ["dx", _] => Some(Section::Dx),
            ["endpoint", _] => Some(Section::Endpoint),
            ["in", _, "ip", _] => Some(Section::Instance),
            ["in", _, "peer", _] => Some(Section::Peering),
            ["in", _, "eip", _] => Some(Section::ElasticIp),
            _ => None,
        }
    }

    /// Whether `mapping load` alone writes it.
    fn is_static(self) -> bool {
        !matches!(self, Section::Instance | Section::Peering | Section::ElasticIp)
    }
}

/// Whether `key` is a static record (see the module documentation).
pub fn is_static_key(key: &str) -> bool {
    key == WORLD || Section::of(key).is_some_and(Section::is_static)
}

/// The records as topology file text: `dataplane` (a `[dataplane]` section, or empty)
/// then one table per record, each section in the order of the records' `id`/`eni`.
pub fn to_toml(records: &Records, dataplane: &str) -> Result<String, String> {
    let mut sections: BTreeMap<Section, Vec<(u64, String, toml::Table)>> = BTreeMap::new();
    for (key, value) in records {
        let Some(section) = Section::of(key) else { continue };
        let v: Value = serde_json::from_str(value).map_err(|e| format!("record {key}: {e}"))?;
        let (order, table) = match section {
            Section::Peering => {
                // Each pair is written both ways: keep the one whose VPC sorts first.
                let parts: Vec<&str> = key.split('/').collect();
                let (a, b) = (parts.get(1).copied().unwrap_or(""), v.as_str().unwrap_or(""));
                if a > b {
                    continue;
                }
                let mut t = toml::Table::new();
                t.insert("vpcs".into(), toml::Value::from(vec![a.to_string(), b.to_string()]));
                (0, t)
            }
            _ => {
                let Value::Object(mut o) = v else {
                    return Err(format!("record {key}: not a JSON object"));
                };
                let order = match section {
                    Section::Instance => o.remove("eni"),
                    Section::ElasticIp => None,
                    _ => o.remove("id"),
                };
                let order = order.and_then(|v| v.as_u64()).unwrap_or(0);
                if section == Section::Endpoint {
                    if let Some(id) = o.remove("endpoint_id") {
                        o.insert("id".into(), id);
                    }
                }
                if section == Section::Instance {
                    if o.get("secondary_ips").and_then(|v| v.as_array()).is_some_and(|a| a.is_empty()) {
                        o.remove("secondary_ips");
                    }
                    if o.get("source_dest_check") == Some(&Value::Bool(true)) {
                        o.remove("source_dest_check");
                    }
                }
                let table = toml::Table::try_from(Value::Object(o)).map_err(|e| format!("record {key}: {e}"))?;
                (order, table)
            }
        };
        sections.entry(section).or_default().push((order, key.clone(), table));
    }
    let mut out = String::from(dataplane);
    for (section, mut items) in sections {
        items.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut doc = toml::Table::new();
        let list: Vec<toml::Value> = items.into_iter().map(|(_, _, t)| toml::Value::Table(t)).collect();
        doc.insert(section.table().into(), toml::Value::Array(list));
        let text = toml::to_string(&doc).map_err(|e| format!("writing the {} section: {e}", section.table()))?;
        out.push('\n');
        out.push_str(&text);
    }
    Ok(out)
}

/// A `[dataplane]` section for a file that only carries a world (`mapping dump`); it is not
/// part of the world and `mapping load` ignores it.
pub const DUMP_DATAPLANE: &str =
    "# The world as etcd holds it (`vpcemu mapping dump`). [dataplane] is not part of it.\n\
     [dataplane]\nlcores = \"0-1\"\nmemory_mb = 512\nhugepages = \"off\"\n";

/// The world the records hold, validated as the loader validates a file, on `dataplane`
/// (a `[dataplane]` section). ENI ids and the next ENI id are the records'. Records that
/// are not complete (a peering or Elastic IP of a VPC whose instances are not among them)
/// are an error, so pass whole VPCs.
pub fn world_from_records(records: &Records, dataplane: &str) -> Result<Topology, String> {
    let statics: Records = records
        .iter()
        .filter(|(k, _)| Section::of(k).is_some_and(Section::is_static))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let text = to_toml(&statics, dataplane)?;
    let mut t = Topology::from_str(&text, "etcd").map_err(|e| e.to_string())?;
    let dynamic = records.iter().filter(|(k, _)| Section::of(k).is_some_and(|s| !s.is_static()));
    add_dynamic(&mut t, dynamic)?;
    if let Some(next) = records.get(NEXT_ENI).and_then(|v| v.parse::<u32>().ok()) {
        t.raise_next_eni(next);
    }
    Ok(t)
}

/// Adds dynamic records (instances, then peerings, then Elastic IPs) to `t`, with the
/// loader's checks. Instances go in in ENI order.
pub fn add_dynamic<'a>(
    t: &mut Topology,
    records: impl Iterator<Item = (&'a String, &'a String)>,
) -> Result<(), String> {
    let mut instances = Vec::new();
    let mut peerings = Vec::new();
    let mut eips = Vec::new();
    let tree = |key: &str, value: &str| serde_json::from_str::<Value>(value).map_err(|e| format!("record {key}: {e}"));
    for (key, value) in records {
        match Section::of(key) {
            // Straight into its fields, without a JSON tree (most of a snapshot's records).
            Some(Section::Instance) => {
                instances.push((key, instance_from_record(t, value).map_err(|m| format!("record {key}: {m}"))?))
            }
            Some(Section::Peering) => peerings.push((key, tree(key, value)?)),
            Some(Section::ElasticIp) => eips.push((key, tree(key, value)?)),
            // Not used here, but still JSON.
            _ => drop(serde_json::from_str::<serde::de::IgnoredAny>(value).map_err(|e| format!("record {key}: {e}"))?),
        }
    }
    instances.sort_by_key(|(_, i)| i.eni);
    for (key, inst) in instances {
        t.add_checked_instance(inst).map_err(|m| format!("record {key}: {m}"))?;
    }
    for (key, v) in peerings {
        let a = key.split('/').nth(1).unwrap_or("");
        let b = v.as_str().unwrap_or("");
        let (Some(va), Some(vb)) = (t.vpc_by_name(a), t.vpc_by_name(b)) else {
            return Err(format!("record {key}: unknown vpc"));
        };
        if !t.peered(va, vb) {
            t.check_peering(va, vb).map_err(|m| format!("record {key}: {m}"))?;
            t.add_peering(va, vb);
        }
    }
    for (key, v) in eips {
        let ip: Ipv4Addr = v["ip"].as_str().unwrap_or("").parse().map_err(|_| format!("record {key}: bad ip"))?;
        let name = v["instance"].as_str().unwrap_or("");
        let eni = t
            .instance_by_name(name)
            .map(|i| i.eni)
            .ok_or_else(|| format!("record {key}: unknown instance {name:?}"))?;
        t.check_elastic_ip(ip, eni).map_err(|(_, m)| format!("record {key}: {m}"))?;
        t.associate_elastic_ip(ip, eni);
    }
    Ok(())
}

/// An instance record as the model's [`Instance`] (not yet checked against `t`).
pub fn instance_from_json(t: &Topology, v: &Value) -> Result<Instance, String> {
    let s = |f: &str| v[f].as_str().ok_or_else(|| format!("missing {f}"));
    let secondary_ips = v["secondary_ips"]
        .as_array()
        .map(|a| a.iter().map(|x| Cow::from(x.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    let fields = InstanceRecord {
        eni: v["eni"].as_u64(),
        name: s("name")?.into(),
        subnet: s("subnet")?.into(),
        host: s("host")?.into(),
        ip: s("ip")?.into(),
        secondary_ips,
        mac: s("mac")?.into(),
        source_dest_check: v["source_dest_check"].as_bool(),
    };
    instance_from_fields(t, fields)
}

/// An instance record's fields, as its JSON holds them (strings borrowed from the text
/// where it has no escapes).
#[derive(serde::Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct InstanceRecord<'a> {
    eni: Option<u64>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    subnet: Cow<'a, str>,
    #[serde(borrow)]
    host: Cow<'a, str>,
    #[serde(borrow)]
    ip: Cow<'a, str>,
    #[serde(borrow, default)]
    secondary_ips: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    mac: Cow<'a, str>,
    source_dest_check: Option<bool>,
}

/// An instance record's text (`in/VPC/ip/...`) as an instance of `t`: what
/// [`instance_from_json`] gives for the parsed text, without building a JSON tree (a
/// card's watcher reads one per change it applies). A text that does not have the
/// record's shape is read as JSON, so that it gets the same answer and message.
pub fn instance_from_record(t: &Topology, text: &str) -> Result<Instance, String> {
    if let Some(fields) = canonical_instance(text) {
        return instance_from_fields(t, fields);
    }
    match serde_json::from_str::<InstanceRecord>(text) {
        Ok(fields) => instance_from_fields(t, fields),
        Err(_) => {
            let v: Value = serde_json::from_str(text).map_err(|e| format!("bad record: {e}"))?;
            instance_from_json(t, &v)
        }
    }
}

/// The fields of an instance record written exactly as [`instance_json`] writes it (keys
/// in that order, no white space, strings without escapes or control characters, `eni` a
/// plain number), read without a JSON parser: what serde reads from the same text (the
/// watchers read one per instance of every VPC entering a card's view, and the parser was
/// most of that). Any other text: `None` (serde reads it).
fn canonical_instance(text: &str) -> Option<InstanceRecord<'_>> {
    let mut rest = text.strip_prefix("{\"eni\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 10 || (digits > 1 && rest.starts_with('0')) {
        return None;
    }
    let eni: u64 = rest[..digits].parse().ok()?;
    rest = &rest[digits..];
    // A string's text after its opening quote, up to its closing one (none with an escape
    // or a control character), and what follows that quote.
    fn quoted(r: &str) -> Option<(&str, &str)> {
        let end = r.bytes().position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
        (r.as_bytes()[end] == b'"').then(|| (&r[..end], &r[end + 1..]))
    }
    // `,"KEY":"VALUE"`, the value borrowed from the text.
    fn string<'a>(rest: &mut &'a str, key: &str) -> Option<&'a str> {
        let (value, after) = quoted(rest.strip_prefix(",\"")?.strip_prefix(key)?.strip_prefix("\":\"")?)?;
        *rest = after;
        Some(value)
    }
    let host = string(&mut rest, "host")?;
    let ip = string(&mut rest, "ip")?;
    let mac = string(&mut rest, "mac")?;
    let name = string(&mut rest, "name")?;
    rest = rest.strip_prefix(",\"secondary_ips\":[")?;
    let mut secondary_ips = Vec::new();
    if let Some(r) = rest.strip_prefix(']') {
        rest = r;
    } else {
        loop {
            let (ip, after) = quoted(rest.strip_prefix('"')?)?;
            secondary_ips.push(Cow::Borrowed(ip));
            rest = after;
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else {
                rest = rest.strip_prefix(']')?;
                break;
            }
        }
    }
    rest = rest.strip_prefix(",\"source_dest_check\":")?;
    let (check, r) = match rest.strip_prefix("true") {
        Some(r) => (true, r),
        None => (false, rest.strip_prefix("false")?),
    };
    rest = r;
    let subnet = string(&mut rest, "subnet")?;
    if rest != "}" {
        return None;
    }
    Some(InstanceRecord {
        eni: Some(eni),
        name: Cow::Borrowed(name),
        subnet: Cow::Borrowed(subnet),
        host: Cow::Borrowed(host),
        ip: Cow::Borrowed(ip),
        secondary_ips,
        mac: Cow::Borrowed(mac),
        source_dest_check: Some(check),
    })
}

fn instance_from_fields(t: &Topology, f: InstanceRecord) -> Result<Instance, String> {
    let ip = |x: &str| x.parse::<Ipv4Addr>().map_err(|_| format!("{x:?} is not an IPv4 address"));
    let subnet = t.subnet_by_name(&f.subnet).ok_or("unknown subnet")?;
    let vpc = t.subnet(subnet).map(|s| s.vpc).ok_or("unknown subnet")?;
    let host = match t.card_by_name(&f.host) {
        Some(crate::topology::CardId::Host(h)) => h,
        _ => return Err(format!("unknown host {:?}", f.host)),
    };
    let primary = ip(&f.ip)?;
    let secondary_ips = f.secondary_ips.iter().map(|x| ip(x)).collect::<Result<Vec<_>, _>>()?;
    let mac: MacAddr = f.mac.parse().map_err(|e| format!("mac: {e}"))?;
    let eni = f.eni.and_then(|e| u32::try_from(e).ok()).ok_or("missing eni")?;
    Ok(Instance {
        eni: EniId(eni),
        name: f.name.into_owned(),
        subnet,
        vpc,
        host,
        ip: primary,
        secondary_ips,
        mac,
        source_dest_check: f.source_dest_check.unwrap_or(true),
    })
}

/// What changed from `old` to `new`: keys to put (with their new value) and keys to
/// delete.
pub fn diff(old: &Records, new: &Records) -> (Vec<(String, String)>, Vec<String>) {
    let puts = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let deletes = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
    (puts, deletes)
}

/// The VPC a dynamic key belongs to (`in/VPC/...`).
pub fn vpc_of_key(key: &str) -> Option<&str> {
    key.strip_prefix("in/").and_then(|rest| rest.split('/').next())
}

/// ENI ids by instance name, from instance records.
pub fn eni_ids(records: &Records) -> HashMap<String, u32> {
    records
        .iter()
        .filter(|(k, _)| Section::of(k) == Some(Section::Instance))
        .filter_map(|(_, v)| serde_json::from_str::<Value>(v).ok())
        .filter_map(|v| Some((v["name"].as_str()?.to_string(), u32::try_from(v["eni"].as_u64()?).ok()?)))
        .collect()
}

/// The sections a file for `vpcemu run FILE --etcd URL` may hold: the world comes from etcd.
pub const RUN_FILE_SECTIONS: [&str; 2] = ["dataplane", "port"];

/// The world in `records` with the `[dataplane]` and `[[port]]`s of `file_text` (a
/// topology file holding only those), checked as the loader checks a file: a port naming
/// an instance or card the world does not have is the loader's error, at its line in
/// `file_name`. A world section in the file is an error that points to `mapping load`.
pub fn world_with_run_file(records: &Records, file_text: &str, file_name: &str) -> Result<Topology, String> {
    let table: toml::Table = toml::from_str(file_text).map_err(|e| {
        Topology::from_str(file_text, file_name).err().map_or_else(|| format!("{file_name}: {e}"), |le| le.to_string())
    })?;
    let extra: Vec<&str> = table.keys().map(String::as_str).filter(|k| !RUN_FILE_SECTIONS.contains(k)).collect();
    if !extra.is_empty() {
        return Err(format!(
            "{file_name}: with --etcd the world comes from etcd, so this file holds only [dataplane] and [[port]]s \
             (found {}): write the world with `vpcemu mapping load FILE --etcd URL`",
            extra.iter().map(|k| format!("[{k}]")).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut composed = String::from(file_text);
    composed.push('\n');
    composed.push_str(&to_toml(records, "")?);
    let framed = Topology::from_str(&composed, file_name).map_err(|e| e.to_string())?;
    let mut world = world_from_records(records, DUMP_DATAPLANE)?;
    world.set_frame(framed.dataplane().clone(), framed.ports().to_vec());
    Ok(world)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader of canonical instance records reads what serde reads, or leaves the
    /// text to serde: records as `instance_json` writes them (with and without secondary
    /// addresses, names with characters JSON escapes), and every cut and one-byte change
    /// of them.
    #[test]
    fn canonical_instance_records_read_as_serde_reads_them() {
        let record = |name: &str, eni: u64, secondary: &[&str], check: bool| {
            text(json!({
                "eni": eni, "name": name, "subnet": "s0", "host": "h1", "ip": "10.0.0.4",
                "secondary_ips": secondary, "mac": "02:00:0a:00:00:04", "source_dest_check": check,
            }))
        };
        let texts = [
            record("i0", 0, &[], true),
            record("web-1", 7, &["10.0.0.5"], false),
            record("x", 4_294_967_295, &["10.0.0.5", "10.0.0.6"], true),
            record("caf\u{e9}", 12, &[], true),
            record("quote \" back \\ line \n", 3, &[], true),
            record("", 9, &[], true),
        ];
        let mut fast = 0;
        let mut checked = 0;
        for t in &texts {
            let mut variants: Vec<String> = vec![t.clone()];
            for cut in 0..t.len() {
                if t.is_char_boundary(cut) {
                    variants.push(t[..cut].to_string());
                    variants.push(format!("{}{}", &t[..cut], " "));
                }
            }
            for (i, b) in t.bytes().enumerate() {
                for x in [b'0', b'"', b'\\', b',', b'}', b' ', b'1', b'\n'] {
                    let mut v = t.clone().into_bytes();
                    v[i] = x;
                    if b != x {
                        if let Ok(v) = String::from_utf8(v) {
                            variants.push(v);
                        }
                    }
                }
            }
            for v in &variants {
                if let Some(f) = canonical_instance(v) {
                    assert_eq!(serde_json::from_str::<InstanceRecord>(v).ok(), Some(f), "{v}");
                    checked += 1;
                }
            }
            fast += canonical_instance(t).is_some() as usize;
        }
        // Every record without escapes takes the fast path; the one with escapes does not.
        assert_eq!(fast, texts.len() - 1);
        assert!(checked > texts.len(), "{checked}");
    }

    fn some_records() -> Records {
        let mut r = Records::new();
        r.insert(WORLD.into(), text(json!({ "format": FORMAT })));
        r.insert(NEXT_ENI.into(), "7".into());
        for i in 0..40 {
            r.insert(format!("host/h{i}"), text(json!({ "id": i, "name": format!("h{i}"), "pa": "198.18.0.1" })));
            r.insert(format!("vpc/v{i}"), text(json!({ "id": i, "name": format!("v{i}"), "note": "quote \" and \\ and \n" })));
            r.insert(format!("in/v{i}/ip/0a000001"), text(json!({ "eni": i })));
            r.insert(format!("on/h{i}/x{i}"), text(json!(format!("v{i}"))));
        }
        r.insert("subnet/s0".into(), text(json!({ "id": 0 })));
        r.insert("endpoint/vpce-1".into(), text(json!({ "id": 0 })));
        r
    }

    fn statics_of(r: &Records) -> Vec<(String, String)> {
        r.iter().filter(|(k, _)| k.as_str() != WORLD && is_static_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn decode(chunks: &[(String, String)]) -> Result<Option<Vec<(String, String)>>, String> {
        statics_from_chunks(chunks.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    #[test]
    fn static_chunks_hold_exactly_the_static_records_at_any_chunk_size() {
        let r = some_records();
        let want = statics_of(&r);
        assert_eq!(want.len(), 82);
        for max in [1, 64, 300, 1000, 5000, STATIC_CHUNK_BYTES] {
            let chunks = static_chunks(&r, max);
            assert!(!chunks.is_empty());
            for (i, (k, v)) in chunks.iter().enumerate() {
                assert_eq!(k, &format!("statics/{i:05}"));
                // Within the size unless one record alone is longer.
                let one: StaticChunk = serde_json::from_str(v).unwrap();
                assert!(v.len() <= max + 40 || one.records.len() == 1, "{max}: {}", v.len());
            }
            if max == 1 {
                assert_eq!(chunks.len(), want.len());
            }
            if max == STATIC_CHUNK_BYTES {
                assert_eq!(chunks.len(), 1);
            }
            // In any order of listing.
            let mut shuffled = chunks.clone();
            shuffled.reverse();
            assert_eq!(decode(&shuffled).unwrap().unwrap(), want, "{max}");
        }
    }

    #[test]
    fn a_missing_extra_or_foreign_chunk_is_refused() {
        let r = some_records();
        let chunks = static_chunks(&r, 300);
        assert!(chunks.len() >= 4);
        assert_eq!(decode(&[]).unwrap(), None);
        let mut missing = chunks.clone();
        missing.remove(1);
        assert!(decode(&missing).unwrap_err().contains("incomplete"));
        let mut last_gone = chunks.clone();
        last_gone.pop();
        assert!(decode(&last_gone).unwrap_err().contains("incomplete"));
        let mut renamed = chunks.clone();
        renamed[0].0 = "statics/00009".into();
        assert!(decode(&renamed).is_err());
        // A chunk of another load (another count).
        let other = static_chunks(&r, 100);
        let mut mixed = chunks.clone();
        mixed[0] = other[0].clone();
        assert!(decode(&mixed).is_err());
        let mut bad = chunks.clone();
        bad[0].1 = "{\"chunk\":0".into();
        assert!(decode(&bad).is_err());
        let dynamic = vec![("statics/00000".to_string(), r#"{"chunk":0,"chunks":1,"records":[["in/v1/ip/0a000001","{}"]]}"#.to_string())];
        assert!(decode(&dynamic).unwrap_err().contains("not a static record"));
        let world = vec![("statics/00000".to_string(), r#"{"chunk":0,"chunks":1,"records":[["world","{}"]]}"#.to_string())];
        assert!(decode(&world).is_err());
    }
}
