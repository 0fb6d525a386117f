//! The server's audit and change writer: one thread, group commit.
//!
//! A request hands its audit entries and changes to the writer and waits for their commit;
//! the writer takes everything queued at that moment and writes it in one transaction. Under
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
    map: Mutex<rustc_hash::FxHashMap<Box<str>, u8>>,
}

/// Entries the cache holds before it starts over.
const MAX_CACHED: usize = 65_536;

/// How often an idle journal thread looks for other processes' writes.
pub const IDLE_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

impl TaintCache {
    pub fn get(&self, trace: &str) -> Option<u8> {
        self.map.lock().ok()?.get(trace).copied()
    }

    pub fn set(&self, trace: &str, taint: u8) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= MAX_CACHED && !m.contains_key(trace) {
                m.clear();
            }
            m.insert(Box::from(trace), taint);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut m) = self.map.lock() {
            m.clear();
        }
    }
}

struct Job {
    entries: Vec<Entry>,
    changes: Vec<ChangeIn>,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// How long a busy writer gathers requests before a commit.
const GATHER: std::time::Duration = std::time::Duration::from_micros(300);

/// The most rows one transaction carries.
const MAX_BATCH: usize = 4096;

pub struct Journal {
    tx: mpsc::Sender<Job>,
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
        std::thread::Builder::new()
            .name("fak-journal".into())
            .spawn(move || write_loop(&store, &rx, &writer_changed, &taints))
            .map_err(|e| format!("cannot start the journal thread: {e}"))?;
        Ok(Journal { tx, changed_tx, changed })
    }

    /// Records entries and changes; returns once they are committed.
    pub async fn write(&self, entries: Vec<Entry>, changes: Vec<ChangeIn>) -> Result<(), String> {
        if entries.is_empty() && changes.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { entries, changes, done: Some(done) })
            .map_err(|_| "the audit writer has stopped".to_string())?;
        wait.await.map_err(|_| "the audit writer has stopped".to_string())?
    }

    /// Records from a thread that may not wait on the runtime (the blocking pool): queued, and
    /// the caller waits for the commit all the same.
    pub fn write_blocking(&self, entries: Vec<Entry>, changes: Vec<ChangeIn>) -> Result<(), String> {
        if entries.is_empty() && changes.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { entries, changes, done: Some(done) })
            .map_err(|_| "the audit writer has stopped".to_string())?;
        wait.blocking_recv().map_err(|_| "the audit writer has stopped".to_string())?
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { entries: Vec::new(), changes: Vec::new(), done: Some(done) })
            .map_err(|_| "the audit writer has stopped".to_string())?;
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

fn write_loop(store: &Mutex<Store>, rx: &mpsc::Receiver<Job>, changed: &watch::Sender<i64>, taints: &TaintCache) {
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
                let r = s.append(&entries, &changes, false).map_err(|e| format!("the audit log cannot be written: {e}"));
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
        for j in jobs {
            if let Some(done) = j.done {
                let _ = done.send(result.clone());
            }
        }
    }
}
