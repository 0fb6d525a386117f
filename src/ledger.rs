//! Deciding with memory: the trace's taint, witnesses and revocations around the pure
//! `decide` and `admit`.
//!
//! `compile::decide` and `compile::admit` are functions of the Dag, the input and a
//! `TraceState`; they do no IO. A conversation is more than one call, so this layer reads the
//! trace's taint from the store before a decision and writes what an admission leaves after
//! it, in one transaction (`Store::record`):
//!
//! - a result the model reads gets a witness (its digest, the trace, the time);
//! - a quarantined result is paged out, and the model gets the page's stub;
//! - the trace is raised to the result's source level (`ir::Program::source_level`:
//!   `source` declarations, untrusted when none names the tool), and to untrusted at least
//!   when the result is held back for anything but a secret (an injection, revoked bytes);
//! - a result whose bytes were revoked (`Store::revoke`) is quarantined whatever the rules say:
//!   QUARANTINE TRUST_VIOLATION, kind `revoked`.
//!
//! A trace the caller does not name is not remembered: its taint is the caller's, and nothing
//! is raised. Every `fak` front end (preflight, and later the hook and the gateway) goes
//! through here, so they agree on what a trace is.

use std::sync::Arc;

use crate::compile::{self, Dag};
use crate::eval::{Call, ToolResult, TraceState, Verdict};
use crate::ir::VerdictKind;
use crate::store::{Admission, Digest, Recorded, Store, StoreError};

/// The rule id of the refusals this layer makes itself.
pub const BY_WITNESS: &str = "fak.witness";

/// The trace state a decision in `trace` sees: `base`, with its taint raised to the stored one.
pub fn state(store: &Store, trace: Option<&str>, base: &TraceState) -> Result<TraceState, StoreError> {
    let mut st = base.clone();
    if let Some(t) = trace {
        st.taint = st.taint.max(store.taint(t)?);
    }
    Ok(st)
}

/// Decides a call in a trace. Reads the store, never writes it.
pub fn decide(
    store: &Store,
    dag: &Dag,
    call: &Call,
    trace: Option<&str>,
    base: &TraceState,
) -> Result<(Verdict, compile::Explain), StoreError> {
    let st = state(store, trace, base)?;
    Ok(compile::decide_explained(dag, call, &st))
}

/// Admits a result in a trace and records what it leaves: its witness or page, and the trace's
/// new taint (`Recorded::taint`). The write is committed before this returns.
pub fn admit(
    store: &mut Store,
    dag: &Dag,
    result: &ToolResult,
    trace: Option<&str>,
    base: &TraceState,
) -> Result<(Verdict, compile::Explain, Recorded), StoreError> {
    let st = state(store, trace, base)?;
    let digest = Digest::of(&result.text);
    let (mut v, explain) = if store.revoked(&digest)? {
        let mut v = Verdict::builtin(
            VerdictKind::Quarantine,
            "TRUST_VIOLATION",
            BY_WITNESS,
            Some(format!("the same bytes were revoked (witness {})", digest.witness_id())),
        );
        v.kinds.push(Arc::from("revoked"));
        (v, compile::Explain::default())
    } else {
        compile::admit_explained(dag, result, &st)
    };
    let kinds: Vec<String> = v.kinds.iter().map(|k| k.to_string()).collect();
    let quarantine = (v.verdict == VerdictKind::Quarantine).then_some((&*v.reason, kinds.as_slice()));
    let entry = crate::audit::Entry::new(
        crate::audit::Kind::Admit,
        trace.unwrap_or(""),
        &result.tool,
        crate::eval::kind_str(v.verdict),
        &v.reason,
        &v.by.rule,
        digest.hex().to_string(),
    );
    let admission = Admission {
        tool: &result.tool,
        text: &result.text,
        digest: &digest,
        trace,
        // A result held back for anything but a secret (an injection, revoked bytes) says its
        // source is hostile, and a client that ignores the stub may have shown it anyway: it
        // raises the trace to untrusted at least. A secret says nothing about its source.
        raise: if v.is_allow() || matches!(&*v.reason, "SECRET_EXFIL" | "RESULT_SECRET_DISCOVERED") {
            dag.program().source_level(&result.tool)
        } else {
            dag.program().source_level(&result.tool).max(crate::ir::UNTRUSTED)
        },
        quarantine,
        read: v.verdict == VerdictKind::Allow,
        audit: Some(&entry),
    };
    let rec = store.record(&admission)?;
    v.page = rec.page.as_deref().map(Arc::from);
    v.witness = rec.witness.as_deref().map(Arc::from);
    Ok((v, explain, rec))
}
