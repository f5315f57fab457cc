//! A small world of 4 hosts, 2 edges and 4 VPCs (two of them overlapping), and a
//! generator of the mapping service's commands over it, accepted or not: shared by the
//! delta property (deltas.rs) and the etcd watcher's (etcd_watch.rs).

use std::net::Ipv4Addr;

use mapping_client::{Command, InstanceSpec, MacAddr};
use proptest::prelude::*;

pub const WORLD: &str = include_str!("../data/deltas-world.toml");

pub const NAMES: [&str; 8] = ["i0", "i1", "i2", "n0", "n1", "n2", "n3", "n4"];
pub const HOSTS: [&str; 5] = ["h0", "h1", "h2", "h3", "e0"];
pub const SUBNETS: [(&str, [u8; 3]); 5] = [
    ("s0", [10, 0, 1]),
    ("s0b", [10, 0, 2]),
    ("s1", [10, 1, 1]),
    ("s2", [10, 2, 1]),
    ("s3", [10, 0, 1]),
];
pub const VPCS: [&str; 4] = ["v0", "v1", "v2", "v3"];

pub fn command() -> impl Strategy<Value = Command> {
    let name = (0..NAMES.len()).prop_map(|i| NAMES[i].to_string());
    let host = (0..HOSTS.len()).prop_map(|i| HOSTS[i].to_string());
    let vpc = (0..VPCS.len()).prop_map(|i| VPCS[i].to_string());
    let eip = (10u8..13).prop_map(|d| Ipv4Addr::new(203, 0, 113, d));
    let register = (
        name.clone(),
        0..SUBNETS.len(),
        host.clone(),
        8u8..14,
        proptest::option::of(8u8..14),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(name, s, host, last, second, explicit_mac, m)| {
            let (subnet, [a, b, c]) = SUBNETS[s];
            InstanceSpec {
                name,
                subnet: subnet.into(),
                host,
                ip: Ipv4Addr::new(a, b, c, last),
                secondary_ips: second
                    .map(|d| Ipv4Addr::new(a, b, c, d + 10))
                    .into_iter()
                    .collect(),
                mac: explicit_mac.then_some(MacAddr([2, 9, 0, 0, 0, m])),
                source_dest_check: m % 2 == 0,
            }
        })
        .prop_map(Command::Register);
    prop_oneof![
        3 => register,
        1 => name.clone().prop_map(|instance| Command::Deregister { instance }),
        2 => (name.clone(), host).prop_map(|(instance, host)| Command::Move { instance, host }),
        1 => (eip.clone(), name).prop_map(|(ip, instance)| Command::AssociateElasticIp { ip, instance }),
        1 => eip.prop_map(|ip| Command::DisassociateElasticIp { ip }),
        2 => (vpc.clone(), vpc.clone()).prop_map(|(a, b)| Command::AddPeering { a, b }),
        1 => (vpc.clone(), vpc).prop_map(|(a, b)| Command::RemovePeering { a, b }),
    ]
}

