//! Per-field prefilters: which atoms may be true, found in one pass per field.
//!
//! For each field (a left-side value such as `args.command`), every atom that needs a literal
//! to be present contributes its literals to one aho-corasick automaton: the literal of a
//! `contains`, `==`, `starts_with`, `ends_with` or `in`, and the literals regex-syntax
//! extracts from a regex (every match of the regex starts, or ends, with one of them). Every
//! glob on the field goes into one GlobSet, which answers exactly.
//!
//! INVARIANT (soundness): when the prefilter lets an atom be taken as false, the atom is
//! false. An unreported covered atom is false only on a field whose value is a string (or
//! absent, where every covered atom is false by the value semantics), and every covered atom,
//! when true, implies its field's text contains one of its literals (or, for a GlobSet glob,
//! the set reported it). A field whose value is not a string reports all its atoms as hits
//! and decides none of them.

use rustc_hash::FxHashMap as HashMap;

use aho_corasick::automaton::{Automaton, OverlappingState};
use globset::{GlobSet, GlobSetBuilder};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

use super::lower::{Bucket, BucketAtom};
use super::{Run, FIELD_DECISIVE, FIELD_OPAQUE, HIT, TRUE};
use crate::eval::V;
use crate::ir::{Atom, CmpOp, Value};

/// Most literals one regex may contribute; past this the regex just runs.
const MAX_LITERALS_PER_REGEX: usize = 64;

#[derive(Debug, Default)]
pub struct Prefilter {
    fields: Vec<FieldFilter>,
    /// Per atom: whether some field filter decides it (false when not hit).
    covered: Vec<bool>,
}

#[derive(Debug)]
struct FieldFilter {
    field: u32,
    /// A bucket filter's automaton, built with the bucket.
    ac: Option<Ac>,
    /// A quick filter's (a list filter's): its literals, an NFA built on the first text
    /// scanned, and a DFA once `speed_up` has built it. A one-shot `preflight` builds only the
    /// automata of fields it meets (`ls -la` has no `c.code`: the 65-literal automaton over it
    /// is never built); a DFA of 65 literals costs a million instructions to build, so only a
    /// server builds it, at start-up (`Dag::warm`).
    lazy: Option<LazyAc>,
    /// Per automaton pattern: the atoms it hints at and whether a hit proves the atom.
    pattern_atoms: Vec<Vec<(u32, bool)>>,
    /// Globs matched against the absolute path, and against the workspace-relative one.
    abs_globs: Option<(GlobSet, Vec<u32>)>,
    rel_globs: Option<(GlobSet, Vec<u32>)>,
    /// Every atom this filter covers.
    atoms: Vec<u32>,
}

impl Prefilter {
    /// The automata of quick filters, whose DFAs `lower::speed_up` builds.
    pub(crate) fn lazy_automata(&self) -> impl Iterator<Item = &LazyAc> {
        self.fields.iter().filter_map(|f| f.lazy.as_ref())
    }

    pub fn covers(&self, atom: u32) -> bool {
        self.covered.get(atom as usize).copied().unwrap_or(false)
    }

    /// Runs every field's filter: records each field's mode and the atoms it reports.
    pub(crate) fn run<'a>(&'a self, b: &'a Bucket, st: &mut Run<'a>) {
        for f in &self.fields {
            let value = b.field_value(f.field, st);
            let input = st.scope.input;
            let mode = f.scan(&value, input.workspace_key(), &mut |a, proves| hit(st, a, proves));
            if let Some(m) = st.field_modes.get_mut(f.field as usize) {
                *m = mode;
            }
        }
    }

    /// How many field filters there are (a list filter scans them one at a time).
    pub(crate) fn field_count(&self) -> usize {
        self.fields.len()
    }

    /// The field filter that covers atom `a`.
    pub(crate) fn filter_of(&self, a: u32) -> Option<usize> {
        self.fields.iter().position(|f| f.atoms.contains(&a))
    }

    /// Runs field filter `i` over the value `value_of` gives for its field.
    pub(crate) fn scan_one<'a>(
        &self,
        i: usize,
        value_of: impl FnOnce(u32) -> V<'a>,
        workspace_key: &str,
        report: &mut impl FnMut(u32, bool),
    ) {
        if let Some(f) = self.fields.get(i) {
            f.scan(&value_of(f.field), workspace_key, report);
        }
    }

    /// Whether field filter `i`'s reports depend on the workspace (it has globs relative to
    /// it); otherwise they are a function of the field's text alone.
    pub(crate) fn reads_workspace(&self, i: usize) -> bool {
        self.fields.get(i).is_none_or(|f| f.rel_globs.is_some())
    }

    /// Field filter `i`'s field.
    pub(crate) fn field_of(&self, i: usize) -> Option<u32> {
        self.fields.get(i).map(|f| f.field)
    }

    /// Runs field filter `i` over its field's value when that is a string or absent (`None`):
    /// what `scan_one` does for such a value, without making one.
    pub(crate) fn scan_one_str(
        &self,
        i: usize,
        text: Option<&str>,
        workspace_key: &str,
        report: &mut impl FnMut(u32, bool),
    ) {
        if let (Some(f), Some(text)) = (self.fields.get(i), text) {
            f.scan_text(text, workspace_key, report);
        }
    }

    /// Runs every field's filter over values `value_of` gives, reporting atoms to `report`
    /// (atom, whether the hit proves it); for the per-element filters of `lower::ListFilter`.
    pub(crate) fn scan<'a>(
        &self,
        mut value_of: impl FnMut(u32) -> V<'a>,
        workspace_key: &str,
        report: &mut impl FnMut(u32, bool),
    ) {
        for f in &self.fields {
            let value = value_of(f.field);
            f.scan(&value, workspace_key, report);
        }
    }
}

impl FieldFilter {
    /// Reports the atoms this field's value may make true; returns the field's mode.
    fn scan(&self, value: &V<'_>, workspace_key: &str, report: &mut impl FnMut(u32, bool)) -> u8 {
        match value {
            V::Absent | V::J(serde_json::Value::Null) => FIELD_DECISIVE,
            v if v.is_str() => {
                let text = v.text().unwrap_or_default();
                self.scan_text(&text, workspace_key, report);
                FIELD_DECISIVE
            }
            // A view's list of strings (`c.flags`, `c.args`): an atom on it reads either its
            // items (membership) or its JSON text (patterns, substrings), so both are scanned.
            _ => {
                for a in &self.atoms {
                    report(*a, false);
                }
                FIELD_OPAQUE
            }
        }
    }
}

impl FieldFilter {
    fn scan_text(&self, text: &str, workspace_key: &str, report: &mut impl FnMut(u32, bool)) {
        let mut on_pattern = |p: usize| {
            for (a, exact) in self.pattern_atoms.get(p).map_or(&[][..], Vec::as_slice) {
                report(*a, *exact);
            }
        };
        let searched = match (&self.lazy, &self.ac) {
            // A text shorter than every literal holds none (an absent `c.code` builds nothing).
            (Some(l), _) if text.len() < l.shortest => true,
            // A short text (a command's name): each literal looked for byte by byte; a
            // searcher's setup costs more than that on a few bytes.
            (Some(l @ LazyAc { few: Some(_), .. }), _) if text.len() <= SHORT_TEXT => {
                for (p, lit) in l.lits.iter().enumerate() {
                    if holds_short(text.as_bytes(), lit) {
                        on_pattern(p);
                    }
                }
                true
            }
            (Some(LazyAc { few: Some(few), .. }), _) => {
                for (p, f) in few.iter().enumerate() {
                    if f.find(text.as_bytes()).is_some() {
                        on_pattern(p);
                    }
                }
                true
            }
            (Some(l), _) => match l.start(text) {
                Some(None) => true,
                Some(Some(at)) => l.get().is_some_and(|ac| ac.each_pattern(text, at, &mut on_pattern)),
                None => l.get().is_some_and(|ac| ac.each_pattern(text, 0, &mut on_pattern)),
            },
            (None, Some(ac)) => ac.each_pattern(text, 0, &mut on_pattern),
            (None, None) => true,
        };
        if !searched {
            // Not built or the search failed: every atom is a candidate (the rules run).
            for a in &self.atoms {
                report(*a, false);
            }
        }
        if let Some((set_abs, atoms)) = &self.abs_globs {
            for i in set_abs.matches(text) {
                if let Some(a) = atoms.get(i) {
                    report(*a, true);
                }
            }
        }
        if let Some((set_rel, atoms)) = &self.rel_globs {
            if let Some(rel) = crate::path::relative(text, workspace_key) {
                for i in set_rel.matches(rel) {
                    if let Some(a) = atoms.get(i) {
                        report(*a, true);
                    }
                }
            }
        }
    }
}

/// Reports an atom: a candidate, and true when the hit proves it.
fn hit(st: &mut Run<'_>, a: u32, proves: bool) {
    if let Some(s) = st.atoms.get_mut(a as usize) {
        if *s & HIT == 0 {
            st.hit_list.push(a);
        }
        *s |= HIT;
        if proves {
            *s = HIT | TRUE;
        }
    }
}

/// What an atom needs of its field's text.
enum Need {
    /// One of these literals; `exact` when finding it proves the atom.
    Literals(Vec<Vec<u8>>, bool),
    /// A GlobSet match, which proves the atom.
    Glob,
}

fn need(a: &Atom) -> Option<Need> {
    let lit_str = |v: &Value| match v {
        Value::Lit(l) => l.0.as_str().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()),
        _ => None,
    };
    match a {
        Atom::Contains(_, r) => lit_str(r).map(|l| Need::Literals(vec![l], true)),
        Atom::StartsWith(l, r) if !matches!(l, Value::Path(_)) => lit_str(r).map(|l| Need::Literals(vec![l], false)),
        Atom::StartsWith(..) => None,
        Atom::EndsWith(_, r) => lit_str(r).map(|l| Need::Literals(vec![l], false)),
        Atom::Cmp(CmpOp::Eq, _, r) => lit_str(r).map(|l| Need::Literals(vec![l], false)),
        Atom::In(_, r) => {
            let items: Vec<&serde_json::Value> = match r {
                Value::Lit(l) => l.0.as_array()?.iter().collect(),
                Value::List(vs) => vs
                    .iter()
                    .map(|v| match v {
                        Value::Lit(l) => Some(&l.0),
                        _ => None,
                    })
                    .collect::<Option<_>>()?,
                _ => return None,
            };
            let lits: Option<Vec<Vec<u8>>> =
                items.iter().map(|v| v.as_str().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec())).collect();
            lits.filter(|l| !l.is_empty()).map(|l| Need::Literals(l, false))
        }
        Atom::Matches(_, re) => re.compiled.literals().map(|l| Need::Literals(l.to_vec(), false)),
        // A glob sees the canonical, case-folded path: its literal is looked for folded. Only
        // ASCII literals are (lower-casing other text is context-sensitive: a final sigma).
        // A list of globs needs one of their literals, when each has one: an automaton is
        // cheaper to build and to run than a GlobSet, and the globs run on a hit.
        Atom::Glob(_, g) => {
            let lits: Option<Vec<Vec<u8>>> = g
                .compiled
                .sources()
                .map(|src| glob_literal(src).filter(|l| l.is_ascii()).map(|l| l.to_ascii_lowercase().into_bytes()))
                .collect();
            Some(match lits {
                Some(l) if !l.is_empty() => Need::Literals(l, false),
                _ => Need::Glob,
            })
        }
        _ => None,
    }
}

/// The longest run of literal characters in a glob: every path the glob matches contains it.
/// A run right after `**` loses its leading `/` (`**/` also matches nothing at all).
/// Written by hand: globset does not expose the literals it finds, and the regex it builds
/// hides them behind `(?:/?|.*/)`, which regex-syntax's prefix and suffix extraction cannot
/// see past.
///
/// Classes and alternations are skipped, following globset's parser where their end is plain
/// to see: a class's first member (after `!` or `^`) may be `]`, and a class holding `[`
/// (a POSIX class such as `[[:alpha:]]` ends at its second `]`), or an alternation holding a
/// class or an escape (`{[}],x}`, `{\},x}`), ends somewhere this scan does not follow. There
/// the scan stops and keeps the runs found before: a missed literal costs a regex run, a
/// wrong one a false "no".
pub fn glob_literal(src: &str) -> Option<String> {
    let chars: Vec<char> = src.chars().collect();
    let mut best = String::new();
    let mut cur = String::new();
    let mut after_star2 = false;
    let flush = |cur: &mut String, best: &mut String, after: bool| {
        let run = if after { cur.strip_prefix('/').unwrap_or(cur) } else { cur.as_str() };
        if run.len() > best.len() {
            *best = run.to_string();
        }
        cur.clear();
    };
    let mut i = 0;
    'scan: while let Some(&c) = chars.get(i) {
        i += 1;
        match c {
            '*' | '?' => {
                flush(&mut cur, &mut best, after_star2);
                after_star2 = c == '*' && chars.get(i) == Some(&'*');
                if after_star2 {
                    i += 1;
                }
            }
            '[' => {
                flush(&mut cur, &mut best, after_star2);
                after_star2 = false;
                if matches!(chars.get(i), Some('!' | '^')) {
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    i += 1;
                }
                loop {
                    match chars.get(i) {
                        Some(']') => {
                            i += 1;
                            break;
                        }
                        None | Some('[') => break 'scan,
                        Some(_) => i += 1,
                    }
                }
            }
            '{' => {
                flush(&mut cur, &mut best, after_star2);
                after_star2 = false;
                let mut depth = 1;
                loop {
                    match chars.get(i) {
                        None | Some('[' | '\\') => break 'scan,
                        Some('{') => depth += 1,
                        Some('}') => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        Some(_) => {}
                    }
                    i += 1;
                }
            }
            '\\' => match chars.get(i) {
                Some(&e) => {
                    cur.push(e);
                    i += 1;
                }
                None => return None,
            },
            other => cur.push(other),
        }
    }
    flush(&mut cur, &mut best, after_star2);
    if best.is_empty() {
        None
    } else {
        Some(best)
    }
}

/// Literals one of which every match of the regex contains, or `None` (`ir::Regex::literals`
/// asks when a prefilter first needs them).
pub fn regex_literals(src: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(src).ok()?;
    let mut best: Option<Vec<Vec<u8>>> = None;
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let mut ex = Extractor::new();
        ex.kind(kind).limit_total(MAX_LITERALS_PER_REGEX);
        let seq = ex.extract(&hir);
        let Some(lits) = seq.literals() else { continue };
        if lits.is_empty() || lits.len() > MAX_LITERALS_PER_REGEX || lits.iter().any(|l| l.is_empty()) {
            continue;
        }
        let mut v: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
        v.sort();
        v.dedup();
        let min = |x: &Vec<Vec<u8>>| x.iter().map(Vec::len).min().unwrap_or(0);
        if best.as_ref().is_none_or(|b| min(&v) > min(b)) {
            best = Some(v);
        }
        // Prefixes of three bytes or more are selective enough: extracting suffixes too
        // costs as much again, at check time, for every regex.
        if best.as_ref().is_some_and(|b| min(b) >= 3) {
            break;
        }
    }
    best
}

/// Automata already built, by their literals: buckets of one Dag often need the same one
/// (the rules on `*` are in every bucket), and a DFA costs far more to build than to look up.
pub type AutomatonCache = std::sync::Mutex<HashMap<Vec<Vec<u8>>, Ac>>;

/// A quick filter's automata, built when first needed (see `FieldFilter::lazy`).
#[derive(Debug)]
pub(crate) struct LazyAc {
    lits: Vec<Vec<u8>>,
    /// The length of the shortest literal.
    shortest: usize,
    /// For a handful of literals (`c.name starts_with "mkfs."`), a searcher each: on the short
    /// texts a list filter scans (a command's name, once per command) setting up an
    /// automaton's search costs several times more than finding each literal on its own.
    few: Option<Vec<memchr::memmem::Finder<'static>>>,
    nfa: std::sync::OnceLock<Option<Ac>>,
    dfa: std::sync::OnceLock<Option<Ac>>,
    /// Built with the DFA: SIMD searchers that find where the first literal starts in a long
    /// text, so the overlapping scan starts there (and not at all when none occurs).
    gate: std::sync::OnceLock<Option<Gate>>,
}

/// Up to this many literals a quick filter searches for each one on its own (`LazyAc::few`).
const FEW_LITERALS: usize = 4;

/// Texts up to this long are searched for a few literals without `memmem` (`holds_short`).
const SHORT_TEXT: usize = 32;

/// Whether `hay` holds `needle`, by a loop over its bytes: for a few bytes of text, cheaper
/// than setting up a `memmem` search (which a 4-byte command name made cost ~70 instructions).
fn holds_short(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else { return true };
    let Some(last) = hay.len().checked_sub(needle.len()) else { return false };
    (0..=last).any(|i| hay.get(i) == Some(&first) && hay.get(i + 1..i + needle.len()) == Some(rest))
}

impl LazyAc {
    fn new(lits: Vec<Vec<u8>>) -> LazyAc {
        let shortest = lits.iter().map(Vec::len).min().unwrap_or(0);
        let few = (lits.len() <= FEW_LITERALS)
            .then(|| lits.iter().map(|l| memchr::memmem::Finder::new(l).into_owned()).collect());
        LazyAc {
            lits,
            shortest,
            few,
            nfa: std::sync::OnceLock::new(),
            dfa: std::sync::OnceLock::new(),
            gate: std::sync::OnceLock::new(),
        }
    }

    /// Builds the DFA and the gate (see `FieldFilter::lazy`).
    pub(crate) fn build_dfa(&self) {
        self.dfa.get_or_init(|| Ac::dfa(&self.lits));
        self.gate.get_or_init(|| Gate::new(&self.lits));
    }

    /// Where the overlapping scan of `text` must start: `Some(None)` when no literal occurs
    /// in it, `None` when there is no gate for it (short texts, or none built).
    fn start(&self, text: &str) -> Option<Option<usize>> {
        if text.len() < Gate::MIN_TEXT {
            return None;
        }
        Some(self.gate.get()?.as_ref()?.first(text.as_bytes()))
    }

    /// What building it costs, roughly: the bytes of its literals.
    pub(crate) fn weight(&self) -> usize {
        self.lits.iter().map(Vec::len).sum()
    }

    /// The DFA when built, else the NFA (built now); `None` when it cannot be built.
    fn get(&self) -> Option<&Ac> {
        if let Some(Some(dfa)) = self.dfa.get() {
            return Some(dfa);
        }
        self.nfa.get_or_init(|| Ac::nfa(&self.lits)).as_ref()
    }
}

/// Teddy searchers (aho-corasick's `packed` module: SIMD over 16 or 32 bytes at a time) over
/// a filter's literals, in groups Teddy accepts. The overlapping DFA scan costs about 19
/// instructions a byte; on a 4 KiB `python3 -c` program that holds none of the literals the
/// gate answers in a fraction of that. Teddy takes at most 64 literals, and fewer when the
/// shortest is one or two bytes long, so the literals are split by length.
#[derive(Debug)]
struct Gate {
    /// Each searcher with the length of its longest literal.
    searchers: Vec<(aho_corasick::packed::Searcher, usize)>,
}

impl Gate {
    /// Texts shorter than this are scanned by the DFA alone: below it the searchers' set-up
    /// costs more than the scan they would save.
    const MIN_TEXT: usize = 256;

    /// `None` when some group of literals cannot be built into a searcher (no SSSE3, or a
    /// group Teddy refuses): the filter then scans every text.
    fn new(lits: &[Vec<u8>]) -> Option<Gate> {
        let mut sorted: Vec<&Vec<u8>> = lits.iter().collect();
        sorted.sort_by_key(|l| std::cmp::Reverse(l.len()));
        let mut searchers = Vec::new();
        let mut rest = sorted.as_slice();
        while !rest.is_empty() {
            // The largest group, longest literals first, that Teddy builds.
            let mut take = rest.len().min(64);
            let searcher = loop {
                let group = rest.get(..take)?;
                let mut b = aho_corasick::packed::Config::new().builder();
                b.extend(group.iter().copied());
                if let Some(s) = b.build() {
                    break s;
                }
                if take <= 8 {
                    return None;
                }
                take /= 2;
            };
            let longest = rest.first().map_or(0, |l| l.len());
            searchers.push((searcher, longest));
            rest = rest.get(take..).unwrap_or_default();
        }
        Some(Gate { searchers })
    }

    /// Where the leftmost occurrence of any literal starts; every occurrence of every literal
    /// starts there or later.
    fn first(&self, text: &[u8]) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (s, longest) in &self.searchers {
            // A later group only needs to look far enough to see a literal starting before
            // the best start found so far.
            let end = best.map_or(text.len(), |b| b.saturating_add(*longest).min(text.len()));
            let found = match text.get(..end) {
                Some(t) => s.find(t),
                None => s.find(text),
            };
            if let Some(m) = found {
                best = Some(best.map_or(m.start(), |b| b.min(m.start())));
            }
        }
        best
    }
}

/// An aho-corasick automaton of one concrete kind. The crate's `AhoCorasick` hides its kind
/// behind a trait object, so an overlapping search pays a dynamic call per byte (about 20
/// instructions a byte); holding the kind lets the search loop inline (a few a byte).
#[derive(Clone, Debug)]
pub enum Ac {
    /// Cheap to build, slower to run: for filters built on a decision's path.
    Nfa(std::sync::Arc<aho_corasick::nfa::contiguous::NFA>),
    Dfa(std::sync::Arc<aho_corasick::dfa::DFA>),
}

impl Ac {
    fn nfa(lits: &[Vec<u8>]) -> Option<Ac> {
        let nfa = aho_corasick::nfa::contiguous::Builder::new().prefilter(false).build(lits).ok()?;
        Some(Ac::Nfa(std::sync::Arc::new(nfa)))
    }

    fn dfa(lits: &[Vec<u8>]) -> Option<Ac> {
        let dfa = aho_corasick::dfa::Builder::new().prefilter(false).build(lits).ok()?;
        Some(Ac::Dfa(std::sync::Arc::new(dfa)))
    }

    /// Calls `f` with the pattern of every match starting at `from` or later, overlapping
    /// ones included; false when the search failed.
    fn each_pattern(&self, text: &str, from: usize, f: impl FnMut(usize)) -> bool {
        match self {
            Ac::Nfa(a) => overlapping(a.as_ref(), text, from, f),
            Ac::Dfa(a) => overlapping(a.as_ref(), text, from, f),
        }
    }
}

fn overlapping<A: Automaton>(a: &A, text: &str, from: usize, mut f: impl FnMut(usize)) -> bool {
    // The automaton's transitions walked byte by byte, every pattern of every match state
    // reported: what the overlapping search does, without its per-search set-up and its
    // re-entry after each match (~20 instructions a byte on a 27-byte path). An automaton with
    // an empty pattern (whose start state matches) takes the crate's search.
    if a.min_pattern_len() > 0 {
        let Ok(mut sid) = a.start_state(aho_corasick::Anchored::No) else { return false };
        for &b in text.as_bytes().get(from..).unwrap_or_default() {
            sid = a.next_state(aho_corasick::Anchored::No, sid, b);
            if a.is_special(sid) {
                if a.is_dead(sid) {
                    return true;
                }
                for i in 0..a.match_len(sid) {
                    f(a.match_pattern(sid, i).as_usize());
                }
            }
        }
        return true;
    }
    let input = aho_corasick::Input::new(text).range(from.min(text.len())..);
    let mut state = OverlappingState::start();
    // An error is only possible for a match kind or an anchoring the automata are not built
    // with; the caller then takes every atom of the field as a candidate.
    loop {
        if a.try_find_overlapping(&input, &mut state).is_err() {
            return false;
        }
        match state.get_match() {
            Some(m) => f(m.pattern().as_usize()),
            None => return true,
        }
    }
}

/// Builds the filters. `quick` asks for automata that are cheap to build rather than the
/// fastest to run (quantifier filters scan short texts: names, paths).
pub fn build(atoms: &[BucketAtom], _fields: &[Value], quick: bool, cache: Option<&AutomatonCache>) -> Prefilter {
    let mut covered = vec![false; atoms.len()];
    // field -> (literal -> atoms), globs
    let mut by_field: HashMap<u32, FieldParts> = HashMap::default();
    for (i, ba) in atoms.iter().enumerate() {
        let Some(field) = ba.field else { continue };
        let Some(need) = need(&ba.atom) else { continue };
        let id = u32::try_from(i).unwrap_or(u32::MAX);
        let parts = by_field.entry(field).or_default();
        match need {
            Need::Literals(lits, exact) => {
                for l in lits {
                    parts.literals.entry(l).or_default().push((id, exact));
                }
            }
            Need::Glob => {
                let Atom::Glob(_, g) = &ba.atom else { continue };
                for (glob, absolute) in g.compiled.globs.iter().zip(&g.compiled.absolute) {
                    if *absolute {
                        parts.abs.push((glob.clone(), id));
                    } else {
                        parts.rel.push((glob.clone(), id));
                    }
                }
            }
        }
        parts.atoms.push(id);
        if let Some(c) = covered.get_mut(i) {
            *c = true;
        }
    }
    let mut fields: Vec<FieldFilter> = Vec::new();
    let mut keys: Vec<u32> = by_field.keys().copied().collect();
    keys.sort_unstable();
    for field in keys {
        let Some(parts) = by_field.remove(&field) else { continue };
        let mut lits: Vec<(Vec<u8>, Vec<(u32, bool)>)> = parts.literals.into_iter().collect();
        lits.sort();
        let mut lazy = None;
        let key: Vec<Vec<u8>> = lits.iter().map(|(l, _)| l.clone()).collect();
        let ac = if key.is_empty() {
            None
        } else if quick {
            lazy = Some(LazyAc::new(key));
            None
        } else {
            let found = cache.and_then(|c| c.lock().ok()).and_then(|c| c.get(&key).cloned());
            let built = match found {
                Some(ac) => Some(ac),
                None => {
                    // As `AhoCorasick` picks: a DFA for up to 100 literals.
                    let ac = if key.len() > 100 { Ac::nfa(&key) } else { Ac::dfa(&key) };
                    if let (Some(ac), Some(mut c)) = (&ac, cache.and_then(|c| c.lock().ok())) {
                        c.insert(key.clone(), ac.clone());
                    }
                    ac
                }
            };
            match built {
                Some(ac) => Some(ac),
                None => {
                    // The automaton could not be built: leave every atom of this field to run.
                    for a in &parts.atoms {
                        if let Some(c) = covered.get_mut(*a as usize) {
                            *c = false;
                        }
                    }
                    continue;
                }
            }
        };
        let globset = |globs: Vec<(globset::Glob, u32)>| -> Result<Option<(GlobSet, Vec<u32>)>, ()> {
            if globs.is_empty() {
                return Ok(None);
            }
            let mut b = GlobSetBuilder::new();
            let mut ids = Vec::new();
            for (g, id) in globs {
                b.add(g);
                ids.push(id);
            }
            b.build().map(|s| Some((s, ids))).map_err(|_| ())
        };
        let (Ok(abs_globs), Ok(rel_globs)) = (globset(parts.abs), globset(parts.rel)) else {
            for a in &parts.atoms {
                if let Some(c) = covered.get_mut(*a as usize) {
                    *c = false;
                }
            }
            continue;
        };
        fields.push(FieldFilter {
            field,
            ac,
            lazy,
            pattern_atoms: lits.into_iter().map(|(_, a)| a).collect(),
            abs_globs,
            rel_globs,
            atoms: parts.atoms,
        });
    }
    Prefilter { fields, covered }
}

#[derive(Default)]
struct FieldParts {
    literals: HashMap<Vec<u8>, Vec<(u32, bool)>>,
    abs: Vec<(globset::Glob, u32)>,
    rel: Vec<(globset::Glob, u32)>,
    atoms: Vec<u32>,
}

impl Prefilter {
    /// One line per field filter, for `--dump --format dag`.
    pub fn summary(&self, fields: &[Value]) -> Vec<String> {
        self.fields
            .iter()
            .map(|f| {
                let name = fields.get(f.field as usize).map_or_else(|| "?".to_string(), crate::ir::describe_value);
                format!(
                    "{name}: {} literals in one automaton, {} absolute and {} relative globs in GlobSets, covering {} atoms",
                    f.pattern_atoms.len(),
                    f.abs_globs.as_ref().map_or(0, |(_, a)| a.len()),
                    f.rel_globs.as_ref().map_or(0, |(_, a)| a.len()),
                    f.atoms.len()
                )
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn glob_literals() {
        assert_eq!(glob_literal("**/.git/**").as_deref(), Some(".git/"));
        assert_eq!(glob_literal("/etc/**").as_deref(), Some("/etc/"));
        assert_eq!(glob_literal("src/*.rs").as_deref(), Some("src/"));
        assert_eq!(glob_literal("**/id_rsa").as_deref(), Some("id_rsa"));
        assert_eq!(glob_literal("*.{rs,toml}").as_deref(), Some("."));
        assert_eq!(glob_literal("**"), None);
        assert_eq!(glob_literal("[ab]*"), None);
        assert_eq!(glob_literal(r"a\*b").as_deref(), Some("a*b"));
        // Classes and alternations whose end globset finds elsewhere than a naive scan.
        assert_eq!(glob_literal("[!]a]*"), None);
        assert_eq!(glob_literal("[^]a]xy"), Some("xy".into()));
        assert_eq!(glob_literal("ab[[:alpha:]]x"), Some("ab".into()));
        assert_eq!(glob_literal("{[}]a,b}c"), None);
        assert_eq!(glob_literal(r"{\},x}y"), None);
        assert_eq!(glob_literal("src/{a,b}/main.rs").as_deref(), Some("/main.rs"));
    }

    proptest::proptest! {
        /// The byte loop for short texts finds a literal exactly when `memmem` does.
        #[test]
        fn holds_short_agrees_with_memmem(hay in "[ab.]{0,12}", needle in "[ab.]{0,4}") {
            let found = memchr::memmem::find(hay.as_bytes(), needle.as_bytes()).is_some();
            proptest::prop_assert_eq!(holds_short(hay.as_bytes(), needle.as_bytes()), found);
        }
    }

    /// Where the first occurrence of any literal starts, the slow way.
    fn first_naive(lits: &[Vec<u8>], text: &[u8]) -> Option<usize> {
        (0..text.len()).find(|&i| lits.iter().any(|l| text.get(i..).is_some_and(|t| t.starts_with(l))))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
        /// The gate finds the start of the leftmost occurrence of any literal, over sets of up
        /// to 150 literals of 1 to 12 bytes (split into groups Teddy accepts) and texts over
        /// a small alphabet, so that literals occur, overlap and repeat.
        #[test]
        fn gate_finds_the_first_literal(
            lits in proptest::collection::vec(proptest::collection::vec(b'a'..=b'f', 1..12), 1..150),
            text in proptest::collection::vec(b'a'..=b'h', 0..700),
        ) {
            let mut lits = lits;
            lits.sort();
            lits.dedup();
            let Some(gate) = Gate::new(&lits) else { return Ok(()) };
            proptest::prop_assert_eq!(gate.first(&text), first_naive(&lits, &text));
        }
    }

    #[test]
    fn gate_splits_short_literals_into_groups_teddy_accepts() {
        // Teddy takes at most 16 one-byte literals in a group; this set needs several groups.
        let lits: Vec<Vec<u8>> = (0u8..40).map(|i| vec![b'!' + i]).chain((0u8..40).map(|i| vec![b'~', i])).collect();
        let Some(gate) = Gate::new(&lits) else {
            // No SIMD searcher on this machine: the filter scans every text, as before.
            return;
        };
        assert!(gate.searchers.len() >= 3, "{} groups", gate.searchers.len());
        let mut text = vec![b'z'; 300];
        assert_eq!(gate.first(&text), None);
        if let Some(b) = text.get_mut(250) {
            *b = b'#';
        }
        assert_eq!(gate.first(&text), Some(250));
        text.splice(100..102, [b'~', 5]);
        assert_eq!(gate.first(&text), Some(100));
    }

    #[test]
    fn gated_scan_reports_what_the_full_scan_reports() {
        let lits: Vec<Vec<u8>> =
            ["rmtree", "os.remove", "subprocess", ".git/", "unlink"].iter().map(|l| l.as_bytes().to_vec()).collect();
        let lazy = LazyAc::new(lits);
        lazy.build_dfa();
        let mut code = "def handler(request):\n    return {'status': 200}\n".repeat(40);
        let collect = |text: &str| {
            let mut found = Vec::new();
            let from = match lazy.start(text) {
                Some(None) => return found,
                Some(Some(at)) => at,
                None => 0,
            };
            let ac = lazy.get().expect("built");
            assert!(ac.each_pattern(text, from, |p| found.push(p)));
            found
        };
        let full = |text: &str| {
            let mut found = Vec::new();
            let ac = lazy.get().expect("built");
            assert!(ac.each_pattern(text, 0, |p| found.push(p)));
            found
        };
        assert!(code.len() >= Gate::MIN_TEXT);
        assert_eq!(collect(&code), Vec::<usize>::new());
        code.push_str("import shutil; shutil.rmtree('.git/x'); os.remove('.git/y')\n");
        assert_eq!(collect(&code), full(&code));
        assert_eq!(collect(&code).len(), 4);
    }
}
