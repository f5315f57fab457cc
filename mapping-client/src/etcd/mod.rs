//! The mapping service kept in etcd (feature `etcd`): many vpcemu processes share one
//! world. Design and key layout: `mapping-client/ETCD.md`.
//!
//! * [`layout`] — the records of a world and back (sans-I/O);
//! * [`store`] — `mapping load`, `mapping dump`, `ctl --etcd`: guarded transactions;
//! * [`watch`] — one card's watcher: the sans-I/O state machine ([`watch::CardWatch`]) and
//!   its driver with the reconnect loop ([`watch::spawn`]);
//! * [`testing`] — a private etcd for tests and benchmarks.

pub mod layout;
pub mod store;
pub mod testing;
pub mod watch;

pub use store::Store;

/// Nanoseconds since the Unix epoch (tokens, temporary names).
pub(crate) fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
