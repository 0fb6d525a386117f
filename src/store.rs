//! Durable state: quarantined results (pages), and their releases.
//!
//! An embedded SQLite database (`fak.db`) in a state directory, in WAL mode with full
//! synchronisation: a page is committed before its id is handed out, so a process killed right
//! after a quarantine loses nothing. One table per kind of record; every write is one
//! transaction. The pages are content-addressed (`q-` and the first 16 hex digits of the
//! text's SHA-256), so quarantining the same bytes twice keeps one page.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory `{0}`: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("the state database `{0}`: {1}")]
    Db(PathBuf, rusqlite::Error),
    #[error("no quarantined result `{0}`")]
    NotFound(String),
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
             );",
        )
        .map_err(db)?;
        Ok(Store { conn, path })
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Db(self.path.clone(), e)
    }

    /// Pages `text` out, committed before this returns; the same text again is the same page.
    pub fn quarantine(&self, tool: &str, reason: &str, kinds: &[String], text: &str) -> Result<Page, StoreError> {
        let digest = hex(&Sha256::digest(text.as_bytes()));
        let id = format!("q-{}", digest.get(..16).unwrap_or(&digest));
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
        let tx = self.conn.transaction().map_err(|e| StoreError::Db(self.path.clone(), e))?;
        tx.execute("INSERT INTO releases (page, at) VALUES (?1, ?2)", rusqlite::params![id, at])
            .and_then(|_| tx.execute("UPDATE pages SET released = ?2 WHERE id = ?1", rusqlite::params![id, at]))
            .map_err(|e| StoreError::Db(self.path.clone(), e))?;
        tx.commit().map_err(|e| StoreError::Db(self.path.clone(), e))?;
        Ok(Page { released: Some(at), ..page })
    }
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

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
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
}
