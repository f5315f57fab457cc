//! What a lab builds from a topology: one Linux host per instance (or those named) and one
//! internet host per edge that holds an internet gateway, each with its port (a net_tap
//! vdev) and its configuration. Pure: nothing here touches the system.

use std::net::Ipv4Addr;

use mapping_client::topology::{Attach, CardId, EdgeId, Instance, Topology};

use super::netns::{self, HostConfig, route};

/// The MAC the internet host takes: where the edge sends internet frames.
pub fn upstream_mac() -> String {
    let m = blackfoot::INTERNET_NEXT_HOP_MAC.0;
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

/// What the lab is asked for.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Only these instances (default: every instance whose host runs here).
    pub instances: Option<Vec<String>>,
    /// The internet hosts' address and prefix length.
    pub internet_host: (Ipv4Addr, u8),
    /// Put before every namespace name (default empty: the instance's name).
    pub ns_prefix: String,
    /// The cards this process runs (`--cards`; default all).
    pub cards: Option<Vec<String>>,
    /// Tap names are `TAG-N` (at most 15 bytes with N).
    pub tap_tag: String,
}

/// Who a lab host is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Instance { name: String, card: String, vpc: String, elastic_ip: Option<Ipv4Addr> },
    /// The internet host behind an edge: the Elastic IPs it reaches through it.
    Internet { edge: String, elastic_ips: Vec<(Ipv4Addr, String)> },
}

/// One host of the lab.
#[derive(Debug, Clone)]
pub struct LabHost {
    pub role: Role,
    /// The port's name in the stats (the instance's name, `EDGE-internet`).
    pub port: String,
    pub attach: Attach,
    /// The net_tap vdev.
    pub vdev: String,
    pub config: HostConfig,
}

/// The lab: its hosts, and notes on what it left out and why.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub hosts: Vec<LabHost>,
    pub notes: Vec<String>,
    /// The cards this process runs (`None`: all).
    pub cards: Option<Vec<String>>,
}

impl Plan {
    /// Whether this process runs the card named `card`.
    fn runs(&self, card: &str) -> bool {
        self.cards.as_ref().is_none_or(|cards| cards.iter().any(|n| n == card))
    }
}

/// The plan for `topo`; an error for a named instance that does not exist or cannot be a
/// lab host, or for names that cannot be namespaces.
pub fn plan(topo: &Topology, opts: &PlanOptions) -> Result<Plan, String> {
    if let Some(names) = &opts.instances {
        for n in names {
            if topo.instance_by_name(n).is_none() {
                return Err(format!("--instances: no instance {n:?} in the topology"));
            }
        }
    }
    let declared = |a: &Attach| topo.ports().iter().find(|p| &p.attach == a).map(|p| p.name.clone());
    let mut out = Plan { cards: opts.cards.clone(), ..Plan::default() };
    let add = |out: &mut Plan, role: Role, port: String, attach: Attach, config: HostConfig| {
        if topo.ports().iter().any(|p| p.name == port) {
            return Err(format!("the topology already has a port named {port:?} (attached elsewhere): the lab names its ports after the hosts"));
        }
        let n = out.hosts.len();
        let config = HostConfig { iface: format!("{}-{n}", opts.tap_tag), ..config };
        if config.iface.len() > 15 {
            return Err(format!("tap name {} is longer than 15 bytes", config.iface));
        }
        if !netns::valid_ns_name(&config.ns) {
            return Err(format!(
                "{:?} cannot name a network namespace (letters, digits and -_.+@: only): rename the instance or edge",
                config.ns
            ));
        }
        let vdev = format!("net_tap_lab{n},iface={}", config.iface);
        out.hosts.push(LabHost { role, port, attach, vdev, config });
        Ok(())
    };
    for inst in topo.instances() {
        if opts.instances.as_ref().is_some_and(|names| !names.contains(&inst.name)) {
            continue;
        }
        let card = topo.card_name(CardId::Host(inst.host)).unwrap_or("?").to_string();
        let attach = Attach::Instance(inst.name.clone());
        if let Some(port) = declared(&attach) {
            out.notes.push(format!("{}: the topology's port {port} is its vNIC (no namespace)", inst.name));
            continue;
        }
        if !out.runs(&card) {
            out.notes.push(format!("{}: its host {card} is not run here (--cards)", inst.name));
            continue;
        }
        let subnet = topo.subnet(inst.subnet).ok_or_else(|| format!("instance {}: no subnet", inst.name))?;
        let len = subnet.cidr.prefix_len();
        let router = Ipv4Addr::from(subnet.cidr.network_u32().wrapping_add(1));
        let config = HostConfig {
            ns: format!("{}{}", opts.ns_prefix, inst.name),
            iface: String::new(),
            mac: inst.mac.to_string(),
            addrs: inst.ips().map(|ip| format!("{ip}/{len}")).collect(),
            routes: vec![route(&["default", "via", &router.to_string()])],
        };
        let vpc = topo.vpc(inst.vpc).map_or("?", |v| v.name.as_str()).to_string();
        let role = Role::Instance { name: inst.name.clone(), card, vpc, elastic_ip: topo.elastic_ip_of(inst.eni) };
        add(&mut out, role, inst.name.clone(), attach, config)?;
    }
    let (ip, len) = opts.internet_host;
    for edge in topo.edges() {
        if !topo.vpcs().iter().any(|v| v.internet_gateway == Some(edge.id)) {
            continue;
        }
        let attach = Attach::EdgeInternet(edge.id);
        if let Some(port) = declared(&attach) {
            out.notes.push(format!("{}: the topology's port {port} is its internet side (no internet host)", edge.name));
            continue;
        }
        if !out.runs(&edge.name) {
            continue;
        }
        // The internet host is the edge's upstream router: the edge sends to its fixed
        // next-hop MAC, and answers ARP for the Elastic IPs (and tunnel addresses), so a
        // default route on the link reaches every one, also those associated later.
        let config = HostConfig {
            ns: format!("{}{}-internet", opts.ns_prefix, edge.name),
            iface: String::new(),
            mac: upstream_mac(),
            addrs: vec![format!("{ip}/{len}")],
            routes: vec![],
        };
        let role = Role::Internet { edge: edge.name.clone(), elastic_ips: edge_eips(topo, edge.id) };
        add(&mut out, role, format!("{}-internet", edge.name), attach, config)?;
    }
    // The default route needs the tap's name, known only now.
    for h in &mut out.hosts {
        if matches!(h.role, Role::Internet { .. }) {
            h.config.routes = vec![route(&["default", "dev", &h.config.iface])];
        }
    }
    Ok(out)
}

/// The Elastic IPs of the VPCs whose internet gateway is `edge`, with their instances.
fn edge_eips(topo: &Topology, edge: EdgeId) -> Vec<(Ipv4Addr, String)> {
    topo.elastic_ips()
        .filter_map(|(ip, eni)| {
            let inst = topo.instance(eni)?;
            (topo.vpc(inst.vpc)?.internet_gateway == Some(edge)).then(|| (ip, inst.name.clone()))
        })
        .collect()
}

impl Plan {
    /// What was built, one line a host.
    pub fn describe(&self, mtus: &[Option<u16>]) -> Vec<String> {
        self.hosts
            .iter()
            .zip(mtus)
            .map(|(h, mtu)| {
                let c = &h.config;
                let mtu = mtu.map_or_else(|| "the kernel's default MTU".to_string(), |m| format!("MTU {m}"));
                let what = match &h.role {
                    Role::Instance { card, vpc, elastic_ip, .. } => {
                        let via = c.routes.first().and_then(|r| r.get(2)).map_or("", String::as_str);
                        let eip = elastic_ip.map(|e| format!(", Elastic IP {e}")).unwrap_or_default();
                        format!("instance in VPC {vpc} on {card}: {} via {via}{eip}", c.addrs.join(" "))
                    }
                    Role::Internet { edge, elastic_ips } => {
                        let eips: Vec<String> = elastic_ips.iter().map(|(ip, n)| format!("{ip} ({n})")).collect();
                        let eips = if eips.is_empty() { "none yet".to_string() } else { eips.join(", ") };
                        format!("internet host behind {edge}: {}; Elastic IPs: {eips}", c.addrs.join(" "))
                    }
                };
                format!("  {:<22} {what}; {} {}, {mtu}", c.ns, c.iface, c.mac)
            })
            .collect()
    }

    /// Commands to try: across a peering, to an unpeered VPC, to the internet host and
    /// from it to an Elastic IP, a shell, a move (`ctl`: the command that reaches the
    /// control socket, `vpcemu ctl --control PATH`, if there is one).
    pub fn try_commands(&self, topo: &Topology, ctl: Option<&str>) -> Vec<(String, String)> {
        let insts: Vec<_> = self
            .hosts
            .iter()
            .filter_map(|h| match &h.role {
                Role::Instance { name, card, elastic_ip, .. } => {
                    let i = topo.instance_by_name(name)?;
                    Some((h, i, card.as_str(), *elastic_ip))
                }
                Role::Internet { .. } => None,
            })
            .collect();
        let mut out = Vec::new();
        let exec = |h: &LabHost, cmd: String| format!("ip netns exec {} {cmd}", h.config.ns);
        let vpc = |v| topo.vpc(v).map_or("?", |v| v.name.as_str());
        // The first pair of instances in two VPCs that are (or are not) peered.
        let pair = |peered: bool| {
            insts.iter().find_map(|(a, ia, _, _)| {
                let b = insts.iter().find(|(_, ib, _, _)| ia.vpc != ib.vpc && topo.peered(ia.vpc, ib.vpc) == peered);
                b.map(|(_, ib, _, _)| (*a, *ia, *ib))
            })
        };
        if let Some((a, ia, ib)) = pair(true) {
            let why = format!("{} -> {} across the peering {}-{}", ia.name, ib.name, vpc(ia.vpc), vpc(ib.vpc));
            out.push((exec(a, format!("ping -c 3 {}", ib.ip)), why));
        } else {
            // None here (`--cards`): an instance of a peered VPC on a host this process
            // does not run, which another process (`run` or `lab` with the same world,
            // e.g. from etcd) may run.
            let elsewhere = insts.iter().find_map(|(a, ia, _, _)| {
                let far = |ib: &&Instance| {
                    let other_process = topo.host(ib.host).is_some_and(|h| !self.runs(&h.name));
                    ia.vpc != ib.vpc && topo.peered(ia.vpc, ib.vpc) && other_process
                };
                topo.instances().iter().find(far).map(|ib| (*a, *ia, ib))
            });
            if let Some((a, ia, ib)) = elsewhere {
                let host = topo.host(ib.host).map_or("?", |h| h.name.as_str());
                let why = format!(
                    "{} -> {} on {host} across the peering {}-{} (a card another process runs)",
                    ia.name,
                    ib.name,
                    vpc(ia.vpc),
                    vpc(ib.vpc)
                );
                out.push((exec(a, format!("ping -c 3 {}", ib.ip)), why));
            }
        }
        if let Some((a, ia, ib)) = pair(false) {
            let why = format!(
                "refused: {} is not peered with {} (a drop and a security alert, see --alerts)",
                vpc(ia.vpc),
                vpc(ib.vpc)
            );
            out.push((exec(a, format!("ping -c 3 -W 1 {}", ib.ip)), why));
        }
        for h in &self.hosts {
            let Role::Internet { edge, elastic_ips } = &h.role else { continue };
            let host_ip = h.config.addrs[0].split('/').next().unwrap_or("").to_string();
            let Some((a, ia, _, Some(eip))) = insts.iter().find(|(_, ia, _, eip)| {
                eip.is_some() && elastic_ips.iter().any(|(_, n)| n == &ia.name)
            }) else {
                continue;
            };
            out.push((exec(a, format!("ping -c 3 {host_ip}")), format!("{} -> the internet through {edge}, as {eip}", ia.name)));
            out.push((
                exec(h, format!("python3 -m http.server 80 --bind {host_ip} &")),
                "a web server on the internet host (it logs who connects)".to_string(),
            ));
            out.push((exec(a, format!("curl -s -o /dev/null -w '%{{http_code}}\\n' http://{host_ip}/")), format!("the server logs {eip}")));
            out.push((exec(h, format!("ping -c 3 {eip}")), format!("the internet -> {}'s Elastic IP", ia.name)));
        }
        if let Some((a, _, _, _)) = insts.first() {
            out.push((exec(a, "bash".into()), "a shell on the host (exit to leave)".into()));
        }
        // A move to another host this process runs: the instance's port follows it there
        // (to a card of another process, the port would stay behind on its card).
        if let (Some(ctl), Some((_, ia, card, _))) = (ctl, insts.first()) {
            if let Some(other) = topo.hosts().iter().find(|h| h.name != *card && self.runs(&h.name)) {
                out.push((
                    format!("{ctl} move {} {}", ia.name, other.name),
                    format!("{} moves to {}: its namespace stays, its vNIC follows", ia.name, other.name),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The story's world with `extra` after it.
    fn world(extra: &str) -> Topology {
        let text = format!(
            "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 512\nhugepages = \"off\"\n\n{}\n{extra}",
            include_str!("../../examples/story-world.toml")
        );
        Topology::from_str(&text, "story-world.toml").expect("the story's world loads")
    }

    fn opts() -> PlanOptions {
        PlanOptions {
            instances: None,
            internet_host: (Ipv4Addr::new(192, 0, 2, 1), 24),
            ns_prefix: String::new(),
            cards: None,
            tap_tag: "vl42".into(),
        }
    }

    #[test]
    fn every_instance_and_the_internet_host_of_the_story() {
        let topo = world("");
        let p = plan(&topo, &opts()).unwrap();
        let names: Vec<&str> = p.hosts.iter().map(|h| h.config.ns.as_str()).collect();
        assert_eq!(names, ["red-1", "yellow-1", "green-1", "blackfoot-1-internet"]);
        let red = &p.hosts[0].config;
        assert_eq!(red.mac, "02:00:0a:00:01:0a");
        assert_eq!(red.addrs, ["10.0.1.10/24"]);
        assert_eq!(red.routes, [route(&["default", "via", "10.0.1.1"])]);
        assert_eq!(red.iface, "vl42-0");
        assert_eq!(p.hosts[0].vdev, "net_tap_lab0,iface=vl42-0");
        let inet = &p.hosts[3];
        assert_eq!(inet.config.mac, "02:00:00:fe:00:02");
        assert_eq!(inet.config.addrs, ["192.0.2.1/24"]);
        assert_eq!(inet.config.routes, [route(&["default", "dev", "vl42-3"])]);
        assert_eq!(inet.role, Role::Internet { edge: "blackfoot-1".into(), elastic_ips: vec![(Ipv4Addr::new(203, 0, 113, 10), "red-1".into())] });
        let tries = p.try_commands(&topo, Some("vpcemu ctl --control /tmp/c.sock"));
        let cmds: Vec<&str> = tries.iter().map(|(c, _)| c.as_str()).collect();
        assert!(cmds.contains(&"ip netns exec red-1 ping -c 3 10.1.1.20"), "{cmds:?}");
        assert!(cmds.contains(&"ip netns exec red-1 ping -c 3 -W 1 10.2.1.30"), "{cmds:?}");
        assert!(cmds.contains(&"ip netns exec red-1 ping -c 3 192.0.2.1"), "{cmds:?}");
        assert!(cmds.contains(&"ip netns exec blackfoot-1-internet ping -c 3 203.0.113.10"), "{cmds:?}");
        assert!(cmds.contains(&"vpcemu ctl --control /tmp/c.sock move red-1 host-b"), "{cmds:?}");
    }

    #[test]
    fn with_cards_the_tries_reach_other_processes_and_move_within_this_one() {
        let topo = world("[[host]]\nname = \"host-c\"\npa = \"198.18.0.3\"\n");
        // Process A runs host-a (red-1, green-1): yellow-1 is another process's.
        let a = plan(&topo, &PlanOptions { cards: Some(vec!["host-a".into()]), ..opts() }).unwrap();
        let tries = a.try_commands(&topo, Some("vpcemu ctl --etcd http://127.0.0.1:2379"));
        let (cmds, whys): (Vec<&str>, Vec<&str>) = tries.iter().map(|(c, w)| (c.as_str(), w.as_str())).unzip();
        let i = cmds.iter().position(|c| *c == "ip netns exec red-1 ping -c 3 10.1.1.20").expect("red-1 -> yellow-1");
        assert!(whys[i].contains("on host-b") && whys[i].contains("another process"), "{}", whys[i]);
        // No other host runs here: no move is offered (the port would stay behind).
        assert!(!cmds.iter().any(|c| c.contains(" move ")), "{cmds:?}");
        // Process B runs host-b and host-c: yellow-1 moves between them.
        let b = plan(&topo, &PlanOptions { cards: Some(vec!["host-b".into(), "host-c".into()]), ..opts() }).unwrap();
        let names: Vec<&str> = b.hosts.iter().map(|h| h.config.ns.as_str()).collect();
        assert_eq!(names, ["yellow-1"]);
        let tries = b.try_commands(&topo, Some("vpcemu ctl --etcd http://127.0.0.1:2379"));
        let cmds: Vec<&str> = tries.iter().map(|(c, _)| c.as_str()).collect();
        assert!(cmds.contains(&"vpcemu ctl --etcd http://127.0.0.1:2379 move yellow-1 host-c"), "{cmds:?}");
        assert!(cmds.contains(&"ip netns exec yellow-1 ping -c 3 10.0.1.10"), "{cmds:?}");
    }

    #[test]
    fn named_instances_a_prefix_and_secondary_ips() {
        let topo = world("[[instance]]\nname = \"red-2\"\nsubnet = \"red-a\"\nhost = \"host-b\"\nip = \"10.0.1.11\"\nsecondary_ips = [\"10.0.1.12\"]\n");
        let o = PlanOptions { instances: Some(vec!["red-2".into()]), ns_prefix: "t1-".into(), ..opts() };
        let p = plan(&topo, &o).unwrap();
        let names: Vec<&str> = p.hosts.iter().map(|h| h.config.ns.as_str()).collect();
        assert_eq!(names, ["t1-red-2", "t1-blackfoot-1-internet"], "the named instance and the internet host");
        assert_eq!(p.hosts[0].config.addrs, ["10.0.1.11/24", "10.0.1.12/24"]);
        let o = PlanOptions { instances: Some(vec!["nobody".into()]), ..opts() };
        assert!(plan(&topo, &o).unwrap_err().contains("no instance \"nobody\""));
    }

    #[test]
    fn declared_ports_are_kept_and_other_processes_cards_left_out() {
        let topo = world("[[port]]\nname = \"r\"\nvdev = \"net_null0\"\nattach = \"instance:red-1\"\n");
        let o = PlanOptions { cards: Some(vec!["host-a".into(), "blackfoot-1".into()]), ..opts() };
        let p = plan(&topo, &o).unwrap();
        let names: Vec<&str> = p.hosts.iter().map(|h| h.config.ns.as_str()).collect();
        assert_eq!(names, ["green-1", "blackfoot-1-internet"]);
        assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
        assert!(p.notes[0].contains("port r"), "{:?}", p.notes);
        assert!(p.notes[1].contains("yellow-1"), "{:?}", p.notes);
    }
}
