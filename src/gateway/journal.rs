//! The server's audit and change writer: one thread, group commit.
//!
//! A request hands its audit entries and changes to the writer and waits for their commit;
//! the writer takes everything queued at that moment and writes it in one transaction. When
//! nothing is queued and the store is free, the request commits its rows itself, on its own
//! thread: an idle server answers without two thread hand-offs. Under
//! load a transaction carries many requests' rows, so recording costs each a few microseconds;
//! an idle server commits each alone. The answer never goes out before its record is written,
//! and a record that cannot be written fails the request that made it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, watch};

use crate::audit::Entry;
use crate::store::{ChangeIn, Store};

/// Trace taints as the store holds them, so a decision reads memory, not SQLite.
///
/// Kept true by whoever changes a taint: this process updates an entry after each write it
/// commits (`App::admitted`, reset, revoke), and the journal thread clears the whole cache when
/// SQLite's data version says another process (a hook, `fak witness revoke`) committed — after
/// every batch, and every `IDLE_CHECK` when there is none. A raise by another process is seen
/// within that bound.
#[derive(Default)]
pub struct TaintCache {
    gens: Mutex<Gens>,
}

/// Two generations of at most `MAX_CACHED` traces: a full young one becomes the old one,
/// dropping the previous old, so the traces in use stay and memory stays bounded.
#[derive(Default)]
struct Gens {
    young: rustc_hash::FxHashMap<Box<str>, u8>,
    old: rustc_hash::FxHashMap<Box<str>, u8>,
}

/// Traces a generation holds (the store keeps as many raised traces).
const MAX_CACHED: usize = crate::store::MAX_TRACES as usize;

/// How often an idle journal thread looks for other processes' writes.
pub const IDLE_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

impl TaintCache {
    pub fn get(&self, trace: &str) -> Option<u8> {
        let g = self.gens.lock().ok()?;
        g.young.get(trace).or_else(|| g.old.get(trace)).copied()
    }

    pub fn set(&self, trace: &str, taint: u8) {
        if let Ok(mut g) = self.gens.lock() {
            if let Some(t) = g.young.get_mut(trace) {
                *t = taint;
                return;
            }
            // An old entry must not outlive its update.
            g.old.remove(trace);
            if g.young.len() >= MAX_CACHED {
                g.old = std::mem::take(&mut g.young);
            }
            g.young.insert(Box::from(trace), taint);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut g) = self.gens.lock() {
            g.young.clear();
            g.old.clear();
        }
    }
}

struct Job {
    entries: Vec<Entry>,
    changes: Vec<ChangeIn>,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// A write that comes this long after the previous one finds the server idle.
const IDLE_GAP_MICROS: u64 = 250;

/// Microseconds since the first call: a clock for telling idle from busy.
fn micros() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    u64::try_from(START.get_or_init(std::time::Instant::now).elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// How long a busy writer gathers requests before a commit.
const GATHER: std::time::Duration = std::time::Duration::from_micros(300);

/// The most rows one transaction carries.
const MAX_BATCH: usize = 4096;

pub struct Journal {
    tx: mpsc::Sender<Job>,
    store: Arc<Mutex<Store>>,
    /// Jobs sent and not yet committed.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// When the last write was asked for (`micros`).
    last_write: std::sync::atomic::AtomicU64,
    changed_tx: Arc<watch::Sender<i64>>,
    /// The last change's number: long-polls of the change feed wait on it.
    pub changed: watch::Receiver<i64>,
}

impl Journal {
    /// Starts the writer over `store`; it keeps `taints` clear of other processes' writes.
    pub fn start(store: Arc<Mutex<Store>>, taints: Arc<TaintCache>) -> Result<Journal, String> {
        let head = store.lock().map_err(|_| super::poisoned())?.changes_head().map_err(|e| e.to_string())?;
        let (changed_tx, changed) = watch::channel(head);
        let changed_tx = Arc::new(changed_tx);
        let (tx, rx) = mpsc::channel::<Job>();
        let writer_changed = changed_tx.clone();
        micros();
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (writer_store, writer_queued) = (store.clone(), queued.clone());
        std::thread::Builder::new()
            .name("fak-journal".into())
            .spawn(move || write_loop(&writer_store, &rx, &writer_changed, &taints, &writer_queued))
            .map_err(|e| format!("cannot start the journal thread: {e}"))?;
        Ok(Journal { tx, store, queued, last_write: std::sync::atomic::AtomicU64::new(0), changed_tx, changed })
    }

    /// Records entries and changes; returns once they are committed.
    ///
    /// With nothing queued and the store free, the rows are committed here and now: an idle
    /// server's request would otherwise wait for two thread hand-offs. Otherwise they join
    /// the writer's next group.
    pub async fn write(&self, entries: Vec<Entry>, changes: Vec<ChangeIn>) -> Result<(), String> {
        if entries.is_empty() && changes.is_empty() {
            return Ok(());
        }
        // Idle: nothing queued, no other write in the last `IDLE_GAP`. A busy server queues,
        // so that its writes share commits.
        let now = micros();
        let last = self.last_write.swap(now, std::sync::atomic::Ordering::AcqRel);
        let idle = last == 0 || now.saturating_sub(last) >= IDLE_GAP_MICROS;
        if idle && self.queued.load(std::sync::atomic::Ordering::Acquire) == 0 {
            if let Ok(mut s) = self.store.try_lock() {
                s.append(&entries, &changes, false).map_err(|e| format!("the audit log cannot be written: {e}"))?;
                if !changes.is_empty() {
                    if let Ok(head) = s.changes_head() {
                        drop(s);
                        self.changed_to(head);
                    }
                }
                return Ok(());
            }
        }
        let (done, wait) = oneshot::channel();
        self.queued.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if self.tx.send(Job { entries, changes, done: Some(done) }).is_err() {
            self.queued.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return Err("the audit writer has stopped".to_string());
        }
        wait.await.map_err(|_| "the audit writer has stopped".to_string())?
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.queued.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if self.tx.send(Job { entries: Vec::new(), changes: Vec::new(), done: Some(done) }).is_err() {
            self.queued.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return Err("the audit writer has stopped".to_string());
        }
        wait.await.map_err(|_| "the audit writer has stopped".to_string())?
    }

    /// Wakes long-polls after a change written elsewhere (a revocation, by the store itself).
    pub fn changed_to(&self, head: i64) {
        self.changed_tx.send_if_modified(|h| {
            let newer = head > *h;
            if newer {
                *h = head;
            }
            newer
        });
    }
}

fn write_loop(
    store: &Mutex<Store>,
    rx: &mpsc::Receiver<Job>,
    changed: &watch::Sender<i64>,
    taints: &TaintCache,
    queued: &std::sync::atomic::AtomicUsize,
) {
    let mut version = store.lock().ok().and_then(|s| s.data_version().ok());
    let check = |s: &Store, version: &mut Option<i64>| {
        let now = s.data_version().ok();
        if now.is_none() || now != *version {
            taints.clear();
            *version = now;
        }
    };
    let mut busy = false;
    loop {
        let first = match rx.recv_timeout(IDLE_CHECK) {
            Ok(j) => j,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(s) = store.lock() {
                    check(&s, &mut version);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if busy {
            // Others were waiting last time: gather for a moment, so that one commit carries
            // many requests' rows (a commit costs as much as dozens of rows). An idle server
            // commits each request at once.
            std::thread::sleep(GATHER);
        }
        let mut jobs = vec![first];
        let mut rows = jobs.iter().map(|j| j.entries.len() + j.changes.len()).sum::<usize>();
        while rows < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => {
                    rows += j.entries.len() + j.changes.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let mut entries = Vec::new();
        let mut changes = Vec::new();
        for j in &mut jobs {
            entries.append(&mut j.entries);
            changes.append(&mut j.changes);
        }
        let result = match store.lock() {
            Ok(mut s) => {
                check(&s, &mut version);
                let r =
                    s.append(&entries, &changes, false).map_err(|e| format!("the audit log cannot be written: {e}"));
                if r.is_ok() && !changes.is_empty() {
                    if let Ok(head) = s.changes_head() {
                        changed.send_if_modified(|h| {
                            let newer = head > *h;
                            if newer {
                                *h = head;
                            }
                            newer
                        });
                    }
                }
                r
            }
            Err(_) => Err(super::poisoned()),
        };
        busy = jobs.len() > 1;
        queued.fetch_sub(jobs.len(), std::sync::atomic::Ordering::AcqRel);
        for j in jobs {
            if let Some(done) = j.done {
                let _ = done.send(result.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn the_taint_cache_is_bounded_and_keeps_updates() {
        let c = TaintCache::default();
        c.set("a", 1);
        for i in 0..MAX_CACHED {
            c.set(&format!("t{i}"), 0);
        }
        assert_eq!(c.get("a"), Some(1), "in the old generation now");
        c.set("a", 2);
        assert_eq!(c.get("a"), Some(2), "an update replaces the old entry");
        for i in 0..(2 * MAX_CACHED) {
            c.set(&format!("u{i}"), 0);
        }
        assert_eq!(c.get("a"), None, "forgotten after two generations");
        let g = c.gens.lock().unwrap();
        assert!(g.young.len() <= MAX_CACHED && g.old.len() <= MAX_CACHED);
        drop(g);
        c.clear();
        assert_eq!(c.get("u1"), None);
    }

    #[test]
    #[allow(clippy::await_holding_lock)] // held on purpose: the store busy while a write waits
    fn an_idle_write_commits_inline_and_a_flush_waits_for_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(dir.path()).unwrap()));
        let j = Journal::start(store.clone(), Arc::new(TaintCache::default())).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let e = || Entry::new(crate::audit::Kind::Decide, "t", "Bash", "ALLOW", "NONE", "r", String::new());
        rt.block_on(async {
            j.write(vec![e()], vec![ChangeIn::Revoke { witness: "w-1".into() }]).await.unwrap();
            assert_eq!(*j.changed.borrow(), 1, "long polls are woken");
            // The store busy (and a write just made): the rows go through the writer thread.
            let held = store.lock().unwrap();
            let queued = j.write(vec![e(), e()], Vec::new());
            tokio::pin!(queued);
            assert!(futures_util::poll!(queued.as_mut()).is_pending());
            drop(held);
            queued.await.unwrap();
            j.flush().await.unwrap();
        });
        assert_eq!(j.queued.load(std::sync::atomic::Ordering::Acquire), 0);
        assert_eq!(store.lock().unwrap().verify_audit().unwrap().unwrap().rows, 3);
    }
}
