//! Publishing table versions to the workers: read-copy-update with two copies
//! (left-right), written in safe Rust. The protocol and the memory orderings that carry
//! weight are explained in `mapping-client/RCU.md`; in short:
//!
//! * The [`Publisher`] (control core) owns two copies of `T`: the **live** one, which the
//!   workers read, and the **standby** one. Changes ([`Absorb::Op`]s) are queued with
//!   [`Publisher::submit`]; [`Publisher::publish`] applies the queue to the standby copy,
//!   makes it live and posts it to every subscriber. The previous live copy becomes the
//!   standby; once no worker holds it any more, [`Publisher::reclaim`] applies the same ops
//!   to it, so both copies are equal again. Each op is applied twice, and the cost of an
//!   update is proportional to the ops, never to the size of `T`.
//! * A [`Subscriber`] (one per worker; `Send`, not `Sync`) keeps an `Arc` of the version it
//!   reads. [`Subscriber::current`] costs one atomic load when nothing was posted; when
//!   something was, it takes the new `Arc` from its own mailbox (a `try_lock` that never
//!   waits) and drops the old one. Because `current` borrows the subscriber mutably, the
//!   reference it returns must be gone before the next call: the borrow checker enforces
//!   the quiescent point. [`Subscriber::quiescent`] does the same for an idle loop.
//! * "Every worker has passed a quiescent state since the swap" is exactly "the old copy's
//!   `Arc` is unique again": `Arc::get_mut` tells, and its acquire/release pairing orders
//!   every worker's last read of the old copy before the publisher's first write to it.
//!   A copy is never freed on a worker: the publisher keeps a reference to every copy it
//!   handed out until it sees it unique, then frees it (or reuses it) on its own thread.
//!
//! Under `cfg(loom)` the atomics, `Arc` and `Mutex` come from `loom`, so the protocol is
//! model-checked as written (see the `loom_tests` module).

use std::cell::Cell;
use std::marker::PhantomData;

#[cfg(loom)]
use loom::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};
#[cfg(not(loom))]
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};
use std::sync::{PoisonError, TryLockError};

/// A value that changes by applying ops. Applying the same ops in the same order to two
/// equal values must give equal values (the left-right copies stay identical).
pub trait Absorb {
    type Op;
    fn absorb(&mut self, op: &Self::Op);
}

/// One subscriber's mailbox: the newest version posted to it, if not taken yet.
struct Slot<T> {
    /// Version of the last post. Written after `next`, with release; read with acquire.
    posted: AtomicU64,
    next: Mutex<Option<(u64, Arc<T>)>>,
}

/// The control core's side. See the module documentation.
pub struct Publisher<T: Absorb> {
    live: Arc<T>,
    version: u64,
    /// The other copy: equal to `live` once `behind` is applied to it.
    standby: Arc<T>,
    /// Ops in `live` and not yet in `standby`.
    behind: Vec<T::Op>,
    /// Ops submitted and not yet published.
    pending: Vec<T::Op>,
    /// Copies replaced by [`Publisher::replace`], freed once no worker holds them.
    retired: Vec<Arc<T>>,
    slots: Vec<Arc<Slot<T>>>,
}

impl<T: Absorb + Clone> Publisher<T> {
    /// Publishes `initial` as version 0 (it is cloned once for the standby copy).
    pub fn new(initial: T) -> Publisher<T> {
        Publisher {
            standby: Arc::new(initial.clone()),
            live: Arc::new(initial),
            version: 0,
            behind: Vec::new(),
            pending: Vec::new(),
            retired: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// A reader of the published versions, starting at the current one.
    pub fn subscribe(&mut self) -> Subscriber<T> {
        let slot = Arc::new(Slot {
            posted: AtomicU64::new(self.version),
            next: Mutex::new(None),
        });
        self.slots.push(Arc::clone(&slot));
        Subscriber {
            current: Arc::clone(&self.live),
            seen: self.version,
            slot,
            _not_sync: PhantomData,
        }
    }

    /// Queues one change for the next [`Publisher::publish`].
    pub fn submit(&mut self, op: T::Op) {
        self.pending.push(op);
    }

    /// Queues changes for the next [`Publisher::publish`], in order.
    pub fn submit_all(&mut self, ops: impl IntoIterator<Item = T::Op>) {
        self.pending.extend(ops);
    }

    /// Publishes everything queued as one new version, if the standby copy is free (every
    /// worker has passed a quiescent state since the previous publication). Returns the new
    /// version, or `None` if nothing was queued or the standby copy is still in use (call
    /// again later; nothing is lost). Time: proportional to the ops queued now and
    /// published last time.
    pub fn publish(&mut self) -> Option<u64> {
        if self.pending.is_empty() || !self.reclaim() {
            return None;
        }
        let standby = Arc::get_mut(&mut self.standby)?;
        for op in &self.pending {
            standby.absorb(op);
        }
        std::mem::swap(&mut self.live, &mut self.standby);
        self.behind = std::mem::take(&mut self.pending);
        Some(self.post())
    }

    /// Replaces the whole value (a full resync), dropping whatever was queued. Published at
    /// once; the old copies are freed by [`Publisher::reclaim`] once no worker holds them.
    pub fn replace(&mut self, value: T) -> u64 {
        self.pending.clear();
        self.behind.clear();
        let standby = std::mem::replace(&mut self.standby, Arc::new(value.clone()));
        let live = std::mem::replace(&mut self.live, Arc::new(value));
        self.retired.push(standby);
        self.retired.push(live);
        let version = self.post();
        self.reclaim();
        version
    }

    /// Housekeeping on the control core: frees replaced copies that no worker holds any
    /// more and, if no worker holds the standby copy, brings it up to date. Returns whether
    /// the standby copy is ready (the next [`Publisher::publish`] will not wait).
    pub fn reclaim(&mut self) -> bool {
        // Dropped here, on this thread: a unique `Arc` can no longer be reached by a worker
        // (mailboxes only ever hold the live copy).
        self.retired.retain(|copy| Arc::strong_count(copy) > 1);
        let Some(standby) = Arc::get_mut(&mut self.standby) else {
            return false;
        };
        for op in self.behind.drain(..) {
            standby.absorb(&op);
        }
        true
    }

    /// The live version, as the workers see it once they pick it up.
    pub fn live(&self) -> &T {
        &self.live
    }

    /// The number of the live version (0 at creation, +1 per publication).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Ops submitted and not yet published.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Copies waiting for workers to let go of them (replaced ones, and the standby if it
    /// is still held).
    pub fn held_copies(&self) -> usize {
        self.retired.len() + usize::from(Arc::strong_count(&self.standby) > 1)
    }

    /// Bumps the version and posts the live copy to every subscriber still alive.
    fn post(&mut self) -> u64 {
        self.version += 1;
        self.slots.retain(|slot| Arc::strong_count(slot) > 1);
        for slot in &self.slots {
            let mut next = slot.next.lock().unwrap_or_else(PoisonError::into_inner);
            // A version the worker never took is dropped here, on this thread.
            *next = Some((self.version, Arc::clone(&self.live)));
            drop(next);
            // Release: a worker that sees this number finds the post in the mailbox.
            slot.posted.store(self.version, Ordering::Release);
        }
        self.version
    }
}

/// A worker's side. `Send` (it moves to its lcore), not `Sync` (one reader per
/// subscriber). See the module documentation.
pub struct Subscriber<T> {
    current: Arc<T>,
    seen: u64,
    slot: Arc<Slot<T>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> Subscriber<T> {
    /// The newest version posted, for the burst about to be processed. Calling it is a
    /// quiescent state for the version read before (which the borrow has already ended).
    /// One atomic load when nothing new was posted.
    #[inline]
    pub fn current(&mut self) -> &T {
        self.refresh();
        &self.current
    }

    /// Declares a quiescent state: lets go of any version older than the newest posted.
    /// Call once per loop, also when the loop had nothing to do.
    #[inline]
    pub fn quiescent(&mut self) {
        self.refresh();
    }

    /// The version [`Subscriber::current`] last returned.
    pub fn version(&self) -> u64 {
        self.seen
    }

    #[inline]
    fn refresh(&mut self) {
        // Acquire: pairs with the publisher's release store, so the mailbox is seen at
        // least as new as this number.
        let posted = self.slot.posted.load(Ordering::Acquire);
        if posted != self.seen {
            self.take_post(posted);
        }
    }

    #[cold]
    fn take_post(&mut self, posted: u64) {
        let mut next = match self.slot.next.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // The publisher is posting right now: take it on the next call.
            Err(TryLockError::WouldBlock) => return,
        };
        match next.take() {
            Some((version, copy)) => {
                drop(next);
                self.seen = version;
                // The old version: never the last reference, the publisher holds one.
                drop(std::mem::replace(&mut self.current, copy));
            }
            // Already took this post (or a newer one) earlier.
            None => self.seen = posted,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Log(Vec<u32>);

    impl Absorb for Log {
        type Op = u32;
        fn absorb(&mut self, op: &u32) {
            self.0.push(*op);
        }
    }

    #[test]
    fn publish_waits_for_readers_and_catches_up() {
        let mut p = Publisher::new(Log(vec![]));
        let mut s = p.subscribe();
        assert_eq!(s.current().0, Vec::<u32>::new());
        p.submit(1);
        assert_eq!(p.publish(), Some(1));
        // The reader still holds version 0 (the standby now): the next publish waits.
        p.submit(2);
        assert!(!p.reclaim());
        assert_eq!(p.publish(), None);
        assert_eq!(p.pending(), 1);
        assert_eq!(s.current().0, vec![1]);
        assert_eq!(s.version(), 1);
        assert!(p.reclaim());
        assert_eq!(p.publish(), Some(2));
        s.quiescent();
        assert_eq!(s.current().0, vec![1, 2]);
        p.submit(3);
        assert_eq!(p.publish(), Some(3));
        assert_eq!(s.current().0, vec![1, 2, 3]);
        assert!(p.reclaim());
        assert_eq!(*p.standby, Log(vec![1, 2, 3]));
    }

    #[test]
    fn replace_retires_old_copies_on_the_publisher() {
        let mut p = Publisher::new(Log(vec![7]));
        let mut s = p.subscribe();
        let _ = s.current();
        assert_eq!(p.replace(Log(vec![9])), 1);
        assert_eq!(
            p.held_copies(),
            1,
            "the reader still holds the old live copy"
        );
        assert_eq!(s.current().0, vec![9]);
        assert!(p.reclaim());
        assert_eq!(p.held_copies(), 0);
    }

    #[test]
    fn dropped_subscribers_are_forgotten() {
        let mut p = Publisher::new(Log(vec![]));
        let s = p.subscribe();
        drop(s);
        p.submit(1);
        assert_eq!(p.publish(), Some(1));
        assert!(p.slots.is_empty());
    }

    #[test]
    fn subscriber_is_send() {
        fn is_send<S: Send>() {}
        is_send::<Subscriber<Log>>();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! `RUSTFLAGS="--cfg loom" cargo test -p mapping-client --lib --release rcu::loom_tests`
    use super::*;
    use loom::sync::atomic::AtomicU64 as LoomU64;

    /// Two cells that every op sets together: a reader seeing them differ would have read
    /// a copy while the publisher was writing it.
    struct Pair {
        a: LoomU64,
        b: LoomU64,
    }

    impl Clone for Pair {
        fn clone(&self) -> Pair {
            Pair {
                a: LoomU64::new(self.a.load(Ordering::Relaxed)),
                b: LoomU64::new(self.b.load(Ordering::Relaxed)),
            }
        }
    }

    impl Absorb for Pair {
        type Op = u64;
        fn absorb(&mut self, op: &u64) {
            self.a.store(*op, Ordering::Relaxed);
            self.b.store(*op, Ordering::Relaxed);
        }
    }

    fn read(p: &Pair) -> u64 {
        let a = p.a.load(Ordering::Relaxed);
        let b = p.b.load(Ordering::Relaxed);
        assert_eq!(a, b, "torn read: the copy was written while read");
        a
    }

    /// Interleavings explored, printed so a run shows the model did work.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[test]
    fn readers_never_see_a_copy_being_written() {
        loom::model(|| {
            RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut p = Publisher::new(Pair {
                a: LoomU64::new(0),
                b: LoomU64::new(0),
            });
            let mut sub = p.subscribe();
            let reader = loom::thread::spawn(move || {
                // Read until the last value shows up: every post is eventually picked up.
                let mut last = 0;
                loop {
                    let v = read(sub.current());
                    assert!(v >= last, "went back in time: {v} after {last}");
                    last = v;
                    sub.quiescent();
                    if v == 2 {
                        break;
                    }
                    loom::thread::yield_now();
                }
                assert_eq!(sub.version(), 2);
            });
            // Two publications: the second one must wait until the reader left copy 0.
            for value in 1..=2u64 {
                p.submit(value);
                while p.publish().is_none() {
                    loom::thread::yield_now();
                }
            }
            reader.join().unwrap();
            // With the reader gone, both copies converge.
            assert!(p.reclaim());
            assert_eq!(read(p.live()), 2);
            assert_eq!(read(&p.standby), 2);
        });
        println!(
            "explored {} interleavings",
            RUNS.load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    #[test]
    fn replace_while_a_reader_reads() {
        loom::model(|| {
            let mut p = Publisher::new(Pair {
                a: LoomU64::new(1),
                b: LoomU64::new(1),
            });
            let mut sub = p.subscribe();
            let reader = loom::thread::spawn(move || {
                let v = read(sub.current());
                sub.quiescent();
                let w = read(sub.current());
                assert!(w >= v);
            });
            p.replace(Pair {
                a: LoomU64::new(5),
                b: LoomU64::new(5),
            });
            reader.join().unwrap();
            p.reclaim();
            assert_eq!(p.held_copies(), 0);
            assert_eq!(read(p.live()), 5);
        });
    }
}
