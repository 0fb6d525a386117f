//! Secret detectors: the kinds of credential a tool result may carry, and finding them.
//!
//! A policy declares kinds with `secret` (stdlib/secrets.fak ships the floor's); a result
//! rule reads what was found as `result.secrets`. What a detector finds is defined line by
//! line, so that a prefilter can never change it:
//!
//! - a detector is tried on each line (the text between newlines) that holds one of its
//!   keywords, ASCII case ignored;
//! - each match of its pattern in that line is a candidate, and the secret is the pattern's
//!   first capture group when it took part in the match, else the whole match;
//! - a candidate whose secret has less Shannon entropy (bits per byte) than the detector's
//!   threshold, or that one of its `except` patterns matches (published examples,
//!   placeholders), is not a finding.
//!
//! `Detectors::find` finds the lines with one aho-corasick pass over the whole text for every
//! keyword of every detector; `Detectors::find_naive` reads every line for every detector,
//! and is what `find` is tested against.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use crate::diag::Loc;
use crate::ir;

/// One kind of secret, checked.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Detector {
    pub class: Class,
    pub kind: String,
    /// Lines holding one of these (ASCII case ignored) are the only ones the pattern is tried
    /// on.
    pub keywords: Vec<String>,
    pub pattern: ir::Regex,
    /// The least Shannon entropy, in bits per byte, a secret of this kind has.
    pub entropy: Option<f64>,
    /// A secret one of these matches is not one (published examples, placeholders).
    pub except: Vec<ir::Regex>,
    /// Texts with a secret of this kind, and texts without one: `fak policy --test` checks
    /// both.
    pub finds: Vec<String>,
    pub ignores: Vec<String>,
    pub loc: Loc,
}

/// What a detector looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Class {
    /// A credential (`secret`), looked for in the text as it is; `result.secrets`.
    Secret,
    /// Instructions aimed at the reading agent (`injection`), looked for in the normalised
    /// text; `result.injections`.
    Injection,
}

impl Class {
    pub fn keyword(self) -> &'static str {
        match self {
            Class::Secret => "secret",
            Class::Injection => "injection",
        }
    }
}

/// What the detectors found in one text, by class, each finding with its detector's index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub secrets: Vec<(usize, Finding)>,
    pub injections: Vec<(usize, Finding)>,
}

impl Found {
    /// The findings of one class.
    pub fn of(&self, class: Class) -> impl Iterator<Item = &Finding> {
        match class {
            Class::Secret => &self.secrets,
            Class::Injection => &self.injections,
        }
        .iter()
        .map(|(_, f)| f)
    }
}

/// A secret (or an injection) found in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: Arc<str>,
    /// Where the secret starts, in bytes from the start of the text.
    pub offset: usize,
    /// Its length in bytes.
    pub length: usize,
}

/// The fields of a finding (`s` in `any(s in result.secrets: ...)`), for the checker;
/// docs/POLICY.md repeats this table.
pub const FINDING_FIELDS: &[(&str, crate::tools::Ty, &str)] = &[
    ("kind", crate::tools::Ty::Str, "the kind: the `secret` or `injection` declaration's name"),
    (
        "offset",
        crate::tools::Ty::Num,
        "where it starts, in bytes from the start of the result (an injection's, of the normalised result)",
    ),
    ("length", crate::tools::Ty::Num, "its length in bytes"),
];

/// Shannon entropy of `s` in bits per byte: 0 for a repeated byte, 8 at most.
pub fn entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

/// A program's detectors, with the automaton over their keywords built on first use.
#[derive(Clone, Debug, Default)]
pub struct Detectors {
    detectors: Arc<[Detector]>,
    /// Every keyword of every detector, and the detector each belongs to. `Err` when the
    /// automaton could not be built: every line is then tried, as `find_naive` does.
    keywords: Arc<OnceLock<Result<(aho_corasick::dfa::DFA, Vec<u32>), String>>>,
    kinds: Arc<[Arc<str>]>,
    /// Some detector reads the normalised text.
    has_injections: bool,
}

/// Why a detector could not be run: its pattern is over the regex size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectError(pub String);

impl Detectors {
    pub fn new(detectors: &[Detector]) -> Detectors {
        Detectors {
            kinds: detectors.iter().map(|d| Arc::from(d.kind.as_str())).collect(),
            detectors: detectors.into(),
            keywords: Arc::default(),
            has_injections: detectors.iter().any(|d| d.class == Class::Injection),
        }
    }

    pub fn detectors(&self) -> &[Detector] {
        &self.detectors
    }

    /// Builds the keyword automaton now (what a server does at start-up).
    pub fn warm(&self) {
        let _ = self.automaton();
    }

    fn automaton(&self) -> Option<&(aho_corasick::dfa::DFA, Vec<u32>)> {
        self.keywords
            .get_or_init(|| {
                let mut words = Vec::new();
                let mut owner = Vec::new();
                for (i, d) in self.detectors.iter().enumerate() {
                    for k in &d.keywords {
                        words.push(k.as_bytes());
                        owner.push(u32::try_from(i).map_err(|e| e.to_string())?);
                    }
                }
                // A DFA walked by `scan`'s own loop: the overlapping iterator keeps its
                // position in memory and cost about four times as much a byte. No prefilter:
                // the keywords start with too many different bytes for one to skip ahead.
                aho_corasick::dfa::Builder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(aho_corasick::MatchKind::Standard)
                    .prefilter(false)
                    .start_kind(aho_corasick::StartKind::Unanchored)
                    .build(words)
                    .map(|ac| (ac, owner))
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .ok()
    }

    /// What the detectors find in a result's text: secrets in the text as it is, injections
    /// in the text normalised (`normalize`). Each list in order of where the findings start
    /// (then of the detectors); an injection's offset is in the normalised text.
    pub fn find(&self, text: &str) -> Result<Found, DetectError> {
        self.find_with(text, false)
    }

    /// The same as `find`, the slow way: every line, every detector, keywords compared one by
    /// one.
    pub fn find_naive(&self, text: &str) -> Result<Found, DetectError> {
        self.find_with(text, true)
    }

    fn find_with(&self, text: &str, naive: bool) -> Result<Found, DetectError> {
        let mut found = Found::default();
        if self.detectors.is_empty() {
            return Ok(found);
        }
        if naive || self.automaton().is_none() {
            // The definition: secrets in the text, injections in the normalised text.
            let normalized = if self.has_injections { crate::normalize::normalize(text) } else { Cow::Borrowed(text) };
            match normalized {
                Cow::Borrowed(_) => self.find_in(text, 0, None, true, &mut found)?,
                Cow::Owned(n) => {
                    self.find_in(text, 0, Some(Class::Secret), true, &mut found)?;
                    self.find_in(&n, 0, Some(Class::Injection), true, &mut found)?;
                }
            }
        } else {
            // The same, in as few passes as the text allows: one over an ASCII text, then one
            // over what was decoded.
            let folded = if self.has_injections { crate::normalize::fold(text) } else { Cow::Borrowed(text) };
            match &folded {
                Cow::Borrowed(_) => self.find_in(text, 0, None, false, &mut found)?,
                Cow::Owned(f) => {
                    self.find_in(text, 0, Some(Class::Secret), false, &mut found)?;
                    self.find_in(f, 0, Some(Class::Injection), false, &mut found)?;
                }
            }
            let runs =
                if self.has_injections { crate::normalize::long_runs_fast(folded.as_bytes()) } else { Vec::new() };
            let decoded = crate::normalize::decode_runs(&folded, &runs);
            if !decoded.is_empty() {
                // The normalised text is the folded one, a line break, and the decoded texts
                // one after another: the lines after the break are the decoded text's own.
                let rest = decoded.join("\n");
                self.find_in(&rest, folded.len() + 1, Some(Class::Injection), false, &mut found)?;
            }
        }
        for list in [&mut found.secrets, &mut found.injections] {
            list.sort_by_key(|(d, f)| (f.offset, *d));
            list.dedup();
        }
        Ok(found)
    }

    /// Runs the detectors of `only` (all when `None`) over `text`, which starts at byte `base`
    /// of the text findings are placed in, adding to `found`: with the automaton, or `naive`ly,
    /// line by line.
    fn find_in(
        &self,
        text: &str,
        base: usize,
        only: Option<Class>,
        naive: bool,
        found: &mut Found,
    ) -> Result<(), DetectError> {
        let wanted = |d: &Detector| only.is_none_or(|c| c == d.class);
        let automaton = if naive { None } else { self.automaton() };
        let Some((ac, owner)) = automaton else {
            let mut start = 0;
            for line in text.split('\n') {
                let lower = line.to_ascii_lowercase();
                for (d, det) in self.detectors.iter().enumerate().filter(|(_, det)| wanted(det)) {
                    if det.keywords.iter().any(|k| lower.contains(&k.to_ascii_lowercase())) {
                        self.try_line(d, det, line, base + start, found)?;
                    }
                }
                start += line.len() + 1;
            }
            return Ok(());
        };
        // The lines to try each detector on. The scan reports keywords in the order they end,
        // so a detector's lines come in order and repeats are next to each other.
        let bytes = text.as_bytes();
        let mut last_line: Vec<usize> = vec![usize::MAX; self.detectors.len()];
        let mut todo: Vec<(usize, usize, usize)> = Vec::new();
        scan(ac, bytes, |pattern, at| {
            let Some(&d) = owner.get(pattern) else { return };
            let d = d as usize;
            if !self.detectors.get(d).is_some_and(wanted) {
                return;
            }
            let start = memchr::memrchr(b'\n', bytes.get(..at).unwrap_or_default()).map_or(0, |i| i + 1);
            if last_line.get(d) == Some(&start) {
                return;
            }
            if let Some(l) = last_line.get_mut(d) {
                *l = start;
            }
            let end = memchr::memchr(b'\n', bytes.get(at..).unwrap_or_default()).map_or(text.len(), |i| at + i);
            todo.push((d, start, end));
        });
        for (d, start, end) in todo {
            if let (Some(det), Some(line)) = (self.detectors.get(d), text.get(start..end)) {
                self.try_line(d, det, line, base + start, found)?;
            }
        }
        Ok(())
    }

    /// The findings of detector `d` in one line, which starts at byte `at` of the text.
    fn try_line(&self, d: usize, det: &Detector, line: &str, at: usize, found: &mut Found) -> Result<(), DetectError> {
        let out = match det.class {
            Class::Secret => &mut found.secrets,
            Class::Injection => &mut found.injections,
        };
        let re = det.pattern.get().map_err(|e| DetectError(format!("secret `{}`: {e}", det.kind)))?;
        for caps in re.captures_iter(line) {
            let Some(m) = caps.get(1).or_else(|| caps.get(0)) else { continue };
            let secret = m.as_str();
            if det.entropy.is_some_and(|min| entropy(secret) < min) {
                continue;
            }
            let mut excepted = false;
            for e in &det.except {
                if e.is_match(secret).map_err(|e| DetectError(format!("secret `{}`: {e}", det.kind)))? {
                    excepted = true;
                    break;
                }
            }
            if excepted {
                continue;
            }
            let kind = self.kinds.get(d).cloned().unwrap_or_else(|| Arc::from(det.kind.as_str()));
            out.push((d, Finding { kind, offset: at + m.start(), length: m.len() }));
        }
        Ok(())
    }
}

/// Reports every keyword occurrence in `bytes`, overlapping ones included, as the pattern and
/// where it starts, in the order the occurrences end. `false` when the DFA cannot search (it
/// always can: it is built unanchored).
///
/// A DFA walk is bound by the latency of one table load a byte, whatever the instructions
/// around it. A long text is cut at line breaks into `LANES` pieces walked side by side, so
/// that the loads overlap (keywords hold no line break, so none spans a cut); the hits are
/// reported piece by piece, which keeps them in order.
fn scan(dfa: &aho_corasick::dfa::DFA, bytes: &[u8], mut hit: impl FnMut(usize, usize)) -> bool {
    use aho_corasick::automaton::Automaton as _;
    const LANES: usize = 4;
    /// Below this, one walk: cutting costs more than it saves.
    const MIN_LANE: usize = 256;
    let Ok(start) = dfa.start_state(aho_corasick::Anchored::No) else { return false };
    // Without a prefilter only match and dead states are special, and an unanchored search
    // never dies.
    let report = |sid, end: usize, out: &mut dyn FnMut(usize, usize)| {
        for k in 0..dfa.match_len(sid) {
            let p = dfa.match_pattern(sid, k);
            out(p.as_usize(), end.saturating_sub(dfa.pattern_len(p)));
        }
    };
    if bytes.len() < LANES * MIN_LANE {
        let mut sid = start;
        for (i, &b) in bytes.iter().enumerate() {
            sid = dfa.next_state(aho_corasick::Anchored::No, sid, b);
            if dfa.is_special(sid) && dfa.is_match(sid) {
                report(sid, i + 1, &mut hit);
            }
        }
        return true;
    }
    // Cut after the first line break at or past each quarter (a piece may be empty).
    let mut cuts = [0usize; LANES + 1];
    for (k, cut) in cuts.iter_mut().enumerate().skip(1) {
        let want = bytes.len() * k / LANES;
        *cut = if k == LANES {
            bytes.len()
        } else {
            memchr::memchr(b'\n', bytes.get(want..).unwrap_or_default()).map_or(bytes.len(), |i| want + i + 1)
        };
    }
    for k in 1..=LANES {
        let prev = cuts.get(k - 1).copied().unwrap_or(0);
        if let Some(c) = cuts.get_mut(k) {
            *c = (*c).max(prev);
        }
    }
    let lane = |k: usize| {
        let (a, b) = (cuts.get(k).copied().unwrap_or(0), cuts.get(k + 1).copied().unwrap_or(0));
        (a, bytes.get(a..b).unwrap_or_default())
    };
    let [(b0, l0), (b1, l1), (b2, l2), (b3, l3)] = [lane(0), lane(1), lane(2), lane(3)];
    let mut hits: [Vec<(usize, usize)>; LANES] = Default::default();
    let n = l0.len().min(l1.len()).min(l2.len()).min(l3.len());
    fn head(l: &[u8], n: usize) -> &[u8] {
        l.get(..n).unwrap_or_default()
    }
    let next = |sid, b| dfa.next_state(aho_corasick::Anchored::No, sid, b);
    // Four states in registers, one branch a step for the rare match.
    let (mut s0, mut s1, mut s2, mut s3) = (start, start, start, start);
    for (i, (((&x0, &x1), &x2), &x3)) in
        head(l0, n).iter().zip(head(l1, n)).zip(head(l2, n)).zip(head(l3, n)).enumerate()
    {
        s0 = next(s0, x0);
        s1 = next(s1, x1);
        s2 = next(s2, x2);
        s3 = next(s3, x3);
        if dfa.is_special(s0) | dfa.is_special(s1) | dfa.is_special(s2) | dfa.is_special(s3) {
            for ((sid, base), h) in [(s0, b0), (s1, b1), (s2, b2), (s3, b3)].into_iter().zip(hits.iter_mut()) {
                if dfa.is_match(sid) {
                    report(sid, base + i + 1, &mut |p, at| h.push((p, at)));
                }
            }
        }
    }
    // The rest of each piece, alone.
    for ((mut sid, (base, l)), h) in
        [s0, s1, s2, s3].into_iter().zip([(b0, l0), (b1, l1), (b2, l2), (b3, l3)]).zip(hits.iter_mut())
    {
        for (i, &b) in l.iter().enumerate().skip(n) {
            sid = next(sid, b);
            if dfa.is_special(sid) && dfa.is_match(sid) {
                report(sid, base + i + 1, &mut |p, at| h.push((p, at)));
            }
        }
    }
    for (p, at) in hits.iter().flatten() {
        hit(*p, *at);
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn det(kind: &str, keywords: &[&str], pattern: &str, entropy: Option<f64>, except: &[&str]) -> Detector {
        Detector {
            class: Class::Secret,
            kind: kind.into(),
            keywords: keywords.iter().map(|s| s.to_string()).collect(),
            pattern: ir::compile_regex(pattern).unwrap(),
            entropy,
            except: except.iter().map(|s| ir::compile_regex(s).unwrap()).collect(),
            finds: Vec::new(),
            ignores: Vec::new(),
            loc: Loc::default(),
        }
    }

    #[test]
    fn entropy_of_known_strings() {
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("abab") - 1.0).abs() < 1e-9);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn finds_by_line_keyword_entropy_and_exceptions() {
        let ds = Detectors::new(&[
            det("aws", &["akia"], r"\b(AKIA[A-Z2-7]{16})\b", Some(3.0), &["EXAMPLE"]),
            det("pw", &["password"], r"password\s*=\s*(\S+)", None, &[r"^changeme$"]),
        ]);
        let text = "x\nid = AKIALTIRBD7EBJV5XGWY\nAKIAIOSFODNN7EXAMPLE\nAKIAAAAAAAAAAAAAAAAA\nPassword = hunter2 password=changeme\n";
        let found = ds.find(text).unwrap();
        let got: Vec<(&str, &str)> =
            found.of(Class::Secret).map(|f| (&*f.kind, text.get(f.offset..f.offset + f.length).unwrap())).collect();
        // The all-A key has no entropy, the EXAMPLE key is excepted, `Password` is not the
        // pattern's case, `changeme` is a placeholder.
        assert_eq!(got, [("aws", "AKIALTIRBD7EBJV5XGWY")]);
        assert_eq!(ds.find_naive(text).unwrap(), found);
        // The keyword must be on the line the pattern matches.
        let ds = Detectors::new(&[det("pw", &["secret"], r"pw=(\w+)", None, &[])]);
        assert_eq!(ds.find("secret\npw=abc").unwrap().of(Class::Secret).count(), 0);
        assert_eq!(ds.find("secret pw=abc").unwrap().of(Class::Secret).count(), 1);
    }
}
