//! The audit log: every decision and admission, hash-chained.
//!
//! One row per event in the state database (`store::Store::append`), never the arguments or
//! the result: the time, the trace, the tool, the verdict, the reason, the rule and the SHA-256
//! of the arguments (a decision) or of the result's text (an admission). Each row carries the
//! hash of its canonical line and the previous row's hash,
//!
//! ```text
//! hash(n) = SHA-256(hash(n-1) ‖ "\n" ‖ line(n))        hash(0) = 64 zeros
//! ```
//!
//! so changing, inserting or deleting a row anywhere but at the end breaks every hash after it
//! (`verify`). A log cut at the end stays a valid chain: an operator who needs that caught keeps
//! the last hash elsewhere (`fak audit verify` prints it) and compares.

use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The hash before the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an event was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A tool call decided.
    Decide,
    /// A tool result admitted (or quarantined).
    Admit,
    /// A witness revoked.
    Revoke,
    /// A trace's taint reset.
    Reset,
    /// The floor replaced (`tool` holds where it came from).
    Reload,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decide => "decide",
            Kind::Admit => "admit",
            Kind::Revoke => "revoke",
            Kind::Reset => "reset",
            Kind::Reload => "reload",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "decide" => Kind::Decide,
            "admit" => Kind::Admit,
            "revoke" => Kind::Revoke,
            "reset" => Kind::Reset,
            "reload" => Kind::Reload,
            _ => return None,
        })
    }
}

/// One event, before it is chained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub kind: Kind,
    /// The trace, or "" when the caller named none.
    pub trace: String,
    pub tool: String,
    /// ALLOW, DENY, TRANSFORM, QUARANTINE (empty for revocations, resets and reloads).
    pub verdict: String,
    pub reason: String,
    /// The rule that decided (`by`).
    pub rule: String,
    /// SHA-256 (hex) of the arguments or the result's text; of the witness id for a revocation.
    pub digest: String,
}

impl Entry {
    /// An entry stamped now.
    pub fn new(kind: Kind, trace: &str, tool: &str, verdict: &str, reason: &str, rule: &str, digest: String) -> Entry {
        Entry {
            at: now_ms(),
            kind,
            trace: trace.to_string(),
            tool: tool.to_string(),
            verdict: verdict.to_string(),
            reason: reason.to_string(),
            rule: rule.to_string(),
            digest,
        }
    }

    /// The entry of a decision: the arguments are digested, never kept.
    pub fn decision(trace: Option<&str>, call: &crate::eval::Call, v: &crate::eval::Verdict) -> Entry {
        let args = serde_json::to_string(&call.args).unwrap_or_default();
        Entry::new(
            Kind::Decide,
            trace.unwrap_or(""),
            &call.tool,
            crate::eval::kind_str(v.verdict),
            &v.reason,
            &v.by.rule,
            sha256_hex(args.as_bytes()),
        )
    }
}

/// A chained row as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: Entry,
    pub hash: String,
}

/// The canonical line of an entry, which its hash covers: the fields in a fixed order as a
/// JSON array, so no field's text can run into the next.
pub fn line(seq: i64, e: &Entry) -> String {
    serde_json::json!([seq, e.at, e.kind.as_str(), e.trace, e.tool, e.verdict, e.reason, e.rule, e.digest]).to_string()
}

/// The hash of a row given the previous row's.
pub fn chain(prev: &str, seq: i64, e: &Entry) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(line(seq, e).as_bytes());
    hex(&h.finalize())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex, a digit at a time (a `write!` a byte was a few percent of a loaded server's
/// time).
pub(crate) fn hex(bytes: &[u8]) -> String {
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 0xf));
    }
    s
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Why a log does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("row {seq}: its hash does not match its contents and the row before it (changed, inserted, or a row before it removed)")]
    Hash { seq: i64 },
    #[error("row {seq} follows row {prev}: rows are missing between them")]
    Gap { seq: i64, prev: i64 },
}

/// What a walk of the whole log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    pub rows: u64,
    /// The last row's hash (GENESIS for an empty log).
    pub head: String,
}

/// Checks rows given in order, starting from the first row of the log.
pub struct Verifier {
    prev_hash: String,
    prev_seq: i64,
    rows: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier { prev_hash: GENESIS.to_string(), prev_seq: 0, rows: 0 }
    }
}

impl Verifier {
    pub fn push(&mut self, row: &Row) -> Result<(), Broken> {
        if row.seq != self.prev_seq + 1 {
            return Err(Broken::Gap { seq: row.seq, prev: self.prev_seq });
        }
        if chain(&self.prev_hash, row.seq, &row.entry) != row.hash {
            return Err(Broken::Hash { seq: row.seq });
        }
        self.prev_hash.clone_from(&row.hash);
        self.prev_seq = row.seq;
        self.rows += 1;
        Ok(())
    }

    pub fn finish(self) -> Verified {
        Verified { rows: self.rows, head: self.prev_hash }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    fn entry(n: i64) -> Entry {
        Entry {
            at: 1_700_000_000_000 + n,
            kind: Kind::Decide,
            trace: "t".into(),
            tool: "Bash".into(),
            verdict: "DENY".into(),
            reason: "POLICY_BLOCK".into(),
            rule: "shell.rm".into(),
            digest: sha256_hex(n.to_string().as_bytes()),
        }
    }

    fn rows(n: i64) -> Vec<Row> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let e = entry(seq);
                let hash = chain(&prev, seq, &e);
                prev.clone_from(&hash);
                Row { seq, entry: e, hash }
            })
            .collect()
    }

    fn verify(rows: &[Row]) -> Result<Verified, Broken> {
        let mut v = Verifier::default();
        for r in rows {
            v.push(r)?;
        }
        Ok(v.finish())
    }

    #[test]
    fn a_chain_verifies_and_any_change_breaks_it_where_it_was_made() {
        let good = rows(5);
        let ok = verify(&good).unwrap();
        assert_eq!((ok.rows, ok.head.as_str()), (5, good[4].hash.as_str()));
        assert_eq!(verify(&[]).unwrap().head, GENESIS);

        let mut changed = good.clone();
        changed[2].entry.verdict = "ALLOW".into();
        assert_eq!(verify(&changed), Err(Broken::Hash { seq: 3 }));

        let mut removed = good.clone();
        removed.remove(1);
        assert_eq!(verify(&removed), Err(Broken::Gap { seq: 3, prev: 1 }));

        // Renumbered after a removal: the hashes catch it.
        let mut renumbered = good.clone();
        renumbered.remove(1);
        for (i, r) in renumbered.iter_mut().enumerate() {
            r.seq = i as i64 + 1;
        }
        assert_eq!(verify(&renumbered), Err(Broken::Hash { seq: 2 }));
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        let mut a = entry(1);
        let mut b = entry(1);
        a.trace = "ab".into();
        a.tool = "c".into();
        b.trace = "a".into();
        b.tool = "bc".into();
        assert_ne!(chain(GENESIS, 1, &a), chain(GENESIS, 1, &b));
    }
}
