//! Rules of one bucket to hash-consed nodes, atoms and fields, and their evaluation.

use rustc_hash::FxHashMap as HashMap;

use super::prefilter::{self, Prefilter};
use super::typed::Body;
use super::{priority, CompileOptions, Run, FALSE, FIELD_DECISIVE, HIT, TRUE};
use crate::eval::{CmdField, EvalError, V};
use crate::ir::{self, Atom};

pub type NodeId = u32;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    True,
    False,
    And(Vec<NodeId>),
    Or(Vec<NodeId>),
    Not(NodeId),
    /// A leaf: an index into `Bucket::atoms`.
    Atom(u32),
    /// A quantifier, walked by the reference semantics; when it is an `any` over a list that
    /// does not depend on a variable, its place in the bucket's list filters (filter,
    /// quantifier) says which elements to walk (see `ListFilter`).
    Quant(ir::Expr, Option<(u32, u32)>),
}

/// The variable every quantifier of a `ListFilter` is renamed to, so that `c.name` in one
/// rule and `x.name` in another are one field with one automaton.
const SHARED_VAR: u32 = u32::MAX;

/// One scan of a list for every `any(x in LIST: BODY)` of a bucket over it.
///
/// Most bodies say which element they are about by a string field: `c.name == "rm"`,
/// `c.name in escalators`, `c.name starts_with "mkfs."`. The field that keys the most bodies
/// this way gets an exact-match table (and a short list of prefixes): one hash lookup per
/// element says which of those quantifiers may hold on it. The fields of the other bodies that
/// depend only on the variable (`x`, `path(x)`, `x.code`, ...) get per-field aho-corasick and
/// GlobSet filters, as a bucket's fields do, and each such quantifier gets `trigger` atoms one
/// of which an element must report for its body to hold on that element. A decision scans
/// each element of the list once, for all the quantifiers together, and keeps for each
/// quantifier the elements that may hold: the body runs on those alone, and a quantifier with
/// none is false without running. So the floor's twenty rules over `shell.commands` cost one
/// lookup of each command's name, and its rules over `writes` one GlobSet match per path.
#[derive(Debug)]
pub struct ListFilter {
    list: ir::Value,
    /// The quantifiers, as written, in member order (few: found by a linear search).
    members: Vec<ir::Expr>,
    /// The key field (a value of the variable alone) and its tables.
    key: Option<KeyTable>,
    fields: Vec<ir::Value>,
    /// Per field, the command field it is when it is one (see `KeyTable::typed`).
    typed: Vec<Option<CmdField>>,
    prefilter: Prefilter,
    /// Atoms `x.FIELD` on a boolean field (atom, field), reported when the field is true:
    /// `c.recursive or c.code matches fork_loops` is a candidate only on a recursive command
    /// or one whose code holds a literal of the regexes.
    flags: Vec<(u32, u32)>,
    atoms: usize,
    /// Per quantifier, what makes an element a candidate.
    triggers: Vec<Trigger>,
    /// The quantifiers whose trigger is `Always`.
    always: Vec<u32>,
    /// Per quantifier: the scans its trigger atoms come from (bit `i` for prefilter field
    /// filter `i`, bit `P + j` for flag `j`, P the number of field filters) and those atoms as
    /// a bit set. A field is scanned over the list when the first quantifier that needs it
    /// runs, so `r.text matches credential_files` behind a false conjunct never reads a
    /// command's text. `None` past 64 quantifiers, atoms or scans: then the first quantifier
    /// to run scans every field for all of them.
    lazy: Option<Vec<(u64, u64)>>,
    /// Per quantifier keyed by one conjunct of its body (`c.name == "git" and ...`), the body
    /// without that conjunct, over the quantifier's own variable: every element the key
    /// table picks for it makes that conjunct true, so it is not evaluated again. Only keyed
    /// quantifiers (`Trigger::Key`, whose elements come from the key table alone) have one.
    lean: Vec<Option<ir::Expr>>,
    /// Per keyed quantifier, a second key its body gives another field (`c.subcommand ==
    /// "clean"` under `c.name == "git"`): an element the key table picks is a candidate only
    /// when that field's value passes too, so `git add` runs none of the `git push`, `git
    /// clean` bodies.
    guards: Vec<Option<Guard>>,
    /// Per keyed quantifier whose body tests the key field beyond the conjunct that gave the
    /// key (`(c.name in publishers and c.operands contains "publish") or (c.name == "twine"
    /// and ...)`): the key field in the quantifier's own variable, and for each exact key
    /// value the body with those tests decided (`cargo` leaves `c.operands contains
    /// "publish"`). The key table picked the element for that value, so the tests are known.
    special: Vec<Option<(ir::Value, HashMap<Box<str>, ir::Expr>)>>,
    /// Per quantifier, the bodies `eval_listed` runs compiled over the command (see
    /// `typed::Body`); a body that reads what a `Body` does not is left to the reference.
    compiled: Vec<Compiled>,
    /// Per prefilter field filter over `c.name` whose reports depend on the name alone: the
    /// atoms (as bits, as `scan_commands` keeps them) it reports on each `ProgramId`'s name,
    /// so a lazy scan of the names reads a table for the commands with an id.
    by_program: Vec<Option<Box<[u64]>>>,
}

/// A quantifier's bodies compiled over the command its list filter picked.
#[derive(Debug, Default)]
struct Compiled {
    /// The lean body, or the whole body when it has none.
    body: Option<Body>,
    /// With a `special` key: the key as a command's string field and, per key value, the
    /// folded body compiled. A special key that is not such a field leaves every element to
    /// the reference (`body` is then `None` too).
    by_value: Option<(CmdField, HashMap<Box<str>, Option<Body>>)>,
}

impl Compiled {
    /// The compiled body to run on `c`, as `eval_listed` picks the reference's.
    #[inline]
    fn pick(&self, c: crate::shell::Command<'_>) -> Option<&Body> {
        match &self.by_value {
            Some((key, bodies)) => match key.str_of(c).flatten().and_then(|v| bodies.get(v)) {
                Some(b) => b.as_ref(),
                None => self.body.as_ref(),
            },
            None => self.body.as_ref(),
        }
    }
}

#[derive(Debug)]
enum Trigger {
    /// The key table says.
    Key,
    /// One of these atoms (this filter's prefilter numbering) must be reported.
    Atoms(Vec<u32>),
    /// Every element is a candidate.
    Always,
}

/// Quantifiers keyed by one string field's value.
#[derive(Debug)]
struct KeyTable {
    field: ir::Value,
    /// The field as a command's, when it is one (`c.name`): read without matching its name.
    typed: Option<CmdField>,
    exact: rustc_hash::FxHashMap<Box<str>, Vec<u32>>,
    prefixes: Vec<(Box<str>, u32)>,
    /// When the key is `c.name`: per `ProgramId`, the quantifiers `pick` gives that program's
    /// name (exact and prefix keys), so a command with an id is keyed without hashing it.
    by_program: Vec<Box<[u32]>>,
}

impl KeyTable {
    /// The quantifiers an element whose key field is `t` is a candidate for: those keyed by
    /// it exactly (when `exact`: the field's value is a string) or by one of its prefixes,
    /// and passing their guard.
    fn pick(&self, t: &str, exact: bool, guarded: impl Fn(u32) -> bool, mut set: impl FnMut(u32)) {
        if exact {
            for m in self.exact.get(t).into_iter().flatten() {
                if guarded(*m) {
                    set(*m);
                }
            }
        }
        for (p, m) in &self.prefixes {
            if t.starts_with(p.as_ref()) && guarded(*m) {
                set(*m);
            }
        }
    }

    /// `by_program`, filled when the key is `c.name`.
    fn with_programs(mut self) -> KeyTable {
        if self.typed == Some(CmdField::Name) {
            self.by_program = crate::shell::programs::ProgramId::names()
                .iter()
                .map(|name| {
                    let mut ms = Vec::new();
                    self.pick(name, true, |_| true, |m| ms.push(m));
                    ms.into_boxed_slice()
                })
                .collect();
        }
        self
    }
}

/// A keyed quantifier's second key (see `ListFilter::guards`).
#[derive(Debug)]
struct Guard {
    field: ir::Value,
    typed: Option<CmdField>,
    exact: Vec<Box<str>>,
    prefixes: Vec<Box<str>>,
}

impl Guard {
    /// Whether the body may hold on an element whose guard field is `v`.
    fn passes(&self, v: &crate::eval::V<'_>) -> bool {
        match v.text() {
            Some(t) if v.is_str() => self.passes_str(Some(&t)),
            Some(t) => self.prefixes.iter().any(|p| t.starts_with(&**p)),
            None => false,
        }
    }

    /// `passes` for a string field's value (`None`: the element has none).
    fn passes_str(&self, t: Option<&str>) -> bool {
        let Some(t) = t else { return false };
        self.exact.iter().any(|e| **e == *t) || self.prefixes.iter().any(|p| t.starts_with(&**p))
    }
}

/// The command field `v` reads, when it is `x.FIELD` of the filter's element.
fn typed_field(v: &ir::Value) -> Option<CmdField> {
    field_of_var(v, SHARED_VAR)
}

/// The command field `v` reads of variable `var` (`c.name`), when it is one.
fn field_of_var(v: &ir::Value, var: u32) -> Option<CmdField> {
    match v {
        ir::Value::Var(id, path) if *id == var => match path.as_slice() {
            [key] => CmdField::of(key),
            _ => None,
        },
        _ => None,
    }
}

/// Field `v` of the filter's element, bound in `scope`: when the element is a command
/// (`item`), a command field straight from it; anything else by evaluating it.
#[inline]
fn element_field<'a>(
    typed: Option<CmdField>,
    v: &'a ir::Value,
    item: &Option<crate::shell::Command<'a>>,
    scope: &crate::eval::Scope<'a>,
) -> V<'a> {
    match (typed, item) {
        (Some(f), Some(c)) => f.of_command(*c),
        _ => scope.value(v),
    }
}

/// `items` joined by `and`: one item is itself, none is `true`.
fn all_of(items: Vec<ir::Expr>) -> ir::Expr {
    match <[ir::Expr; 1]>::try_from(items) {
        Ok([one]) => one,
        Err(items) if items.is_empty() => ir::Expr::True,
        Err(items) => ir::Expr::And(items),
    }
}

/// `items` joined by `or`: one item is itself, none is `false`.
fn any_of(items: Vec<ir::Expr>) -> ir::Expr {
    match <[ir::Expr; 1]>::try_from(items) {
        Ok([one]) => one,
        Err(items) if items.is_empty() => ir::Expr::False,
        Err(items) => ir::Expr::Or(items),
    }
}

/// The conjunction of `items` without item `j` (a body without its key conjunct).
fn all_but(items: &[ir::Expr], j: usize) -> ir::Expr {
    all_of(items.iter().enumerate().filter(|(i, _)| *i != j).map(|(_, e)| e.clone()).collect())
}

/// `e` with the tests on `field` decided for the value `value` (a string): `==`, `!=`, `in` a
/// literal list and `starts_with` a literal, then `and`/`or`/`not` simplified around them.
/// Other tests are kept as they are.
fn fold_key(e: &ir::Expr, field: &ir::Value, value: &str) -> ir::Expr {
    let known = |b: bool| if b { ir::Expr::True } else { ir::Expr::False };
    match e {
        ir::Expr::Atom(a) => match a {
            Atom::Cmp(op @ (ir::CmpOp::Eq | ir::CmpOp::Ne), l, ir::Value::Lit(x))
            | Atom::Cmp(op @ (ir::CmpOp::Eq | ir::CmpOp::Ne), ir::Value::Lit(x), l)
                if l == field =>
            {
                match x.0.as_str() {
                    Some(x) => known((x == value) == matches!(op, ir::CmpOp::Eq)),
                    None => e.clone(),
                }
            }
            Atom::In(l, r) if l == field => match list_strings(r) {
                Some(items) => known(items.contains(&value)),
                None => e.clone(),
            },
            Atom::StartsWith(l, ir::Value::Lit(x)) if l == field => match x.0.as_str() {
                Some(x) => known(value.starts_with(x)),
                None => e.clone(),
            },
            _ => e.clone(),
        },
        ir::Expr::Not(inner) => match fold_key(inner, field, value) {
            ir::Expr::True => ir::Expr::False,
            ir::Expr::False => ir::Expr::True,
            other => ir::Expr::Not(Box::new(other)),
        },
        ir::Expr::And(items) | ir::Expr::Or(items) => {
            // `false` decides an `and` and `true` an `or`; the other constant drops out.
            let and = matches!(e, ir::Expr::And(_));
            let mut kept = Vec::new();
            for i in items {
                match fold_key(i, field, value) {
                    ir::Expr::True if and => {}
                    ir::Expr::False if !and => {}
                    decided @ (ir::Expr::True | ir::Expr::False) => return decided,
                    other => kept.push(other),
                }
            }
            if and {
                all_of(kept)
            } else {
                any_of(kept)
            }
        }
        ir::Expr::True | ir::Expr::False | ir::Expr::Quant { .. } => e.clone(),
    }
}

/// The guard of a keyed body (renamed to the shared variable) whose key conjunct on `key` is
/// set aside: the first other field its remaining conjuncts key.
fn guard_of(body: &ir::Expr, key: &ir::Value) -> Option<Guard> {
    let ir::Expr::And(items) = body else { return None };
    let rest = all_but(items, key_conjunct(items, key)?);
    let mut fields = Vec::new();
    key_fields(&rest, &mut fields);
    fields.into_iter().filter(|f| f != key).find_map(|f| {
        let k = key_of(&rest, &f)?;
        let exact = k.exact.iter().map(|e| Box::from(*e)).collect();
        let prefixes = k.prefixes.iter().map(|p| Box::from(*p)).collect();
        Some(Guard { typed: typed_field(&f), field: f, exact, prefixes })
    })
}

/// What a body says about the key field: it holds only when the field's value is one of
/// `exact` or starts with one of `prefixes`.
#[derive(Debug, Default)]
struct Key<'e> {
    exact: Vec<&'e str>,
    prefixes: Vec<&'e str>,
}

impl Key<'_> {
    fn weight(&self) -> usize {
        self.exact.len() + 4 * self.prefixes.len()
    }
}

/// The strings of a literal list (the right side of `in`): its string items, as other items
/// never equal a string; `None` when `v` is not a literal list.
fn list_strings(v: &ir::Value) -> Option<Vec<&str>> {
    match v {
        ir::Value::Lit(l) => Some(l.0.as_array()?.iter().filter_map(serde_json::Value::as_str).collect()),
        ir::Value::List(items) => {
            let mut out = Vec::new();
            for i in items {
                let ir::Value::Lit(l) = i else { return None };
                out.extend(l.0.as_str());
            }
            Some(out)
        }
        _ => None,
    }
}

/// The key `e` gives field `f`, when it gives one (see `ListFilter`). Exact: `==` and `in`
/// compare strings exactly (`eval::equal`), and `starts_with` on a plain field is
/// `str::starts_with`.
fn key_of<'e>(e: &'e ir::Expr, f: &ir::Value) -> Option<Key<'e>> {
    match e {
        ir::Expr::False => Some(Key::default()),
        ir::Expr::Atom(a) => match a {
            Atom::Cmp(ir::CmpOp::Eq, l, ir::Value::Lit(x)) | Atom::Cmp(ir::CmpOp::Eq, ir::Value::Lit(x), l)
                if l == f =>
            {
                Some(Key { exact: vec![x.0.as_str()?], prefixes: Vec::new() })
            }
            Atom::In(l, r) if l == f => Some(Key { exact: list_strings(r)?, prefixes: Vec::new() }),
            Atom::StartsWith(l, ir::Value::Lit(x)) if l == f => {
                Some(Key { exact: Vec::new(), prefixes: vec![x.0.as_str()?] })
            }
            _ => None,
        },
        ir::Expr::And(items) => key_of(items.get(key_conjunct(items, f)?)?, f),
        ir::Expr::Or(items) => {
            let mut all = Key::default();
            for i in items {
                let k = key_of(i, f)?;
                all.exact.extend(k.exact);
                all.prefixes.extend(k.prefixes);
            }
            Some(all)
        }
        _ => None,
    }
}

/// The conjunct of an `and` whose key `key_of` takes for the whole (the first of the
/// lightest), when the key comes from one conjunct.
fn key_conjunct(items: &[ir::Expr], f: &ir::Value) -> Option<usize> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, e)| key_of(e, f).map(|k| (i, k.weight())))
        .min_by_key(|(_, w)| *w)
        .map(|(i, _)| i)
}

/// The fields of the variable alone that an `==`, `in` or `starts_with` compares with a
/// literal somewhere in `e`: the candidates for the key field.
fn key_fields(e: &ir::Expr, out: &mut Vec<ir::Value>) {
    match e {
        ir::Expr::And(items) | ir::Expr::Or(items) => items.iter().for_each(|i| key_fields(i, out)),
        ir::Expr::Atom(Atom::Cmp(ir::CmpOp::Eq, l, r)) => {
            for v in [l, r] {
                if matches!(v, ir::Value::Var(SHARED_VAR, path) if !path.is_empty()) && !out.contains(v) {
                    out.push(v.clone());
                }
            }
        }
        ir::Expr::Atom(Atom::In(v, _) | Atom::StartsWith(v, _))
            if matches!(v, ir::Value::Var(SHARED_VAR, path) if !path.is_empty()) && !out.contains(v) =>
        {
            out.push(v.clone());
        }
        _ => {}
    }
}

/// Builds the DFAs of every list filter built so far (`Prefilter::speed_up`), on two threads:
/// the largest automata are dealt out first, to whichever thread has fewer literals.
pub fn speed_up(cache: &ListCache) {
    let built: Vec<std::sync::Arc<ListFilter>> = match cache.lock() {
        Ok(c) => c.values().filter_map(|l| l.get().cloned()).collect(),
        Err(_) => return,
    };
    let all: Vec<&prefilter::LazyAc> = built.iter().flat_map(|lf| lf.prefilter.lazy_automata()).collect();
    let (mine, theirs) = crate::par::deal_two(all, |l| l.weight());
    std::thread::scope(|s| {
        if !theirs.is_empty() {
            s.spawn(|| theirs.iter().for_each(|l| l.build_dfa()));
        }
        mine.iter().for_each(|l| l.build_dfa());
    });
}

impl ListFilter {
    /// The filter for every top-level `any` over `list` in the program: one per Dag, shared
    /// by every bucket (each walks the quantifiers of its own rules).
    fn for_program(p: &ir::Program, list: &ir::Value) -> ListFilter {
        fn walk(e: &ir::Expr, list: &ir::Value, out: &mut Vec<ir::Expr>) {
            match e {
                ir::Expr::And(items) | ir::Expr::Or(items) => items.iter().for_each(|i| walk(i, list, out)),
                ir::Expr::Not(inner) => walk(inner, list, out),
                ir::Expr::Quant { all: false, list: l, .. } if l == list && !out.contains(e) => out.push(e.clone()),
                _ => {}
            }
        }
        let mut members = Vec::new();
        for r in &p.rules {
            walk(&r.cond, list, &mut members);
        }
        ListFilter::build(list, members)
    }

    fn build(list: &ir::Value, members: Vec<ir::Expr>) -> ListFilter {
        let renamed: Vec<ir::Expr> = members
            .iter()
            .map(|m| match m {
                ir::Expr::Quant { var, body, .. } => rename(body, *var),
                other => other.clone(),
            })
            .collect();
        // The key field: the one that keys the most bodies.
        let mut candidates = Vec::new();
        for e in &renamed {
            key_fields(e, &mut candidates);
        }
        let best = candidates
            .into_iter()
            .map(|f| {
                let keys: Vec<Option<Key>> = renamed.iter().map(|e| key_of(e, &f)).collect();
                let n = keys.iter().filter(|k| k.is_some()).count();
                (n, f, keys)
            })
            .filter(|(n, ..)| *n > 0)
            .fold(None::<(usize, ir::Value, Vec<Option<Key>>)>, |best, c| match best {
                Some(b) if b.0 >= c.0 => Some(b),
                _ => Some(c),
            });
        let (key, keys) = match best {
            Some((_, field, keys)) => {
                let mut t = KeyTable {
                    typed: typed_field(&field),
                    field,
                    exact: Default::default(),
                    prefixes: Vec::new(),
                    by_program: Vec::new(),
                };
                for (m, k) in (0u32..).zip(&keys) {
                    let Some(k) = k else { continue };
                    for e in &k.exact {
                        let slot = t.exact.entry((*e).into()).or_default();
                        if !slot.contains(&m) {
                            slot.push(m);
                        }
                    }
                    for p in &k.prefixes {
                        t.prefixes.push(((*p).into(), m));
                    }
                }
                (Some(t.with_programs()), keys)
            }
            None => (None, renamed.iter().map(|_| None).collect()),
        };
        let mut b = Builder::new(Some(SHARED_VAR), false);
        let roots: Vec<Option<NodeId>> =
            renamed.iter().zip(&keys).map(|(e, k)| k.is_none().then(|| b.expr(e))).collect();
        let prefilter = prefilter::build(&b.atoms, &b.fields, true, None);
        // `x.recursive`: a boolean field of the element, read during the scan.
        let flags: Vec<(u32, u32)> = (0u32..)
            .zip(&b.atoms)
            .filter_map(|(a, ba)| match (&ba.atom, ba.field) {
                (Atom::Truthy(ir::Value::Var(SHARED_VAR, path)), Some(f)) if !path.is_empty() => Some((a, f)),
                _ => None,
            })
            .collect();
        let covers = |a: u32| prefilter.covers(a) || flags.iter().any(|(f, _)| *f == a);
        let triggers: Vec<Trigger> = roots
            .iter()
            .map(|r| match r {
                None => Trigger::Key,
                Some(r) => trigger(&b.nodes, *r, &covers).map_or(Trigger::Always, Trigger::Atoms),
            })
            .collect();
        let lean = members
            .iter()
            .zip(&renamed)
            .zip(&keys)
            .map(|((m, r), k)| {
                let t = key.as_ref().filter(|_| k.is_some())?;
                let ir::Expr::Quant { body, .. } = m else { return None };
                let (ir::Expr::And(items), ir::Expr::And(renamed_items)) = (body.as_ref(), r) else { return None };
                Some(all_but(items, key_conjunct(renamed_items, &t.field)?))
            })
            .collect();
        let guards =
            renamed.iter().zip(&keys).map(|(r, k)| guard_of(r, &key.as_ref().filter(|_| k.is_some())?.field)).collect();
        let special = members
            .iter()
            .zip(&keys)
            .zip(&lean)
            .map(|((m, k), l): ((&ir::Expr, &Option<Key>), &Option<ir::Expr>)| {
                let (t, k) = (key.as_ref()?, k.as_ref()?);
                let ir::Expr::Quant { var, body, .. } = m else { return None };
                let ir::Value::Var(SHARED_VAR, path) = &t.field else { return None };
                let field = ir::Value::Var(*var, path.clone());
                let body: &ir::Expr = l.as_ref().unwrap_or(body);
                let by_value: HashMap<Box<str>, ir::Expr> = k
                    .exact
                    .iter()
                    .filter_map(|e| {
                        let folded = fold_key(body, &field, e);
                        (folded != *body).then(|| (Box::from(*e), folded))
                    })
                    .collect();
                (!by_value.is_empty()).then_some((field, by_value))
            })
            .collect();
        let compiled = members
            .iter()
            .zip(&lean)
            .zip(&special)
            .map(|((m, l), s): ((&ir::Expr, &Option<ir::Expr>), &Option<(ir::Value, HashMap<Box<str>, ir::Expr>)>)| {
                let ir::Expr::Quant { var, body, .. } = m else { return Compiled::default() };
                let body = Body::compile(l.as_ref().unwrap_or(body), *var);
                match s {
                    None => Compiled { body, by_value: None },
                    Some((field, by_value)) => match field_of_var(field, *var).filter(|f| f.is_str()) {
                        Some(key) => {
                            let bodies = by_value.iter().map(|(k, e)| (k.clone(), Body::compile(e, *var))).collect();
                            Compiled { body, by_value: Some((key, bodies)) }
                        }
                        None => Compiled::default(),
                    },
                }
            })
            .collect();
        let lazy = lazy_plan(&triggers, &prefilter, &flags, members.len(), b.atoms.len());
        let typed: Vec<Option<CmdField>> = b.fields.iter().map(typed_field).collect();
        let by_program = (0..prefilter.field_count())
            .map(|i| {
                let on_name = prefilter.field_of(i).and_then(|f| typed.get(f as usize).copied().flatten());
                if lazy.is_none() || on_name != Some(CmdField::Name) || prefilter.reads_workspace(i) {
                    return None;
                }
                let names = crate::shell::programs::ProgramId::names();
                Some(
                    names
                        .iter()
                        .map(|name| {
                            let mut bits = 0u64;
                            prefilter
                                .scan_one_str(i, Some(name), "", &mut |a, _| bits |= 1u64.checked_shl(a).unwrap_or(0));
                            bits
                        })
                        .collect(),
                )
            })
            .collect();
        ListFilter {
            by_program,
            compiled,
            list: list.clone(),
            always: (0..).zip(&triggers).filter(|(_, t)| matches!(t, Trigger::Always)).map(|(m, _)| m).collect(),
            lazy,
            guards,
            special,
            lean,
            members,
            key,
            typed,
            fields: b.fields,
            prefilter,
            flags,
            atoms: b.atoms.len(),
            triggers,
        }
    }

    /// The candidate sets of the quantifiers the key table and `Always` decide, appended to
    /// `st.cands`; with no lazy plan, every quantifier's, all fields scanned at once.
    fn begin<'a>(&'a self, st: &mut Run<'a>) -> Candidates {
        let list = st.scope.value(&self.list);
        let n = list.list_len().unwrap_or(0);
        let mut out = Candidates::new(&mut st.cands, self.triggers.len(), n);
        if n == 0 {
            out.done = u64::MAX;
            return out;
        }
        // A short list (most calls run a command or three) is scanned in one pass: there the
        // bookkeeping per quantifier costs more than the fields laziness would skip.
        let eager = self.lazy.is_none() || n < LAZY_FROM;
        if !eager {
            out.reported = st.reported.len();
            st.reported.resize(out.reported + n, 0);
        }
        let ws = st.scope.input.workspace_key();
        // Which atoms the element's fields reported (eager scans): on the stack for up to 64.
        let mut inline = [false; 64];
        let mut spilled = Vec::new();
        let reported: &mut [bool] = if self.atoms <= inline.len() {
            inline.get_mut(..self.atoms).unwrap_or_default()
        } else {
            spilled.resize(self.atoms, false);
            &mut spilled
        };
        let filtered = eager && self.triggers.iter().any(|t| matches!(t, Trigger::Atoms(_)));
        if !eager {
            if let V::Cmds(view) = &list {
                if self.key_commands(view, &mut out, st) {
                    out.done = self.done_by_key();
                    return out;
                }
            }
        }
        for i in 0..n {
            let Some(item) = list.nth(i) else { continue };
            // A command's fields are read from it directly (`element_field`).
            let cmd = if let V::Cmd(c) = &item { Some(*c) } else { None };
            st.scope.vars.push((SHARED_VAR, item));
            let scope = &st.scope;
            let item = &cmd;
            if let Some(k) = &self.key {
                let v = element_field(k.typed, &k.field, item, scope);
                if let Some(t) = v.text() {
                    let guarded = |m: u32| match self.guards.get(m as usize) {
                        Some(Some(g)) => g.passes(&element_field(g.typed, &g.field, item, scope)),
                        _ => true,
                    };
                    k.pick(&t, v.is_str(), guarded, |m| out.set(&mut st.cands, m as usize, i));
                }
            }
            if filtered {
                reported.iter_mut().for_each(|r| *r = false);
                self.prefilter.scan(|f| self.field(f as usize, item, scope), ws, &mut |a, _| {
                    if let Some(r) = reported.get_mut(a as usize) {
                        *r = true;
                    }
                });
                for (a, f) in &self.flags {
                    if self.field(*f as usize, item, scope).is_true() {
                        if let Some(r) = reported.get_mut(*a as usize) {
                            *r = true;
                        }
                    }
                }
            }
            st.scope.vars.pop();
            if !eager {
                // Keyed quantifiers are set above; filtered ones wait for `finish`.
                for m in &self.always {
                    out.set(&mut st.cands, *m as usize, i);
                }
                continue;
            }
            for (m, t) in self.triggers.iter().enumerate() {
                let may = match t {
                    Trigger::Key => false,
                    Trigger::Always => true,
                    Trigger::Atoms(atoms) => atoms.iter().any(|a| reported.get(*a as usize).copied().unwrap_or(true)),
                };
                if may {
                    out.set(&mut st.cands, m, i);
                }
            }
        }
        out.done = if eager { u64::MAX } else { self.done_by_key() };
        out
    }

    /// The quantifiers whose candidates `begin` completes without scans (bit per member).
    fn done_by_key(&self) -> u64 {
        (0..).zip(&self.triggers).filter(|(_, t)| !matches!(t, Trigger::Atoms(_))).fold(0, |d, (m, _)| d | 1 << m)
    }

    /// `begin`'s lazy pass over a view's commands when the key and every guard is a string
    /// field of the command: read straight from each, without binding it to the element
    /// variable. False when some field is not (then `begin` runs its general pass).
    #[inline(never)] // off the short lists' path (an Edit's one write)
    fn key_commands(&self, view: &crate::shell::View, out: &mut Candidates, st: &mut Run<'_>) -> bool {
        let key = match &self.key {
            Some(k) => match k.typed.filter(|f| f.is_str()) {
                Some(f) => Some((k, f)),
                None => return false,
            },
            None => None,
        };
        let typed_guards = self.guards.iter().flatten().all(|g| g.typed.is_some_and(|f| f.is_str()));
        if !typed_guards {
            return false;
        }
        for (i, c) in view.commands().enumerate() {
            if let Some((k, field)) = key {
                let guarded = |m: u32| match self.guards.get(m as usize) {
                    Some(Some(g)) => g.typed.is_some_and(|f| g.passes_str(f.str_of(c).flatten())),
                    _ => true,
                };
                // A program with an id: its quantifiers were picked when the table was built.
                match c.program().and_then(|id| k.by_program.get(id.index())) {
                    Some(ms) => {
                        for &m in ms.iter() {
                            if guarded(m) {
                                out.set(&mut st.cands, m as usize, i);
                            }
                        }
                    }
                    None => {
                        if let Some(t) = field.str_of(c).flatten() {
                            k.pick(t, true, guarded, |m| out.set(&mut st.cands, m as usize, i));
                        }
                    }
                }
            }
            for m in &self.always {
                out.set(&mut st.cands, *m as usize, i);
            }
        }
        true
    }

    /// Quantifier `m`'s candidates, when `begin` left them: the fields its trigger reads are
    /// scanned over the list (once for all quantifiers), then its atoms picked out.
    fn finish<'a>(&'a self, m: usize, set: &mut Candidates, st: &mut Run<'a>) {
        set.done |= 1 << m;
        let Some(&(scans, mask)) = self.lazy.as_ref().and_then(|l| l.get(m)) else { return };
        let n = set.elements;
        let todo = scans & !set.scanned;
        set.scanned |= scans;
        if todo != 0 {
            self.scan_fields(todo, set, st);
        }
        // No element reported any of its atoms (the common case: a long list of ordinary
        // commands): no candidates, without a pass over the list.
        if set.hits & mask == 0 {
            return;
        }
        for i in 0..n {
            if st.reported.get(set.reported + i).is_some_and(|r| r & mask != 0) {
                set.set(&mut st.cands, m, i);
            }
        }
    }

    /// Field `f` (of `fields`) of `item`, the element bound in `scope`.
    #[inline]
    fn field<'a>(
        &'a self,
        f: usize,
        item: &Option<crate::shell::Command<'a>>,
        scope: &crate::eval::Scope<'a>,
    ) -> V<'a> {
        match self.fields.get(f) {
            Some(v) => element_field(self.typed.get(f).copied().flatten(), v, item, scope),
            None => V::Absent,
        }
    }

    /// Scan `scan` over a view's commands when it reads a string or the `recursive` flag of
    /// each: straight from the commands, without binding each to the element variable and
    /// evaluating the field. False when the scan reads something else (`scan_fields` runs it).
    #[inline(never)] // off the short lists' path (an Edit's one write)
    fn scan_commands(&self, scan: usize, view: &crate::shell::View, set: &mut Candidates, st: &mut Run<'_>) -> bool {
        let filters = self.prefilter.field_count();
        let typed = |f: u32| self.typed.get(f as usize).copied().flatten();
        let ws = st.scope.input.workspace_key();
        let mut each = |bits_of: &mut dyn FnMut(crate::shell::Command<'_>) -> u64| {
            for (i, c) in view.commands().enumerate() {
                let bits = bits_of(c);
                set.hits |= bits;
                if let Some(r) = st.reported.get_mut(set.reported + i) {
                    *r |= bits;
                }
            }
        };
        if scan < filters {
            let Some(field) = self.prefilter.field_of(scan).and_then(typed).filter(|f| f.is_str()) else {
                return false;
            };
            // A field no command has (most scripts run no interpreter code) reports nothing.
            let none_has = match field {
                CmdField::Code => !view.some_code(),
                CmdField::Opaque => !view.some_opaque(),
                CmdField::Subcommand => !view.some_subcommand(),
                _ => false,
            };
            if none_has {
                return true;
            }
            let table = self.by_program.get(scan).and_then(Option::as_deref).filter(|_| field == CmdField::Name);
            each(&mut |c| {
                if let Some(bits) = table.zip(c.program()).and_then(|(t, id)| t.get(id.index())) {
                    return *bits;
                }
                let mut bits = 0u64;
                let text = field.str_of(c).flatten();
                self.prefilter.scan_one_str(scan, text, ws, &mut |a, _| bits |= 1u64.checked_shl(a).unwrap_or(0));
                bits
            });
            return true;
        }
        match self.flags.get(scan - filters) {
            Some(&(a, f)) if typed(f) == Some(CmdField::Recursive) => {
                if !view.some_recursive() {
                    return true;
                }
                let bit = 1u64.checked_shl(a).unwrap_or(0);
                each(&mut |c| if c.recursive() { bit } else { 0 });
                true
            }
            _ => false,
        }
    }

    /// Runs the scans in `todo` (see `ListFilter::lazy`) over every element, adding the atoms
    /// they report to the elements' sets.
    fn scan_fields<'a>(&'a self, mut todo: u64, set: &mut Candidates, st: &mut Run<'a>) {
        let list = st.scope.value(&self.list);
        let n = set.elements;
        let ws = st.scope.input.workspace_key();
        let filters = self.prefilter.field_count();
        while todo != 0 {
            let scan = todo.trailing_zeros() as usize;
            todo &= todo - 1;
            if let V::Cmds(view) = &list {
                if self.scan_commands(scan, view, set, st) {
                    continue;
                }
            }
            for i in 0..n {
                let Some(item) = list.nth(i) else { continue };
                let cmd = if let V::Cmd(c) = &item { Some(*c) } else { None };
                st.scope.vars.push((SHARED_VAR, item));
                let scope = &st.scope;
                let item = &cmd;
                let mut bits = 0u64;
                if scan < filters {
                    self.prefilter.scan_one(scan, |f| self.field(f as usize, item, scope), ws, &mut |a, _| {
                        bits |= 1u64.checked_shl(a).unwrap_or(0)
                    });
                } else if let Some((a, f)) = self.flags.get(scan - filters) {
                    if self.field(*f as usize, item, scope).is_true() {
                        bits |= 1u64.checked_shl(*a).unwrap_or(0);
                    }
                }
                st.scope.vars.pop();
                set.hits |= bits;
                if let Some(r) = st.reported.get_mut(set.reported + i) {
                    *r |= bits;
                }
            }
        }
    }
}

/// The shortest list whose fields a list filter scans lazily (see `ListFilter::lazy`).
const LAZY_FROM: usize = 8;

/// `ListFilter::lazy` for these triggers, when everything fits in 64 bits.
fn lazy_plan(
    triggers: &[Trigger],
    prefilter: &Prefilter,
    flags: &[(u32, u32)],
    members: usize,
    atoms: usize,
) -> Option<Vec<(u64, u64)>> {
    let filters = prefilter.field_count();
    if members > 64 || atoms > 64 || filters + flags.len() > 64 {
        return None;
    }
    triggers
        .iter()
        .map(|t| {
            let Trigger::Atoms(atoms) = t else { return Some((0, 0)) };
            let (mut scans, mut mask) = (0u64, 0u64);
            for a in atoms {
                let scan = match prefilter.filter_of(*a) {
                    Some(i) => i,
                    None => filters + flags.iter().position(|(f, _)| f == a)?,
                };
                scans |= 1 << scan;
                mask |= 1 << a;
            }
            Some((scans, mask))
        })
        .collect()
}

/// Per quantifier of a list filter, a bit set of the list's elements its body may hold on:
/// where it is in `Run::cands` (every list's sets in one buffer, inline for the floor's
/// lists of up to 64 commands, so a decision neither allocates nor moves them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidates {
    start: usize,
    words: usize,
    /// Quantifiers whose sets are complete (bit per member).
    done: u64,
    /// Scans run so far (see `ListFilter::lazy`).
    scanned: u64,
    /// Where the elements' reported atoms start in `Run::reported`.
    reported: usize,
    /// Every atom some element reported in the scans run so far.
    hits: u64,
    /// The list's length.
    elements: usize,
}

impl Candidates {
    fn new(bits: &mut smallvec::SmallVec<[u64; 48]>, members: usize, elements: usize) -> Candidates {
        let words = elements.div_ceil(64);
        let start = bits.len();
        bits.resize(start + members * words, 0);
        Candidates { start, words, done: 0, scanned: 0, reported: 0, hits: 0, elements }
    }

    fn set(&self, bits: &mut [u64], member: usize, element: usize) {
        if let Some(w) = bits.get_mut(self.start + member * self.words + element / 64) {
            *w |= 1 << (element % 64);
        }
    }

    /// The words of `member`'s set.
    fn of<'b>(&self, bits: &'b [u64], member: usize) -> &'b [u64] {
        let at = self.start + member * self.words;
        bits.get(at..at + self.words).unwrap_or(&[])
    }
}

/// The elements of a set, ascending.
fn elements(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(wi, w)| {
        let mut w = *w;
        std::iter::from_fn(move || {
            if w == 0 {
                return None;
            }
            let bit = w.trailing_zeros() as usize;
            w &= w - 1;
            Some(wi * 64 + bit)
        })
    })
}

impl ListFilter {
    /// For `--dump --format dag`: the list, its quantifiers, and its field filters.
    pub fn summary(&self) -> Vec<String> {
        let filtered = self.triggers.iter().filter(|t| !matches!(t, Trigger::Always)).count();
        let mut out = vec![format!(
            "list {}: {} quantifiers, {} of them filtered per element",
            crate::ir::describe_value(&self.list),
            self.triggers.len(),
            filtered
        )];
        if let Some(k) = &self.key {
            let keyed = self.triggers.iter().filter(|t| matches!(t, Trigger::Key)).count();
            let lean = self.lean.iter().filter(|l| l.is_some()).count();
            let guarded = self.guards.iter().filter(|g| g.is_some()).count();
            out.push(format!(
                "  element key {}: {} quantifiers by {} exact values and {} prefixes ({} bodies run without their key conjunct, {} behind a second key)",
                crate::ir::describe_value(&k.field),
                keyed,
                k.exact.len(),
                k.prefixes.len(),
                lean,
                guarded
            ));
        }
        for line in self.prefilter.summary(&self.fields) {
            out.push(format!("  element prefilter {line}"));
        }
        out
    }
}

/// `e` with quantifier variable `var` renamed to `SHARED_VAR`.
fn rename(e: &ir::Expr, var: u32) -> ir::Expr {
    fn value(v: &ir::Value, var: u32) -> ir::Value {
        use ir::Value;
        match v {
            Value::Var(id, path) if *id == var => Value::Var(SHARED_VAR, path.clone()),
            Value::List(items) => Value::List(items.iter().map(|i| value(i, var)).collect()),
            Value::Len(i) => Value::Len(Box::new(value(i, var))),
            Value::Bytes(i) => Value::Bytes(Box::new(value(i, var))),
            Value::Lower(i) => Value::Lower(Box::new(value(i, var))),
            Value::Path(i) => Value::Path(Box::new(value(i, var))),
            Value::Has(i) => Value::Has(Box::new(value(i, var))),
            other => other.clone(),
        }
    }
    fn atom(a: &Atom, var: u32) -> Atom {
        match a {
            Atom::Truthy(v) => Atom::Truthy(value(v, var)),
            Atom::Cmp(op, l, r) => Atom::Cmp(*op, value(l, var), value(r, var)),
            Atom::In(l, r) => Atom::In(value(l, var), value(r, var)),
            Atom::Contains(l, r) => Atom::Contains(value(l, var), value(r, var)),
            Atom::Matches(l, p) => Atom::Matches(value(l, var), p.clone()),
            Atom::Glob(l, p) => Atom::Glob(value(l, var), p.clone()),
            Atom::StartsWith(l, r) => Atom::StartsWith(value(l, var), value(r, var)),
            Atom::EndsWith(l, r) => Atom::EndsWith(value(l, var), value(r, var)),
        }
    }
    match e {
        ir::Expr::True => ir::Expr::True,
        ir::Expr::False => ir::Expr::False,
        ir::Expr::And(items) => ir::Expr::And(items.iter().map(|i| rename(i, var)).collect()),
        ir::Expr::Or(items) => ir::Expr::Or(items.iter().map(|i| rename(i, var)).collect()),
        ir::Expr::Not(inner) => ir::Expr::Not(Box::new(rename(inner, var))),
        ir::Expr::Atom(a) => ir::Expr::Atom(atom(a, var)),
        // An inner quantifier binds its own variable: only the list can name `var`.
        ir::Expr::Quant { all, var: inner, list, body } => ir::Expr::Quant {
            all: *all,
            var: *inner,
            list: value(list, var),
            body: if *inner == var { std::sync::Arc::clone(body) } else { std::sync::Arc::new(rename(body, var)) },
        },
    }
}

#[derive(Debug)]
pub struct BucketAtom {
    pub atom: ir::Atom,
    /// The left side's value, when it does not depend on a quantifier variable.
    pub field: Option<u32>,
}

#[derive(Debug)]
pub struct BucketRule {
    /// Index into the program's rules.
    pub rule: usize,
    pub root: NodeId,
    pub advisory: bool,
    /// The bucket is the fallback and the rule names prefixes: check the tool name.
    pub check_tool: bool,
}

/// The rules that can apply to one tool (or, for `*`, to tools no rule names).
#[derive(Debug)]
pub struct Bucket {
    pub name: String,
    /// In priority order (see `compile::priority`).
    pub rules: Vec<BucketRule>,
    pub nodes: Vec<Node>,
    pub atoms: Vec<BucketAtom>,
    /// Distinct left-side values, computed at most once per decision.
    pub fields: Vec<ir::Value>,
    /// Rule positions to look at whatever the prefilters say.
    pub always: Vec<u32>,
    /// For each atom, the rule positions it can trigger.
    pub triggered: Vec<Vec<u32>>,
    pub prefilter: Prefilter,
    /// One filter per list the bucket's quantifiers range over.
    pub lists: Vec<std::sync::Arc<ListFilter>>,
    /// The evaluation bound of the rules that always apply.
    pub cost: Cost,
    /// The bounds of the rules that apply only when the tool matches (the fallback bucket's
    /// prefix rules), by position.
    pub tool_cost: Vec<(u32, Cost)>,
}

struct Builder<'p> {
    nodes: Vec<Node>,
    node_ids: HashMap<u64, Vec<NodeId>>,
    atoms: Vec<BucketAtom>,
    atom_ids: HashMap<&'p ir::Atom, u32>,
    fields: Vec<ir::Value>,
    field_ids: HashMap<&'p ir::Value, u32>,
    /// Inside a quantifier's filter: fields are the values over this variable alone.
    quant_var: Option<u32>,
    /// Build list filters.
    prefilter: bool,
    /// Where list filters come from: the Dag's, built for its program on first use.
    shared: Option<(&'p ListCache, &'p ir::Program)>,
    /// The list filters this bucket's quantifiers use.
    lists: Vec<std::sync::Arc<ListFilter>>,
}

/// List filters, one per list, shared by every bucket of a Dag.
pub type ListCache =
    std::sync::Mutex<HashMap<ir::Value, std::sync::Arc<std::sync::OnceLock<std::sync::Arc<ListFilter>>>>>;

pub fn bucket(
    p: &ir::Program,
    rules: &[(usize, bool)],
    options: CompileOptions,
    name: &str,
    cache: &ListCache,
    automata: &prefilter::AutomatonCache,
) -> Bucket {
    let mut sorted: Vec<(usize, bool)> = rules.to_vec();
    sorted.sort_by_key(|(i, _)| p.rules.get(*i).map(|r| priority(p, r)));
    let mut b = Builder::new(None, options.prefilter);
    b.shared = Some((cache, p));
    let mut out_rules = Vec::with_capacity(sorted.len());
    for (i, check_tool) in &sorted {
        let Some(r) = p.rules.get(*i) else { continue };
        let root = b.expr(&r.cond);
        out_rules.push(BucketRule {
            rule: *i,
            root,
            advisory: crate::eval::is_advisory(p, r),
            check_tool: *check_tool,
        });
    }
    let prefilter = if options.prefilter {
        prefilter::build(&b.atoms, &b.fields, false, Some(automata))
    } else {
        Prefilter::default()
    };
    let lists = std::mem::take(&mut b.lists);
    let mut always = Vec::new();
    let mut triggered = vec![Vec::new(); b.atoms.len()];
    for (pos, r) in out_rules.iter().enumerate() {
        let pos = u32::try_from(pos).unwrap_or(u32::MAX);
        let trig =
            if options.prefilter && !r.advisory { trigger(&b.nodes, r.root, &|a| prefilter.covers(a)) } else { None };
        match trig {
            None => always.push(pos),
            Some(atoms) => {
                for a in atoms {
                    if let Some(t) = triggered.get_mut(a as usize) {
                        t.push(pos);
                    }
                }
            }
        }
    }
    // The evaluation bound as sums of products of list lengths (see `Cost`).
    let mut cost = Cost::default();
    let mut tool_cost = Vec::new();
    for (pos, r) in out_rules.iter().enumerate() {
        let Some(rule) = p.rules.get(r.rule) else { continue };
        if r.check_tool {
            let mut own = Cost::default();
            own.add(&rule.cond);
            tool_cost.push((u32::try_from(pos).unwrap_or(u32::MAX), own));
        } else {
            cost.add(&rule.cond);
        }
    }
    Bucket {
        cost,
        tool_cost,
        name: name.to_string(),
        rules: out_rules,
        nodes: b.nodes,
        atoms: b.atoms,
        fields: b.fields,
        always,
        triggered,
        prefilter,
        lists,
    }
}

/// Atoms one of which the prefilters must report for the node to be true; `None` when no
/// such set is known.
fn trigger(nodes: &[Node], id: NodeId, covers: &dyn Fn(u32) -> bool) -> Option<Vec<u32>> {
    match nodes.get(id as usize)? {
        Node::False => Some(Vec::new()),
        Node::Atom(a) if covers(*a) => Some(vec![*a]),
        Node::And(items) => items.iter().filter_map(|i| trigger(nodes, *i, covers)).min_by_key(Vec::len),
        Node::Or(items) => {
            let mut all = Vec::new();
            for i in items {
                all.extend(trigger(nodes, *i, covers)?);
            }
            all.sort_unstable();
            all.dedup();
            Some(all)
        }
        _ => None,
    }
}

impl<'p> Builder<'p> {
    fn new(quant_var: Option<u32>, prefilter: bool) -> Builder<'p> {
        Builder {
            nodes: Vec::new(),
            node_ids: HashMap::default(),
            atoms: Vec::new(),
            atom_ids: HashMap::default(),
            fields: Vec::new(),
            field_ids: HashMap::default(),
            quant_var,
            prefilter,
            shared: None,
            lists: Vec::new(),
        }
    }

    /// Where an `any` over a fixed list goes in the bucket's list filters.
    fn list_member(&mut self, q: &ir::Expr) -> Option<(u32, u32)> {
        let ir::Expr::Quant { all: false, list, .. } = q else { return None };
        if list.uses_var() {
            return None;
        }
        let (cache, program) = self.shared?;
        let g = match self.lists.iter().position(|f| f.list == *list) {
            Some(g) => g,
            None => {
                // One cell per list: a second bucket built at the same time (`Dag::warm`) waits
                // for the first to finish the filter instead of building it again.
                let cell = match cache.lock() {
                    Ok(mut c) => c.entry(list.clone()).or_default().clone(),
                    Err(_) => std::sync::Arc::default(),
                };
                let filter = cell.get_or_init(|| std::sync::Arc::new(ListFilter::for_program(program, list))).clone();
                self.lists.push(filter);
                self.lists.len() - 1
            }
        };
        let m = self.lists.get(g)?.members.iter().position(|e| e == q)?;
        let m = u32::try_from(m).ok()?;
        Some((u32::try_from(g).ok()?, m))
    }

    /// The id of node `n`, one per distinct node. Nodes are kept once, in `nodes`; the map
    /// goes from a node's hash to the ids with that hash (a quantifier node holds a whole
    /// expression: cloning it to key a map cost more than the rest of a bucket's build).
    fn intern(&mut self, n: Node) -> NodeId {
        use std::hash::BuildHasher;
        let h = rustc_hash::FxBuildHasher.hash_one(&n);
        let ids = self.node_ids.entry(h).or_default();
        if let Some(id) = ids.iter().find(|id| self.nodes.get(**id as usize) == Some(&n)) {
            return *id;
        }
        let id = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        ids.push(id);
        self.nodes.push(n);
        id
    }

    fn expr(&mut self, e: &'p ir::Expr) -> NodeId {
        let n = match e {
            ir::Expr::True => Node::True,
            ir::Expr::False => Node::False,
            ir::Expr::And(items) => Node::And(items.iter().map(|i| self.expr(i)).collect()),
            ir::Expr::Or(items) => Node::Or(items.iter().map(|i| self.expr(i)).collect()),
            ir::Expr::Not(inner) => Node::Not(self.expr(inner)),
            ir::Expr::Atom(a) => Node::Atom(self.atom(a)),
            q @ ir::Expr::Quant { .. } => {
                let member = if self.quant_var.is_none() && self.prefilter { self.list_member(q) } else { None };
                Node::Quant(q.clone(), member)
            }
        };
        self.intern(n)
    }

    fn atom(&mut self, a: &'p ir::Atom) -> u32 {
        if let Some(id) = self.atom_ids.get(a) {
            return *id;
        }
        let left = left(a);
        let field = match self.quant_var {
            None if !left.uses_var() => Some(self.field(left)),
            Some(var) if only_var(left, var) => Some(self.field(left)),
            _ => None,
        };
        let id = u32::try_from(self.atoms.len()).unwrap_or(u32::MAX);
        self.atoms.push(BucketAtom { atom: a.clone(), field });
        self.atom_ids.insert(a, id);
        id
    }

    fn field(&mut self, v: &'p ir::Value) -> u32 {
        if let Some(id) = self.field_ids.get(v) {
            return *id;
        }
        let id = u32::try_from(self.fields.len()).unwrap_or(u32::MAX);
        self.fields.push(v.clone());
        self.field_ids.insert(v, id);
        id
    }
}

/// The value an atom tests.
pub fn left(a: &ir::Atom) -> &ir::Value {
    match a {
        Atom::Truthy(v)
        | Atom::Cmp(_, v, _)
        | Atom::In(v, _)
        | Atom::Contains(v, _)
        | Atom::Matches(v, _)
        | Atom::Glob(v, _)
        | Atom::StartsWith(v, _)
        | Atom::EndsWith(v, _) => v,
    }
}

impl Bucket {
    pub(crate) fn field_value<'a>(&'a self, f: u32, st: &mut Run<'a>) -> crate::eval::V<'a> {
        if let Some(Some(v)) = st.fields.get(f as usize) {
            return v.clone();
        }
        let v = match self.fields.get(f as usize) {
            Some(value) => st.scope.value(value),
            None => crate::eval::V::Absent,
        };
        if let Some(slot) = st.fields.get_mut(f as usize) {
            *slot = Some(v.clone());
        }
        v
    }

    fn eval_atom<'a>(&'a self, a: u32, st: &mut Run<'a>) -> Result<bool, EvalError> {
        let state = st.atoms.get(a as usize).copied().unwrap_or(0);
        match state & !HIT {
            TRUE => return Ok(true),
            FALSE => return Ok(false),
            _ => {}
        }
        let Some(ba) = self.atoms.get(a as usize) else { return Ok(false) };
        // A covered atom on a field the prefilter read as a string, and not reported: false.
        if state & HIT == 0 && self.prefilter.covers(a) {
            if let Some(f) = ba.field {
                if st.field_modes.get(f as usize) == Some(&FIELD_DECISIVE) {
                    return Ok(false);
                }
            }
        }
        let field = ba.field.map(|f| self.field_value(f, st));
        let r = st.scope.atom(&ba.atom, field.as_ref())?;
        if let Some(s) = st.atoms.get_mut(a as usize) {
            *s = (*s & HIT) | if r { TRUE } else { FALSE };
        }
        Ok(r)
    }

    pub(crate) fn eval_node<'a>(&'a self, id: NodeId, st: &mut Run<'a>) -> Result<bool, EvalError> {
        let Some(n) = self.nodes.get(id as usize) else { return Ok(false) };
        Ok(match n {
            Node::True => true,
            Node::False => false,
            Node::And(items) => {
                for i in items {
                    if !self.eval_node(*i, st)? {
                        return Ok(false);
                    }
                }
                true
            }
            Node::Or(items) => {
                for i in items {
                    if self.eval_node(*i, st)? {
                        return Ok(true);
                    }
                }
                false
            }
            Node::Not(inner) => !self.eval_node(*inner, st)?,
            Node::Atom(a) => self.eval_atom(*a, st)?,
            Node::Quant(e, Some((g, m))) => self.eval_listed(e, *g, *m, st)?,
            Node::Quant(e, None) => st.scope.expr(e)?,
        })
    }

    /// `any(x in LIST: BODY)` over the elements its list filter left.
    #[inline(always)] // one caller (`eval_node`); out of line it cost ~1,000 instructions on `ls -la`
    fn eval_listed<'a>(&'a self, e: &'a ir::Expr, g: u32, m: u32, st: &mut Run<'a>) -> Result<bool, EvalError> {
        let ir::Expr::Quant { var, list, body, .. } = e else { return st.scope.expr(e) };
        let Some(filter) = self.lists.get(g as usize) else { return st.scope.expr(e) };
        if st.lists.get(g as usize).is_some_and(Option::is_none) {
            let begun = filter.begin(st);
            if let Some(slot) = st.lists.get_mut(g as usize) {
                *slot = Some(begun);
            }
        }
        if let Some(Some(mut set)) = st.lists.get(g as usize).copied() {
            if set.done & 1u64.checked_shl(m).unwrap_or(0) == 0 {
                filter.finish(m as usize, &mut set, st);
                if let Some(slot) = st.lists.get_mut(g as usize) {
                    *slot = Some(set);
                }
            }
        }
        let Run { scope, lists, cands, .. } = st;
        let Some(Some(set)) = lists.get(g as usize) else { return scope.expr(e) };
        let words = set.of(cands, m as usize);
        if words.iter().all(|w| *w == 0) {
            return Ok(false);
        }
        let items = scope.value(list);
        // Picked by the key table: the body without its key conjunct (see `ListFilter::lean`).
        let body = filter.lean.get(m as usize).and_then(Option::as_ref).unwrap_or(body);
        let special = filter.special.get(m as usize).and_then(Option::as_ref);
        let compiled = filter.compiled.get(m as usize);
        for i in elements(words) {
            let Some(item) = items.nth(i) else { continue };
            scope.step()?;
            // A command and a body compiled for it: run without binding the variable
            // (explanations, which collect witnesses, take the reference's path).
            if let (V::Cmd(c), None) = (&item, &scope.witnesses) {
                if let Some(b) = compiled.and_then(|x| x.pick(*c)) {
                    if b.eval(*c, scope)? {
                        return Ok(true);
                    }
                    continue;
                }
            }
            scope.vars.push((*var, item));
            // Decided for the element's key value, when the body tests the key again.
            let body = match special {
                Some((field, by_value)) => {
                    let v = scope.value(field);
                    match v.text() {
                        Some(t) if v.is_str() => by_value.get(t.as_ref()).unwrap_or(body),
                        _ => body,
                    }
                }
                None => body,
            };
            let r = scope.expr(body);
            scope.vars.pop();
            if r? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub fn describe_atom(&self, a: usize) -> String {
        self.atoms.get(a).map_or_else(String::new, |ba| crate::ir::describe_atom(&ba.atom))
    }
}

/// Whether a value depends on quantifier variable `var` and on no other.
fn only_var(v: &ir::Value, var: u32) -> bool {
    fn walk(v: &ir::Value, var: u32, seen: &mut bool) -> bool {
        use ir::Value;
        match v {
            Value::Var(id, _) => {
                *seen = true;
                *id == var
            }
            Value::List(items) => items.iter().all(|i| walk(i, var, seen)),
            Value::Len(i) | Value::Bytes(i) | Value::Lower(i) | Value::Path(i) | Value::Has(i) => walk(i, var, seen),
            _ => true,
        }
    }
    let mut seen = false;
    walk(v, var, &mut seen) && seen
}

/// `eval::cost` of a set of conditions, worked out at compile time: a sum of terms, each a
/// coefficient times the lengths of some lists (a quantifier multiplies its body's terms,
/// plus one, by its list's length). Evaluating it reads a few list lengths instead of walking
/// every rule. Both are the exact bound clamped to `u64::MAX` (saturating sums and products
/// of non-negative numbers), so the Dag and the reference agree on every budget refusal.
#[derive(Debug, Default)]
pub struct Cost {
    /// The lists whose lengths terms multiply; `None` is `Input::var_list_bound`.
    lists: Vec<Option<ir::Value>>,
    /// (coefficient, indexes into `lists`), one term per distinct product.
    terms: Vec<(u64, Vec<u32>)>,
}

impl Cost {
    pub fn add(&mut self, e: &ir::Expr) {
        let mut terms = Vec::new();
        self.terms_of(e, &mut terms);
        for (coef, mut lists) in terms {
            lists.sort_unstable();
            match self.terms.iter_mut().find(|(_, l)| *l == lists) {
                Some((c, _)) => *c = c.saturating_add(coef),
                None => self.terms.push((coef, lists)),
            }
        }
    }

    fn terms_of(&mut self, e: &ir::Expr, out: &mut Vec<(u64, Vec<u32>)>) {
        match e {
            ir::Expr::True | ir::Expr::False => {}
            ir::Expr::Atom(_) => out.push((1, Vec::new())),
            ir::Expr::And(items) | ir::Expr::Or(items) => {
                for i in items {
                    self.terms_of(i, out);
                }
            }
            ir::Expr::Not(inner) => self.terms_of(inner, out),
            ir::Expr::Quant { list, body, .. } => {
                let key = if list.uses_var() { None } else { Some(list.clone()) };
                let id = match self.lists.iter().position(|l| *l == key) {
                    Some(i) => i,
                    None => {
                        self.lists.push(key);
                        self.lists.len() - 1
                    }
                };
                let id = u32::try_from(id).unwrap_or(u32::MAX);
                let mut inner = vec![(1, Vec::new())];
                self.terms_of(body, &mut inner);
                for (c, mut l) in inner {
                    l.push(id);
                    out.push((c, l));
                }
            }
        }
    }

    /// The bound on this input.
    pub(crate) fn eval<'a>(&'a self, scope: &crate::eval::Scope<'a>) -> u64 {
        let mut lens: smallvec::SmallVec<[Option<u64>; 16]> = smallvec::SmallVec::new();
        lens.resize(self.lists.len(), None);
        let mut total = 0u64;
        for (coef, lists) in &self.terms {
            let mut t = *coef;
            for l in lists {
                let i = *l as usize;
                let n = match lens.get(i).copied().flatten() {
                    Some(n) => n,
                    None => {
                        let n = match self.lists.get(i) {
                            Some(Some(v)) => scope.value(v).list_len().map_or(0, |n| n as u64),
                            _ => scope.input.var_list_bound(),
                        };
                        if let Some(slot) = lens.get_mut(i) {
                            *slot = Some(n);
                        }
                        n
                    }
                };
                t = t.saturating_mul(n);
            }
            total = total.saturating_add(t);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lit(j: serde_json::Value) -> ir::Value {
        ir::Value::Lit(ir::Lit(j))
    }

    fn field(name: &str) -> ir::Value {
        ir::Value::Var(1, vec![name.to_string()])
    }

    #[test]
    fn a_body_is_decided_for_its_key_value() {
        let name = field("name");
        let publish = ir::Expr::Atom(Atom::Contains(field("operands"), lit(json!("publish"))));
        let upload = ir::Expr::Atom(Atom::Contains(field("operands"), lit(json!("upload"))));
        // (name in [npm, cargo] and operands contains "publish")
        //   or (name == "twine" and operands contains "upload")
        //   or not (name starts_with "x" or name != "gem")
        let body = ir::Expr::Or(vec![
            ir::Expr::And(vec![
                ir::Expr::Atom(Atom::In(name.clone(), lit(json!(["npm", "cargo", 3])))),
                publish.clone(),
            ]),
            ir::Expr::And(vec![
                ir::Expr::Atom(Atom::Cmp(ir::CmpOp::Eq, lit(json!("twine")), name.clone())),
                upload.clone(),
            ]),
            ir::Expr::Not(Box::new(ir::Expr::Or(vec![
                ir::Expr::Atom(Atom::StartsWith(name.clone(), lit(json!("x")))),
                ir::Expr::Atom(Atom::Cmp(ir::CmpOp::Ne, name.clone(), lit(json!("gem")))),
            ]))),
        ]);
        assert_eq!(fold_key(&body, &name, "cargo"), publish);
        assert_eq!(fold_key(&body, &name, "twine"), upload);
        assert_eq!(fold_key(&body, &name, "gem"), ir::Expr::True);
        assert_eq!(fold_key(&body, &name, "xz"), ir::Expr::False);
        assert_eq!(fold_key(&body, &name, "3"), ir::Expr::False);
        // Tests on other fields, and non-literal sides, stay.
        let other = ir::Expr::Atom(Atom::Cmp(ir::CmpOp::Eq, field("subcommand"), lit(json!("push"))));
        assert_eq!(fold_key(&other, &name, "git"), other);
        let computed = ir::Expr::Atom(Atom::In(name.clone(), field("args")));
        assert_eq!(fold_key(&computed, &name, "git"), computed);
    }
}
