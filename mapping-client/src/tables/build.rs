//! Building a card's tables from the model, and the per-item view functions that the
//! service uses to compute deltas (so a delta and a rebuild cannot disagree on what an item
//! looks like).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::*;
use crate::topology::{CardId, Instance, Topology, VpcId};

/// The mapping of one address of `inst`.
pub(crate) fn location(t: &Topology, inst: &Instance) -> Location {
    Location {
        pa: t.host(inst.host).map_or(Ipv4Addr::UNSPECIFIED, |h| h.pa),
        eni: inst.eni,
        mac: inst.mac,
        subnet: inst.subnet,
    }
}

pub(crate) fn local_eni(t: &Topology, inst: &Instance) -> LocalEni {
    LocalEni {
        eni: inst.eni,
        name: inst.name.clone(),
        vni: t.vpc(inst.vpc).map_or(0, |v| v.vni),
        subnet: inst.subnet,
        mac: inst.mac,
        ip: inst.ip,
        secondary_ips: inst.secondary_ips.clone(),
        source_dest_check: inst.source_dest_check,
    }
}

/// A VPC's entry: CIDR, subnets, internet gateway, and routes over its own CIDR, its
/// peers' CIDRs, then its VPN, DX and endpoint prefixes (that order breaks ties).
pub(crate) fn vpc_entry(t: &Topology, id: VpcId) -> Option<VpcEntry> {
    let vpc = t.vpc(id)?;
    let edge_pa = |e| t.edge(e).map_or(Ipv4Addr::UNSPECIFIED, |e| e.pa);
    let mut routes = vec![(vpc.cidr, Route::Vpc { vni: vpc.vni })];
    routes.extend(
        t.peers(id)
            .filter_map(|p| t.vpc(p))
            .map(|p| (p.cidr, Route::Vpc { vni: p.vni })),
    );
    for v in t.vpns().iter().filter(|v| v.vpc == id) {
        let r = Route::Vpn {
            vpn: v.id,
            edge_pa: edge_pa(v.edge),
        };
        routes.extend(v.remote_prefixes.iter().map(|p| (*p, r)));
    }
    for d in t.dxs().iter().filter(|d| d.vpc == id) {
        let r = Route::Dx {
            vlan: d.vlan,
            edge_pa: edge_pa(d.edge),
        };
        routes.extend(d.remote_prefixes.iter().map(|p| (*p, r)));
    }
    for e in t.endpoints().iter().filter(|e| e.vpc == id) {
        let r = Route::Endpoint {
            id: e.id,
            edge_pa: edge_pa(e.edge),
        };
        routes.extend(e.prefixes.iter().map(|p| (*p, r)));
    }
    let subnets = t
        .subnets()
        .iter()
        .filter(|s| s.vpc == id)
        .map(|s| SubnetInfo {
            id: s.id,
            name: s.name.clone(),
            vni: vpc.vni,
            cidr: s.cidr,
        })
        .collect();
    Some(VpcEntry {
        vni: vpc.vni,
        name: vpc.name.clone(),
        cidr: vpc.cidr,
        internet_gateway: vpc.internet_gateway.map(edge_pa),
        subnets,
        routes: PrefixTable::new(routes),
    })
}

/// Whether `vpc` is in `card`'s view: for a host, it or one of its peers has an ENI
/// there; for an edge, the edge serves it.
pub(crate) fn relevant(t: &Topology, card: CardId, vpc: VpcId) -> bool {
    match card {
        CardId::Host(h) => t.host_has_vpc(h, vpc) || t.peers(vpc).any(|p| t.host_has_vpc(h, p)),
        CardId::Edge(e) => t.edge_serves(e, vpc),
    }
}

/// Every VPC in `card`'s view.
pub(crate) fn relevant_vpcs(t: &Topology, card: CardId) -> BTreeSet<VpcId> {
    match card {
        CardId::Host(h) => t
            .host_vpcs(h)
            .flat_map(|v| std::iter::once(v).chain(t.peers(v)))
            .collect(),
        CardId::Edge(e) => t.edge_vpcs(e).collect(),
    }
}

impl Tables {
    /// The tables of `card` for the world `model`. A card that is not in the model gets
    /// empty tables.
    pub fn build_for_card(model: &Topology, card: CardId) -> Tables {
        let t = model;
        let (Some(name), Some(pa)) = (t.card_name(card), t.card_pa(card)) else {
            return Tables::default();
        };
        let mut out = Tables::empty(Some(card), name.to_string(), pa);
        for e in t.edges() {
            let mut vnis: Vec<u32> = t
                .edge_vpcs(e.id)
                .filter_map(|v| t.vpc(v))
                .map(|v| v.vni)
                .collect();
            vnis.sort_unstable();
            out.edges.insert(
                e.pa,
                EdgeEntry {
                    id: e.id,
                    name: e.name.clone(),
                    pa: e.pa,
                    vnis,
                },
            );
        }
        let view = relevant_vpcs(t, card);
        let count: usize = view
            .iter()
            .flat_map(|&v| t.vpc_members(v))
            .map(|i| 1 + i.secondary_ips.len())
            .sum();
        out.reserve_mappings(count);
        for &v in &view {
            if let Some(entry) = vpc_entry(t, v) {
                out.upsert_vpc(entry);
            }
            let vni = t.vpc(v).map_or(0, |v| v.vni);
            for inst in t.vpc_members(v) {
                let loc = location(t, inst);
                for ip in inst.ips() {
                    out.mappings.insert(vni, ip, loc);
                }
            }
            for p in t.peers(v).filter(|p| *p > v && view.contains(p)) {
                if let (Some(a), Some(b)) = (t.vpc(v), t.vpc(p)) {
                    out.peerings.insert(pair(a.vni, b.vni));
                }
            }
        }
        match card {
            CardId::Host(h) => {
                for inst in t
                    .host_vpcs(h)
                    .flat_map(|v| t.vpc_members(v))
                    .filter(|i| i.host == h)
                {
                    out.upsert_local_eni(local_eni(t, inst));
                }
            }
            CardId::Edge(e) => out.fill_edge(t, e),
        }
        out
    }

    fn fill_edge(&mut self, t: &Topology, e: EdgeId) {
        let vni = |v: VpcId| t.vpc(v).map_or(0, |v| v.vni);
        for (public, eni) in t.elastic_ips() {
            let Some(inst) = t.instance(eni) else {
                continue;
            };
            if t.vpc(inst.vpc).and_then(|v| v.internet_gateway) == Some(e) {
                self.apply(&TableOp::UpsertElasticIp {
                    public,
                    vni: vni(inst.vpc),
                    private: inst.ip,
                });
            }
        }
        for v in t.vpns().iter().filter(|v| v.edge == e) {
            self.sa_in.insert(v.inbound.spi, v.id);
            self.tunnel_addrs.insert(v.local);
            self.vpns.insert(
                v.id,
                VpnEntry {
                    id: v.id,
                    name: v.name.clone(),
                    vni: vni(v.vpc),
                    local: v.local,
                    customer_gateway: v.customer_gateway,
                    remote_prefixes: v.remote_prefixes.clone(),
                    outbound: v.outbound,
                    inbound: v.inbound,
                },
            );
        }
        for d in t.dxs().iter().filter(|d| d.edge == e) {
            self.vifs.insert(
                d.vlan,
                VifEntry {
                    id: d.id,
                    name: d.name.clone(),
                    vni: vni(d.vpc),
                    vlan: d.vlan,
                    remote_prefixes: d.remote_prefixes.clone(),
                    router_mac: d.router_mac,
                },
            );
        }
        for ep in t.endpoints().iter().filter(|ep| ep.edge == e) {
            self.endpoints.insert(
                ep.id,
                EndpointEntry {
                    id: ep.id,
                    vni: vni(ep.vpc),
                    service: ep.service.clone(),
                    prefixes: ep.prefixes.clone(),
                    front_end_pa: ep.front_end_pa,
                },
            );
        }
    }
}
