//! vpcemu's mapping layer: the world model, the tables each card reads on its packet path,
//! how new versions of those tables reach the workers, and the embedded mapping service
//! that keeps every card's copy up to date.
//!
//! * [`topology`] — the model and its TOML loader ([`Topology::from_str`],
//!   [`Topology::load`]): one clear [`LoadError`] (`FILE:LINE: FIELD: message`) for a bad file.
//! * [`tables`] — one card's [`Tables`]: (VNI, IP) -> [`Location`] exact match with burst
//!   lookups, local ENIs, per-VPC longest-prefix routes, peerings, Elastic IPs, SAs, VIFs,
//!   endpoints, edges, and indexes so that no lookup walks every VPC or VPN (the VPC CIDRs,
//!   [`tables::CidrIndex`]; the tunnel addresses). Built with [`Tables::build_for_card`],
//!   changed by [`TableOp`]s.
//! * [`rcu`] — [`Publisher`] (control core) and [`Subscriber`] (one per worker): left-right
//!   copies published by pointer swap, quiescent states, updates in time proportional to
//!   the change. Design note: `mapping-client/RCU.md`.
//! * [`service`] / [`client`] — the embedded mapping [`Service`] (commands, per-card
//!   versioned deltas, snapshots, heartbeats) and the per-card [`Client`] (ordering, gap
//!   detection, resync), both sans-I/O with time passed in.
//! * `etcd` (feature `etcd`) — the world kept in etcd for many processes: its key layout,
//!   guarded writes, one watcher per card (a partial embedded service replaying watched
//!   changes), a private etcd for tests. Design note: `mapping-client/ETCD.md`.
//!
//! Everything here is safe Rust (`#![forbid(unsafe_code)]`), and no panics in library code.
//!
//! The runtime's loop, on the control core:
//!
//! ```
//! # use mapping_client::*;
//! # use std::time::Duration;
//! # let topo = Topology::from_str("[dataplane]\nlcores = \"0-1\"\nmemory_mb = 64\nhugepages = \"off\"\n[[host]]\nname = \"a\"\npa = \"198.18.0.1\"\n", "t.toml").unwrap();
//! let card = topo.card_by_name("a").unwrap();
//! let mut service = Service::new(topo);
//! let mut client = Client::new(card);
//! let mut publisher = Publisher::new(Tables::default());
//! let mut worker = publisher.subscribe(); // moved to the worker lcore
//! let now = Duration::ZERO;
//! if let Some(request) = client.poll_request(now) {
//!     service.handle(request, now);
//! }
//! while let Some(message) = service.poll_transmit(now) {
//!     client.handle(message, now);
//! }
//! client.drain_into(&mut publisher);
//! publisher.publish();
//! publisher.reclaim();
//! // On the worker, per burst / per loop:
//! assert_eq!(worker.current().card_name(), "a");
//! worker.quiescent();
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "bench")]
pub mod bench_support;
pub mod client;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod net;
pub mod rcu;
pub mod service;
pub mod tables;
pub mod topology;

pub use client::{Client, ClientStats, Update};
pub use net::{Cidr, MacAddr};
pub use rcu::{Absorb, Publisher, Subscriber};
pub use service::{Command, CommandError, InstanceSpec, Request, Service, ToClient};
pub use tables::{
    EdgeEntry, EndpointEntry, Home, LocalEni, Location, Route, SubnetInfo, TableOp, Tables, NO_PA,
    VifEntry, VpcEntry, VpnEntry,
};
pub use topology::{
    Attach, CardId, DxId, EdgeId, EndpointId, EniId, HostId, LoadError, SubnetId, Topology, VpcId,
    VpnId,
};
