//! The mapping client of one card: turns the service's messages into an ordered stream of
//! table updates, and asks for a full resync whenever it cannot trust that stream.
//!
//! Sans-I/O like [`crate::Service`]: messages in through [`Client::handle`], requests out
//! through [`Client::poll_request`], updates out through [`Client::poll_update`] (or
//! straight into a [`Publisher`] with [`Client::drain_into`]); time is an argument.
//!
//! # Contract
//!
//! * Updates come out in version order with no gap: a [`Update::Replace`] at version `v`,
//!   then [`Update::Apply`] at `v + 1`, `v + 2`, ... Applying them in order to anything
//!   gives the card's tables at the last version.
//! * A delta whose version is not `last + 1`, or a heartbeat announcing a version above
//!   `last`, means something was lost or reordered: the client stops applying deltas and
//!   asks for a resync, at once and then every `retry` until a snapshot at least as new as
//!   anything it has seen arrives (a snapshot newer than what it holds but older than that
//!   is applied, and the client asks again). Older or duplicate messages are ignored.
//! * A new client starts out asking for a resync.

use std::collections::VecDeque;
use std::time::Duration;

use crate::rcu::Publisher;
use crate::service::{Request, ToClient};
use crate::tables::{TableOp, Tables};
use crate::topology::CardId;

/// How long a client waits for a snapshot before asking again.
pub const RESYNC_RETRY: Duration = Duration::from_millis(200);

/// One step of the card's tables, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// Replace everything (a snapshot).
    Replace { version: u64, tables: Box<Tables> },
    /// Apply these ops.
    Apply { version: u64, ops: Vec<TableOp> },
}

impl Update {
    /// Applies this step to a copy of the card's tables (what a publisher does to both of
    /// its copies).
    pub fn apply_to(self, tables: &mut Tables) {
        match self {
            Update::Replace { tables: t, .. } => *tables = *t,
            Update::Apply { ops, .. } => ops.iter().for_each(|op| tables.apply(op)),
        }
    }
}

/// Counters for the stats output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub deltas: u64,
    pub snapshots: u64,
    /// Gaps detected (each starts a resync).
    pub gaps: u64,
    /// Messages ignored as older than what the client holds (duplicates, reordering).
    pub stale: u64,
    pub requests: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for a snapshot; `last_request` is when we last asked.
    Resyncing {
        last_request: Option<Duration>,
    },
    InSync,
}

/// The client of one card. See the module documentation.
#[derive(Debug)]
pub struct Client {
    card: CardId,
    state: State,
    /// The version the updates handed out so far lead to.
    version: Option<u64>,
    /// The highest version the service has mentioned.
    seen: u64,
    retry: Duration,
    updates: VecDeque<Update>,
    stats: ClientStats,
}

impl Client {
    pub fn new(card: CardId) -> Client {
        Client {
            card,
            state: State::Resyncing { last_request: None },
            version: None,
            seen: 0,
            retry: RESYNC_RETRY,
            updates: VecDeque::new(),
            stats: ClientStats::default(),
        }
    }

    /// Sets how long to wait for a snapshot before asking again.
    pub fn with_retry(mut self, retry: Duration) -> Client {
        self.retry = retry;
        self
    }

    pub fn card(&self) -> CardId {
        self.card
    }

    /// The version the updates handed out so far lead to.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Whether the client is applying deltas (not waiting for a snapshot).
    pub fn is_synced(&self) -> bool {
        self.state == State::InSync
    }

    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// A message from the service. Messages for other cards are ignored.
    pub fn handle(&mut self, message: ToClient, _now: Duration) {
        if message.card() != self.card {
            return;
        }
        match message {
            ToClient::Snapshot {
                version, tables, ..
            } => {
                if self.version.is_some_and(|v| version <= v) {
                    self.stats.stale += 1;
                    return;
                }
                self.version = Some(version);
                self.stats.snapshots += 1;
                self.updates.push_back(Update::Replace { version, tables });
                self.state = if version < self.seen {
                    // Newer than what we had, yet older than a delta we saw: use it, and
                    // ask again at once.
                    State::Resyncing { last_request: None }
                } else {
                    State::InSync
                };
                self.seen = self.seen.max(version);
            }
            ToClient::Delta { version, ops, .. } => {
                self.seen = self.seen.max(version);
                match (self.state, self.version) {
                    (State::InSync, Some(last)) if version == last + 1 => {
                        self.version = Some(version);
                        self.stats.deltas += 1;
                        self.updates.push_back(Update::Apply { version, ops });
                    }
                    (State::InSync, Some(last)) if version <= last => self.stats.stale += 1,
                    (State::InSync, _) => self.gap(),
                    (State::Resyncing { .. }, _) => self.stats.stale += 1,
                }
            }
            ToClient::Heartbeat { version, .. } => {
                self.seen = self.seen.max(version);
                let behind = match self.version {
                    Some(last) => version > last,
                    None => true,
                };
                if self.state == State::InSync && behind {
                    self.gap();
                }
            }
        }
    }

    fn gap(&mut self) {
        self.stats.gaps += 1;
        self.state = State::Resyncing { last_request: None };
    }

    /// A request to send to the service, if one is due at `now`.
    pub fn poll_request(&mut self, now: Duration) -> Option<Request> {
        let State::Resyncing { last_request } = self.state else {
            return None;
        };
        if last_request.is_some_and(|at| now < at + self.retry) {
            return None;
        }
        self.state = State::Resyncing {
            last_request: Some(now),
        };
        self.stats.requests += 1;
        Some(Request::Resync {
            card: self.card,
            have: self.version,
        })
    }

    /// When [`Client::poll_request`] will next have something to send, if ever.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.state {
            State::Resyncing {
                last_request: Some(at),
            } => Some(at + self.retry),
            State::Resyncing { last_request: None } => Some(Duration::ZERO),
            State::InSync => None,
        }
    }

    /// The next update to apply, in order.
    pub fn poll_update(&mut self) -> Option<Update> {
        self.updates.pop_front()
    }

    /// Hands every pending update to `publisher` (submitted deltas, or a replacement).
    /// The caller still calls [`Publisher::publish`] / [`Publisher::reclaim`].
    pub fn drain_into(&mut self, publisher: &mut Publisher<Tables>) {
        while let Some(update) = self.poll_update() {
            match update {
                Update::Replace { tables, .. } => {
                    publisher.replace(*tables);
                }
                Update::Apply { ops, .. } => publisher.submit_all(ops),
            }
        }
    }
}
