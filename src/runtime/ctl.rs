//! The control commands `vpcemu ctl` sends and the running engine executes: one line of
//! words, `key=value` for options.
//!
//! ```text
//! list                                   instances, hosts, peerings, Elastic IPs
//! stats                                  the stats JSON of the run so far
//! register NAME subnet=S host=H ip=IP [mac=M] [secondary=IP,IP] [source_dest_check=false]
//! deregister NAME
//! move NAME HOST
//! peer add VPC VPC        |  peer remove VPC VPC
//! eip associate IP NAME   |  eip disassociate IP
//! ```

use std::net::Ipv4Addr;

use mapping_client::service::{Command, InstanceSpec};
use mapping_client::topology::Topology;

/// A parsed control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    List,
    Stats,
    Change(Command),
}

fn ip(s: &str, what: &str) -> Result<Ipv4Addr, String> {
    s.parse().map_err(|_| format!("{what}: {s:?} is not an IPv4 address"))
}

/// Parse one command line. Errors say what is wrong and change nothing.
pub fn parse(line: &str) -> Result<Request, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let usage = |u: &str| Err(format!("usage: {u}"));
    match words.as_slice() {
        ["list"] => Ok(Request::List),
        ["stats"] => Ok(Request::Stats),
        ["register", name, opts @ ..] => {
            let (mut subnet, mut host, mut addr, mut mac, mut secondary, mut sdc) = (None, None, None, None, Vec::new(), true);
            for o in opts {
                let Some((k, v)) = o.split_once('=') else {
                    return Err(format!("register: expected key=value, got {o:?}"));
                };
                match k {
                    "subnet" => subnet = Some(v.to_string()),
                    "host" => host = Some(v.to_string()),
                    "ip" => addr = Some(ip(v, "ip")?),
                    "mac" => mac = Some(v.parse().map_err(|e| format!("mac: {e}"))?),
                    "secondary" | "secondary_ips" => {
                        for s in v.split(',').filter(|s| !s.is_empty()) {
                            secondary.push(ip(s, "secondary")?);
                        }
                    }
                    "source_dest_check" => {
                        sdc = match v {
                            "true" | "on" => true,
                            "false" | "off" => false,
                            _ => return Err(format!("source_dest_check: {v:?} is not true or false")),
                        }
                    }
                    _ => return Err(format!("register: unknown option {k:?}")),
                }
            }
            let (Some(subnet), Some(host), Some(ip)) = (subnet, host, addr) else {
                return usage("register NAME subnet=S host=H ip=IP [mac=M] [secondary=IP,IP] [source_dest_check=false]");
            };
            Ok(Request::Change(Command::Register(InstanceSpec {
                name: name.to_string(),
                subnet,
                host,
                ip,
                secondary_ips: secondary,
                mac,
                source_dest_check: sdc,
            })))
        }
        ["register", ..] => usage("register NAME subnet=S host=H ip=IP ..."),
        ["deregister", name] => Ok(Request::Change(Command::Deregister { instance: name.to_string() })),
        ["move", name, host] => Ok(Request::Change(Command::Move { instance: name.to_string(), host: host.to_string() })),
        ["peer", "add", a, b] => Ok(Request::Change(Command::AddPeering { a: a.to_string(), b: b.to_string() })),
        ["peer", "remove", a, b] => Ok(Request::Change(Command::RemovePeering { a: a.to_string(), b: b.to_string() })),
        ["eip", "associate", addr, name] => {
            Ok(Request::Change(Command::AssociateElasticIp { ip: ip(addr, "eip")?, instance: name.to_string() }))
        }
        ["eip", "disassociate", addr] => Ok(Request::Change(Command::DisassociateElasticIp { ip: ip(addr, "eip")? })),
        ["deregister", ..] => usage("deregister NAME"),
        ["move", ..] => usage("move NAME HOST"),
        ["peer", ..] => usage("peer add|remove VPC VPC"),
        ["eip", ..] => usage("eip associate IP NAME | eip disassociate IP"),
        [] => Err("empty command".into()),
        [w, ..] => Err(format!(
            "unknown command {w:?}: list, stats, register, deregister, move, peer add|remove, eip associate|disassociate"
        )),
    }
}

/// The `list` answer: the world as the mapping service holds it now.
pub fn list(topo: &Topology) -> serde_json::Value {
    let instances: Vec<serde_json::Value> = topo
        .instances()
        .iter()
        .map(|i| {
            serde_json::json!({
                "name": i.name,
                "vpc": topo.vpc(i.vpc).map(|v| v.name.as_str()),
                "subnet": topo.subnet(i.subnet).map(|s| s.name.as_str()),
                "host": topo.host(i.host).map(|h| h.name.as_str()),
                "ip": i.ip.to_string(),
                "mac": i.mac.to_string(),
                "elastic_ip": topo.elastic_ip_of(i.eni).map(|e| e.to_string()),
                "source_dest_check": i.source_dest_check,
            })
        })
        .collect();
    let peerings: Vec<[String; 2]> = topo
        .peerings()
        .map(|(a, b)| {
            let n = |v| topo.vpc(v).map(|v| v.name.clone()).unwrap_or_default();
            [n(a), n(b)]
        })
        .collect();
    serde_json::json!({ "instances": instances, "peerings": peerings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(parse("list"), Ok(Request::List));
        assert_eq!(
            parse("move red-1 host-b"),
            Ok(Request::Change(Command::Move { instance: "red-1".into(), host: "host-b".into() }))
        );
        let Ok(Request::Change(Command::Register(spec))) =
            parse("register red-3 subnet=red-a host=host-b ip=10.0.1.30 secondary=10.0.1.31 source_dest_check=false")
        else {
            panic!("register did not parse");
        };
        assert_eq!(spec.ip, Ipv4Addr::new(10, 0, 1, 30));
        assert_eq!(spec.secondary_ips, vec![Ipv4Addr::new(10, 0, 1, 31)]);
        assert!(!spec.source_dest_check);
        assert!(matches!(parse("peer add red green"), Ok(Request::Change(Command::AddPeering { .. }))));
        assert!(matches!(parse("eip disassociate 203.0.113.10"), Ok(Request::Change(Command::DisassociateElasticIp { .. }))));
    }

    #[test]
    fn bad_commands_say_why() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("teleport red-1").unwrap_err().contains("unknown command"));
        assert!(parse("register red-3 subnet=red-a").unwrap_err().starts_with("usage"));
        assert!(parse("register red-3 subnet=red-a host=h ip=10.0.1.300").unwrap_err().contains("not an IPv4"));
        assert!(parse("register red-3 color=blue").unwrap_err().contains("unknown option"));
        assert!(parse("eip associate nope red-1").unwrap_err().contains("eip"));
        assert_eq!(parse("move red-1").unwrap_err(), "usage: move NAME HOST");
    }
}
