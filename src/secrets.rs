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

use std::sync::{Arc, OnceLock};

use crate::diag::Loc;
use crate::ir;

/// One kind of secret, checked.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Detector {
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

/// A secret found in a text.
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
    ("kind", crate::tools::Ty::Str, "the kind of secret: the `secret` declaration's name"),
    ("offset", crate::tools::Ty::Num, "where the secret starts, in bytes from the start of the result"),
    ("length", crate::tools::Ty::Num, "the secret's length in bytes"),
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
        }
    }

    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty()
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

    /// The secrets in `text`, in order of where they start (then of the detectors).
    pub fn find(&self, text: &str) -> Result<Vec<Finding>, DetectError> {
        if self.detectors.is_empty() {
            return Ok(Vec::new());
        }
        let Some((ac, owner)) = self.automaton() else {
            return self.find_naive(text);
        };
        // The lines to try each detector on. The overlapping search reports matches in the
        // order they end, so a detector's lines come in order and repeats are next to each
        // other.
        let bytes = text.as_bytes();
        let mut last_line: Vec<usize> = vec![usize::MAX; self.detectors.len()];
        let mut todo: Vec<(usize, usize, usize)> = Vec::new();
        let scanned = scan(ac, bytes, |pattern, at| {
            let Some(&d) = owner.get(pattern) else { return };
            let d = d as usize;
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
        if !scanned {
            return self.find_naive(text);
        }
        let mut out = Vec::new();
        for (d, start, end) in todo {
            if let (Some(det), Some(line)) = (self.detectors.get(d), text.get(start..end)) {
                self.try_line(d, det, line, start, &mut out)?;
            }
        }
        out.sort_by_key(|f: &(usize, Finding)| (f.1.offset, f.0));
        out.dedup();
        Ok(out.into_iter().map(|(_, f)| f).collect())
    }

    /// The same as `find`, the slow way: every line, every detector, keywords compared one by
    /// one.
    pub fn find_naive(&self, text: &str) -> Result<Vec<Finding>, DetectError> {
        let mut out = Vec::new();
        let mut start = 0;
        for line in text.split('\n') {
            let lower = line.to_ascii_lowercase();
            for (d, det) in self.detectors.iter().enumerate() {
                if det.keywords.iter().any(|k| lower.contains(&k.to_ascii_lowercase())) {
                    self.try_line(d, det, line, start, &mut out)?;
                }
            }
            start += line.len() + 1;
        }
        out.sort_by_key(|f: &(usize, Finding)| (f.1.offset, f.0));
        out.dedup();
        Ok(out.into_iter().map(|(_, f)| f).collect())
    }

    /// The findings of detector `d` in one line, which starts at byte `at` of the text.
    fn try_line(
        &self,
        d: usize,
        det: &Detector,
        line: &str,
        at: usize,
        out: &mut Vec<(usize, Finding)>,
    ) -> Result<(), DetectError> {
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
    const MIN_LANE: usize = 4096;
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
            found.iter().map(|f| (&*f.kind, text.get(f.offset..f.offset + f.length).unwrap())).collect();
        // The all-A key has no entropy, the EXAMPLE key is excepted, `Password` is not the
        // pattern's case, `changeme` is a placeholder.
        assert_eq!(got, [("aws", "AKIALTIRBD7EBJV5XGWY")]);
        assert_eq!(ds.find_naive(text).unwrap(), found);
        // The keyword must be on the line the pattern matches.
        let ds = Detectors::new(&[det("pw", &["secret"], r"pw=(\w+)", None, &[])]);
        assert!(ds.find("secret\npw=abc").unwrap().is_empty());
        assert_eq!(ds.find("secret pw=abc").unwrap().len(), 1);
    }
}
