//! A fast reader for plain scripts: the lists of simple commands agents write most.
//!
//! brush-parser reads all of bash but costs microseconds per command (a token stream, a PEG
//! parse, a second parse of every word); a policy decision has a budget of a few. Most
//! commands agents send are plain: words, quotes, escapes, redirections, here-documents,
//! joined by `;`, `&&`, `||`, `|`, `&` and newlines. This reader takes exactly those in one
//! pass, with command substitutions `$(...)` in words read by a nested reader (Claude Code
//! commits with `git commit -m "$(cat <<'EOF' ... EOF)"`), and gives up (`None`) on anything
//! else — other `$` expansions, backquotes, parentheses, reserved words, `!`, line
//! continuations, control characters, `~user` — which then goes to brush-parser.
//! No crate reads "the plain subset of bash, or say you can't"; it is written here for that
//! reason. What it produces must be what the brush path produces for the same script: the
//! differential test in tests/it/shell.rs and the `shell_view` fuzz target hold both to one
//! `View`.
//!
//! It records as it reads: each simple command, when it ends, goes to the walker
//! (`Walker::plain_command`) with its words already in the view's lists, so nothing read is
//! kept in a list of its own and walked again. A command waits only for the here-documents of
//! its line (their bodies come after it). When the script turns out not to be plain, the
//! walker cuts the view back to where it was (`Walker::rollback`) and brush-parser reads it.

use std::ops::Range;

use super::programs::Arg;
use super::view::{At, Shared, Walker, MAX_COMMANDS};
use super::{Redirect, Span, Str, Word};
use bumpalo::Bump;

/// The command being read. Its assignments' and words' runs go to the view's words as they
/// are read (a substitution in one of its words moves them past its own commands' words);
/// its redirections and text are kept here until it ends, then join the view's lists, and
/// the command goes to the walker (`Walker::plain_command`): a command's parts stay together
/// in the view even when a substitution records commands of its own first. The top reader
/// keeps one and reuses its buffers from command to command.
#[derive(Default)]
struct Cur<'s> {
    /// A command has started (a word, an assignment or a redirection was read).
    started: bool,
    /// How many commands the view held when it started (the walker's budget is checked
    /// against that, as the brush walk checks it before a command's substitutions).
    first_record: usize,
    /// Its words after quote removal: runs of the script, or text in the read's `Bump`.
    args: Vec<Arg<'s>>,
    /// Where its assignments and then its words start in the view's words (whose runs of
    /// the view's text are pushed there as they are read), and how many assignments it has.
    /// A substitution moves them past its own commands' (`Reader::substitution`).
    words_start: usize,
    assigns: usize,
    redirects: Vec<Redirect>,
    /// The commands recorded inside each word (its substitutions), once some word has any;
    /// words past the end have none.
    ranges: Vec<Range<usize>>,
    /// How many substitutions were read in it.
    subs: usize,
    /// The command's text while it is a run of the script (`add_text`), else `None` and the
    /// text is in `text`.
    span: Option<(usize, usize)>,
    text: String,
}

/// Where a command stands in its pipeline.
#[derive(Clone, Copy)]
enum Stage {
    /// The first stage; `single` when the pipeline has no other.
    First { single: bool },
    /// A later stage: the commands since `from` (the pipeline's start, when its first stage
    /// was recorded before this one waited) feed it.
    Next { from: Option<usize> },
}

/// A command read whole but not yet recorded: it waits for the here-documents of its line,
/// whose bodies come after the line (a `bash <<EOF` runs its body).
struct Deferred<'s> {
    /// How many commands the view held when it started, and when it ended (its
    /// substitutions' are between).
    start: usize,
    end: usize,
    args: Vec<Arg<'s>>,
    words: Span,
    ranges: Vec<Range<usize>>,
    shared: Shared,
    stage: Stage,
}

/// How deep substitutions nest before the reader leaves the script to brush-parser (whose
/// walk refuses what is nested too deep).
const MAX_SUB_DEPTH: usize = 4;

/// Words bash treats as syntax in command position.
fn is_reserved(word: &str) -> bool {
    // Most command names start with another letter, or have another length than the
    // reserved words that start with theirs: a bit per length, by first byte.
    let lengths: u16 = match word.as_bytes().first() {
        Some(b'i') => 1 << 2,
        Some(b't' | b'e') => 1 << 4,
        Some(b'f') => 1 << 2 | 1 << 3 | 1 << 8,
        Some(b'd') => 1 << 2 | 1 << 4,
        Some(b'c') => 1 << 4 | 1 << 6,
        Some(b'w' | b'u') => 1 << 5,
        Some(b's') => 1 << 6,
        Some(b'{' | b'}' | b'!') => 1 << 1,
        Some(b'[' | b']') => 1 << 2,
        _ => return false,
    };
    if word.len() >= 16 || lengths >> word.len() & 1 == 0 {
        return false;
    }
    matches!(
        word,
        "if" | "then"
            | "elif"
            | "else"
            | "fi"
            | "do"
            | "done"
            | "case"
            | "esac"
            | "while"
            | "until"
            | "for"
            | "in"
            | "select"
            | "function"
            | "time"
            | "coproc"
            | "{"
            | "}"
            | "!"
            | "[["
            | "]]"
    )
}

/// Reads a plain script and records its commands in `w`'s view as it goes, each run where
/// `at` says; the script is in the view's text from `base`. `None` when the script is not
/// plain: the view may then hold part of it, which the caller takes back out
/// (`Walker::rollback`). `Some(q)`: `q` tells whether a here-document inside a substitution
/// holds quoting (looked for only when `note_quoting` is set; see
/// `quoting_in_substituted_heredoc`).
pub(super) fn read(w: &mut Walker<'_>, script: &str, base: usize, at: At, note_quoting: bool) -> Option<bool> {
    let bump = Bump::new();
    let mut r = Reader::new(script, 0, 0, w, at, base, &bump);
    r.note_quoting = note_quoting;
    r.run()?;
    // Every command waiting for a here-document got it when its line ended.
    if !r.deferred.is_empty() {
        return None;
    }
    Some(r.quoting_in_sub_heredoc)
}

/// A here-document whose body is read at the end of its line.
struct Pending {
    /// Where its redirection is: in `Cur::redirects` until its command ends, then (`placed`)
    /// in the view's. No command ends between the redirection and the end of its line but
    /// the one it belongs to and those after it (a substitution with a here-document pending
    /// is not plain), so nothing is added before it.
    at: usize,
    placed: bool,
    delim: String,
    strip_tabs: bool,
    quoted: bool,
}

struct Reader<'s, 'r, 'c> {
    s: &'s str,
    b: &'s [u8],
    i: usize,
    /// The walker whose view the commands go to.
    w: &'r mut Walker<'c>,
    /// Where the commands run (a `cd` moves it; a substitution's reader has its own).
    at: At,
    /// Where the script starts in the view's text: a word read as written is a run of it.
    base: usize,
    /// Where the words with quotes removed go.
    bump: &'s Bump,
    cur: Cur<'s>,
    /// How many stages of the pipeline being read have ended.
    stages: usize,
    /// How many commands the view held when the pipeline started: the later stages'
    /// upstream starts there.
    pipe_start: usize,
    /// The pipeline's first stage waits for a here-document.
    pipe_deferred: bool,
    heredocs: Vec<Pending>,
    deferred: Vec<Deferred<'s>>,
    /// How many substitutions this reader is inside: above 0 the script ends at its `)`.
    depth: usize,
    /// A here-document body inside a substitution holds quoting or an expansion character
    /// (`quoting_in_substituted_heredoc`), looked for only when `note_quoting` is set: the
    /// view itself does not need it.
    quoting_in_sub_heredoc: bool,
    note_quoting: bool,
}

/// A word as read.
struct ReadWord<'s> {
    arg: Arg<'s>,
    raw_start: usize,
    raw_end: usize,
    /// Where its text starts in the script when it is a run of it (a plain word's is the
    /// word; a word quoted whole, the run between its quotes).
    text_at: Option<usize>,
    /// Some character was quoted or escaped.
    quoted: bool,
    /// It may be an assignment: it holds an `=` (or was not scanned for one).
    equals: bool,
    /// How many substitutions its command had before it (`Cur::subs`).
    subs_from: usize,
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Byte classes, one table lookup a byte (the reader's scans are most of its time).
/// A byte that ends a word: blanks, newlines and operators.
const META: u8 = 1;
/// A byte that ends a run of ordinary bytes inside a word: quotes, escapes, expansions,
/// history, tilde, control characters.
const SPECIAL: u8 = 2;
/// A byte that may make a run a glob or a brace expansion.
const PATTERN: u8 = 4;
/// `=`: a word without one is no assignment, and is not looked at as one.
const EQUALS: u8 = 8;

// Indexing cannot panic: a `u8` indexes a table of 256.
#[allow(clippy::indexing_slicing)]
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if matches!(c, b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>') {
            t[b] |= META;
        }
        if matches!(c, b'\'' | b'"' | b'\\' | b'$' | b'`' | b'!' | b'~') || c < 0x20 {
            t[b] |= SPECIAL;
        }
        if matches!(c, b'*' | b'?' | b'[' | b'{') {
            t[b] |= PATTERN;
        }
        if c == b'=' {
            t[b] |= EQUALS;
        }
        b += 1;
    }
    t
};

/// The class bits of byte `c`.
#[allow(clippy::indexing_slicing)] // a `u8` indexes a table of 256
fn class(c: u8) -> u8 {
    CLASS[usize::from(c)]
}

/// Bytes that end a word.
fn is_meta(c: u8) -> bool {
    class(c) & META != 0
}

/// An unquoted run of a word that the shell expands to file names.
fn globby(t: &str) -> bool {
    let b = t.as_bytes();
    if !b.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
        return false; // most runs: one pass
    }
    b.contains(&b'*')
        || b.contains(&b'?')
        || b.iter().position(|c| *c == b'[').is_some_and(|i| b.get(i + 1..).is_some_and(|r| r.contains(&b']')))
}

/// What an unquoted run of a word expands to at run time, if anything: file names (a glob,
/// which wins) or a brace expansion.
pub(super) fn expansion(t: &str) -> Option<&'static str> {
    if globby(t) {
        Some("a glob")
    } else if braced(t) {
        Some("brace expansion")
    } else {
        None
    }
}

/// An unquoted run of a word that brace expansion rewrites.
fn braced(t: &str) -> bool {
    let b = t.as_bytes();
    b.contains(&b'{') && b.iter().any(|c| matches!(c, b',' | b'.')) && b.contains(&b'}')
}

impl<'s, 'r, 'c> Reader<'s, 'r, 'c> {
    fn new(s: &'s str, i: usize, depth: usize, w: &'r mut Walker<'c>, at: At, base: usize, bump: &'s Bump) -> Self {
        let pipe_start = w.out.records.len();
        Reader {
            s,
            b: s.as_bytes(),
            i,
            w,
            at,
            base,
            bump,
            cur: Cur::default(),
            stages: 0,
            pipe_start,
            pipe_deferred: false,
            heredocs: Vec::new(),
            deferred: Vec::new(),
            depth,
            quoting_in_sub_heredoc: false,
            note_quoting: false,
        }
    }

    /// The run `start..end` of the script in the view's text.
    fn span(&self, start: usize, end: usize) -> Span {
        self.w.out.span_from(self.base + start, self.base + end)
    }

    fn peek(&self, off: usize) -> Option<u8> {
        self.b.get(self.i + off).copied()
    }

    fn run(&mut self) -> Option<()> {
        // After `|`, `&&` or `||` a command must follow (newlines may come first).
        let mut need = false;
        loop {
            // Past the blanks (most often one) to the next byte.
            let mut i = self.i;
            while self.b.get(i).is_some_and(|&c| is_blank(c)) {
                i += 1;
            }
            self.i = i;
            let Some(&c) = self.b.get(i) else { break };
            if !self.cur.started {
                // Where a command (and a pipeline) starts, before its substitutions record any.
                let n = self.w.out.records.len();
                self.cur.first_record = n;
                self.cur.words_start = self.w.out.words.len();
                if self.stages == 0 {
                    self.pipe_start = n;
                }
            }
            match c {
                b'\n' => {
                    self.i += 1;
                    if need {
                        if !self.heredocs.is_empty() {
                            return None;
                        }
                        continue;
                    }
                    self.end_pipeline(false)?;
                    self.read_heredocs()?;
                }
                b';' => {
                    // `;;`, `;&` and `;;&` are `case` operators: a syntax error out of one.
                    if need || matches!(self.peek(1), Some(b';' | b'&')) {
                        return None;
                    }
                    self.i += 1;
                    self.end_pipeline(true)?;
                }
                b'&' if self.peek(1) == Some(b'&') => {
                    if need {
                        return None;
                    }
                    self.i += 2;
                    self.end_pipeline(true)?;
                    need = true;
                }
                b'&' if self.peek(1) == Some(b'>') => {
                    need = false;
                    self.redirect(None)?;
                }
                b'&' => {
                    if need {
                        return None;
                    }
                    self.i += 1;
                    self.end_pipeline(true)?;
                }
                b'|' => {
                    if need || self.peek(1) == Some(b'&') {
                        return None;
                    }
                    if self.peek(1) == Some(b'|') {
                        self.i += 2;
                        self.end_pipeline(true)?;
                    } else {
                        self.i += 1;
                        self.end_simple(true, false)?;
                    }
                    need = true;
                }
                b')' if self.depth > 0 => {
                    // The end of a substitution: its here-documents must be complete.
                    if need || !self.heredocs.is_empty() {
                        return None;
                    }
                    self.i += 1;
                    return self.end_pipeline(false);
                }
                b'(' | b')' => return None,
                b'<' | b'>' => {
                    need = false;
                    self.redirect(None)?;
                }
                // brush-parser ends a substitution at a `)` inside a comment.
                b'#' if self.depth > 0 => return None,
                b'#' => {
                    while self.peek(0).is_some_and(|c| c != b'\n') {
                        self.i += 1;
                    }
                }
                _ => {
                    need = false;
                    if self.plain_word()? {
                        continue;
                    }
                    let before = self.w.out.records.len();
                    let w = self.word()?;
                    // `2>file`: digits right before a redirection are its descriptor.
                    if !w.quoted && matches!(self.peek(0), Some(b'<' | b'>')) {
                        let raw = self.s.get(w.raw_start..w.raw_end)?;
                        if raw.bytes().all(|c| c.is_ascii_digit()) {
                            // A descriptor past nine digits is brush-parser's walk's to refuse.
                            if raw.len() > 9 {
                                return None;
                            }
                            let fd = raw.parse::<u32>().ok()?;
                            self.redirect(Some((fd, w.raw_start)))?;
                            continue;
                        }
                        if raw.starts_with('{') {
                            return None; // `{fd}>file`
                        }
                    }
                    self.push_word(w, before)?;
                }
            }
        }
        if need || !self.heredocs.is_empty() || self.depth > 0 {
            return None;
        }
        self.end_pipeline(false)?;
        Some(())
    }

    /// The command substitution at `$(` (not `$((`): read by a nested reader up to its `)`,
    /// its commands recorded (before the command whose word it is in), and added to the
    /// word's `text` as written.
    fn substitution(&mut self, word: &mut bumpalo::collections::String<'s>) -> Option<()> {
        // Here-documents pending on this line would be read inside the substitution.
        if self.depth >= MAX_SUB_DEPTH || !self.heredocs.is_empty() || self.peek(2) == Some(b'(') {
            return None;
        }
        let start = self.i + 2;
        // The command's words so far go after the substitution's commands' words.
        let held = self.w.out.words.split_off(self.cur.words_start.min(self.w.out.words.len()));
        let before = self.w.checkpoint();
        let mut via = self.at.via.clone();
        via.push("$(...)".into());
        let at = At { via, cwd: self.at.cwd.clone(), depth: self.at.depth + 1 };
        let (s, base, bump, depth, note) = (self.s, self.base, self.bump, self.depth, self.note_quoting);
        let mut inner = Reader::new(s, start, depth + 1, &mut *self.w, at, base, bump);
        inner.note_quoting = note;
        inner.run()?;
        let (end, quoting) = (inner.i, inner.quoting_in_sub_heredoc);
        let text = self.s.get(start..end.checked_sub(1)?)?;
        if text.contains('\t') {
            return None; // brush-parser gives the word's text with tabs as spaces
        }
        word.push_str(self.s.get(self.i..end)?);
        self.i = end;
        self.quoting_in_sub_heredoc |= quoting;
        self.cur.subs += 1;
        // What the walker refuses to read (too deep, ...) is opaque, its commands unrecorded.
        if let Some(why) = super::view::refusal(text, self.at.depth + 1) {
            self.w.rollback(before);
            self.w.opaque(why);
        }
        self.cur.words_start = self.w.out.words.len();
        self.w.out.words.extend_from_slice(&held);
        Some(())
    }

    /// Adds a word read by `word` to the command (`before`: how many commands the view held
    /// before it was read).
    fn push_word(&mut self, w: ReadWord<'s>, before: usize) -> Option<()> {
        let s = self.s;
        self.add_text(w.raw_start, w.raw_end, true, |t| t.push_str(s.get(w.raw_start..w.raw_end).unwrap_or_default()));
        self.cur.started = true;
        let span = match w.text_at {
            Some(at) => self.span(at, at + w.arg.text.len()),
            None => self.w.out.push_chars(w.arg.text),
        };
        self.w.out.words.push(span);
        let index = self.cur.args.len();
        if index == 0 {
            let raw = s.get(w.raw_start..w.raw_end)?;
            if w.equals && is_assignment(raw) {
                self.cur.assigns += 1;
                return Some(()); // the commands of its substitutions belong to no word
            }
            if w.equals && names_a_subscript(raw) {
                return None; // `a[i]=x`, `a[]=x`: an array element (or bash's error); brush-parser reads it
            }
            if is_reserved(w.arg.text) {
                return None;
            }
        }
        let after = self.w.out.records.len();
        if after > before {
            self.cur.ranges.resize(index, before..before);
            self.cur.ranges.push(before..after);
        }
        self.cur.args.push(w.arg);
        Some(())
    }

    /// Ends the simple command being read (`last`: its pipeline ends with it): its parts join
    /// the view's lists and it is recorded, or waits for its line's here-documents. An empty
    /// one is a syntax error when `required`.
    fn end_simple(&mut self, required: bool, last: bool) -> Option<()> {
        if !self.cur.started {
            return if required { None } else { Some(()) };
        }
        let (cur, out) = (&mut self.cur, &mut self.w.out);
        cur.started = false;
        // Its assignments, then its words: the last the view's words hold.
        let assigns = cur.words_start;
        let words = assigns + cur.assigns;
        let redirects = out.redirects.len();
        if !cur.redirects.is_empty() {
            for h in self.heredocs.iter_mut().filter(|h| !h.placed) {
                h.at += redirects;
                h.placed = true;
            }
            out.redirects.append(&mut cur.redirects);
        }
        // Its text: most often a run of the script, which is in the view's text already.
        let text = match cur.span.take() {
            Some((a, b)) => out.span_from(self.base + a, self.base + b),
            None => {
                let t = out.push_chars(&cur.text);
                cur.text.clear();
                t
            }
        };
        let shared = Shared {
            assigns: out.span_from(assigns, words),
            redirects: out.span_from(redirects, out.redirects.len()),
            text,
        };
        let words = out.span_from(words, out.words.len());
        cur.assigns = 0;
        cur.subs = 0;
        let first = self.stages == 0;
        self.stages += 1;
        if !self.heredocs.is_empty() {
            // Its here-documents' bodies come after the line: it waits for them.
            let stage = if first {
                self.pipe_deferred = true;
                Stage::First { single: last }
            } else {
                Stage::Next { from: (!self.pipe_deferred).then_some(self.pipe_start) }
            };
            let (args, ranges) = (std::mem::take(&mut cur.args), std::mem::take(&mut cur.ranges));
            let (start, end) = (cur.first_record, self.w.out.records.len());
            self.deferred.push(Deferred { start, end, args, words, ranges, shared, stage });
            return Some(());
        }
        let over = cur.first_record >= MAX_COMMANDS;
        // The stages before it feed it: the commands from the pipeline's start to its own
        // (not its substitutions').
        let upstream = (!first).then_some(self.pipe_start..cur.first_record);
        self.w.plain_command(&cur.args, words, &cur.ranges, shared, &mut self.at, upstream, first && last, over);
        cur.args.clear();
        cur.ranges.clear();
        Some(())
    }

    fn end_pipeline(&mut self, required: bool) -> Option<()> {
        if !self.cur.started && self.stages == 0 {
            return if required { None } else { Some(()) };
        }
        self.end_simple(true, true)?;
        self.stages = 0;
        self.pipe_deferred = false;
        Some(())
    }

    /// Records the commands that waited for their line's here-documents, in order.
    fn record_deferred(&mut self) {
        let mut start = self.w.out.records.len();
        for d in std::mem::take(&mut self.deferred) {
            // Where it starts as if it had been recorded when it ended: before its
            // substitutions' commands, which only the first to wait can have (no substitution
            // is plain while a here-document is pending), and nothing was recorded after them.
            let now = self.w.out.records.len();
            let begin = if now == d.end { d.start.min(now) } else { now };
            let (upstream, single) = match d.stage {
                Stage::First { single } => {
                    start = begin;
                    (None, single)
                }
                Stage::Next { from } => (Some(from.unwrap_or(start)..begin), false),
            };
            let over = begin >= MAX_COMMANDS;
            self.w.plain_command(&d.args, d.words, &d.ranges, d.shared, &mut self.at, upstream, single, over);
        }
    }

    /// The run of ordinary bytes at `start` (pattern bytes and `=` included: `seen` has their
    /// classes): its length, and whether it is a whole word (what follows ends one).
    #[inline]
    fn plain_run(&self, start: usize) -> (usize, u8, bool) {
        let rest = self.b.get(start..).unwrap_or_default();
        // One test a byte: a byte that ends the run stops it, any other's class (0, or the
        // pattern and `=` bits) is noted as read.
        let mut seen = 0u8;
        let mut n = rest.len();
        for (k, &x) in rest.iter().enumerate() {
            let c = class(x);
            if c & (META | SPECIAL) != 0 {
                n = k;
                break;
            }
            seen |= c;
        }
        (n, seen, n > 0 && rest.get(n).is_none_or(|&x| is_meta(x)))
    }

    /// Reads and adds the word here when it is one run of ordinary bytes not followed by a
    /// redirection (most words): `push_word` without building a `Word` to move around.
    /// `Some(false)` leaves the word to `word`.
    #[inline]
    fn plain_word(&mut self) -> Option<bool> {
        let start = self.i;
        let (n, seen, whole) = self.plain_run(start);
        if !whole || matches!(self.b.get(start + n), Some(b'<' | b'>')) {
            return Some(false);
        }
        let end = start + n;
        let text = self.s.get(start..end)?;
        self.i = end;
        let s = self.s;
        self.add_text(start, end, true, |t| t.push_str(s.get(start..end).unwrap_or_default()));
        self.cur.started = true;
        let span = self.span(start, end);
        self.w.out.words.push(span);
        let cur = &mut self.cur;
        if cur.args.is_empty() {
            if seen & EQUALS != 0 && is_assignment(text) {
                cur.assigns += 1;
                return Some(true);
            }
            if seen & EQUALS != 0 && names_a_subscript(text) {
                return None; // an array element's assignment: brush-parser reads it
            }
            if is_reserved(text) {
                return None;
            }
        }
        let dynamic = if seen & PATTERN == 0 { None } else { expansion(text) };
        cur.args.push(Arg { text, dynamic });
        Some(true)
    }

    /// A word up to the next unquoted blank or operator.
    #[inline]
    fn word(&mut self) -> Option<ReadWord<'s>> {
        let start = self.i;
        let subs_from = self.cur.subs;
        // Most words are one run of ordinary bytes: read in one scan, without the loop below.
        let (n, seen, whole) = self.plain_run(start);
        if whole {
            let text = self.s.get(start..start + n)?;
            let dynamic = if seen & PATTERN == 0 { None } else { expansion(text) };
            self.i = start + n;
            let arg = Arg { text, dynamic };
            let equals = seen & EQUALS != 0;
            return Some(ReadWord {
                arg,
                raw_start: start,
                raw_end: self.i,
                text_at: Some(start),
                quoted: false,
                equals,
                subs_from,
            });
        }
        self.quoted_word(start, subs_from)
    }

    /// `word` past its first run of ordinary bytes: quotes, escapes, substitutions. Out of
    /// line, so that the plain words' path does not pay for this one's frame.
    #[inline(never)]
    fn quoted_word(&mut self, start: usize, subs_from: usize) -> Option<ReadWord<'s>> {
        // A word quoted whole with nothing inside to read (`"step 3 done"`, `'a b'`: most
        // quoted words): its text is the run between its quotes, as the loop below reads it.
        if let Some(&q @ (b'"' | b'\'')) = self.b.get(start) {
            let rest = self.b.get(start + 1..)?;
            let close = match q {
                b'\'' => rest.iter().position(|&x| x == b'\''),
                _ => rest
                    .iter()
                    .position(|&x| matches!(x, b'"' | b'\\' | b'$' | b'`' | b'!'))
                    .filter(|&k| rest.get(k) == Some(&b'"')),
            };
            if let Some(k) = close {
                let end = start + k + 2;
                if self.b.get(end).is_none_or(|&x| is_meta(x)) {
                    let text = self.s.get(start + 1..start + 1 + k)?;
                    self.i = end;
                    let arg = Arg { text, dynamic: None };
                    return Some(ReadWord {
                        arg,
                        raw_start: start,
                        raw_end: end,
                        text_at: Some(start + 1),
                        quoted: true,
                        equals: true,
                        subs_from,
                    });
                }
            }
        }
        let mut text = bumpalo::collections::String::new_in(self.bump);
        let mut dynamic = None;
        let mut quoted = false;
        // The unquoted run being read, checked for globs and braces when it ends (as brush
        // reads a word: in pieces split at quotes and escapes).
        let mut run_start = 0;
        let end_run = |text: &str, from: usize, dynamic: &mut Option<&'static str>| {
            if let Some(kind) = expansion(text.get(from..).unwrap_or("")) {
                dynamic.get_or_insert(kind);
            }
        };
        while let Some(c) = self.peek(0) {
            if is_meta(c) {
                break;
            }
            match c {
                b'\'' => {
                    end_run(&text, run_start, &mut dynamic);
                    let close = self.b.get(self.i + 1..)?.iter().position(|&x| x == b'\'')?;
                    text.push_str(self.s.get(self.i + 1..self.i + 1 + close)?);
                    self.i += close + 2;
                    quoted = true;
                    run_start = text.len();
                }
                b'"' => {
                    end_run(&text, run_start, &mut dynamic);
                    self.i += 1;
                    loop {
                        let rest = self.b.get(self.i..)?;
                        let stop = rest.iter().position(|&x| matches!(x, b'"' | b'\\' | b'$' | b'`' | b'!'))?;
                        text.push_str(self.s.get(self.i..self.i + stop)?);
                        self.i += stop;
                        match self.peek(0)? {
                            b'"' => {
                                self.i += 1;
                                break;
                            }
                            b'$' if self.peek(1) == Some(b'(') => {
                                self.substitution(&mut text)?;
                                dynamic = Some("command substitution");
                            }
                            b'\\' => match self.peek(1)? {
                                b'\n' => return None,
                                n @ (b'"' | b'\\' | b'$' | b'`') => {
                                    text.push(char::from(n));
                                    self.i += 2;
                                }
                                _ => {
                                    text.push('\\');
                                    self.i += 1;
                                }
                            },
                            _ => return None,
                        }
                    }
                    quoted = true;
                    run_start = text.len();
                }
                b'\\' => {
                    end_run(&text, run_start, &mut dynamic);
                    let next = self.s.get(self.i + 1..)?.chars().next()?;
                    if next == '\n' || next == '\r' {
                        return None;
                    }
                    text.push(next);
                    self.i += 1 + next.len_utf8();
                    quoted = true;
                    run_start = text.len();
                }
                b'$' if self.peek(1) == Some(b'(') => {
                    end_run(&text, run_start, &mut dynamic);
                    self.substitution(&mut text)?;
                    dynamic = Some("command substitution");
                    run_start = text.len();
                }
                b'$' | b'`' | b'!' | b'\r' => return None,
                b'~' if self.i == start => {
                    // `~` and `~/...` are the home directory (kept as written, as brush
                    // does); `~user`, `~+` and the rest go to brush.
                    match self.peek(1) {
                        None | Some(b'/') => {}
                        Some(n) if is_meta(n) => {}
                        _ => return None,
                    }
                    text.push('~');
                    self.i += 1;
                }
                b'~' => return None,
                c if c < 0x20 && c != b'\t' => return None,
                _ => {
                    // A run of ordinary bytes (multi-byte characters included).
                    let rest = self.b.get(self.i..)?;
                    let n = rest.iter().position(|&x| class(x) & (META | SPECIAL) != 0).unwrap_or(rest.len());
                    text.push_str(self.s.get(self.i..self.i + n)?);
                    self.i += n;
                }
            }
        }
        end_run(&text, run_start, &mut dynamic);
        if self.i == start {
            return None;
        }
        let arg = Arg { text: text.into_bump_str(), dynamic };
        Some(ReadWord { arg, raw_start: start, raw_end: self.i, text_at: None, quoted, equals: true, subs_from })
    }

    /// A redirection at `<`, `>` or `&>`, its descriptor already read.
    fn redirect(&mut self, fd: Option<(u32, usize)>) -> Option<()> {
        // Where it starts in the script: at its descriptor, if it has one.
        let (fd, from) = match fd {
            Some((n, at)) => (Some(n), at),
            None => (None, self.i),
        };
        let rest = self.b.get(self.i..)?;
        let op: &'static str = match rest {
            [b'&', b'>', b'>', ..] => "&>>",
            [b'&', b'>', ..] => "&>",
            [b'>', b'>', ..] => ">>",
            [b'>', b'|', ..] => ">|",
            [b'>', b'&', ..] => ">&",
            [b'>', b'(', ..] | [b'<', b'(', ..] => return None,
            [b'>', ..] => ">",
            [b'<', b'<', b'<', ..] => "<<<",
            [b'<', b'<', b'-', ..] => "<<-",
            [b'<', b'<', ..] => "<<",
            [b'<', b'>', ..] => "<>",
            [b'<', b'&', ..] => "<&",
            [b'<', ..] => "<",
            _ => return None,
        };
        if fd.is_some() && op.starts_with('&') {
            return None;
        }
        self.i += op.len();
        while self.peek(0).is_some_and(is_blank) {
            self.i += 1;
        }
        if self.peek(0).is_none_or(is_meta) || self.peek(0) == Some(b'#') {
            return None;
        }
        let w = self.word()?;
        if self.cur.subs > w.subs_from {
            return None; // brush-parser reads substitutions in redirections
        }
        let raw = self.s.get(w.raw_start..w.raw_end)?;
        let redirect = match op {
            "<<" | "<<-" => {
                // brush-parser strips the tabs of a `<<-` body inside a substitution from the
                // word's text as well.
                if w.arg.dynamic.is_some() || (op == "<<-" && self.depth > 0) {
                    return None;
                }
                let (at, delim) = (self.cur.redirects.len(), w.arg.text.into());
                self.heredocs.push(Pending { at, placed: false, delim, strip_tabs: op == "<<-", quoted: w.quoted });
                Redirect { op: "<<", fd, target: raw.into(), body: None }
            }
            "<<<" => {
                let body = Word { text: w.arg.text.into(), dynamic: w.arg.dynamic };
                Redirect { op, fd, target: Str::default(), body: Some(Box::new(body)) }
            }
            _ => Redirect { op, fd, target: w.arg.text.into(), body: None },
        };
        self.cur.started = true;
        self.cur.redirects.push(redirect);
        // The redirection as written, without blanks: `2>>file`. It is its source when that is
        // as long: no blanks, and a descriptor without leading zeros (`02>` is `2>`).
        let digit = fd.and_then(|n| char::from_digit(n, 10));
        let fd_text = match (fd, digit) {
            (Some(n), None) => n.to_string(),
            _ => String::new(),
        };
        let len = digit.map_or(fd_text.len(), char::len_utf8) + op.len() + raw.len();
        self.add_text(from, w.raw_end, w.raw_end - from == len, |text| {
            // `2>&1` in most commands: its digit pushed, without the formatting machinery.
            match digit {
                Some(d) => text.push(d),
                None => text.push_str(&fd_text),
            }
            text.push_str(op);
            text.push_str(raw);
        });
        Some(())
    }

    /// Adds a piece of the command (a word, a redirection: `start..end` in the script,
    /// `exact` when that is how it is written in the text) to its text, one space after the
    /// last. While the pieces are exact and one space apart in the script, as in most
    /// commands, the text is that run of the script, copied once when the command ends.
    fn add_text(&mut self, start: usize, end: usize, exact: bool, write: impl FnOnce(&mut String)) {
        let cur = &mut self.cur;
        match cur.span {
            None if exact && cur.text.is_empty() => cur.span = Some((start, end)),
            Some((a, b)) if exact && start == b + 1 && self.b.get(b) == Some(&b' ') => cur.span = Some((a, end)),
            _ => {
                if let Some((a, b)) = cur.span.take() {
                    cur.text.push_str(self.s.get(a..b).unwrap_or_default());
                }
                if !cur.text.is_empty() {
                    cur.text.push(' ');
                }
                write(&mut cur.text);
            }
        }
    }

    /// The bodies of the here-documents of the line just ended, in order.
    fn read_heredocs(&mut self) -> Option<()> {
        for h in std::mem::take(&mut self.heredocs) {
            let mut body = String::new();
            loop {
                let rest = self.s.get(self.i..)?;
                if rest.is_empty() {
                    return None; // no delimiter line
                }
                let (line, next) = match memchr::memchr(b'\n', rest.as_bytes()) {
                    Some(n) => (rest.get(..n)?, self.i + n + 1),
                    None => (rest, self.s.len()),
                };
                self.i = next;
                let line = if h.strip_tabs { line.trim_start_matches('\t') } else { line };
                if line == h.delim {
                    break;
                }
                body.push_str(line);
                body.push('\n');
            }
            // brush-parser reads a substitution's end from the parentheses in its
            // here-documents' bodies: only balanced ones stay here.
            if self.depth > 0 {
                if !balanced(&body) {
                    return None;
                }
                if self.note_quoting {
                    let b = body.as_bytes();
                    self.quoting_in_sub_heredoc |=
                        memchr::memchr3(b'\'', b'"', b'\\', b).is_some() || memchr::memchr2(b'$', b'`', b).is_some();
                }
            }
            // An unquoted delimiter expands the body: only a body with nothing to expand
            // (nor anything brush would read as a quote or pattern) stays here.
            let expands = |c: &u8| {
                matches!(
                    c,
                    b'$' | b'`' | b'\\' | b'\'' | b'"' | b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b'~' | b'!' | b'\r'
                )
            };
            if !h.quoted && body.as_bytes().iter().any(expands) {
                return None;
            }
            // The redirection it belongs to (checked: a miscount would give another's body).
            let r = self.w.out.redirects.get_mut(h.at).filter(|r| h.placed && r.op == "<<" && r.body.is_none())?;
            r.body = Some(Box::new(Word { text: body.into(), dynamic: None }));
        }
        self.record_deferred();
        Some(())
    }
}

/// Whether brush-parser finds the parentheses in `text` (a here-document body inside a
/// substitution) that a plain count does: every `)` closes an earlier `(` and every `(` is
/// closed, counted both plainly and as brush-parser counts them when it looks for the
/// substitution's end: skipping what is between two apostrophes (`'(')` ends its substitution
/// early) and refusing a body with a `"` or backslash beside parentheses (`"(" )` and `\()`
/// end it early too; the `shell_view` fuzz target found all three). Bash reads the body as
/// text. A body that fails goes to brush-parser with the rest of the script. A lone apostrophe
/// is left alone (`don't (crash)`, common in commit messages, is read alike); brush-parser
/// pairs it with one right after the substitution when there is one and rejects the script,
/// which bash reads as the plain reader does (`shell::brush_misread`).
fn balanced(text: &str) -> bool {
    // Only parentheses and apostrophes matter: memchr finds them, so a 4 KiB commit message
    // with a few dozen is a few dozen steps, not 4,096 (this ran on every byte before).
    fn count(text: &[u8], skip_quoted: bool) -> bool {
        let mut depth = 0usize;
        let mut i = 0;
        loop {
            let next = if skip_quoted {
                memchr::memchr3(b'(', b')', b'\'', text.get(i..).unwrap_or_default())
            } else {
                memchr::memchr2(b'(', b')', text.get(i..).unwrap_or_default())
            };
            let Some(at) = next else { return depth == 0 };
            i += at;
            let b = text.get(i).copied();
            i += 1;
            match b {
                Some(b'\'') => {
                    if let Some(close) = memchr::memchr(b'\'', text.get(i..).unwrap_or_default()) {
                        i += close + 1;
                    }
                }
                Some(b'(') => depth += 1,
                _ => match depth.checked_sub(1) {
                    Some(d) => depth = d,
                    None => return false,
                },
            }
        }
    }
    let b = text.as_bytes();
    let parens = memchr::memchr2(b'(', b')', b).is_some();
    if !parens {
        return true;
    }
    let escapes = memchr::memchr2(b'"', b'\\', b).is_some();
    count(b, false) && !escapes && count(b, true)
}

/// `NAME=value` or `NAME+=value`.
fn is_assignment(raw: &str) -> bool {
    let b = raw.as_bytes();
    if !b.first().is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') {
        return false;
    }
    let name = b.iter().position(|c| !(c.is_ascii_alphanumeric() || *c == b'_')).unwrap_or(b.len());
    matches!(b.get(name..), Some([b'=', ..] | [b'+', b'=', ..]))
}

/// `NAME[...`: in command position with an `=`, an array element's assignment.
fn names_a_subscript(raw: &str) -> bool {
    let b = raw.as_bytes();
    if !b.first().is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') {
        return false;
    }
    let name = b.iter().position(|c| !(c.is_ascii_alphanumeric() || *c == b'_')).unwrap_or(b.len());
    b.get(name) == Some(&b'[')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `balanced` as it was first written, a byte at a time: the memchr version must agree.
    fn balanced_naive(text: &str) -> bool {
        fn count(text: &[u8], skip_quoted: bool) -> bool {
            let mut depth = 0usize;
            let mut i = 0;
            while let Some(&b) = text.get(i) {
                i += 1;
                match b {
                    b'\'' if skip_quoted => {
                        if let Some(close) = text.get(i..).and_then(|r| r.iter().position(|&c| c == b'\'')) {
                            i += close + 1;
                        }
                    }
                    b'(' => depth += 1,
                    b')' => match depth.checked_sub(1) {
                        Some(d) => depth = d,
                        None => return false,
                    },
                    _ => {}
                }
            }
            depth == 0
        }
        let b = text.as_bytes();
        let parens = b.iter().any(|&c| c == b'(' || c == b')');
        let escapes = b.iter().any(|&c| c == b'"' || c == b'\\');
        count(b, false) && !(parens && (escapes || !count(b, true)))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn balanced_agrees_with_a_byte_at_a_time_count(text in "[()'a \"\\\\\n]{0,40}") {
            prop_assert_eq!(balanced(&text), balanced_naive(&text));
        }
    }

    #[test]
    fn balanced_examples() {
        for yes in ["", "don't (crash)", "(a) (b (c))", "x '(' y ')' z", "a)'(' ... no", "it's"] {
            assert_eq!(balanced(yes), balanced_naive(yes), "{yes:?}");
        }
        assert!(balanced("fix (closes #12)\ndon't"));
        assert!(!balanced("a (b"));
        assert!(!balanced("'(')"));
        assert!(!balanced("\"(\" )"));
    }

    #[test]
    fn assignments_are_names_then_equals() {
        for yes in ["A=1", "_x=", "a_1+=b", "PATH=/bin:$PATH", "a==b"] {
            assert!(is_assignment(yes), "{yes}");
        }
        for no in ["=a", "1a=b", "a+b=c", "a++=b", "a", "a+", "-a=b", "a.b=c", "é=1", ""] {
            assert!(!is_assignment(no), "{no}");
        }
    }

    #[test]
    fn reserved_words_pass_the_length_filter() {
        let reserved = [
            "if", "then", "elif", "else", "fi", "do", "done", "case", "esac", "while", "until", "for", "in", "select",
            "function", "time", "coproc", "{", "}", "!", "[[", "]]",
        ];
        for w in reserved {
            assert!(is_reserved(w), "{w}");
            // Same first byte and length, another word: not reserved.
            let other = format!("{}{}", &w[..1], "x".repeat(w.len() - 1));
            assert!(!is_reserved(&other) || reserved.contains(&other.as_str()), "{other}");
        }
        for w in ["cargo", "cd", "echo", "tail", "git", "ifconfig", "timeout", "f", "[", "{}", "", "éif"] {
            assert!(!is_reserved(w), "{w}");
        }
    }

    #[test]
    fn byte_classes() {
        for c in [b' ', b'\t', b'\n', b';', b'&', b'|', b'(', b')', b'<', b'>'] {
            assert!(is_meta(c), "{c}");
        }
        for c in [b'a', b'-', b'/', b'*', b'{', b'=', 0x80, 0xff] {
            assert!(!is_meta(c), "{c}");
            assert_eq!(class(c) & SPECIAL, 0, "{c}");
        }
        for c in [b'\'', b'"', b'\\', b'$', b'`', b'!', b'~', 0x01, b'\r'] {
            assert_ne!(class(c) & SPECIAL, 0, "{c}");
        }
    }
}
