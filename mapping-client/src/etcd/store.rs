//! Reading and writing the world in etcd: `mapping load`, `mapping dump`, `ctl --etcd`.
//!
//! [`Store`] is blocking (it owns a one-thread tokio runtime); every call has a deadline, so
//! an etcd that does not answer is an error within [`DEADLINE`], never a hang.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, TxnOp};
pub use etcd_client::Txn;

use super::layout::{self, Records, WORLD};
use crate::service::{Command, Service};
use crate::topology::Topology;

/// The longest any one call may take, connecting included.
pub const DEADLINE: Duration = Duration::from_secs(8);
/// The longest reading a whole world may take.
pub const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(120);
/// Operations in one transaction (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;
/// Bytes of keys and values in one transaction, well under etcd's 1.5 MiB request limit.
pub const MAX_TXN_BYTES: usize = 1024 * 1024;

/// etcd's backend commit interval (`--backend-batch-interval`, 100 ms by default).
const BATCH_INTERVAL: Duration = Duration::from_millis(100);

/// The entries etcd 3.4's read buffer starts with (`bucketBufferInitialSize`): a load of
/// more records may have grown it ([`Store::shrink_read_buffer`]).
const READ_BUFFER_KEYS: usize = 512;
/// Keys per page when listing.
pub const PAGE: i64 = 1000;
/// The record that marks a load in progress (its value: the loader's token).
pub const LOADING: &str = "loading";

/// The end of the key range of everything that starts with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Options every connection uses: a bounded connect, HTTP/2 keep-alive (a dead peer is
/// noticed within 15 s, also on an idle watch stream; etcd closes connections that ping
/// more often than every 5 s, its `--grpc-keepalive-min-time`), and requests that fail
/// when the cluster has no leader (so a partitioned member is not taken for the truth). No
/// per-request timeout here: it would cut the long-lived watch streams; unary calls are
/// bounded by their callers ([`DEADLINE`]).
pub fn connect_options() -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_require_leader(true)
}

/// Connects to `url` and checks that etcd answers (a status call).
pub async fn connect(url: &str) -> Result<Client, String> {
    let attempt = async {
        let mut c = Client::connect([url], Some(connect_options())).await?;
        c.status().await?;
        Ok::<_, etcd_client::Error>(c)
    };
    match tokio::time::timeout(DEADLINE, attempt).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("etcd at {url} is unreachable: {}", short(&e))),
        Err(_) => Err(format!("etcd at {url} is unreachable: no answer within {} s", DEADLINE.as_secs())),
    }
}

/// The first line of an etcd-client error (tonic's are long).
pub fn short(e: &etcd_client::Error) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

/// One key as listed: relative key, value, mod revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub value: String,
    pub mod_revision: i64,
}

/// Lists every key under `prefix + rel` at one revision (`revision`, or the current one),
/// in pages of [`PAGE`]. Returns the keys (relative to `prefix`) and the revision read.
pub async fn list(
    client: &mut Client,
    prefix: &str,
    rel: &str,
    revision: Option<i64>,
) -> Result<(Vec<Listed>, i64), etcd_client::Error> {
    let start = format!("{prefix}{rel}");
    let end = prefix_end(&start);
    list_range(client, prefix, start.into_bytes(), end, revision, PAGE).await
}

/// Keys listed per Range of the static snapshot's chunks (`statics/`, at most 256 KiB and
/// a few bytes each): a page stays near 2 MiB, under the client's 4 MiB limit on a
/// response, where a page of [`PAGE`] of them would not.
pub const STATICS_PAGE: i64 = 8;

/// Lists every key in [`start`, `end`) at one revision (`revision`, or the current one), in
/// pages of `page` keys. Returns the keys (relative to `prefix`) and the revision read.
pub async fn list_range(
    client: &mut Client,
    prefix: &str,
    start: Vec<u8>,
    end: Vec<u8>,
    revision: Option<i64>,
    page: i64,
) -> Result<(Vec<Listed>, i64), etcd_client::Error> {
    let mut from = start;
    let mut out = Vec::new();
    let mut rev = revision.unwrap_or(0);
    loop {
        let mut opts = GetOptions::new().with_range(end.clone()).with_limit(page);
        if rev > 0 {
            opts = opts.with_revision(rev);
        }
        let mut resp = client.get(from.clone(), Some(opts)).await?;
        if rev == 0 {
            rev = resp.header().map_or(0, |h| h.revision());
        }
        let more = resp.more();
        let kvs = resp.take_kvs();
        let next = kvs.last().map(|last| key_after(last.key()));
        out.extend(kvs.into_iter().map(|kv| listed_of(kv, prefix)));
        match (more, next) {
            (true, Some(next)) => from = next,
            _ => break,
        }
    }
    Ok((out, rev))
}

/// Prefixes listed per read-only transaction by [`list_prefixes`], and keys per prefix in
/// it: at most 1,024 keys a response, the bound a page of [`PAGE`] keys already puts on
/// one (a response stays under the client's 4 MiB limit).
pub const PREFIXES_PER_TXN: usize = 8;
/// See [`PREFIXES_PER_TXN`].
pub const KEYS_PER_PREFIX_IN_TXN: i64 = 128;

/// Lists every key under each of `rels` (prefixes relative to `prefix`) at revision
/// `revision` (> 0): [`PREFIXES_PER_TXN`] prefixes in one read-only transaction of
/// Range operations (one request to etcd instead of one each: a card needing 40 VPCs
/// asks 5 times, not 40), each Range cut at [`KEYS_PER_PREFIX_IN_TXN`] keys and a prefix
/// with more continued page by page at the same revision. Returns each prefix's keys
/// (relative to `prefix`), in the order of `rels`; the same as [`list`] of each at
/// `revision`.
pub async fn list_prefixes(
    client: &mut Client,
    prefix: &str,
    rels: &[String],
    revision: i64,
) -> Result<Vec<Vec<Listed>>, etcd_client::Error> {
    let mut out = Vec::with_capacity(rels.len());
    for group in rels.chunks(PREFIXES_PER_TXN) {
        let ops: Vec<TxnOp> = group
            .iter()
            .map(|rel| {
                let start = format!("{prefix}{rel}");
                let opts = GetOptions::new()
                    .with_range(prefix_end(&start))
                    .with_limit(KEYS_PER_PREFIX_IN_TXN)
                    .with_revision(revision);
                TxnOp::get(start, Some(opts))
            })
            .collect();
        let resp = client.txn(Txn::new().and_then(ops)).await?;
        let answers = resp.op_responses();
        if answers.len() != group.len() {
            return Err(etcd_client::Error::InvalidArgs(format!(
                "a transaction of {} ranges had {} answers",
                group.len(),
                answers.len()
            )));
        }
        for (rel, answer) in group.iter().zip(answers) {
            let etcd_client::TxnOpResponse::Get(mut got) = answer else {
                return Err(etcd_client::Error::InvalidArgs(format!("listing {rel}: not a range's answer")));
            };
            let kvs = got.take_kvs();
            // Cut short: the rest from just after the last key.
            let next = got.more().then(|| kvs.last()).flatten().map(|last| key_after(last.key()));
            let mut listed: Vec<Listed> = kvs.into_iter().map(|kv| listed_of(kv, prefix)).collect();
            if let Some(from) = next {
                let end = prefix_end(&format!("{prefix}{rel}"));
                let (rest, _) = list_range(client, prefix, from, end, Some(revision), PAGE).await?;
                listed.extend(rest);
            }
            out.push(listed);
        }
    }
    Ok(out)
}

/// The first key after `key` (a page goes on from there).
fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// A listed key-value: the key relative to `prefix`, the value as received (a valid text is
/// taken, not copied).
fn listed_of(kv: etcd_client::KeyValue, prefix: &str) -> Listed {
    let mod_revision = kv.mod_revision();
    let (key, value) = kv.into_key_value();
    let key = utf8_lossy(key);
    let key = key.strip_prefix(prefix).map_or_else(|| key.clone(), str::to_string);
    Listed { key, value: utf8_lossy(value), mod_revision }
}

/// `bytes` as text: taken as they are when they are UTF-8, else what
/// [`String::from_utf8_lossy`] gives.
pub(crate) fn utf8_lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The world as etcd holds it at one revision.
#[derive(Debug)]
pub struct Snapshot {
    pub records: Records,
    pub mod_revisions: HashMap<String, i64>,
    pub revision: i64,
}

/// Blocking access to the world in etcd under a prefix.
pub struct Store {
    rt: tokio::runtime::Runtime,
    client: Client,
    url: String,
    prefix: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).field("prefix", &self.prefix).finish()
    }
}

impl Store {
    /// Connects to the etcd at `url` (`http://127.0.0.1:2379`); the world lives under
    /// [`layout::PREFIX`].
    pub fn connect(url: &str) -> Result<Store, String> {
        Store::connect_with_prefix(url, layout::PREFIX)
    }

    pub fn connect_with_prefix(url: &str, prefix: &str) -> Result<Store, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the etcd client: {e}"))?;
        let client = rt.block_on(connect(url))?;
        Ok(Store { rt, client, url: url.to_string(), prefix: prefix.to_string() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A clone of the connection (for async callers on their own runtime).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    fn block<T>(&self, what: &str, f: impl Future<Output = Result<T, etcd_client::Error>>) -> Result<T, String> {
        self.block_for(DEADLINE, what, f)
    }

    fn block_for<T>(&self, deadline: Duration, what: &str, f: impl Future<Output = Result<T, etcd_client::Error>>) -> Result<T, String> {
        match self.rt.block_on(async { tokio::time::timeout(deadline, f).await }) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("etcd at {}: {what}: {}", self.url, short(&e))),
            Err(_) => Err(format!("etcd at {}: {what}: no answer within {} s", self.url, deadline.as_secs())),
        }
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// Every record under the prefix at one revision (the static snapshot's chunks,
    /// `statics/`, left out: they copy the static records; the VPCs' guard keys, `ver/`,
    /// too: they are no record).
    pub fn snapshot(&self) -> Result<Snapshot, String> {
        let mut c = self.client.clone();
        // A large world is many pages: the connection was checked at connect, so give the
        // whole read longer than one call.
        // The static snapshot is a copy of the static records, not part of the world: the
        // keys before it and the keys after it, at one revision.
        let statics = format!("{}{}", self.prefix, layout::STATICS);
        let (prefix, after) = (self.prefix.clone(), prefix_end(&statics));
        let read = async move {
            let (mut listed, rev) = list_range(&mut c, &prefix, prefix.as_bytes().to_vec(), statics.into_bytes(), None, PAGE).await?;
            let (rest, _) = list_range(&mut c, &prefix, after, prefix_end(&prefix), Some(rev), PAGE).await?;
            listed.extend(rest);
            Ok::<_, etcd_client::Error>((listed, rev))
        };
        let (listed, revision) = self.block_for(SNAPSHOT_DEADLINE, "reading the world", read)?;
        let mut records = Records::new();
        let mut mod_revisions = HashMap::new();
        // The VPCs' guard keys (`ver/`) are not records of the world: only a change's
        // transaction writes and compares them.
        for l in listed.into_iter().filter(|l| !l.key.starts_with(layout::GUARDS)) {
            mod_revisions.insert(l.key.clone(), l.mod_revision);
            records.insert(l.key, l.value);
        }
        Ok(Snapshot { records, mod_revisions, revision })
    }

    /// The world in etcd as a model (on the `[dataplane]` section `dataplane`), and the
    /// snapshot it was read from. No world: a clear error.
    pub fn read_world(&self, dataplane: &str) -> Result<(Topology, Snapshot), String> {
        let snap = self.snapshot()?;
        if !snap.records.contains_key(WORLD) {
            let why = if snap.records.contains_key(LOADING) { " (a load is unfinished)" } else { "" };
            return Err(format!(
                "no world in etcd at {}{why}: write one with `vpcemu mapping load FILE --etcd {}`",
                self.url, self.url
            ));
        }
        let topo = layout::world_from_records(&snap.records, dataplane)
            .map_err(|e| format!("the world in etcd at {} is not valid: {e}", self.url))?;
        Ok((topo, snap))
    }

    /// Writes the world of `topo` (its `[dataplane]` and ports are ignored) and returns
    /// the revision of the last write. A world already there is refused unless `replace`.
    ///
    /// The records go in transactions of at most [`MAX_TXN_OPS`] operations and
    /// [`MAX_TXN_BYTES`], each guarded by the `loading` record holding this load's token;
    /// the `world` record is written last, so readers never take a half-written world.
    pub fn load(&self, topo: &Topology, replace: bool) -> Result<i64, String> {
        let records = layout::records_of(topo)?;
        let mut c = self.client.clone();
        let (existing, _) = self.block("reading the world", list(&mut c, &self.prefix, WORLD, None))?;
        let world = existing.iter().find(|l| l.key == WORLD);
        let (loading, _) = self.block("reading the world", list(&mut c, &self.prefix, LOADING, None))?;
        if !replace {
            if let Some(w) = world {
                return Err(format!(
                    "a world is already in etcd at {} (written at revision {}): add --replace to overwrite it",
                    self.url, w.mod_revision
                ));
            }
            if loading.iter().any(|l| l.key == LOADING) {
                return Err(format!(
                    "an unfinished load is in etcd at {}: add --replace to overwrite it",
                    self.url
                ));
            }
        } else {
            // Everything under the prefix goes, if nobody wrote the world meanwhile.
            let guard = match world {
                Some(w) => Compare::mod_revision(self.key(WORLD), CompareOp::Equal, w.mod_revision),
                None => Compare::create_revision(self.key(WORLD), CompareOp::Equal, 0),
            };
            let del = TxnOp::delete(self.prefix.clone(), Some(DeleteOptions::new().with_range(prefix_end(&self.prefix))));
            let txn = Txn::new().when(vec![guard]).and_then(vec![del]);
            let r = self.block("clearing the world", c.txn(txn))?;
            if !r.succeeded() {
                return Err(format!("conflict: the world in etcd at {} changed while it was being replaced", self.url));
            }
        }
        let token = format!("{}-{}", std::process::id(), super::unix_nanos());
        let start = Txn::new()
            .when(vec![
                Compare::create_revision(self.key(WORLD), CompareOp::Equal, 0),
                Compare::create_revision(self.key(LOADING), CompareOp::Equal, 0),
            ])
            .and_then(vec![TxnOp::put(self.key(LOADING), token.clone(), None)]);
        if !self.block("starting the load", c.txn(start))?.succeeded() {
            return Err(format!("conflict: another load or world appeared in etcd at {} meanwhile", self.url));
        }
        let guard = || Compare::value(self.key(LOADING), CompareOp::Equal, token.clone());
        let mut batch: Vec<TxnOp> = Vec::new();
        let mut bytes = 0;
        // The static snapshot goes in with the records, under the same guard, before
        // `world`: a reader that finds `world` finds it complete.
        let statics = layout::static_chunks(&records, layout::STATIC_CHUNK_BYTES);
        let body: Vec<(&String, &String)> =
            records.iter().filter(|(k, _)| k.as_str() != WORLD).chain(statics.iter().map(|(k, v)| (k, v))).collect();
        for (i, (k, v)) in body.iter().enumerate() {
            bytes += self.prefix.len() + k.len() + v.len() + 16;
            batch.push(TxnOp::put(self.key(k), v.as_str(), None));
            let last = i + 1 == body.len();
            if batch.len() == MAX_TXN_OPS || bytes >= MAX_TXN_BYTES / 2 || last {
                let txn = Txn::new().when(vec![guard()]).and_then(std::mem::take(&mut batch));
                bytes = 0;
                if !self.block("writing the world", c.txn(txn))?.succeeded() {
                    return Err(format!("conflict: the load in etcd at {} was taken over by another", self.url));
                }
            }
        }
        let world_value = records.get(WORLD).cloned().unwrap_or_default();
        let finish = Txn::new().when(vec![guard()]).and_then(vec![
            TxnOp::put(self.key(WORLD), world_value, None),
            TxnOp::delete(self.key(LOADING), None),
        ]);
        let r = self.block("finishing the load", c.txn(finish))?;
        if !r.succeeded() {
            return Err(format!("conflict: the load in etcd at {} was taken over by another", self.url));
        }
        if records.len() > READ_BUFFER_KEYS {
            self.shrink_read_buffer();
        }
        Ok(r.header().map_or(0, |h| h.revision()))
    }

    /// Lets etcd 3.4 drop the read buffer a big load grew. etcd keeps the writes of its
    /// current batch (committed every 100 ms) in a buffer whose array only grows, and copies
    /// the whole array for every Range and every watch created or cancelled; after a load
    /// it holds thousands of entries, so every later read (each card's lists, each watch)
    /// costs a copy of that size. etcd drops a bucket's buffer at a commit whose batch did
    /// not write that bucket: so, once the load is committed, grant a lease (a batch that
    /// writes only the lease bucket), wait for its commit, and revoke it. Best effort: a
    /// writer meanwhile only means the buffer stays as it was (nothing else changes; the
    /// lease holds no key).
    pub fn shrink_read_buffer(&self) {
        let mut c = self.client.clone();
        std::thread::sleep(BATCH_INTERVAL * 2);
        if let Ok(lease) = self.block("granting a lease", c.lease_grant(60, None)) {
            std::thread::sleep(BATCH_INTERVAL * 2);
            let _ = self.block("revoking a lease", c.lease_revoke(lease.id()));
        }
    }

    /// Applies `command` as one transaction guarded by what it was checked against (see
    /// [`guarded_change`]); returns the revision it wrote. Bad commands and conflicts are
    /// one line; nothing changes.
    pub fn execute(&self, command: &Command) -> Result<i64, String> {
        let (topo, snap) = self.read_world(layout::DUMP_DATAPLANE)?;
        let txn = guarded_change(&self.prefix, topo, &snap, command)?;
        let mut c = self.client.clone();
        let r = self.block("writing the change", c.txn(txn))?;
        if !r.succeeded() {
            return Err(format!(
                "conflict: the world changed while this command was checked (read at revision {}); nothing changed",
                snap.revision
            ));
        }
        Ok(r.header().map_or(0, |h| h.revision()))
    }

    /// The etcd server's version (`3.4.23`).
    pub fn server_version(&self) -> Result<String, String> {
        let mut c = self.client.clone();
        Ok(self.block("status", c.status())?.version().to_string())
    }

    /// Runs a transaction and returns the revision it wrote, or `None` when its
    /// comparisons failed (nothing written).
    pub fn commit_at(&self, txn: Txn) -> Result<Option<i64>, String> {
        let mut c = self.client.clone();
        let r = self.block("writing", c.txn(txn))?;
        Ok(r.succeeded().then(|| r.header().map_or(0, |h| h.revision())))
    }

    /// Runs a transaction; whether its comparisons held.
    pub fn commit(&self, txn: Txn) -> Result<bool, String> {
        let mut c = self.client.clone();
        Ok(self.block("writing", c.txn(txn))?.succeeded())
    }

    /// Compacts etcd's history up to `revision` (tests).
    pub fn compact(&self, revision: i64) -> Result<(), String> {
        let mut c = self.client.clone();
        self.block("compacting", c.compact(revision, None)).map(|_| ())
    }

    /// Writes one raw key (tests: records written behind the model's back).
    pub fn put_raw(&self, rel: &str, value: &str) -> Result<i64, String> {
        let mut c = self.client.clone();
        let r = self.block("writing", c.put(self.key(rel), value, None))?;
        Ok(r.header().map_or(0, |h| h.revision()))
    }

    /// Every key under the prefix + `rel` as it is in etcd (tests: the static snapshot).
    pub fn list_raw(&self, rel: &str) -> Result<Vec<Listed>, String> {
        let mut c = self.client.clone();
        Ok(self.block("reading", list(&mut c, &self.prefix, rel, None))?.0)
    }

    /// Deletes every key under the prefix + `rel` (tests: records removed behind the
    /// model's back).
    pub fn delete_raw_prefix(&self, rel: &str) -> Result<i64, String> {
        let mut c = self.client.clone();
        let key = self.key(rel);
        let end = prefix_end(&key);
        let r = self.block("deleting", c.delete(key, Some(DeleteOptions::new().with_range(end))))?;
        Ok(r.header().map_or(0, |h| h.revision()))
    }

    /// The current revision.
    pub fn revision(&self) -> Result<i64, String> {
        let mut c = self.client.clone();
        let r = self.block("reading", c.get(self.key(WORLD), None))?;
        Ok(r.header().map_or(0, |h| h.revision()))
    }
}

/// The transaction that applies `command` to the world `topo` read in `snap`: the command
/// is checked on the model (the embedded service's own checks); the records that change
/// are put or deleted; it succeeds only if every record it writes is as read (same mod
/// revision, or still absent), the `world` record is the one read (no reload), and no
/// change to the VPCs it touches committed since `snap.revision` (what the checks looked
/// at: addresses, MACs, Elastic IPs of the VPC): the guard key `ver/VPC` of each, which
/// every change to the VPC puts, has a mod revision of at most `snap.revision` (absent:
/// 0, a world nobody changed since its load).
pub fn guarded_change(prefix: &str, topo: Topology, snap: &Snapshot, command: &Command) -> Result<Txn, String> {
    let mut service = Service::without_clients(topo);
    let (puts, deletes) = change_records(&mut service, command)?;
    guarded_txn(prefix, &puts, &deletes, &snap.mod_revisions, snap.revision)
}

/// Checks and applies `command` on `service`'s model; returns the records to put and to
/// delete (only those of the VPCs it touches are compared: the change costs what it
/// touches, not the world).
pub fn change_records(service: &mut Service, command: &Command) -> Result<RecordChanges, String> {
    let vpcs = layout::affected_vpcs(service.topology(), command);
    let before = layout::DynamicState::of(service.topology(), &vpcs);
    service.execute(command).map_err(|e| e.to_string())?;
    let after = layout::DynamicState::of(service.topology(), &vpcs);
    layout::changed_records(service.topology(), &before, &after)
}

/// Records to put (key, value) and keys to delete.
pub type RecordChanges = (Vec<(String, String)>, Vec<String>);

/// One transaction of `puts` and `deletes`, guarded as [`guarded_change`] says by the mod
/// revisions read (`mod_revisions`, at `revision`).
pub fn guarded_txn(
    prefix: &str,
    puts: &[(String, String)],
    deletes: &[String],
    mod_revisions: &HashMap<String, i64>,
    revision: i64,
) -> Result<Txn, String> {
    let key = |rel: &str| format!("{prefix}{rel}");
    let mut compares = Vec::new();
    let mut vpcs = BTreeSet::new();
    let world_rev = mod_revisions.get(WORLD).copied().unwrap_or(0);
    compares.push(Compare::mod_revision(key(WORLD), CompareOp::Equal, world_rev));
    let touched = puts.iter().map(|(k, _)| k).chain(deletes.iter());
    for k in touched {
        match mod_revisions.get(k) {
            Some(&m) => compares.push(Compare::mod_revision(key(k), CompareOp::Equal, m)),
            None => compares.push(Compare::create_revision(key(k), CompareOp::Equal, 0)),
        }
        if let Some(v) = layout::vpc_of_key(k) {
            vpcs.insert(v.to_string());
        }
    }
    let mut ops: Vec<TxnOp> = puts.iter().map(|(k, v)| TxnOp::put(key(k), v.as_str(), None)).collect();
    ops.extend(deletes.iter().map(|k| TxnOp::delete(key(k), None)));
    if ops.is_empty() {
        return Err("the command changes nothing".into());
    }
    // One key per VPC, not a range compare over `in/VPC/` (which etcd 3.4 answers by
    // reading every record of the VPC): the guard says whether any change to the VPC
    // committed after `revision`, and this change moves it on.
    for v in &vpcs {
        let guard = key(&layout::vpc_guard(v));
        compares.push(Compare::mod_revision(guard.clone(), CompareOp::Less, revision + 1));
        ops.push(TxnOp::put(guard, serde_json::Value::from(v.as_str()).to_string(), None));
    }
    if ops.len() > MAX_TXN_OPS || compares.len() > MAX_TXN_OPS {
        return Err(format!("the change needs {} operations, more than one transaction holds ({MAX_TXN_OPS})", ops.len()));
    }
    Ok(Txn::new().when(compares).and_then(ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Taking a value's bytes as its text gives what the lossy copy gives, for valid
    /// texts and for bytes with invalid, cut or mixed sequences (a large mutated-input
    /// loop over a record with multi-byte characters).
    #[test]
    fn taking_the_bytes_is_the_lossy_copy() {
        let base = "{\"name\":\"é-ü-€-𝄞\",\"ip\":\"10.0.0.1\"}".as_bytes().to_vec();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut valid, mut invalid) = (0, 0);
        for round in 0..20_000 {
            let mut bytes = base.clone();
            for _ in 0..round % 4 {
                let r = next();
                let at = (r % bytes.len() as u64) as usize;
                match (r >> 32) % 3 {
                    0 => bytes[at] = (r >> 40) as u8,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, 0x80 | ((r >> 40) as u8 & 0x3f)),
                }
                if bytes.is_empty() {
                    bytes.push(b'x');
                }
            }
            let want = String::from_utf8_lossy(&bytes).into_owned();
            if std::str::from_utf8(&bytes).is_ok() {
                valid += 1;
            } else {
                invalid += 1;
            }
            assert_eq!(utf8_lossy(bytes.clone()), want, "{bytes:?}");
        }
        assert!(valid > 1000 && invalid > 1000, "{valid} valid, {invalid} invalid");
    }
}
