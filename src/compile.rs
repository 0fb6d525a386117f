//! `ir::Program` to `Dag`: the immutable decision structure every request shares.
//!
//! The Dag is a two-level dispatch. First the side (call or result) and the tool name pick a
//! `Bucket`: the rules that can apply to that tool, sorted most restrictive first. Then, per
//! bucket:
//!
//! - conditions are hash-consed into one node arena, so a condition several rules share is
//!   built once and its atoms are evaluated at most once per decision (`lower.rs`);
//! - per field (`args.command`, `path(args.file_path)`, ...), one aho-corasick pass over the
//!   literals that every regex, `contains`, `==` and `starts_with` on that field needs, and
//!   one GlobSet pass over its globs, say which atoms may be true (`prefilter.rs`). An atom
//!   whose literals are absent is false without running its regex; a rule whose condition
//!   needs such an atom (its trigger) is not looked at at all, so the cost of a decision does
//!   not grow with rules that cannot fire.
//!
//! INVARIANT: prefilters may say "maybe" but never "no" when the answer is yes. Compiling
//! with `CompileOptions { prefilter: false }` must give the same verdict on every input;
//! tests/it/props.rs and the fuzz targets check it against `eval::reference`.

mod lower;
mod prefilter;
mod typed;

use rustc_hash::FxHashMap as HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value as Json;
use smallvec::SmallVec;

use crate::eval::{
    is_advisory, over_budget, precheck, precheck_result, Call, Input, Outcome, Scope, ToolResult, TraceState, Verdict,
    V,
};
use crate::ir::{self, Side, VerdictKind};

pub use lower::{Bucket, Node, NodeId};
pub use prefilter::{glob_literal, regex_literals};

#[derive(Clone, Copy, Debug)]
pub struct CompileOptions {
    /// Build the aho-corasick and GlobSet prefilters (off only to test that they change
    /// nothing, and to measure what they save).
    pub prefilter: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { prefilter: true }
    }
}

/// The compiled policy. Immutable, `Send + Sync`, shared behind an `Arc`; a reload builds a
/// new one and swaps it whole.
#[derive(Debug)]
pub struct Dag {
    program: Arc<ir::Program>,
    call: SideTable,
    result: SideTable,
    options: CompileOptions,
    quant_filters: lower::ListCache,
    automata: prefilter::AutomatonCache,
    /// The program's detectors, built (and their keyword automaton) on first use: a call
    /// never needs them.
    detectors: OnceLock<crate::secrets::Detectors>,
}

#[derive(Debug)]
struct SideTable {
    /// Tool names some rule names exactly (or a prefix rule was resolved for) → bucket.
    exact: rustc_hash::FxHashMap<String, usize>,
    /// Every other tool: rules on `*` and on prefixes, each checking the tool name.
    fallback: usize,
    buckets: Vec<LazyBucket>,
}

/// A bucket's rules, lowered on first use: a one-shot decision builds only the bucket of its
/// tool. Tools with the same rules share one bucket.
#[derive(Debug)]
struct LazyBucket {
    name: String,
    rules: Vec<(usize, bool)>,
    built: OnceLock<Bucket>,
}

pub fn compile(program: ir::Program, options: CompileOptions) -> Dag {
    let program = Arc::new(program);
    let call = side_table(&program, Side::Call);
    let result = side_table(&program, Side::Result);
    Dag {
        program,
        call,
        result,
        options,
        quant_filters: lower::ListCache::default(),
        automata: Default::default(),
        detectors: OnceLock::new(),
    }
}

fn side_table(p: &ir::Program, side: Side) -> SideTable {
    let on_side: Vec<usize> = p.rules.iter().enumerate().filter(|(_, r)| r.side == side).map(|(i, _)| i).collect();
    let mut names: Vec<&str> =
        on_side.iter().filter_map(|i| p.rules.get(*i)).flat_map(|r| r.tools.exact.iter().map(String::as_str)).collect();
    names.sort_unstable();
    names.dedup();
    let mut buckets: Vec<LazyBucket> = Vec::new();
    let mut by_rules: HashMap<Vec<(usize, bool)>, usize> = HashMap::default();
    let mut exact = rustc_hash::FxHashMap::default();
    for name in names {
        let rules: Vec<(usize, bool)> = on_side
            .iter()
            .copied()
            .filter(|i| p.rules.get(*i).is_some_and(|r| r.tools.matches(name)))
            .map(|i| (i, false))
            .collect();
        let idx = *by_rules.entry(rules.clone()).or_insert_with(|| {
            buckets.push(LazyBucket { name: String::new(), rules, built: OnceLock::new() });
            buckets.len() - 1
        });
        if let Some(b) = buckets.get_mut(idx) {
            if !b.name.is_empty() {
                b.name.push_str(", ");
            }
            b.name.push_str(name);
        }
        exact.insert(name.to_string(), idx);
    }
    let fallback_rules: Vec<(usize, bool)> = on_side
        .iter()
        .copied()
        .filter_map(|i| {
            let r = p.rules.get(i)?;
            if r.tools.any {
                Some((i, false))
            } else if !r.tools.prefixes.is_empty() {
                Some((i, true))
            } else {
                None
            }
        })
        .collect();
    buckets.push(LazyBucket { name: "*".into(), rules: fallback_rules, built: OnceLock::new() });
    SideTable { exact, fallback: buckets.len() - 1, buckets }
}

impl Dag {
    /// The program's detectors (`result.secrets`, `result.injections`).
    pub fn detectors(&self) -> &crate::secrets::Detectors {
        self.detectors.get_or_init(|| crate::secrets::Detectors::new(&self.program.detectors))
    }

    pub fn program(&self) -> &ir::Program {
        &self.program
    }

    pub fn options(&self) -> CompileOptions {
        self.options
    }

    fn table(&self, side: Side) -> &SideTable {
        match side {
            Side::Call => &self.call,
            Side::Result => &self.result,
        }
    }

    fn bucket(&self, side: Side, tool: &str) -> Option<&Bucket> {
        let t = self.table(side);
        let idx = t.exact.get(tool).copied().unwrap_or(t.fallback);
        t.buckets.get(idx).map(|lb| self.built(lb))
    }

    fn built<'a>(&'a self, lb: &'a LazyBucket) -> &'a Bucket {
        lb.built.get_or_init(|| {
            lower::bucket(&self.program, &lb.rules, self.options, &lb.name, &self.quant_filters, &self.automata)
        })
    }

    /// Builds every bucket now instead of on first use (a server does this at start-up, so
    /// no request pays for it), on two threads: the largest buckets are dealt out first.
    /// List filters get their DFAs, which a one-shot `preflight` never builds.
    pub fn warm(&self) {
        let all: Vec<&LazyBucket> =
            [Side::Call, Side::Result].iter().flat_map(|s| self.table(*s).buckets.iter()).collect();
        let (mine, theirs) = crate::par::deal_two(all, |lb| lb.rules.len());
        std::thread::scope(|s| {
            if !theirs.is_empty() {
                s.spawn(|| {
                    for lb in &theirs {
                        self.built(lb);
                    }
                });
            }
            for lb in &mine {
                self.built(lb);
            }
        });
        if self.result.buckets.iter().any(|b| !b.rules.is_empty()) {
            self.detectors().warm();
        }
        lower::speed_up(&self.quant_filters);
    }

    /// Every bucket, built, for `--dump --format dag`.
    pub fn buckets(&self) -> Vec<(Side, &Bucket)> {
        let mut out = Vec::new();
        for side in [Side::Call, Side::Result] {
            for lb in &self.table(side).buckets {
                out.push((side, self.built(lb)));
            }
        }
        out
    }
}

/// The path a decision took, for `--explain`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Explain {
    /// The bucket the tool name selected.
    pub bucket: String,
    /// Prefilter atoms that fired: `field: atom`.
    pub prefilter_hits: Vec<String>,
    /// Rules looked at, in order, and whether their condition held.
    pub rules: Vec<(String, bool)>,
    /// Rules the prefilters ruled out without evaluating.
    pub skipped: usize,
    /// What the deciding rule found: the commands, paths or URLs its `any` held for.
    pub found: Vec<String>,
    /// The call's views, when a rule read them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<ViewSummary>,
}

/// The views of a call, described for `--explain`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ViewSummary {
    pub commands: Vec<String>,
    pub opaque: Vec<String>,
    pub writes: Vec<String>,
    pub urls: Vec<String>,
}

/// Decides one call.
pub fn decide(dag: &Dag, call: &Call, trace: &TraceState) -> Verdict {
    decide_inner(dag, call, trace, None)
}

/// Decides one call and says how.
pub fn decide_explained(dag: &Dag, call: &Call, trace: &TraceState) -> (Verdict, Explain) {
    let mut ex = Explain::default();
    let v = decide_inner(dag, call, trace, Some(&mut ex));
    (v, ex)
}

fn decide_inner(dag: &Dag, call: &Call, trace: &TraceState, ex: Option<&mut Explain>) -> Verdict {
    let nodes = match precheck(call) {
        Ok(n) => n,
        Err(v) => return v,
    };
    let input = Input::new(nodes, &call.tool, &call.args, None, trace);
    run(dag, Side::Call, &input, ex)
}

/// Decides one call and hands back the views of it the rules computed (none when no rule read
/// them), so a caller that needs them too (the change feed's written paths) does not compute
/// them again.
pub fn decide_with_view(dag: &Dag, call: &Call, trace: &TraceState) -> (Verdict, Option<crate::view::CallView>) {
    let nodes = match precheck(call) {
        Ok(n) => n,
        Err(v) => return (v, None),
    };
    let input = Input::new(nodes, &call.tool, &call.args, None, trace);
    let v = run(dag, Side::Call, &input, None);
    (v, input.into_view())
}

/// Decides what of a tool result the model may read.
pub fn admit(dag: &Dag, result: &ToolResult, trace: &TraceState) -> Verdict {
    admit_inner(dag, result, trace, None)
}

pub fn admit_explained(dag: &Dag, result: &ToolResult, trace: &TraceState) -> (Verdict, Explain) {
    let mut ex = Explain::default();
    let v = admit_inner(dag, result, trace, Some(&mut ex));
    (v, ex)
}

fn admit_inner(dag: &Dag, result: &ToolResult, trace: &TraceState, ex: Option<&mut Explain>) -> Verdict {
    let nodes = match precheck_result(result) {
        Ok(n) => n,
        Err(v) => return v,
    };
    static EMPTY: std::sync::OnceLock<Json> = std::sync::OnceLock::new();
    let args = EMPTY.get_or_init(|| Json::Object(serde_json::Map::new()));
    let input = Input::new(nodes, &result.tool, args, Some(&result.text), trace).with_detectors(dag.detectors(), false);
    let mut v = run(dag, Side::Result, &input, ex);
    v.kinds = input.found_kinds();
    v
}

const UNKNOWN: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
/// Bit set in an atom's state when a prefilter reported it.
const HIT: u8 = 4;

/// Per-field prefilter outcome.
const FIELD_NOT_RUN: u8 = 0;
/// The field is a string (or absent): a covered atom the prefilter did not report is false.
const FIELD_DECISIVE: u8 = 1;
/// The field is some other JSON value: the prefilter knows nothing.
const FIELD_OPAQUE: u8 = 2;

/// Per-decision scratch: field values, atom states, prefilter hits.
///
/// Inline up to sizes that cover the shipped floor and typical policies (a bucket of a few
/// hundred atoms, or lists of more than 64 commands, spill to the heap).
pub(crate) struct Run<'a> {
    pub scope: Scope<'a>,
    pub fields: SmallVec<[Option<V<'a>>; 8]>,
    pub field_modes: SmallVec<[u8; 16]>,
    /// Per atom: `UNKNOWN`, `FALSE` or `TRUE`, plus the `HIT` bit.
    pub atoms: SmallVec<[u8; 256]>,
    /// Atoms the prefilters reported, in the order found.
    pub hit_list: SmallVec<[u32; 16]>,
    /// Per list filter, once scanned: per quantifier, the elements its body may hold on.
    pub lists: SmallVec<[Option<lower::Candidates>; 4]>,
    /// The candidate sets' bits (see `lower::Candidates`).
    pub cands: SmallVec<[u64; 48]>,
    /// Per element of a lazily scanned list, the atoms its fields reported (see
    /// `lower::ListFilter::lazy`).
    pub reported: SmallVec<[u64; 64]>,
}

fn run(dag: &Dag, side: Side, input: &Input<'_>, mut ex: Option<&mut Explain>) -> Verdict {
    let Some(b) = dag.bucket(side, input.tool) else {
        return Verdict::builtin(
            VerdictKind::Deny,
            "MALFORMED",
            "fak.internal",
            Some("internal error: no bucket for the tool".into()),
        );
    };
    if let Some(e) = ex.as_deref_mut() {
        e.bucket = b.name.clone();
    }
    // The evaluation bound of every applicable rule, before any runs (see `eval::cost`).
    let scope = Scope::new(input);
    let mut bound = b.cost.eval(&scope);
    for (pos, c) in &b.tool_cost {
        let Some(br) = b.rules.get(*pos as usize) else { continue };
        let Some(rule) = dag.program.rules.get(br.rule) else { continue };
        if rule.tools.matches(input.tool) {
            bound = bound.saturating_add(c.eval(&scope));
        }
    }
    if let Some(v) = over_budget(bound) {
        return v;
    }
    // Filled in place: a `SmallVec` built by value and moved in costs a copy of its inline
    // array (the atoms' 256 bytes, a third of an Edit's copying).
    let mut st = Run {
        scope,
        fields: SmallVec::new(),
        field_modes: SmallVec::new(),
        atoms: SmallVec::new(),
        hit_list: SmallVec::new(),
        lists: SmallVec::new(),
        cands: SmallVec::new(),
        reported: SmallVec::new(),
    };
    st.fields.resize(b.fields.len(), None);
    st.field_modes.resize(b.fields.len(), FIELD_NOT_RUN);
    st.atoms.resize(b.atoms.len(), UNKNOWN);
    st.lists.resize(b.lists.len(), None);
    // Which rules to look at: all of them without prefilters; with them, the rules with no
    // trigger plus those whose trigger atoms the prefilters reported.
    let candidates: std::borrow::Cow<'_, [u32]> = if dag.options.prefilter {
        b.prefilter.run(b, &mut st);
        if let Some(e) = ex.as_deref_mut() {
            for a in &st.hit_list {
                e.prefilter_hits.push(b.describe_atom(*a as usize));
            }
        }
        if st.hit_list.is_empty() {
            // Nothing reported: the rules without a trigger, as they are (no allocation).
            std::borrow::Cow::Borrowed(b.always.as_slice())
        } else {
            let mut c = b.always.clone();
            for atom in &st.hit_list {
                if let Some(rs) = b.triggered.get(*atom as usize) {
                    c.extend_from_slice(rs);
                }
            }
            c.sort_unstable();
            c.dedup();
            std::borrow::Cow::Owned(c)
        }
    } else {
        std::borrow::Cow::Owned((0..u32::try_from(b.rules.len()).unwrap_or(u32::MAX)).collect())
    };
    if let Some(e) = ex.as_deref_mut() {
        e.skipped = b.rules.len().saturating_sub(candidates.len());
    }
    let program = &dag.program;
    let mut out = Outcome::new();
    let mut transformed = false;
    for &pos in candidates.iter() {
        let Some(br) = b.rules.get(pos as usize) else { continue };
        let Some(rule) = program.rules.get(br.rule) else { continue };
        // Past the advisories, the first DENY, QUARANTINE or ALLOW found decides its class and
        // everything less restrictive; all TRANSFORMs that hold are composed.
        if !br.advisory {
            let decided = out.deny.is_some()
                || out.quarantine.is_some()
                || (transformed && rule.verdict == VerdictKind::Allow)
                || out.allow.is_some();
            if decided {
                break;
            }
        }
        if br.check_tool && !rule.tools.matches(input.tool) {
            continue;
        }
        match b.eval_node(br.root, &mut st) {
            Ok(holds) => {
                if let Some(e) = ex.as_deref_mut() {
                    e.rules.push((rule.id.to_string(), holds));
                }
                if holds {
                    out.add(rule, br.advisory);
                    if rule.verdict == VerdictKind::Transform && !br.advisory {
                        transformed = true;
                    }
                }
            }
            Err(e) => {
                out.error = Some((rule, e));
                break;
            }
        }
    }
    let v = out.finish(program, side, input.tool, input.args);
    if let Some(e) = ex {
        explain_found(program, input, &v, e);
    }
    v
}

/// Re-evaluates the deciding rule, plainly, to name what it found, and describes the views.
fn explain_found(program: &ir::Program, input: &Input<'_>, v: &Verdict, e: &mut Explain) {
    if v.by.loc.is_some() {
        if let Some(rule) = program.rules.iter().find(|r| r.id == v.by.rule) {
            let mut scope = Scope::new(input);
            scope.witnesses = Some(Vec::new());
            let _ = scope.expr(&rule.cond);
            let mut found = scope.witnesses.unwrap_or_default();
            found.dedup();
            e.found = found;
        }
    }
    if let Some(view) = input.view_if_computed() {
        e.view = Some(ViewSummary {
            commands: view.shell().commands().map(|c| crate::eval::describe(&V::Cmd(c))).collect(),
            opaque: view.shell().opaque.clone(),
            writes: view.writes.clone(),
            urls: view.urls.iter().map(|u| u.url.clone()).collect(),
        });
    }
}

/// The rules in the order a bucket tries them: advisories (all evaluated), then DENY,
/// QUARANTINE, TRANSFORM, ALLOW; by id within a class.
pub(crate) fn priority(p: &ir::Program, r: &ir::Rule) -> (u8, u8, Arc<str>) {
    let advisory = is_advisory(p, r);
    (u8::from(!advisory), 3 - ir::rank(r.verdict), r.id.clone())
}
