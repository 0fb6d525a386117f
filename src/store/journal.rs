//! The store's two append-only logs: the audit chain (`crate::audit`) and the change feed.
//!
//! The change feed is what `GET /v1/fak/changes` serves: every file an admitted call writes
//! (path, tool, trace) and every revocation, across traces, numbered by a cursor (`seq`) that
//! only grows, so a consumer that remembers the last `seq` it read misses nothing across
//! restarts of either side.

use rusqlite::OptionalExtension as _;
use serde::Serialize;

use super::{Store, StoreError};
use crate::audit::{self, Entry, Row};

/// A change to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeIn {
    /// An admitted call writes this (canonical) path.
    Write { path: String, tool: String, trace: String },
    /// A witness was revoked.
    Revoke { witness: String },
}

/// A recorded change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// `write` or `revoke`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<String>,
}

/// The schema of the two logs, created with the rest (`Store::open`).
pub(super) const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        trace TEXT NOT NULL,
        tool TEXT NOT NULL,
        verdict TEXT NOT NULL,
        reason TEXT NOT NULL,
        rule TEXT NOT NULL,
        digest TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS changes (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        path TEXT,
        tool TEXT,
        trace TEXT,
        witness TEXT
    );";

/// Appends audit entries and changes inside an open transaction: each entry chained to the
/// last row written (this transaction holds the write lock, so no other writer can slip in).
pub(super) fn append_in(tx: &rusqlite::Connection, entries: &[Entry], changes: &[ChangeIn]) -> rusqlite::Result<()> {
    if !entries.is_empty() {
        let last: Option<(i64, String)> = tx
            .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (mut seq, mut prev) = last.unwrap_or((0, audit::GENESIS.to_string()));
        let mut ins = tx.prepare_cached(
            "INSERT INTO audit (seq, at, kind, trace, tool, verdict, reason, rule, digest, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for e in entries {
            seq += 1;
            let hash = audit::chain(&prev, seq, e);
            ins.execute(rusqlite::params![
                seq,
                e.at,
                e.kind.as_str(),
                e.trace,
                e.tool,
                e.verdict,
                e.reason,
                e.rule,
                e.digest,
                hash
            ])?;
            prev = hash;
        }
    }
    if !changes.is_empty() {
        let at = audit::now_ms();
        let mut ins = tx.prepare_cached(
            "INSERT INTO changes (at, kind, path, tool, trace, witness) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for c in changes {
            match c {
                ChangeIn::Write { path, tool, trace } => {
                    ins.execute(rusqlite::params![at, "write", path, tool, trace, Option::<&str>::None])?
                }
                ChangeIn::Revoke { witness } => ins.execute(rusqlite::params![
                    at,
                    "revoke",
                    Option::<&str>::None,
                    Option::<&str>::None,
                    Option::<&str>::None,
                    witness
                ])?,
            };
        }
    }
    Ok(())
}

impl Store {
    /// Appends audit entries and changes in one transaction.
    ///
    /// `durable`: committed with a sync of the write-ahead log (`synchronous = FULL`), as
    /// admissions are. Without it (`NORMAL`), a commit survives the process being killed but
    /// not the machine losing power before the next checkpoint: what a server's batched
    /// decision records use, so that recording one costs microseconds, not a disk flush.
    pub fn append(&mut self, entries: &[Entry], changes: &[ChangeIn], durable: bool) -> Result<(), StoreError> {
        if entries.is_empty() && changes.is_empty() {
            return Ok(());
        }
        // Statements prepared once per connection: a server appends thousands of times a
        // second, and parsing BEGIN, COMMIT and the pragmas each time was a tenth of its work.
        let run = |conn: &rusqlite::Connection, sql: &str| conn.prepare_cached(sql).and_then(|mut q| q.execute([]));
        let conn = &self.conn;
        if !durable {
            run(conn, "PRAGMA synchronous = NORMAL").map_err(|e| self.err(e))?;
        }
        let res = (|| {
            run(conn, "BEGIN IMMEDIATE")?;
            match append_in(conn, entries, changes) {
                Ok(()) => run(conn, "COMMIT").map(|_| ()),
                Err(e) => {
                    let _ = run(conn, "ROLLBACK");
                    Err(e)
                }
            }
        })();
        if !durable {
            run(conn, "PRAGMA synchronous = FULL").map_err(|e| self.err(e))?;
        }
        res.map_err(|e| self.err(e))
    }

    /// SQLite's data version: it changes when another connection (another process) commits.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut q| q.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(e))
    }

    /// Audit rows after `after`, at most `limit`, oldest first.
    pub fn audit_rows(&self, after: i64, limit: u32) -> Result<Vec<Row>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT seq, at, kind, trace, tool, verdict, reason, rule, digest, hash FROM audit
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(rusqlite::params![after, limit], |r| {
                let kind: String = r.get(2)?;
                Ok(Row {
                    seq: r.get(0)?,
                    entry: Entry {
                        at: r.get(1)?,
                        kind: audit::Kind::parse(&kind).unwrap_or(audit::Kind::Decide),
                        trace: r.get(3)?,
                        tool: r.get(4)?,
                        verdict: r.get(5)?,
                        reason: r.get(6)?,
                        rule: r.get(7)?,
                        digest: r.get(8)?,
                    },
                    // A kind fak never writes was changed by hand: the row cannot verify.
                    hash: if audit::Kind::parse(&kind).is_some() { r.get(9)? } else { String::new() },
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The last audit row's number (0 when the log is empty).
    pub fn audit_head(&self) -> Result<i64, StoreError> {
        self.conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM audit", [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    /// Walks the whole audit chain.
    pub fn verify_audit(&self) -> Result<Result<audit::Verified, audit::Broken>, StoreError> {
        let mut v = audit::Verifier::default();
        let mut after = 0;
        loop {
            let rows = self.audit_rows(after, 4096)?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            for r in &rows {
                if let Err(b) = v.push(r) {
                    return Ok(Err(b));
                }
            }
        }
        Ok(Ok(v.finish()))
    }

    /// Changes after `after`, at most `limit`, oldest first.
    pub fn changes(&self, after: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT seq, at, kind, path, tool, trace, witness FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(rusqlite::params![after, limit], |r| {
                Ok(Change {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    kind: r.get(2)?,
                    path: r.get(3)?,
                    tool: r.get(4)?,
                    trace: r.get(5)?,
                    witness: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The last change's number (0 when there is none).
    pub fn changes_head(&self) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes")
            .and_then(|mut q| q.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::audit::Kind;

    fn e(tool: &str) -> Entry {
        Entry::new(Kind::Decide, "t", tool, "DENY", "POLICY_BLOCK", "r", audit::sha256_hex(tool.as_bytes()))
    }

    #[test]
    fn the_chain_spans_appends_and_restarts_and_a_changed_row_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.append(&[e("a"), e("b")], &[], false).unwrap();
        s.append(&[e("c")], &[], true).unwrap();
        drop(s);
        let mut s = Store::open(dir.path()).unwrap();
        s.append(&[e("d")], &[], false).unwrap();
        let ok = s.verify_audit().unwrap().unwrap();
        assert_eq!(ok.rows, 4);
        assert_eq!(s.audit_head().unwrap(), 4);
        assert_eq!(s.audit_rows(2, 10).unwrap().iter().map(|r| r.entry.tool.as_str()).collect::<Vec<_>>(), ["c", "d"]);
        s.conn.execute("UPDATE audit SET verdict = 'ALLOW' WHERE seq = 2", []).unwrap();
        assert_eq!(s.verify_audit().unwrap(), Err(audit::Broken::Hash { seq: 2 }));
    }

    #[test]
    fn changes_are_numbered_and_read_after_a_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.changes_head().unwrap(), 0);
        let w = |p: &str| ChangeIn::Write { path: p.into(), tool: "Write".into(), trace: "t".into() };
        s.append(&[], &[w("/w/a"), w("/w/b")], false).unwrap();
        s.append(&[], &[ChangeIn::Revoke { witness: "w-1".into() }], true).unwrap();
        let all = s.changes(0, 100).unwrap();
        assert_eq!(all.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[2].kind, "revoke");
        assert_eq!(all[2].witness.as_deref(), Some("w-1"));
        assert_eq!(s.changes(2, 100).unwrap().len(), 1);
        assert_eq!(s.changes(0, 1).unwrap().len(), 1);
        assert_eq!(s.changes_head().unwrap(), 3);
    }
}
