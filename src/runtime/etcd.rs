//! The mapping source of `vpcemu run FILE --etcd URL`: the cards' tables come from their
//! watchers over etcd (`mapping_client::etcd::watch`) instead of the embedded service.
//!
//! The watcher thread (pinned to the control core's CPU, off the workers') sends each card's
//! updates; the control core hands them to the card's RCU publisher in [`EtcdSource::poll`],
//! as it does the embedded service's, and moves instance ports with their instances
//! between the cards of this process. Before its first snapshot a card has no tables, and
//! the engine starts no worker before every card has one ([`EtcdSource::first_snapshots`]).
//! When etcd cannot be reached the cards keep their tables (fail-static), one alert line
//! says `mapping_service_unreachable`, and the watchers resync by themselves.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mapping_client::client::Update;
use mapping_client::etcd::layout;
use mapping_client::etcd::watch::{CardSpec, Note, WatchConfig, WatchCounters, Watcher};
use mapping_client::rcu::Publisher;
use mapping_client::tables::{TableOp, Tables};
use mapping_client::topology::CardId;

use super::card::CardInfo;
use super::plan::{Bindings, Plan};

/// How long the engine waits for every card's first snapshot.
pub const FIRST_SNAPSHOT: Duration = Duration::from_secs(10);

/// Where a run's mapping comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MappingSource {
    /// The embedded service over the topology file's world (the default).
    #[default]
    Embedded,
    /// The world in the etcd at this URL.
    Etcd { url: String },
}

struct CardFeed {
    id: CardId,
    name: String,
    notes: Receiver<Note>,
    counters: Arc<WatchCounters>,
    synced: bool,
    /// Lost etcd and not synced or watching again since.
    lost: bool,
    placement: Vec<(String, u32)>,
}

/// The watchers of this process's cards, as the control core sees them.
pub struct EtcdSource {
    url: String,
    watcher: Watcher,
    feeds: Vec<CardFeed>,
    /// Why etcd is unreachable, while it is (an alert was written).
    unreachable: Option<String>,
}

impl std::fmt::Debug for EtcdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSource").field("url", &self.url).field("cards", &self.feeds.len()).finish()
    }
}

impl EtcdSource {
    /// Starts one watcher per card on a thread pinned to `cpu`.
    pub fn start(url: &str, cards: &[CardInfo], cpu: Option<usize>) -> Result<EtcdSource, String> {
        let mut specs = Vec::new();
        let mut feeds = Vec::new();
        for c in cards {
            let (tx, rx) = channel();
            let counters = Arc::new(WatchCounters::default());
            specs.push(CardSpec { name: c.plan.name.clone(), notes: tx, counters: counters.clone() });
            feeds.push(CardFeed { id: c.id(), name: c.plan.name.clone(), notes: rx, counters, synced: false, lost: false, placement: Vec::new() });
        }
        let config = WatchConfig {
            url: url.to_string(),
            prefix: layout::PREFIX.to_string(),
            dataplane: layout::DUMP_DATAPLANE.to_string(),
            cpu,
            connections: 1,
            resume_after_error: false,
        };
        let watcher = Watcher::start(config, specs)?;
        Ok(EtcdSource { url: url.to_string(), watcher, feeds, unreachable: None })
    }

    /// Waits until every card has its first snapshot published, at most
    /// [`FIRST_SNAPSHOT`]; an error names the cards still waiting and why.
    pub fn first_snapshots(&mut self, publishers: &mut [Publisher<Tables>]) -> Result<(), String> {
        let deadline = Instant::now() + FIRST_SNAPSHOT;
        let mut why = String::new();
        loop {
            if let Some(w) = self.drain(publishers) {
                why = w;
            }
            if self.feeds.iter().all(|f| f.synced) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let waiting: Vec<&str> = self.feeds.iter().filter(|f| !f.synced).map(|f| f.name.as_str()).collect();
                let why = if why.is_empty() { "no answer".to_string() } else { why };
                return Err(format!(
                    "etcd at {}: no snapshot for {} within {} s: {why}",
                    self.url,
                    waiting.join(", "),
                    FIRST_SNAPSHOT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Hands every card's pending updates to its publisher and publishes; returns the last
    /// reason a watcher gave for losing etcd, if one did.
    fn drain(&mut self, publishers: &mut [Publisher<Tables>]) -> Option<String> {
        let mut lost = None;
        for (f, p) in self.feeds.iter_mut().zip(publishers.iter_mut()) {
            let mut any = false;
            let mut local = false;
            while let Ok(note) = f.notes.try_recv() {
                match note {
                    Note::Updates(us) => {
                        for u in us {
                            match u {
                                Update::Replace { tables, .. } => {
                                    p.replace(*tables);
                                    local = true;
                                }
                                Update::Apply { ops, .. } => {
                                    local |= ops.iter().any(|op| {
                                        matches!(op, TableOp::UpsertLocalEni(_) | TableOp::RemoveLocalEni { .. })
                                    });
                                    p.submit_all(ops);
                                }
                            }
                        }
                        any = true;
                    }
                    Note::Synced { .. } => {
                        f.synced = true;
                        f.lost = false;
                    }
                    Note::Lost { reason } => {
                        f.lost = true;
                        lost = Some(format!("{}: {reason}", f.name));
                    }
                }
            }
            if any || p.pending() > 0 {
                p.publish();
            }
            p.reclaim();
            if local {
                // The card's ENIs as published: where the instance ports go.
                let mut v: Vec<(String, u32)> = p.live().local_enis().map(|e| (e.name.clone(), e.eni.0)).collect();
                v.sort();
                f.placement = v;
            }
        }
        lost
    }

    /// Control-core work: publish what the watchers sent, move instance ports, and write
    /// one `mapping_service_unreachable` alert line per outage (another when it ends is
    /// not an alert: stderr says the cards resynced).
    pub fn poll(&mut self, publishers: &mut [Publisher<Tables>], plan: &Plan, bindings: &Bindings, now_ms: u64, alerts_out: &mut dyn Write) {
        let before: Vec<Vec<(String, u32)>> = self.feeds.iter().map(|f| f.placement.clone()).collect();
        let lost = self.drain(publishers);
        if self.feeds.iter().zip(&before).any(|(f, b)| f.placement != *b) {
            self.rebind(plan, bindings);
        }
        match (&self.unreachable, lost) {
            (None, Some(reason)) => {
                let line = serde_json::json!({
                    "ts": now_ms,
                    "reason": "mapping_service_unreachable",
                    "etcd": self.url,
                    "error": reason,
                    "note": "the cards keep forwarding on the tables they have and resync when etcd is back",
                });
                let _ = writeln!(alerts_out, "{line}");
                let _ = alerts_out.flush();
                eprintln!("vpcemu: mapping service at {} unreachable ({reason}): forwarding on the tables held", self.url);
                self.unreachable = Some(reason);
            }
            (Some(_), None) if self.feeds.iter().all(|f| !f.lost) => {
                eprintln!("vpcemu: mapping service at {} is back: the cards resynced", self.url);
                self.unreachable = None;
            }
            _ => {}
        }
    }

    /// Points every instance port at its instance's ENI and card as the cards of this
    /// process hold them (an instance on no card here keeps its port where it was).
    pub fn rebind(&self, plan: &Plan, bindings: &Bindings) {
        let mut at: BTreeMap<&str, (u32, CardId)> = BTreeMap::new();
        for f in &self.feeds {
            for (name, eni) in &f.placement {
                at.insert(name.as_str(), (*eni, f.id));
            }
        }
        plan.rebind_with(|name| at.get(name).copied(), bindings);
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The watchers' counters for the stats (`mapping` in the stats JSON).
    pub fn stats(&self) -> serde_json::Value {
        let cards: serde_json::Map<String, serde_json::Value> = self
            .feeds
            .iter()
            .map(|f| {
                let c = &f.counters;
                let v = serde_json::json!({
                    "snapshots": c.snapshots.load(Ordering::Relaxed),
                    "resyncs": c.resyncs.load(Ordering::Relaxed),
                    "compacted": c.compacted.load(Ordering::Relaxed),
                    "failures": c.failures.load(Ordering::Relaxed),
                    "events": c.events.load(Ordering::Relaxed),
                    "events_held": c.events_held.load(Ordering::Relaxed),
                });
                (f.name.clone(), v)
            })
            .collect();
        serde_json::json!({
            "source": "etcd",
            "etcd": self.url,
            "reachable": self.unreachable.is_none(),
            "cards": cards,
        })
    }

    /// Stops the watchers.
    pub fn stop(&mut self) {
        self.watcher.stop();
    }
}
