//! A virtual network for driving the service and its clients: a virtual clock, latency,
//! jitter (which reorders), loss and duplication, all from a seeded generator, so every run
//! is reproducible.
#![allow(dead_code)]

pub mod commands;

use std::net::Ipv4Addr;
use std::time::Duration;

use mapping_client::{
    CardId, Client, Command, InstanceSpec, Request, Service, Tables, ToClient, Topology, Update,
};

/// An address from its text.
pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// An instance to register: no secondary addresses, no MAC given, source/dest check on.
pub fn spec(name: &str, subnet: &str, host: &str, addr: &str) -> InstanceSpec {
    InstanceSpec {
        name: name.into(),
        subnet: subnet.into(),
        host: host.into(),
        ip: ip(addr),
        secondary_ips: vec![],
        mac: None,
        source_dest_check: true,
    }
}

/// Register `name` in `subnet` on `host` at `addr` (see [`spec`]).
pub fn register(name: &str, subnet: &str, host: &str, addr: &str) -> Command {
    Command::Register(spec(name, subnet, host, addr))
}

/// A tiny deterministic generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub latency: Duration,
    /// Extra delay, uniform in `0..jitter`: messages overtake each other.
    pub jitter: Duration,
    pub loss_per_mille: u64,
    pub dup_per_mille: u64,
}

impl Link {
    pub const PERFECT: Link = Link {
        latency: Duration::from_millis(1),
        jitter: Duration::ZERO,
        loss_per_mille: 0,
        dup_per_mille: 0,
    };
}

enum Packet {
    ToService(Request),
    ToClient(usize, ToClient),
}

/// One client and the tables it has built from its updates.
pub struct Node {
    pub client: Client,
    pub tables: Tables,
}

pub struct Sim {
    pub service: Service,
    pub nodes: Vec<Node>,
    pub now: Duration,
    pub link: Link,
    pub rng: Rng,
    in_flight: Vec<(Duration, u64, Packet)>,
    seq: u64,
    pub sent: u64,
    pub lost: u64,
}

impl Sim {
    pub fn new(topo: Topology, link: Link, seed: u64) -> Sim {
        let cards: Vec<CardId> = topo.cards().collect();
        let service = Service::new(topo).with_heartbeat(Duration::from_millis(50));
        let nodes = cards
            .into_iter()
            .map(|c| Node {
                client: Client::new(c).with_retry(Duration::from_millis(20)),
                tables: Tables::default(),
            })
            .collect();
        Sim {
            service,
            nodes,
            now: Duration::ZERO,
            link,
            rng: Rng(seed),
            in_flight: Vec::new(),
            seq: 0,
            sent: 0,
            lost: 0,
        }
    }

    fn send(&mut self, packet: Packet) {
        self.sent += 1;
        if self.rng.chance(self.link.loss_per_mille) {
            self.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.link.dup_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if self.link.jitter.is_zero() {
                Duration::ZERO
            } else {
                Duration::from_nanos(self.rng.below(self.link.jitter.as_nanos() as u64))
            };
            self.seq += 1;
            let packet = match &packet {
                Packet::ToService(r) => Packet::ToService(r.clone()),
                Packet::ToClient(i, m) => Packet::ToClient(*i, m.clone()),
            };
            self.in_flight
                .push((self.now + self.link.latency + jitter, self.seq, packet));
        }
    }

    /// Advances the clock by `dt` and moves everything that is due.
    pub fn step(&mut self, dt: Duration) {
        self.now += dt;
        let now = self.now;
        for i in 0..self.nodes.len() {
            while let Some(req) = self.nodes[i].client.poll_request(now) {
                self.send(Packet::ToService(req));
            }
        }
        while let Some(msg) = self.service.poll_transmit(now) {
            let i = self.node_of(msg.card());
            self.send(Packet::ToClient(i, msg));
        }
        self.in_flight.sort_by_key(|(at, seq, _)| (*at, *seq));
        let due = self
            .in_flight
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .count();
        let arrived: Vec<_> = self.in_flight.drain(..due).collect();
        for (_, _, packet) in arrived {
            match packet {
                Packet::ToService(req) => self.service.handle(req, now),
                Packet::ToClient(i, msg) => self.nodes[i].client.handle(msg, now),
            }
        }
        for node in &mut self.nodes {
            while let Some(update) = node.client.poll_update() {
                match update {
                    Update::Replace { tables, .. } => node.tables = *tables,
                    Update::Apply { ops, .. } => {
                        for op in &ops {
                            node.tables.apply(op);
                        }
                    }
                }
            }
        }
    }

    fn node_of(&self, card: CardId) -> usize {
        self.nodes
            .iter()
            .position(|n| n.client.card() == card)
            .unwrap()
    }

    pub fn node(&self, card: CardId) -> &Node {
        &self.nodes[self.node_of(card)]
    }

    /// Whether every client is in sync at the service's version with the tables a rebuild
    /// from the current model gives.
    pub fn converged(&self) -> bool {
        self.in_flight.is_empty()
            && self.nodes.iter().all(|n| {
                let card = n.client.card();
                n.client.is_synced()
                    && n.client.version() == self.service.version(card)
                    && n.tables == Tables::build_for_card(self.service.topology(), card)
            })
    }

    /// Steps in 1 ms ticks until converged; panics after `limit` of virtual time.
    pub fn settle(&mut self, limit: Duration) {
        let end = self.now + limit;
        while !self.converged() {
            assert!(
                self.now < end,
                "not converged after {limit:?} (sent {}, lost {})",
                self.sent,
                self.lost
            );
            self.step(Duration::from_millis(1));
        }
    }

    /// Delivers what is in flight (and what it triggers) without advancing past heartbeats.
    pub fn flush(&mut self) {
        for _ in 0..10 {
            self.step(Duration::from_millis(1));
        }
    }

    /// Execute `cmd` (it must be accepted), deliver what it sends; every card converges.
    pub fn apply(&mut self, cmd: &Command) {
        self.service.execute(cmd).unwrap();
        self.flush();
        assert!(self.converged(), "after {cmd:?}");
    }
}

/// The tables' index of VPC CIDRs answers, for every `ip` of `probes` and every sender VNI
/// of `vnis`, when the scan it replaced (the first VPC of the tables other than the
/// sender's holding `ip`) answers, and with a VPC that scan could have found: of the most
/// specific CIDR, the smallest VNI.
pub fn check_cidr_index(t: &Tables, probes: &[Ipv4Addr], vnis: &[u32]) {
    let scan = |own: u32, ip: Ipv4Addr| t.vpcs().find(|v| v.vni != own && v.cidr.contains(ip)).map(|v| v.vni);
    for &ip in probes {
        for &own in vnis {
            let got = t.other_vpc_holding(own, ip);
            assert_eq!(got.is_some(), scan(own, ip).is_some(), "{}: sender {own}, {ip}", t.card_name());
            if let Some(vni) = got {
                let best = t
                    .vpcs()
                    .filter(|v| v.vni != own && v.cidr.contains(ip))
                    .map(|v| (std::cmp::Reverse(v.cidr.prefix_len()), v.vni))
                    .min()
                    .map(|(_, v)| v);
                assert_eq!(Some(vni), best, "{}: sender {own}, {ip}", t.card_name());
            }
        }
    }
    assert_eq!(t.vpc_cidrs().len(), t.vpcs().count());
}
