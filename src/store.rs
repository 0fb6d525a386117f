//! Durable state: quarantined results (pages) and their releases, traces and their taint,
//! witnesses and their revocations.
//!
//! An embedded SQLite database (`fak.db`) in a state directory, in WAL mode with full
//! synchronisation: a page is committed before its id is handed out, so a process killed right
//! after a quarantine loses nothing. One table per kind of record; every admission is one
//! transaction (`Store::record`). Pages and witnesses are content-addressed (`q-` / `w-` and
//! the first 16 hex digits of the text's SHA-256): quarantining the same bytes twice keeps one
//! page, and a revoked witness names every later result with the same bytes.
//!
//! Traces: only a trace whose taint is up is stored (a trusted trace is indistinguishable from
//! one never seen), at most `max_traces` of them; past that an untrusted one is forgotten
//! before a quarantined one, the least recently raised or written first, as DESIGN.md's
//! bounded trace table allows. Writes take the write lock when they begin (IMMEDIATE), so
//! two processes recording at once wait for each other instead of failing.

use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension as _;
use sha2::{Digest as _, Sha256};

mod journal;
pub use journal::{Change, ChangeIn};

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory `{0}`: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("the state database `{0}`: {1}")]
    Db(PathBuf, rusqlite::Error),
    #[error("no quarantined result `{0}`")]
    NotFound(String),
    #[error("no witness `{0}`")]
    NoWitness(String),
}

/// The schema's version (`PRAGMA user_version`): 2 added traces, witnesses and revocations
/// to session 11's pages and releases (1 was never written); 3 the audit log and the change
/// feed (`journal`).
const SCHEMA: i64 = 3;

/// The default bound of the trace table.
pub const MAX_TRACES: u64 = 8192;

/// What one admitted result leaves in the store, written in one transaction.
pub struct Admission<'a> {
    pub tool: &'a str,
    pub text: &'a str,
    pub digest: &'a Digest,
    /// The trace it belongs to, if the caller named one.
    pub trace: Option<&'a str>,
    /// The taint it raises the trace to (`ir::Program::source_level`, or quarantined).
    pub raise: u8,
    /// `Some((reason, kinds))` when the result is quarantined: page it out.
    pub quarantine: Option<(&'a str, &'a [String])>,
    /// The model reads it (admitted): a witness records that.
    pub read: bool,
    /// The admission's audit entry, written in the same transaction.
    pub audit: Option<&'a crate::audit::Entry>,
}

/// What `Store::record` wrote.
#[derive(Debug, Default)]
pub struct Recorded {
    pub page: Option<String>,
    pub witness: Option<String>,
    /// The trace's taint after the admission.
    pub taint: u8,
}

/// A result's SHA-256, and the ids derived from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest(String);

impl Digest {
    pub fn of(text: &str) -> Digest {
        Digest(hex(&Sha256::digest(text.as_bytes())))
    }

    pub fn hex(&self) -> &str {
        &self.0
    }

    fn short(&self) -> &str {
        self.0.get(..16).unwrap_or(&self.0)
    }

    /// The id of the page this text is quarantined under.
    pub fn page_id(&self) -> String {
        format!("q-{}", self.short())
    }

    /// The id of the witness of this text.
    pub fn witness_id(&self) -> String {
        format!("w-{}", self.short())
    }
}

/// A trace whose taint is up.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TraceRow {
    pub id: String,
    /// The taint rank: 1 untrusted, 2 quarantined.
    pub taint: u8,
    /// The tool whose result raised it to this level, or `revoked:<witness>`.
    pub source: String,
    /// Seconds since the epoch of the last raise.
    pub updated: i64,
}

/// A result the model read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Witness {
    pub id: String,
    pub digest: String,
    pub tool: String,
    pub length: u64,
    /// Seconds since the epoch it was first admitted.
    pub created: i64,
    /// When it was revoked, if it was.
    pub revoked: Option<i64>,
    /// The traces that read it.
    pub traces: Vec<String>,
}

/// A quarantined result.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Page {
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created: i64,
    pub tool: String,
    pub reason: String,
    /// The kinds of secret and injection found in it.
    pub kinds: Vec<String>,
    /// Its length in bytes.
    pub length: u64,
    /// SHA-256 of the text, hex.
    pub digest: String,
    /// When it was released (seconds since the epoch), if it was.
    pub released: Option<i64>,
    /// The text itself; `None` in listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Page {
    /// What the model reads in place of the result: the id, the reason, the kinds and the
    /// length, never the text.
    pub fn stub(&self) -> String {
        let kinds = if self.kinds.is_empty() { String::new() } else { format!(" ({})", self.kinds.join(", ")) };
        format!(
            "[fak: this tool result was quarantined: {}{kinds}, {} bytes, page {}. It is kept; a person can read it with `fak quarantine show {}`.]",
            self.reason, self.length, self.id, self.id
        )
    }
}

pub struct Store {
    conn: rusqlite::Connection,
    path: PathBuf,
    max_traces: u64,
    /// Opened by `open_existing` for one short process: checkpointed on drop when the WAL grew.
    one_shot: bool,
}

/// The state directory when none is given: `$XDG_STATE_HOME/fak`, else
/// `$HOME/.local/state/fak`, else `.fak-state` in the current directory.
pub fn default_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(x) = env("XDG_STATE_HOME") {
        return x.join("fak");
    }
    if let Some(h) = env("HOME") {
        return h.join(".local/state/fak");
    }
    PathBuf::from(".fak-state")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The WAL size past which a one-shot process (`open_existing`) checkpoints it into the
/// database and truncates it as it closes. A process that opens the database when no other has
/// it open rebuilds the WAL's index by reading every frame (SQLite's recovery), and that
/// rebuilt index forgets what earlier checkpoints copied, so the WAL is never restarted: left
/// alone, one-shot processes alone (hooks without a server) grow it without end, and every
/// hook reads all of it (1.8 MiB after 400 decisions, 1.1 ms more a hook). Truncating it at
/// 256 KiB costs a disk flush every few hundred decisions and bounds what a hook reads.
const ONE_SHOT_WAL_BYTES: u64 = 256 * 1024;

impl Drop for Store {
    fn drop(&mut self) {
        if !self.one_shot {
            return;
        }
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > ONE_SHOT_WAL_BYTES) {
            // Best effort: what the WAL holds is committed whether or not this runs; a busy
            // database (a server writing) is checkpointed by its own writes.
            let _ = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

impl Store {
    /// Opens (creating when needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir(dir.to_path_buf(), e))?;
        let path = dir.join("fak.db");
        let db = |e| StoreError::Db(path.clone(), e);
        let conn = rusqlite::Connection::open(&path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS pages (
                 id TEXT PRIMARY KEY,
                 created INTEGER NOT NULL,
                 tool TEXT NOT NULL,
                 reason TEXT NOT NULL,
                 kinds TEXT NOT NULL,
                 length INTEGER NOT NULL,
                 digest TEXT NOT NULL,
                 text BLOB NOT NULL,
                 released INTEGER
             );
             CREATE TABLE IF NOT EXISTS releases (
                 page TEXT NOT NULL REFERENCES pages(id),
                 at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS traces (
                 id TEXT PRIMARY KEY,
                 taint INTEGER NOT NULL,
                 source TEXT NOT NULL,
                 updated INTEGER NOT NULL,
                 used INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS traces_used ON traces(used);
             CREATE TABLE IF NOT EXISTS resets (
                 trace TEXT NOT NULL,
                 taint INTEGER NOT NULL,
                 at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS witnesses (
                 id TEXT PRIMARY KEY,
                 digest TEXT NOT NULL,
                 tool TEXT NOT NULL,
                 length INTEGER NOT NULL,
                 created INTEGER NOT NULL,
                 revoked INTEGER
             );
             CREATE TABLE IF NOT EXISTS consumed (
                 witness TEXT NOT NULL REFERENCES witnesses(id),
                 trace TEXT NOT NULL,
                 at INTEGER NOT NULL,
                 PRIMARY KEY (witness, trace)
             );
             CREATE TABLE IF NOT EXISTS revocations (
                 witness TEXT NOT NULL REFERENCES witnesses(id),
                 at INTEGER NOT NULL,
                 note TEXT
             );
             PRAGMA user_version = 3;",
        )
        .map_err(db)?;
        conn.execute_batch(journal::TABLES).map_err(db)?;
        Ok(Store { conn, path, max_traces: MAX_TRACES, one_shot: false })
    }

    /// Opens the store in `dir` for reading a trace's taint, the cheap way a one-shot decision
    /// needs: `None` when there is no database yet (then every trace is trusted), and no schema
    /// work when there is (the tables exist: whoever created the file made them).
    pub fn open_existing(dir: &Path) -> Result<Option<Store>, StoreError> {
        let path = dir.join("fak.db");
        // An error here (a directory fak may not read) is an error, never "no database": that
        // would read every trace as trusted.
        match path.try_exists() {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => return Err(StoreError::Dir(dir.to_path_buf(), e)),
        }
        let db = |e| StoreError::Db(path.clone(), e);
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db)?;
        if version < SCHEMA {
            // Made by an older fak: let `open` add what is missing.
            drop(conn);
            return Store::open(dir).map(Some);
        }
        // A one-shot process (a hook, a preflight) must not pay for a checkpoint each time it
        // closes the last connection: a disk flush each time. `Drop` checkpoints only once the
        // WAL has grown (see `ONE_SHOT_WAL_BYTES`).
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).map_err(db)?;
        Ok(Some(Store { conn, path, max_traces: MAX_TRACES, one_shot: true }))
    }

    /// Bounds the trace table at `n` traces (at least one).
    pub fn max_traces(mut self, n: u64) -> Store {
        self.max_traces = n.max(1);
        self
    }

    /// A trace's taint rank; 0 (trusted) for a trace never raised, reset or forgotten.
    pub fn taint(&self, trace: &str) -> Result<u8, StoreError> {
        let t: Option<i64> = self
            .conn
            .prepare_cached("SELECT taint FROM traces WHERE id = ?1")
            .and_then(|mut q| q.query_row([trace], |r| r.get(0)))
            .optional()
            .map_err(|e| self.err(e))?;
        // A stored level out of range is read as the highest, never as trusted.
        Ok(t.map_or(0, |t| u8::try_from(t).map_or(crate::ir::QUARANTINED, |t| t.min(crate::ir::QUARANTINED))))
    }

    /// Whether the witness of this text was revoked.
    pub fn revoked(&self, digest: &Digest) -> Result<bool, StoreError> {
        let r: Option<Option<i64>> = self
            .conn
            .prepare_cached("SELECT revoked FROM witnesses WHERE id = ?1")
            .and_then(|mut q| q.query_row([digest.witness_id()], |r| r.get(0)))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(matches!(r, Some(Some(_))))
    }

    /// Writes what an admitted result leaves behind, in one transaction committed before this
    /// returns: its page (quarantined) or its witness (read), and its trace's raised taint.
    pub fn record(&mut self, a: &Admission<'_>) -> Result<Recorded, StoreError> {
        let path = self.path.clone();
        let db = |e| StoreError::Db(path.clone(), e);
        let at = now();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
        let mut out = Recorded::default();
        let length = i64::try_from(a.text.len()).unwrap_or(i64::MAX);
        match a.quarantine {
            Some((reason, kinds)) => {
                let id = a.digest.page_id();
                tx.execute(
                    "INSERT OR IGNORE INTO pages (id, created, tool, reason, kinds, length, digest, text)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    rusqlite::params![
                        id,
                        at,
                        a.tool,
                        reason,
                        kinds.join(","),
                        length,
                        a.digest.hex(),
                        a.text.as_bytes()
                    ],
                )
                .map_err(db)?;
                out.page = Some(id);
            }
            None if a.read => {
                let id = a.digest.witness_id();
                tx.execute(
                    "INSERT OR IGNORE INTO witnesses (id, digest, tool, length, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![id, a.digest.hex(), a.tool, length, at],
                )
                .map_err(db)?;
                if let Some(trace) = a.trace {
                    tx.execute(
                        "INSERT OR REPLACE INTO consumed (witness, trace, at) VALUES (?1, ?2, ?3)",
                        rusqlite::params![id, trace, at],
                    )
                    .map_err(db)?;
                }
                out.witness = Some(id);
            }
            None => {}
        }
        if let Some(trace) = a.trace {
            raise(&tx, trace, a.raise, a.tool, at, self.max_traces).map_err(db)?;
            let t: Option<i64> =
                tx.query_row("SELECT taint FROM traces WHERE id = ?1", [trace], |r| r.get(0)).optional().map_err(db)?;
            out.taint = t.and_then(|t| u8::try_from(t).ok()).unwrap_or(0);
        }
        if let Some(e) = a.audit {
            journal::append_in(&tx, std::slice::from_ref(e), &[]).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(out)
    }

    /// Every trace whose taint is up, most recently raised first.
    pub fn traces(&self) -> Result<Vec<TraceRow>, StoreError> {
        let mut q = self
            .conn
            .prepare("SELECT id, taint, source, updated FROM traces ORDER BY used DESC")
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| {
                let taint: i64 = r.get(1)?;
                Ok(TraceRow {
                    id: r.get(0)?,
                    taint: u8::try_from(taint).unwrap_or(crate::ir::QUARANTINED),
                    source: r.get(2)?,
                    updated: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Clears a trace's taint; the reset is recorded with the level it cleared. Returns that
    /// level (0 when the trace was not raised).
    pub fn reset(&mut self, trace: &str) -> Result<u8, StoreError> {
        let path = self.path.clone();
        let db = |e| StoreError::Db(path.clone(), e);
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
        let t: Option<i64> =
            tx.query_row("SELECT taint FROM traces WHERE id = ?1", [trace], |r| r.get(0)).optional().map_err(db)?;
        let was = t.unwrap_or(0);
        tx.execute("DELETE FROM traces WHERE id = ?1", [trace]).map_err(db)?;
        tx.execute("INSERT INTO resets (trace, taint, at) VALUES (?1, ?2, ?3)", rusqlite::params![trace, was, now()])
            .map_err(db)?;
        let e = crate::audit::Entry::new(crate::audit::Kind::Reset, trace, "", "", "", "", String::new());
        journal::append_in(&tx, &[e], &[]).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(u8::try_from(was).unwrap_or(0))
    }

    /// Every witness, oldest first, with the traces that read it.
    pub fn witnesses(&self) -> Result<Vec<Witness>, StoreError> {
        let mut q = self.conn.prepare("SELECT id FROM witnesses ORDER BY created, id").map_err(|e| self.err(e))?;
        let ids = q.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let ids = ids.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        ids.iter().map(|id| self.witness(id)).collect()
    }

    /// One witness, with the traces that read it.
    pub fn witness(&self, id: &str) -> Result<Witness, StoreError> {
        let w = self
            .conn
            .query_row("SELECT id, digest, tool, length, created, revoked FROM witnesses WHERE id = ?1", [id], |r| {
                let length: i64 = r.get(3)?;
                Ok(Witness {
                    id: r.get(0)?,
                    digest: r.get(1)?,
                    tool: r.get(2)?,
                    length: u64::try_from(length).unwrap_or(0),
                    created: r.get(4)?,
                    revoked: r.get(5)?,
                    traces: Vec::new(),
                })
            })
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NoWitness(id.to_string()))?;
        let mut q = self
            .conn
            .prepare("SELECT trace FROM consumed WHERE witness = ?1 ORDER BY at, trace")
            .map_err(|e| self.err(e))?;
        let traces = q.query_map([id], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let traces = traces.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        Ok(Witness { traces, ..w })
    }

    /// Revokes a witness: it is marked refuted (a later result with the same bytes is
    /// quarantined), the revocation is recorded, and every trace that read it is raised to
    /// quarantined. Returns the witness as it now is.
    pub fn revoke(&mut self, id: &str, note: Option<&str>) -> Result<Witness, StoreError> {
        self.witness(id)?;
        let path = self.path.clone();
        let db = |e| StoreError::Db(path.clone(), e);
        let at = now();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
        tx.execute("UPDATE witnesses SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL", rusqlite::params![id, at])
            .map_err(db)?;
        tx.execute("INSERT INTO revocations (witness, at, note) VALUES (?1, ?2, ?3)", rusqlite::params![id, at, note])
            .map_err(db)?;
        // The readers, read inside the transaction: one recorded concurrently is not missed.
        let readers: Vec<String> = {
            let mut q = tx.prepare("SELECT trace FROM consumed WHERE witness = ?1").map_err(db)?;
            let rows = q.query_map([id], |r| r.get::<_, String>(0)).map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)?
        };
        let source = format!("revoked:{id}");
        for trace in &readers {
            raise(&tx, trace, crate::ir::QUARANTINED, &source, at, self.max_traces).map_err(db)?;
        }
        let digest: String =
            tx.query_row("SELECT digest FROM witnesses WHERE id = ?1", [id], |r| r.get(0)).map_err(db)?;
        let e = crate::audit::Entry::new(crate::audit::Kind::Revoke, "", id, "", "", "", digest);
        journal::append_in(&tx, &[e], &[ChangeIn::Revoke { witness: id.to_string() }]).map_err(db)?;
        tx.commit().map_err(db)?;
        self.witness(id)
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Db(self.path.clone(), e)
    }

    /// Pages `text` out, committed before this returns; the same text again is the same page.
    pub fn quarantine(&self, tool: &str, reason: &str, kinds: &[String], text: &str) -> Result<Page, StoreError> {
        let d = Digest::of(text);
        let (id, digest) = (d.page_id(), d.0);
        let length = i64::try_from(text.len()).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "INSERT OR IGNORE INTO pages (id, created, tool, reason, kinds, length, digest, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![id, now(), tool, reason, kinds.join(","), length, digest, text.as_bytes()],
            )
            .map_err(|e| self.err(e))?;
        self.get(&id, false)
    }

    /// Every page, oldest first, without their texts.
    pub fn list(&self) -> Result<Vec<Page>, StoreError> {
        let mut q = self
            .conn
            .prepare(
                "SELECT id, created, tool, reason, kinds, length, digest, released FROM pages ORDER BY created, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = q.query_map([], |r| row(r, None)).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// One page, with its text when `text`.
    pub fn get(&self, id: &str, text: bool) -> Result<Page, StoreError> {
        let mut q = self
            .conn
            .prepare("SELECT id, created, tool, reason, kinds, length, digest, released, text FROM pages WHERE id = ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = q
            .query_map([id], |r| {
                let body: Vec<u8> = r.get(8)?;
                row(r, text.then(|| String::from_utf8_lossy(&body).into_owned()))
            })
            .map_err(|e| self.err(e))?;
        match rows.next() {
            Some(p) => p.map_err(|e| self.err(e)),
            None => Err(StoreError::NotFound(id.to_string())),
        }
    }

    /// Releases a page: recorded (when, in `releases`), and the page is marked; its text is
    /// returned. The page stays.
    pub fn release(&mut self, id: &str) -> Result<Page, StoreError> {
        let page = self.get(id, true)?;
        let at = now();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| StoreError::Db(self.path.clone(), e))?;
        tx.execute("INSERT INTO releases (page, at) VALUES (?1, ?2)", rusqlite::params![id, at])
            .and_then(|_| tx.execute("UPDATE pages SET released = ?2 WHERE id = ?1", rusqlite::params![id, at]))
            .map_err(|e| StoreError::Db(self.path.clone(), e))?;
        tx.commit().map_err(|e| StoreError::Db(self.path.clone(), e))?;
        Ok(Page { released: Some(at), ..page })
    }
}

/// Raises a trace to `level` (a high-water mark: never lowers it) and marks it the most
/// recently used; then forgets traces past `max`, untrusted before quarantined, the least
/// recently used first. A trusted level
/// stores nothing new but still marks an existing trace used.
fn raise(
    tx: &rusqlite::Transaction<'_>,
    trace: &str,
    level: u8,
    source: &str,
    at: i64,
    max: u64,
) -> rusqlite::Result<()> {
    let used: i64 = tx.query_row("SELECT COALESCE(MAX(used), 0) + 1 FROM traces", [], |r| r.get(0))?;
    if level == 0 {
        tx.execute("UPDATE traces SET used = ?2 WHERE id = ?1", rusqlite::params![trace, used])?;
        return Ok(());
    }
    tx.execute(
        "INSERT INTO traces (id, taint, source, updated, used) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(id) DO UPDATE SET
             source = CASE WHEN excluded.taint > taint THEN excluded.source ELSE source END,
             updated = CASE WHEN excluded.taint > taint THEN excluded.updated ELSE updated END,
             taint = MAX(taint, excluded.taint),
             used = excluded.used",
        rusqlite::params![trace, level, source, at, used],
    )?;
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    tx.execute(
        "DELETE FROM traces WHERE id IN (
             SELECT id FROM traces ORDER BY taint ASC, used ASC
             LIMIT MAX(0, (SELECT COUNT(*) FROM traces) - ?1))",
        [max],
    )?;
    Ok(())
}

fn row(r: &rusqlite::Row<'_>, text: Option<String>) -> rusqlite::Result<Page> {
    let kinds: String = r.get(4)?;
    let length: i64 = r.get(5)?;
    Ok(Page {
        id: r.get(0)?,
        created: r.get(1)?,
        tool: r.get(2)?,
        reason: r.get(3)?,
        kinds: kinds.split(',').filter(|k| !k.is_empty()).map(str::to_string).collect(),
        length: u64::try_from(length).unwrap_or(0),
        digest: r.get(6)?,
        released: r.get(7)?,
        text,
    })
}

use crate::audit::hex;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn pages_are_kept_listed_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let p = s.quarantine("Read", "SECRET_EXFIL", &["github_pat".into()], "token ghp_x").unwrap();
        assert!(p.id.starts_with("q-") && p.id.len() == 18, "{}", p.id);
        assert_eq!(p.length, 11);
        assert!(!p.stub().contains("ghp_x"), "the stub never holds the text");
        // The same text is the same page.
        assert_eq!(s.quarantine("Read", "SECRET_EXFIL", &[], "token ghp_x").unwrap().id, p.id);
        assert_eq!(s.list().unwrap().len(), 1);
        drop(s);
        // Reopened: still there, with its text.
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.get(&p.id, true).unwrap().text.as_deref(), Some("token ghp_x"));
        let r = s.release(&p.id).unwrap();
        assert!(r.released.is_some());
        assert!(s.get(&p.id, false).unwrap().released.is_some());
        assert!(matches!(s.get("q-0000", false), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn one_shot_processes_keep_the_wal_small_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let wal = dir.path().join("fak.db-wal");
        let mut largest = 0;
        for i in 0..400 {
            // What a hook does: open, append its decision (no flush), close.
            let mut s = Store::open_existing(dir.path()).unwrap().unwrap();
            let e = crate::audit::Entry::new(
                crate::audit::Kind::Decide,
                &format!("t{i}"),
                "Bash",
                "ALLOW",
                "NONE",
                "r",
                "d".repeat(64),
            );
            s.append(&[e], &[], false).unwrap();
            drop(s);
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        // Without the checkpoint on drop the WAL grew without end (about 2 MiB by now), and
        // every open read all of it.
        assert!(largest <= ONE_SHOT_WAL_BYTES + 64 * 1024, "the WAL grew to {largest} bytes");
        let s = Store::open_existing(dir.path()).unwrap().unwrap();
        let v = s.verify_audit().unwrap().unwrap();
        assert_eq!(v.rows, 400);
    }

    fn admit(s: &mut Store, trace: &str, raise: u8, text: &str) -> Recorded {
        let d = Digest::of(text);
        let a = Admission {
            tool: "WebFetch",
            text,
            digest: &d,
            trace: Some(trace),
            raise,
            quarantine: None,
            read: true,
            audit: None,
        };
        s.record(&a).unwrap()
    }

    #[test]
    fn a_store_of_an_older_fak_gets_the_new_tables() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Store::open_existing(dir.path()).unwrap().is_none(), "no database, nothing opened");
        // Session 11's store: pages and releases only.
        let old = rusqlite::Connection::open(dir.path().join("fak.db")).unwrap();
        old.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE pages (id TEXT PRIMARY KEY);").unwrap();
        drop(old);
        let s = Store::open_existing(dir.path()).unwrap().unwrap();
        assert_eq!(s.taint("t").unwrap(), 0);
    }

    #[test]
    fn taint_is_a_high_water_mark_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.taint("t").unwrap(), 0, "a trace never seen is trusted");
        assert_eq!(admit(&mut s, "t", 0, "a").taint, 0);
        assert!(s.traces().unwrap().is_empty(), "a trusted trace is not stored");
        assert_eq!(admit(&mut s, "t", 1, "b").taint, 1);
        assert_eq!(admit(&mut s, "t", 0, "c").taint, 1, "a trusted result does not lower it");
        drop(s);
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.taint("t").unwrap(), 1);
        assert_eq!(s.traces().unwrap()[0].source, "WebFetch");
        assert_eq!(s.reset("t").unwrap(), 1);
        assert_eq!(s.taint("t").unwrap(), 0);
        assert_eq!(s.reset("t").unwrap(), 0, "resetting a clean trace is harmless");
    }

    #[test]
    fn the_trace_table_forgets_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap().max_traces(3);
        for t in ["a", "b", "c"] {
            admit(&mut s, t, 1, t);
        }
        // `a` is used again (a trusted result still counts as use), so `b` is the oldest.
        admit(&mut s, "a", 0, "a2");
        admit(&mut s, "d", 1, "d");
        let mut ids: Vec<String> = s.traces().unwrap().into_iter().map(|t| t.id).collect();
        ids.sort();
        assert_eq!(ids, ["a", "c", "d"]);
        assert_eq!(s.taint("b").unwrap(), 0);
    }

    #[test]
    fn revoking_raises_readers_and_marks_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let w = admit(&mut s, "r1", 0, "payload").witness.unwrap();
        admit(&mut s, "r2", 1, "payload");
        admit(&mut s, "r3", 0, "other");
        assert!(!s.revoked(&Digest::of("payload")).unwrap());
        let revoked = s.revoke(&w, Some("hostile")).unwrap();
        assert!(revoked.revoked.is_some());
        assert_eq!(revoked.traces, ["r1", "r2"]);
        assert_eq!((s.taint("r1").unwrap(), s.taint("r2").unwrap(), s.taint("r3").unwrap()), (2, 2, 0));
        assert!(s.revoked(&Digest::of("payload")).unwrap());
        assert!(!s.revoked(&Digest::of("other")).unwrap());
        // Revoked twice: recorded twice, still revoked once.
        assert_eq!(s.revoke(&w, None).unwrap().revoked, revoked.revoked);
        assert!(matches!(s.revoke("w-nope", None), Err(StoreError::NoWitness(_))));
    }
}
