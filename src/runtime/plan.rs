//! The plan of a run, without DPDK: which cards run in the process, what each port is to
//! the workers (its [`Role`]), which card's ports are where, the output numbers, which
//! worker polls which port, and which ENI and card each instance port is bound to.
//!
//! `Engine::start` (in `engine.rs`) makes the plan first and then realises it (EAL, pools,
//! devices, workers); everything here can be tested from a topology file alone.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use mapping_client::topology::{Attach, CardId, EdgeId, Topology};
use pipeline::Output;
use wire::vpc::{UNDERLAY_MTU, VPC_MTU};

/// Output number of the in-process fabric. Port indexes are below it.
pub const FABRIC: usize = pipeline::MAX_OUTPUTS - 1;
/// Most ports one process takes (one output number each, below [`FABRIC`]).
pub const MAX_PORTS: usize = FABRIC;

/// Output number of port `i`.
pub fn port_output(i: usize) -> Option<Output> {
    if i < MAX_PORTS { Output::new(i) } else { None }
}

/// How a port is realised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortIo {
    /// A DPDK device: a vdev string or a PCI address.
    Vdev(String),
    /// An in-process [`super::softport::SoftPort`].
    Soft,
}

/// A port to open.
#[derive(Debug, Clone)]
pub struct PortSpec {
    pub name: String,
    pub io: PortIo,
    pub attach: Attach,
}

impl PortSpec {
    /// The topology's own ports (`[[port]]`: DPDK devices).
    pub fn of_topology(topology: &Topology) -> Vec<PortSpec> {
        topology
            .ports()
            .iter()
            .map(|p| PortSpec { name: p.name.clone(), io: PortIo::Vdev(p.vdev.clone()), attach: p.attach.clone() })
            .collect()
    }
}

/// What a port is, for the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An instance's vNIC. The ENI and the card it is on live in [`InstanceBinding`]
    /// (they change with register/deregister/move).
    Instance,
    /// A card's physical (underlay) port.
    Underlay { card: usize },
    /// An edge's outside ports.
    EdgeInternet { card: usize },
    EdgeDx { card: usize },
    EdgeServices { card: usize },
    /// A copy of everything that crosses the fabric (TX only).
    Fabric,
}

/// One card run in the process, and the ports that are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardPlan {
    pub id: CardId,
    pub name: String,
    pub pa: Ipv4Addr,
    /// Its `underlay:` port and, for an edge, `edge:EDGE:internet|dx|services`, by
    /// index; `None` where it has none.
    pub ports: CardPorts,
}

/// The ports of a card (indexes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CardPorts {
    pub underlay: Option<usize>,
    pub internet: Option<usize>,
    pub dx: Option<usize>,
    pub services: Option<usize>,
}

impl CardPlan {
    pub fn is_edge(&self) -> bool {
        matches!(self.id, CardId::Edge(_))
    }
}

/// One port of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    pub name: String,
    pub attach: Attach,
    pub role: Role,
    /// An in-process port.
    pub soft: bool,
}

/// The plan of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The cards run here: hosts then edges, in file order (a card's index here is the
    /// `card` of its [`Role`]s).
    pub cards: Vec<CardPlan>,
    /// The ports, in the order given (a port's index is its output number).
    pub ports: Vec<PortPlan>,
    /// How many workers the RX queues are dealt to.
    pub workers: usize,
}

impl Plan {
    /// The plan of `ports` over `topology`, running the cards named in `cards` (default:
    /// every card) on the topology's worker lcores. Refused with a message when a port's
    /// card does not run here, a name is no card, there are too many ports or no worker.
    pub fn new(topology: &Topology, ports: &[PortSpec], cards: Option<&[String]>) -> Result<Plan, String> {
        let workers = topology.dataplane().worker_lcores().len();
        if workers == 0 {
            return Err("dataplane.lcores: at least two lcores are needed (control + worker)".into());
        }
        if ports.len() > MAX_PORTS {
            return Err(format!("{} ports: at most {MAX_PORTS} per process", ports.len()));
        }
        if let Some(names) = cards {
            if let Some(n) = names.iter().find(|n| topology.card_by_name(n).is_none()) {
                return Err(format!("--cards: no host or edge named {n:?}"));
            }
        }
        let run_here = |id: CardId| cards.is_none_or(|names| names.iter().any(|n| topology.card_by_name(n) == Some(id)));
        let mut plan_cards: Vec<CardPlan> = topology
            .cards()
            .filter(|id| run_here(*id))
            .map(|id| CardPlan {
                id,
                name: topology.card_name(id).unwrap_or("?").to_string(),
                pa: topology.card_pa(id).unwrap_or(Ipv4Addr::UNSPECIFIED),
                ports: CardPorts::default(),
            })
            .collect();
        let mut plan_ports = Vec::with_capacity(ports.len());
        for (i, p) in ports.iter().enumerate() {
            let here = |id: CardId| {
                plan_cards.iter().position(|c| c.id == id).ok_or_else(|| {
                    format!(
                        "port {}: its card {} is not run in this process (--cards)",
                        p.name,
                        topology.card_name(id).unwrap_or("?")
                    )
                })
            };
            let role = match &p.attach {
                Attach::Instance(name) => {
                    // A vNIC sits on its instance's host card, which must run here: what the
                    // port sends always meets a card's verify-send.
                    if let Some(inst) = topology.instance_by_name(name) {
                        here(CardId::Host(inst.host))?;
                    }
                    Role::Instance
                }
                Attach::Underlay(c) => Role::Underlay { card: here(*c)? },
                Attach::EdgeInternet(e) => Role::EdgeInternet { card: here(CardId::Edge(*e))? },
                Attach::EdgeDx(e) => Role::EdgeDx { card: here(CardId::Edge(*e))? },
                Attach::EdgeServices(e) => Role::EdgeServices { card: here(CardId::Edge(*e))? },
                Attach::Fabric => Role::Fabric,
            };
            match role {
                Role::Underlay { card } => plan_cards[card].ports.underlay = Some(i),
                Role::EdgeInternet { card } => plan_cards[card].ports.internet = Some(i),
                Role::EdgeDx { card } => plan_cards[card].ports.dx = Some(i),
                Role::EdgeServices { card } => plan_cards[card].ports.services = Some(i),
                Role::Instance | Role::Fabric => {}
            }
            plan_ports.push(PortPlan { name: p.name.clone(), attach: p.attach.clone(), role, soft: p.io == PortIo::Soft });
        }
        Ok(Plan { cards: plan_cards, ports: plan_ports, workers })
    }

    /// Whether an edge runs here (then the ESP cipher is needed).
    pub fn has_edge(&self) -> bool {
        self.cards.iter().any(CardPlan::is_edge)
    }

    /// The ports worker `w` polls: RX queues are dealt to the workers round robin; the
    /// fabric capture is TX only.
    pub fn rx_ports(&self, w: usize) -> Vec<usize> {
        (0..self.ports.len()).filter(|&i| i % self.workers == w && self.ports[i].role != Role::Fabric).collect()
    }

    /// Every port's role, in port order.
    pub fn roles(&self) -> Vec<Role> {
        self.ports.iter().map(|p| p.role).collect()
    }

    /// The fabric capture port, if there is one.
    pub fn fabric_capture(&self) -> Option<usize> {
        self.ports.iter().position(|p| p.role == Role::Fabric)
    }

    /// The output names of the stats report: the ports by output number, then `fabric`.
    pub fn output_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.ports.iter().map(|p| p.name.clone()).collect();
        names.resize(FABRIC, String::new());
        names.push("fabric".into());
        names
    }

    /// Fresh bindings for the plan's ports (every one `UNBOUND`).
    pub fn bindings(&self) -> Bindings {
        Bindings {
            ports: self
                .ports
                .iter()
                .map(|_| InstanceBinding { eni: AtomicU32::new(UNBOUND), card: AtomicU32::new(UNBOUND) })
                .collect(),
            generation: AtomicU64::new(0),
        }
    }

    /// Point every instance port at its instance's current ENI (`UNBOUND` while it is not
    /// registered) and card in `topology`. The card is the instance's host when that runs
    /// here; otherwise (deregistered, or moved to a card of another process) the port stays
    /// on the card it was on, whose verify-send then refuses what it sends
    /// (`spoofed_source`, alert). Then the generation moves on.
    pub fn rebind(&self, topology: &Topology, bindings: &Bindings) {
        self.rebind_with(|name| topology.instance_by_name(name).map(|i| (i.eni.0, CardId::Host(i.host))), bindings)
    }

    /// [`Plan::rebind`] with the instances' (ENI id, host) from `lookup` (with `--etcd`:
    /// what the cards of this process hold).
    pub fn rebind_with(&self, lookup: impl Fn(&str) -> Option<(u32, CardId)>, bindings: &Bindings) {
        for (p, binding) in self.ports.iter().zip(&bindings.ports) {
            let Attach::Instance(name) = &p.attach else { continue };
            let inst = lookup(name);
            let eni = inst.map_or(UNBOUND, |inst| inst.0);
            let here = inst.and_then(|inst| self.cards.iter().position(|c| c.id == inst.1));
            let card = here.map_or_else(|| binding.card.load(Ordering::Relaxed), |c| c as u32);
            binding.eni.store(eni, Ordering::Release);
            binding.card.store(card, Ordering::Release);
        }
        bindings.generation.fetch_add(1, Ordering::Release);
    }

    /// What every port carries (`mtus`, in port order: the largest IP packet, `None` when
    /// unknown) against what may have to leave by it.
    pub fn port_mtus(&self, topology: &Topology, mtus: &[Option<u16>]) -> Vec<PortMtu> {
        let edge = |e: EdgeId| topology.card_name(CardId::Edge(e)).unwrap_or("?");
        self.ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (attach, needed) = match &p.attach {
                    Attach::Instance(name) => (format!("instance:{name}"), VPC_MTU),
                    Attach::Underlay(c) => (format!("underlay:{}", topology.card_name(*c).unwrap_or("?")), UNDERLAY_MTU),
                    Attach::EdgeInternet(e) => (format!("edge:{}:internet", edge(*e)), blackfoot::INTERNET_MTU),
                    Attach::EdgeDx(e) => (format!("edge:{}:dx", edge(*e)), VPC_MTU),
                    Attach::EdgeServices(e) => (format!("edge:{}:services", edge(*e)), UNDERLAY_MTU),
                    Attach::Fabric => ("fabric".to_string(), UNDERLAY_MTU),
                };
                let mtu = if p.soft { None } else { mtus.get(i).copied().flatten() };
                PortMtu { name: p.name.clone(), attach, mtu, soft: p.soft, needed }
            })
            .collect()
    }
}

/// The live binding of an instance port: which ENI it is and which card it is on.
/// Written by the control core after the tables of that card are published (Release),
/// read by the worker once per burst (Acquire).
#[derive(Debug)]
pub struct InstanceBinding {
    /// ENI id, or `u32::MAX` while the instance is not registered.
    pub eni: AtomicU32,
    /// Card index: the instance's host, or the card the port was last on when the instance
    /// is deregistered or on a card of another process (`u32::MAX` only before the first
    /// binding).
    pub card: AtomicU32,
}

pub const UNBOUND: u32 = u32::MAX;

/// The bindings of every port, with a generation the control core bumps (Release) after
/// changing any of them, so that workers rebuild their ENI -> port tables (Acquire).
#[derive(Debug)]
pub struct Bindings {
    pub ports: Vec<InstanceBinding>,
    pub generation: AtomicU64,
}

/// What a port carries against what may have to leave by it ([`Plan::port_mtus`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMtu {
    pub name: String,
    /// The attach point as the topology file writes it (`instance:red-1`).
    pub attach: String,
    /// The largest IP packet the port carries; `None`: no limit known.
    pub mtu: Option<u16>,
    /// An in-process port (no limit).
    pub soft: bool,
    /// The largest IP packet that may have to leave by it: the VPC MTU for an instance or
    /// DX port, the VPC MTU plus the encapsulation for underlay, services and fabric ports,
    /// 1500 for an edge's internet side (the edge fits its packets to that itself).
    pub needed: usize,
}

impl PortMtu {
    /// An instance's vNIC.
    pub fn is_instance(&self) -> bool {
        self.attach.starts_with("instance:")
    }

    /// The line `vpcemu run` prints at start for an instance port.
    pub fn describe(&self) -> String {
        match self.mtu {
            Some(mtu) => format!(
                "port {} ({}): IP packets up to {mtu} bytes ({}-byte Ethernet frames)",
                self.name,
                self.attach,
                usize::from(mtu) + 18
            ),
            None if self.soft => format!("port {} ({}): an in-process queue, no size limit", self.name, self.attach),
            None => format!("port {} ({}): the device does not say how large a packet it carries", self.name, self.attach),
        }
    }

    /// The warning for a port below what may have to leave by it, if it is.
    pub fn warning(&self) -> Option<String> {
        let mtu = self.mtu?;
        if usize::from(mtu) >= self.needed {
            return None;
        }
        let head = format!("port {} ({}) carries IP packets up to {mtu} bytes", self.name, self.attach);
        Some(if self.is_instance() {
            format!(
                "{head}, less than the VPC MTU of {VPC_MTU}: longer packets for the instance are fragmented, or, with \
                 DF, dropped (mtu_exceeded) and answered with ICMP fragmentation-needed (MTU {mtu})"
            )
        } else {
            format!("{head}, less than the {} that may leave by it: longer ones are dropped (mtu_exceeded)", self.needed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::story_world;
    use mapping_client::service::{Command, Service};

    fn world(extra: &str) -> Topology {
        Topology::from_str(&story_world("0-2", extra), "world.toml").expect("world loads")
    }

    fn vdev(name: &str, attach: Attach) -> PortSpec {
        PortSpec { name: name.into(), io: PortIo::Vdev(format!("net_null_{name}")), attach }
    }

    const PORTS: &str = r#"
[[port]]
name = "red-1"
vdev = "net_null0"
attach = "instance:red-1"

[[port]]
name = "wire-a"
vdev = "net_null1"
attach = "underlay:host-a"

[[port]]
name = "bf-internet"
vdev = "net_null2"
attach = "edge:blackfoot-1:internet"

[[port]]
name = "bf-dx"
vdev = "net_null3"
attach = "edge:blackfoot-1:dx"

[[port]]
name = "bf-s3"
vdev = "net_null4"
attach = "edge:blackfoot-1:services"

[[port]]
name = "cap"
vdev = "net_null5"
attach = "fabric"
"#;

    #[test]
    fn the_story_world_runs_every_card_with_its_ports() {
        let topo = world(PORTS);
        let plan = Plan::new(&topo, &PortSpec::of_topology(&topo), None).expect("plan");
        let names: Vec<&str> = plan.cards.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["host-a", "host-b", "blackfoot-1"]);
        assert_eq!(plan.workers, 2);
        assert!(plan.has_edge());
        assert_eq!(
            plan.roles(),
            [
                Role::Instance,
                Role::Underlay { card: 0 },
                Role::EdgeInternet { card: 2 },
                Role::EdgeDx { card: 2 },
                Role::EdgeServices { card: 2 },
                Role::Fabric
            ]
        );
        assert_eq!(plan.cards[0].ports, CardPorts { underlay: Some(1), ..CardPorts::default() });
        assert_eq!(plan.cards[1].ports, CardPorts::default());
        let edge = &plan.cards[2];
        assert_eq!(edge.ports, CardPorts { underlay: None, internet: Some(2), dx: Some(3), services: Some(4) });
        assert_eq!(edge.pa, topo.card_pa(edge.id).expect("edge PA"));
        assert_eq!(plan.fabric_capture(), Some(5));
        let names = plan.output_names();
        assert_eq!((names[0].as_str(), names[FABRIC].as_str(), names.len()), ("red-1", "fabric", FABRIC + 1));
        assert_eq!(port_output(FABRIC), None);
        assert_eq!(port_output(3).map(|o| o.index()), Some(3));
    }

    #[test]
    fn rx_queues_are_dealt_round_robin_without_the_capture() {
        let topo = world(PORTS);
        let plan = Plan::new(&topo, &PortSpec::of_topology(&topo), None).expect("plan");
        // Two workers (lcores 0-2): ports 0, 2, 4 and 1, 3; port 5 is the fabric capture.
        assert_eq!(plan.rx_ports(0), [0, 2, 4]);
        assert_eq!(plan.rx_ports(1), [1, 3]);
        let one = Topology::from_str(&story_world("0-1", PORTS), "w.toml").expect("world");
        let plan = Plan::new(&one, &PortSpec::of_topology(&one), None).expect("plan");
        assert_eq!(plan.rx_ports(0), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn cards_chosen_by_name_and_ports_of_other_cards_refused() {
        let topo = world("");
        let only: Vec<String> = vec!["host-b".into(), "host-a".into()];
        let ports = [vdev("red-1", Attach::Instance("red-1".into()))];
        let plan = Plan::new(&topo, &ports, Some(&only)).expect("plan");
        // File order, whatever the order of the names.
        let names: Vec<&str> = plan.cards.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["host-a", "host-b"]);
        assert!(!plan.has_edge());

        let edge = topo.card_by_name("blackfoot-1").expect("edge");
        let CardId::Edge(e) = edge else { panic!("blackfoot-1 is an edge") };
        let err = Plan::new(&topo, &[vdev("out", Attach::EdgeInternet(e))], Some(&only)).expect_err("refused");
        assert_eq!(err, "port out: its card blackfoot-1 is not run in this process (--cards)");
        let err = Plan::new(&topo, &[vdev("out", Attach::Underlay(edge))], Some(&only)).expect_err("refused");
        assert!(err.contains("blackfoot-1 is not run"), "{err}");
        let host_a = vec!["host-b".to_string()];
        let err = Plan::new(&topo, &ports, Some(&host_a)).expect_err("red-1 is on host-a");
        assert!(err.contains("its card host-a is not run"), "{err}");
        let err = Plan::new(&topo, &[], Some(&["nowhere".to_string()])).expect_err("no such card");
        assert_eq!(err, "--cards: no host or edge named \"nowhere\"");
    }

    #[test]
    fn limits_on_workers_and_ports() {
        // A world without a worker lcore does not load; the plan refuses one all the same.
        let err = Topology::from_str(&story_world("0", ""), "w.toml").expect_err("one lcore");
        assert!(err.to_string().contains("needs at least two lcores"), "{err}");
        let topo = world("");
        let many: Vec<PortSpec> = (0..=MAX_PORTS).map(|i| vdev(&format!("p{i}"), Attach::Fabric)).collect();
        let err = Plan::new(&topo, &many, None).expect_err("too many ports");
        assert_eq!(err, format!("{} ports: at most {MAX_PORTS} per process", MAX_PORTS + 1));
    }

    #[test]
    fn instance_ports_follow_their_instance() {
        let topo = world("");
        let soft = |name: &str| PortSpec { name: name.into(), io: PortIo::Soft, attach: Attach::Instance(name.into()) };
        let ports = [soft("red-1"), soft("green-1"), soft("nobody")];
        let only: Vec<String> = vec!["host-a".into(), "host-b".into()];
        let plan = Plan::new(&topo, &ports, Some(&only)).expect("plan");
        let bindings = plan.bindings();
        let bound = |i: usize| {
            let b = &bindings.ports[i];
            (b.eni.load(Ordering::Acquire), b.card.load(Ordering::Acquire))
        };
        assert_eq!(bound(0), (UNBOUND, UNBOUND));
        plan.rebind(&topo, &bindings);
        let red = topo.instance_by_name("red-1").expect("red-1");
        let host = |h| plan.cards.iter().position(|c| c.id == CardId::Host(h)).expect("host runs") as u32;
        assert_eq!(bound(0), (red.eni.0, host(red.host)));
        assert_eq!(bound(2), (UNBOUND, UNBOUND));
        assert_eq!(bindings.generation.load(Ordering::Acquire), 1);

        // red-1 moves to host-b: the port follows; deregistered, it stays on host-b, unbound.
        let mut service = Service::new(topo.clone());
        service.execute(&Command::Move { instance: "red-1".into(), host: "host-b".into() }).expect("move");
        plan.rebind(service.topology(), &bindings);
        let host_b = plan.cards.iter().position(|c| c.name == "host-b").expect("host-b") as u32;
        assert_eq!(bound(0), (red.eni.0, host_b));
        service.execute(&Command::Deregister { instance: "red-1".into() }).expect("deregister");
        plan.rebind(service.topology(), &bindings);
        assert_eq!(bound(0), (UNBOUND, host_b));
        assert_eq!(bindings.generation.load(Ordering::Acquire), 3);
    }

    #[test]
    fn port_mtus_name_the_attach_point_and_what_may_leave() {
        let topo = world(PORTS);
        let plan = Plan::new(&topo, &PortSpec::of_topology(&topo), None).expect("plan");
        let mtus = [Some(1500), Some(9100), Some(1500), Some(1500), None, Some(9100)];
        let m = plan.port_mtus(&topo, &mtus);
        let attach: Vec<&str> = m.iter().map(|p| p.attach.as_str()).collect();
        assert_eq!(
            attach,
            [
                "instance:red-1",
                "underlay:host-a",
                "edge:blackfoot-1:internet",
                "edge:blackfoot-1:dx",
                "edge:blackfoot-1:services",
                "fabric"
            ]
        );
        let needed: Vec<usize> = m.iter().map(|p| p.needed).collect();
        assert_eq!(needed, [VPC_MTU, UNDERLAY_MTU, blackfoot::INTERNET_MTU, VPC_MTU, UNDERLAY_MTU, UNDERLAY_MTU]);
        assert!(m[0].is_instance() && !m[1].is_instance());
        assert_eq!(m[0].describe(), "port red-1 (instance:red-1): IP packets up to 1500 bytes (1518-byte Ethernet frames)");
        assert!(m[0].warning().expect("below the VPC MTU").contains("less than the VPC MTU of 9001"));
        assert_eq!(m[1].warning(), None);
        assert_eq!(m[2].warning(), None, "1500 is what the internet side needs");
        assert!(m[3].warning().expect("below").ends_with("less than the 9001 that may leave by it: longer ones are dropped (mtu_exceeded)"));
        assert_eq!(m[4].describe(), "port bf-s3 (edge:blackfoot-1:services): the device does not say how large a packet it carries");

        let soft = [PortSpec { name: "red-1".into(), io: PortIo::Soft, attach: Attach::Instance("red-1".into()) }];
        let plan = Plan::new(&topo, &soft, None).expect("plan");
        let m = plan.port_mtus(&topo, &[Some(1500)]);
        assert_eq!((m[0].mtu, m[0].warning()), (None, None));
        assert_eq!(m[0].describe(), "port red-1 (instance:red-1): an in-process queue, no size limit");
    }
}
