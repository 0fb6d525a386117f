//! Rules of one bucket to hash-consed nodes, atoms and fields, and their evaluation.

use std::collections::HashMap;

use super::prefilter::{self, Prefilter};
use super::{priority, CompileOptions, Run, FALSE, FIELD_DECISIVE, HIT, TRUE};
use crate::eval::EvalError;
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
    /// A quantifier, walked by the reference semantics, with a prefilter over its elements
    /// when one can be built (see `QuantFilter`).
    Quant(ir::Expr, Option<std::sync::Arc<QuantFilter>>),
}

/// A prefilter inside `any(x in LIST: BODY)`: the fields of `BODY` that depend only on `x`
/// (`x`, `path(x)`, `x.name`, ...) get per-field aho-corasick and GlobSet filters, as a
/// bucket's fields do, and `trigger` holds atoms one of which must be reported for `BODY` to
/// hold. Run over every element: when no element reports a trigger atom, `BODY` is false for
/// every element and the quantifier is false without evaluating it; otherwise it is
/// evaluated as written. So `any(c in shell.commands: c.name == "rm" and ...)` costs one
/// scan of each command's name, and twenty rules over `writes` one GlobSet match each.
#[derive(Debug)]
pub struct QuantFilter {
    var: u32,
    list: ir::Value,
    fields: Vec<ir::Value>,
    prefilter: Prefilter,
    /// Atom ids (this filter's numbering), one of which must be reported.
    trigger: Vec<u32>,
    atoms: usize,
}

// Compared and hashed by identity of the quantifier it filters (`Node::Quant`'s expression
// already is); the filter is derived from it.
impl PartialEq for QuantFilter {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for QuantFilter {}
impl std::hash::Hash for QuantFilter {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl QuantFilter {
    fn build(e: &ir::Expr) -> Option<QuantFilter> {
        let ir::Expr::Quant { all: false, var, list, body } = e else { return None };
        if list.uses_var() {
            return None;
        }
        let mut b = Builder::new(Some(*var), false, None);
        let root = b.expr(body);
        let prefilter = prefilter::build(&b.atoms, &b.fields, true);
        let trigger = trigger(&b.nodes, root, &prefilter)?;
        Some(QuantFilter { var: *var, list: list.clone(), fields: b.fields, prefilter, trigger, atoms: b.atoms.len() })
    }

    /// Whether some element may make the body true; `false` is exact: no element can.
    fn may_hold<'a>(&'a self, st: &mut Run<'a>) -> bool {
        let list = st.scope.value(&self.list);
        let Some(items) = list.items() else { return true };
        let input = st.scope.input;
        let ws = input.workspace_key();
        let mut reported = vec![false; self.atoms];
        for item in items {
            st.scope.vars.push((self.var, item));
            let scope = &st.scope;
            self.prefilter.scan(
                |f| self.fields.get(f as usize).map_or(crate::eval::V::Absent, |v| scope.value(v)),
                ws,
                &mut |a, _| {
                    if let Some(r) = reported.get_mut(a as usize) {
                        *r = true;
                    }
                },
            );
            st.scope.vars.pop();
            if self.trigger.iter().any(|a| reported.get(*a as usize).copied().unwrap_or(true)) {
                return true;
            }
        }
        false
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
    /// The evaluation bound of the rules without quantifiers that always apply: their atoms.
    pub static_cost: u64,
    /// Rule positions whose bound depends on the input (quantifiers) or that check the tool.
    pub dynamic_cost: Vec<u32>,
}

struct Builder<'p> {
    nodes: Vec<Node>,
    node_ids: HashMap<Node, NodeId>,
    atoms: Vec<BucketAtom>,
    atom_ids: HashMap<&'p ir::Atom, u32>,
    fields: Vec<ir::Value>,
    field_ids: HashMap<&'p ir::Value, u32>,
    /// Inside a quantifier's filter: fields are the values over this variable alone.
    quant_var: Option<u32>,
    /// Build quantifier filters.
    prefilter: bool,
    cache: Option<&'p QuantCache>,
}

/// Quantifier filters already built, shared by every bucket of a Dag (the floor's rules over
/// `writes` are in several buckets).
pub type QuantCache = std::sync::Mutex<HashMap<ir::Expr, Option<std::sync::Arc<QuantFilter>>>>;

pub fn bucket(
    p: &ir::Program,
    rules: &[(usize, bool)],
    options: CompileOptions,
    name: &str,
    cache: &QuantCache,
) -> Bucket {
    let mut sorted: Vec<(usize, bool)> = rules.to_vec();
    sorted.sort_by_key(|(i, _)| p.rules.get(*i).map(|r| priority(p, r)));
    let mut b = Builder::new(None, options.prefilter, Some(cache));
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
    let prefilter = if options.prefilter { prefilter::build(&b.atoms, &b.fields, false) } else { Prefilter::default() };
    let mut always = Vec::new();
    let mut triggered = vec![Vec::new(); b.atoms.len()];
    for (pos, r) in out_rules.iter().enumerate() {
        let pos = u32::try_from(pos).unwrap_or(u32::MAX);
        let trig = if options.prefilter && !r.advisory { trigger(&b.nodes, r.root, &prefilter) } else { None };
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
    let mut static_cost = 0u64;
    let mut dynamic_cost = Vec::new();
    for (pos, r) in out_rules.iter().enumerate() {
        let Some(rule) = p.rules.get(r.rule) else { continue };
        if r.check_tool || has_quant(&rule.cond) {
            dynamic_cost.push(u32::try_from(pos).unwrap_or(u32::MAX));
        } else {
            static_cost = static_cost.saturating_add(atom_count(&rule.cond));
        }
    }
    Bucket {
        static_cost,
        dynamic_cost,
        name: name.to_string(),
        rules: out_rules,
        nodes: b.nodes,
        atoms: b.atoms,
        fields: b.fields,
        always,
        triggered,
        prefilter,
    }
}

/// Atoms one of which the prefilters must report for the node to be true; `None` when no
/// such set is known.
fn trigger(nodes: &[Node], id: NodeId, pf: &Prefilter) -> Option<Vec<u32>> {
    match nodes.get(id as usize)? {
        Node::False => Some(Vec::new()),
        Node::Atom(a) if pf.covers(*a) => Some(vec![*a]),
        Node::And(items) => items.iter().filter_map(|i| trigger(nodes, *i, pf)).min_by_key(Vec::len),
        Node::Or(items) => {
            let mut all = Vec::new();
            for i in items {
                all.extend(trigger(nodes, *i, pf)?);
            }
            all.sort_unstable();
            all.dedup();
            Some(all)
        }
        _ => None,
    }
}

impl<'p> Builder<'p> {
    fn new(quant_var: Option<u32>, prefilter: bool, cache: Option<&'p QuantCache>) -> Builder<'p> {
        Builder {
            nodes: Vec::new(),
            node_ids: HashMap::new(),
            atoms: Vec::new(),
            atom_ids: HashMap::new(),
            fields: Vec::new(),
            field_ids: HashMap::new(),
            quant_var,
            prefilter,
            cache,
        }
    }

    fn quant_filter(&self, q: &ir::Expr) -> Option<std::sync::Arc<QuantFilter>> {
        if let Some(found) = self.cache.and_then(|c| c.lock().ok()).and_then(|c| c.get(q).cloned()) {
            return found;
        }
        let built = QuantFilter::build(q).map(std::sync::Arc::new);
        if let Some(mut c) = self.cache.and_then(|c| c.lock().ok()) {
            c.insert(q.clone(), built.clone());
        }
        built
    }

    fn intern(&mut self, n: Node) -> NodeId {
        if let Some(id) = self.node_ids.get(&n) {
            return *id;
        }
        let id = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        self.nodes.push(n.clone());
        self.node_ids.insert(n, id);
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
                let filter = if self.quant_var.is_none() && self.prefilter { self.quant_filter(q) } else { None };
                Node::Quant(q.clone(), filter)
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
            Node::Quant(e, filter) => {
                if let Some(f) = filter {
                    if !f.may_hold(st) {
                        return Ok(false);
                    }
                }
                st.scope.expr(e)?
            }
        })
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

fn has_quant(e: &ir::Expr) -> bool {
    match e {
        ir::Expr::Quant { .. } => true,
        ir::Expr::And(items) | ir::Expr::Or(items) => items.iter().any(has_quant),
        ir::Expr::Not(inner) => has_quant(inner),
        _ => false,
    }
}

fn atom_count(e: &ir::Expr) -> u64 {
    match e {
        ir::Expr::Atom(_) => 1,
        ir::Expr::And(items) | ir::Expr::Or(items) => items.iter().map(atom_count).sum(),
        ir::Expr::Not(inner) => atom_count(inner),
        _ => 0,
    }
}
