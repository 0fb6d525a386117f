//! Building the view from brush-parser's syntax tree.

use std::ops::Range;

use brush_parser::ast;
use brush_parser::word::WordPiece;

use super::programs::{self, Arg, Inner, Role};
use super::{run_text, Record, Redirect, Sorting, Span, Str, View, Word};

/// Why a word brush-parser could not parse is only known at run time.
pub(super) const UNREADABLE_WORD: &str = "a word the parser cannot read";
/// Why a word whose substitution brush-parser took for text is opaque.
pub(super) const SUBSTITUTION_AS_TEXT: &str = "a command substitution the parser read as text";

/// How the reason for a script brush-parser rejects starts.
pub(super) const REJECTED: &str = "the shell parser rejects it: ";

/// Why a script is not given to brush-parser when more than nine digits come before a `<` or
/// `>` somewhere in it (`huge_descriptor`).
pub(super) const HUGE_DESCRIPTOR: &str = "a file descriptor number too large";

/// Why a script with more than `MAX_AMBIGUOUS_ARITHMETIC` `$((` not closed by `))` is opaque
/// (`ambiguous_arithmetic`).
pub const AMBIGUOUS_ARITHMETIC: &str = "too many `$((` that are not arithmetic to read in time";

/// `$((` that `))` does not close (`$((x) )`, `$((x)`): brush-parser's word parser read each
/// as arithmetic to the end of the text, failed, and read it again as a command substitution,
/// so the time doubled or tripled with each one (twenty `$((x) )` in a double-quoted word took
/// 0.9 s, ten `$((x)$((x) )` in a here-document 139 s: found by fuzzing). The vendored copy
/// memoises those rules now (vendor/brush-parser/PATCHED.md, 3.) and reads them in about a
/// millisecond; this bound stays so that such input is cheap whatever the parser does. Bash
/// reads them as substitutions of a subshell; scripts rarely hold more than one.
pub const MAX_AMBIGUOUS_ARITHMETIC: usize = 4;

/// Budgets: past any of them the rest is opaque, never a hang or a crash.
pub const MAX_DEPTH: usize = 8;
pub const MAX_COMMANDS: usize = 512;
pub const MAX_SCRIPT: usize = 64 * 1024;
/// Bracket nesting the parser is given (it recurses on it).
pub const MAX_NESTING: usize = 64;
/// Brackets left open or closed by the wrong kind: brush-parser backtracks exponentially on
/// them (30 unclosed `(` take half a minute; in a here-document, `$(($[$[` six times over
/// took 11 s; twelve `$((${x}` 0.18 s), so more than a few are refused before it sees them.
pub const MAX_UNCLOSED: usize = 10;
/// The same when the script has an array subscript in an expansion (`${a[`): each one left
/// open multiplies brush-parser's time by about 25 (six took 26 s).
pub const MAX_UNCLOSED_SUBSCRIPTED: usize = 2;

pub(crate) struct Walker<'c> {
    pub home: &'c str,
    pub out: View,
    /// Try the plain reader before brush-parser.
    pub plain: bool,
}

/// The lists a wrapped command shares with its wrapper (`sudo rm -rf / > log`: `rm` writes
/// `log` too).
#[derive(Clone, Copy)]
pub(super) struct Shared {
    pub assigns: Span,
    pub redirects: Span,
    pub text: Span,
}

impl View {
    /// The run from `start` to `end` of an arena (at most `u32::MAX` long: scripts are capped
    /// far below).
    pub(super) fn span_from(&self, start: usize, end: usize) -> Span {
        // Truncation cannot happen: scripts are at most `MAX_SCRIPT` bytes and a view's
        // arenas a bounded multiple of that (this runs for every word: a plain cast).
        debug_assert!(end <= u32::MAX as usize);
        Span { start: start as u32, end: end as u32 }
    }

    /// Adds `text` to the words' text; its run there.
    pub(super) fn push_chars(&mut self, text: &str) -> Span {
        let start = self.chars.len();
        self.chars.push_str(text);
        self.span_from(start, self.chars.len())
    }

    /// Adds copies of `words` to the words; their run.
    fn push_words<'a>(&mut self, words: impl IntoIterator<Item = &'a str>) -> Span {
        let words = words.into_iter();
        // Most commands' `via`, `assigns` and many commands' flags: nothing to add.
        if words.size_hint().1 == Some(0) {
            return Span::default();
        }
        let start = self.words.len();
        for w in words {
            let s = self.push_chars(w);
            self.words.push(s);
        }
        self.span_from(start, self.words.len())
    }

    /// `part`'s run of the text when it is a slice of `whole` (which is in the text from
    /// `base`), else a copy of it added to the text.
    fn run_or_copy(&mut self, part: &str, whole: &str, base: usize) -> Span {
        match offset_in(part, whole) {
            Some(off) => self.span_from(base + off, base + off + part.len()),
            None => self.push_chars(part),
        }
    }

    /// Moves `redirects` to the arena (a here-document's body is not copied).
    fn push_redirects(&mut self, redirects: &mut [Redirect]) -> Span {
        let start = self.redirects.len();
        self.redirects.extend(redirects.iter_mut().map(std::mem::take));
        self.span_from(start, self.redirects.len())
    }
}

/// How long the view's lists were at a point of the walk (`Walker::checkpoint`), to cut them
/// back to (`Walker::rollback`).
pub(super) struct Checkpoint {
    records: usize,
    opaque: usize,
    words: usize,
    chars: usize,
    redirects: usize,
    paths: usize,
}

/// Where a command is, as the walk goes down.
#[derive(Clone)]
pub(super) struct At {
    pub via: Vec<Str>,
    /// Shared: every stage of a pipeline starts in its own copy of where it runs.
    pub cwd: std::rc::Rc<str>,
    pub depth: usize,
}

impl Walker<'_> {
    pub(super) fn opaque(&mut self, why: impl Into<String>) {
        let why = why.into();
        if !self.out.opaque.contains(&why) {
            self.out.opaque.push(why);
        }
    }

    /// Parses and walks a script; what cannot be parsed is opaque.
    pub(crate) fn script(&mut self, text: &str, via: Vec<Str>, cwd: std::rc::Rc<str>, depth: usize) {
        if self.refused(text, depth) {
            return;
        }
        if self.plain {
            // The plain reader records the commands as it reads them. The words' text starts
            // with the script, whose runs most words are.
            let before = self.checkpoint();
            let base = self.out.chars.len();
            self.out.chars.push_str(text);
            let at = At { via: via.clone(), cwd: cwd.clone(), depth };
            if super::plain::read(self, text, base, at, false).is_some() {
                return;
            }
            // Not plain: brush-parser reads all of it again.
            self.rollback(before);
        }
        if huge_descriptor(text) {
            // brush-parser 0.4 panics on a descriptor past `i32` (found by fuzzing); bash
            // refuses one past its own limit. The plain reader leaves such a redirection to
            // brush-parser, and reads the text that only looks like one (`"1234567890>"`).
            return self.opaque(HUGE_DESCRIPTOR);
        }
        if ambiguous_arithmetic(text) > MAX_AMBIGUOUS_ARITHMETIC {
            // The plain reader leaves every `$((` to brush-parser (and reads one that only
            // looks like it, `'$((x) )'`, as text).
            return self.opaque(AMBIGUOUS_ARITHMETIC);
        }
        let parsed = std::panic::catch_unwind(|| {
            let tokens = brush_parser::uncached_tokenize_str(text, &brush_parser::TokenizerOptions::default())
                .map_err(|e| e.to_string())?;
            brush_parser::parse_tokens(&tokens, &brush_parser::ParserOptions::default()).map_err(|e| e.to_string())
        });
        match parsed {
            Ok(Ok(program)) => {
                let mut at = At { via, cwd, depth };
                for list in &program.complete_commands {
                    self.list(list, &mut at);
                }
            }
            Ok(Err(e)) => self.opaque(format!("{REJECTED}{e}")),
            Err(_) => self.opaque("the shell parser failed"),
        }
    }

    /// Whether `text` is refused before it is read (made opaque, with why): too deep, too
    /// long, or input brush-parser is known to hang or panic on.
    fn refused(&mut self, text: &str, depth: usize) -> bool {
        match refusal(text, depth) {
            Some(why) => {
                self.opaque(why);
                true
            }
            None => false,
        }
    }

    /// Where the view's lists are now.
    pub(super) fn checkpoint(&self) -> Checkpoint {
        let o = &self.out;
        Checkpoint {
            records: o.records.len(),
            opaque: o.opaque.len(),
            words: o.words.len(),
            chars: o.chars.len(),
            redirects: o.redirects.len(),
            paths: o.paths.len(),
        }
    }

    /// Cuts the view's lists back to a checkpoint: what was added since is gone (the walk
    /// only adds to them, and changes no command recorded before it).
    pub(super) fn rollback(&mut self, to: Checkpoint) {
        let o = &mut self.out;
        o.records.truncate(to.records);
        o.opaque.truncate(to.opaque);
        o.words.truncate(to.words);
        // A length the text had: on a character boundary.
        if o.chars.is_char_boundary(to.chars) {
            o.chars.truncate(to.chars);
        }
        o.redirects.truncate(to.redirects);
        o.paths.truncate(to.paths);
        o.renote();
    }

    fn list(&mut self, list: &ast::CompoundList, at: &mut At) {
        for item in &list.0 {
            self.pipeline(&item.0.first, at);
            for next in &item.0.additional {
                match next {
                    ast::AndOr::And(p) | ast::AndOr::Or(p) => self.pipeline(p, at),
                }
            }
        }
    }

    fn pipeline(&mut self, p: &ast::Pipeline, at: &mut At) {
        self.stages(p.seq.iter(), at, |w, c, here, upstream| w.command(c, here, upstream));
    }

    /// A command the plain reader read, its lists in the view (`words` its words, `shared`
    /// the rest): recorded as `stages` and `simple` record brush-parser's (`ranges[i]`: the
    /// commands its word `i`'s substitutions recorded; `single`: its pipeline has no other
    /// stage; `over`: the view was full when it started).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn plain_command(
        &mut self,
        args: &[Arg<'_>],
        words: Span,
        ranges: &[Range<usize>],
        shared: Shared,
        at: &mut At,
        upstream: Option<Range<usize>>,
        single: bool,
        over: bool,
    ) {
        if over {
            return self.opaque(format!("more than {MAX_COMMANDS} commands"));
        }
        // A stage of a longer pipeline runs in a subshell: a `cd` in it does not last.
        let cwd = (!single).then(|| at.cwd.clone());
        self.argv(args, Some(words), ranges, shared, at, upstream);
        if let Some(cwd) = cwd {
            at.cwd = cwd;
        }
    }

    /// Walks a pipeline's stages, each but the first with the commands before it upstream.
    /// With more than one stage, each runs in a subshell: a `cd` inside one does not last (a
    /// stage changes nothing of where it runs but the directory, put back after it).
    fn stages<T>(
        &mut self,
        stages: impl ExactSizeIterator<Item = T>,
        at: &mut At,
        mut walk: impl FnMut(&mut Self, T, &mut At, Option<Range<usize>>),
    ) {
        let start = self.out.records.len();
        let single = stages.len() == 1;
        for (i, stage) in stages.enumerate() {
            let cwd = (!single).then(|| at.cwd.clone());
            walk(self, stage, at, (i > 0).then_some(start..self.out.records.len()));
            if let Some(cwd) = cwd {
                at.cwd = cwd;
            }
        }
    }

    fn command(&mut self, c: &ast::Command, at: &mut At, upstream: Option<Range<usize>>) {
        if self.out.records.len() >= MAX_COMMANDS {
            return self.opaque(format!("more than {MAX_COMMANDS} commands"));
        }
        match c {
            ast::Command::Simple(s) => self.simple(s, at, upstream),
            ast::Command::Compound(cc, redirects) => {
                self.compound(cc, at);
                if let Some(r) = redirects {
                    let mut reds = Vec::new();
                    for io in &r.0 {
                        self.redirect(io, at, &mut reds);
                    }
                    // A compound's redirections write as a command's do.
                    let reds = self.out.push_redirects(&mut reds);
                    self.redirect_writes(reds, at);
                }
            }
            ast::Command::Function(f) => {
                let start = self.out.records.len();
                let mut inner = at.clone();
                inner.via.push(compact_str::format_compact!("function {}", f.fname.value));
                self.compound(&f.body.0, &mut inner);
                let fname = resolve(&f.fname.value);
                for c in self.out.records.get_mut(start..).into_iter().flatten() {
                    if run_text(&self.out.chars, c.name) == fname {
                        c.recursive = true;
                        self.out.some |= super::SOME_RECURSIVE;
                    }
                }
            }
            ast::Command::ExtendedTest(..) => {}
        }
    }

    fn compound(&mut self, c: &ast::CompoundCommand, at: &mut At) {
        match c {
            ast::CompoundCommand::BraceGroup(b) => self.list(&b.list, at),
            ast::CompoundCommand::Subshell(s) => {
                let mut inner = at.clone();
                self.list(&s.list, &mut inner);
            }
            ast::CompoundCommand::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.word(w, at);
                }
                self.list(&f.body.list, at);
            }
            ast::CompoundCommand::CaseClause(cc) => {
                self.word(&cc.value, at);
                for item in &cc.cases {
                    if let Some(l) = &item.cmd {
                        self.list(l, at);
                    }
                }
            }
            ast::CompoundCommand::IfClause(i) => {
                self.list(&i.condition, at);
                self.list(&i.then, at);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c, at);
                    }
                    self.list(&e.body, at);
                }
            }
            ast::CompoundCommand::WhileClause(w) | ast::CompoundCommand::UntilClause(w) => {
                self.list(&w.0, at);
                self.list(&w.1.list, at);
            }
            ast::CompoundCommand::Coprocess(c) => {
                let mut inner = at.clone();
                self.command(&c.body, &mut inner, None);
            }
            ast::CompoundCommand::Arithmetic(_) | ast::CompoundCommand::ArithmeticForClause(_) => {}
        }
    }

    /// A word after quote removal; command substitutions inside it are walked (their commands
    /// run too) and make the word dynamic.
    fn word(&mut self, w: &ast::Word, at: &At) -> (Word, Range<usize>) {
        let start = self.out.records.len();
        let mut arg = Word::default();
        // brush-parser 0.4 panics on `~` and a number past `i32` (a directory-stack index;
        // found by fuzzing): such a word is not parsed, and any other panic is caught.
        let parsed = if huge_tilde_index(&w.value) {
            Err(())
        } else {
            std::panic::catch_unwind(|| brush_parser::word::parse(&w.value, &brush_parser::ParserOptions::default()))
                .map_err(|_| ())
                .and_then(|r| r.map_err(|_| ()))
        };
        match parsed {
            Ok(pieces) => {
                for p in &pieces {
                    let raw = w.value.get(p.start_index..p.end_index).unwrap_or("");
                    self.piece(&p.piece, raw, p.start_index, &mut arg, at, false);
                }
                if substitution_read_as_text(&pieces) {
                    self.opaque(SUBSTITUTION_AS_TEXT);
                }
            }
            Err(_) => {
                arg.text = w.value.as_str().into();
                arg.dynamic = Some(UNREADABLE_WORD);
                // It may run commands fak cannot see (brush-parser 0.4 gives up on
                // `"$(cat <<EOF` with a lone `(` in the body).
                if ["$(", "`", "<(", ">("].iter().any(|s| w.value.contains(s)) {
                    self.opaque(format!("a command substitution in {UNREADABLE_WORD}"));
                }
            }
        }
        (arg, start..self.out.records.len())
    }

    /// One piece of a word: `raw` is its text, which starts at byte `offset` of the word.
    fn piece(&mut self, p: &WordPiece, raw: &str, offset: usize, arg: &mut Word, at: &At, quoted: bool) {
        match p {
            WordPiece::Text(t) => {
                if let Some(kind) = super::plain::expansion(t).filter(|_| !quoted) {
                    arg.dynamic.get_or_insert(kind);
                }
                arg.text.push_str(t);
            }
            WordPiece::SingleQuotedText(t) => arg.text.push_str(t),
            WordPiece::EscapeSequence(e) => arg.text.push_str(e.strip_prefix('\\').unwrap_or(e)),
            WordPiece::AnsiCQuotedText(_) => {
                arg.text.push_str(raw);
                arg.dynamic.get_or_insert("ANSI-C quoting");
            }
            WordPiece::DoubleQuotedSequence(inner) | WordPiece::GettextDoubleQuotedSequence(inner) => {
                // The inner pieces' indexes count from the start of the word.
                for i in inner {
                    let inner_raw = i
                        .start_index
                        .checked_sub(offset)
                        .zip(i.end_index.checked_sub(offset))
                        .and_then(|(a, b)| raw.get(a..b))
                        .unwrap_or("");
                    self.piece(&i.piece, inner_raw, i.start_index, arg, at, true);
                }
            }
            WordPiece::TildeExpansion(t) => match t {
                brush_parser::word::TildeExpr::Home => arg.text.push('~'),
                _ => {
                    arg.text.push_str(raw);
                    arg.dynamic.get_or_insert("tilde expansion");
                }
            },
            WordPiece::ParameterExpansion(_) => {
                arg.text.push_str(raw);
                arg.dynamic.get_or_insert("a variable");
                // `${x:-$(cmd)}` runs `cmd`; brush-parser keeps the default as text, so a
                // substitution inside an expansion is refused rather than missed.
                if raw.contains("$(") || raw.contains('`') {
                    self.opaque("a command substitution inside a parameter expansion");
                }
            }
            WordPiece::ArithmeticExpression(_) => {
                arg.text.push_str(raw);
                arg.dynamic.get_or_insert("arithmetic");
            }
            WordPiece::CommandSubstitution(s) | WordPiece::BackquotedCommandSubstitution(s) => {
                arg.text.push_str(raw);
                arg.dynamic = Some("command substitution");
                let mut via = at.via.clone();
                via.push("$(...)".into());
                self.script(s, via, at.cwd.clone(), at.depth + 1);
            }
        }
    }

    fn redirect(&mut self, io: &ast::IoRedirect, at: &At, out: &mut Vec<Redirect>) {
        let fd = |f: &Option<i32>| f.and_then(|n| u32::try_from(n).ok());
        match io {
            ast::IoRedirect::File(n, kind, target) => {
                let op = match kind {
                    ast::IoFileRedirectKind::Read => "<",
                    ast::IoFileRedirectKind::Write => ">",
                    ast::IoFileRedirectKind::Append => ">>",
                    ast::IoFileRedirectKind::ReadAndWrite => "<>",
                    ast::IoFileRedirectKind::Clobber => ">|",
                    ast::IoFileRedirectKind::DuplicateInput => "<&",
                    ast::IoFileRedirectKind::DuplicateOutput => ">&",
                };
                let target = match target {
                    ast::IoFileRedirectTarget::Filename(w) | ast::IoFileRedirectTarget::Duplicate(w) => {
                        self.word(w, at).0.text
                    }
                    ast::IoFileRedirectTarget::Fd(n) => compact_str::format_compact!("&{n}"),
                    ast::IoFileRedirectTarget::ProcessSubstitution(_, s) => {
                        let mut inner = at.clone();
                        inner.via.push(">(...)".into());
                        self.list(&s.list, &mut inner);
                        "/dev/fd/63".into()
                    }
                };
                out.push(Redirect { op, fd: fd(n), target, body: None });
            }
            ast::IoRedirect::OutputAndError(w, append) => {
                let target = self.word(w, at).0.text;
                out.push(Redirect { op: if *append { "&>>" } else { "&>" }, fd: None, target, body: None });
            }
            ast::IoRedirect::HereString(n, w) => {
                let (a, _) = self.word(w, at);
                out.push(Redirect { op: "<<<", fd: fd(n), target: Str::default(), body: Some(Box::new(a)) });
            }
            ast::IoRedirect::HereDocument(n, doc) => {
                let body = if doc.requires_expansion {
                    self.word(&doc.doc, at).0
                } else {
                    Word { text: doc.doc.value.as_str().into(), dynamic: None }
                };
                out.push(Redirect {
                    op: "<<",
                    fd: fd(n),
                    target: doc.here_end.value.as_str().into(),
                    body: Some(Box::new(body)),
                });
            }
        }
    }

    fn simple(&mut self, s: &ast::SimpleCommand, at: &mut At, upstream: Option<Range<usize>>) {
        let mut assigns = Vec::new();
        let mut words: Vec<(Word, Range<usize>)> = Vec::new();
        let mut redirects = Vec::new();
        let items = s.prefix.iter().flat_map(|p| p.0.iter()).map(|i| (true, i));
        let name = s.word_or_name.iter().map(|w| (false, w));
        let suffix = s.suffix.iter().flat_map(|p| p.0.iter()).map(|i| (false, i));
        for (_, item) in items {
            self.item(item, at, &mut assigns, &mut words, &mut redirects, true);
        }
        for (_, w) in name {
            let w = self.word(w, at);
            words.push(w);
        }
        for (_, item) in suffix {
            self.item(item, at, &mut assigns, &mut words, &mut redirects, false);
        }
        let (words, ranges): (Vec<Word>, Vec<Range<usize>>) = words.into_iter().unzip();
        let args: Vec<Arg<'_>> = words.iter().map(|w| Arg { text: &w.text, dynamic: w.dynamic }).collect();
        let shared = Shared {
            assigns: self.out.push_words(assigns.iter().map(Str::as_str)),
            redirects: self.out.push_redirects(&mut redirects),
            text: self.out.push_chars(&shown(s)),
        };
        self.argv(&args, None, &ranges, shared, at, upstream);
    }

    #[allow(clippy::too_many_arguments)]
    fn item(
        &mut self,
        item: &ast::CommandPrefixOrSuffixItem,
        at: &At,
        assigns: &mut Vec<Str>,
        words: &mut Vec<(Word, Range<usize>)>,
        redirects: &mut Vec<Redirect>,
        prefix: bool,
    ) {
        match item {
            ast::CommandPrefixOrSuffixItem::IoRedirect(io) => self.redirect(io, at, redirects),
            ast::CommandPrefixOrSuffixItem::Word(w) => {
                let w = self.word(w, at);
                words.push(w);
            }
            ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w) => {
                let (arg, range) = self.word(w, at);
                if prefix {
                    assigns.push(arg.text);
                } else {
                    words.push((arg, range));
                }
            }
            ast::CommandPrefixOrSuffixItem::ProcessSubstitution(kind, sub) => {
                let start = self.out.records.len();
                let mut inner = at.clone();
                inner.via.push(match kind {
                    ast::ProcessSubstitutionKind::Read => "<(...)".into(),
                    ast::ProcessSubstitutionKind::Write => ">(...)".into(),
                });
                self.list(&sub.list, &mut inner);
                let arg = Word { text: "/dev/fd/63".into(), dynamic: Some("process substitution") };
                words.push((arg, start..self.out.records.len()));
            }
        }
    }

    /// One command from its words: records it, then what it runs. `ranges[i]` holds the
    /// commands run inside word `i` (its substitutions); missing ranges are empty.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn argv(
        &mut self,
        args: &[Arg<'_>],
        words: Option<Span>,
        ranges: &[Range<usize>],
        shared: Shared,
        at: &mut At,
        upstream: Option<Range<usize>>,
    ) {
        if self.out.words_in(shared.assigns).iter().any(|a| a.starts_with("IFS=")) {
            self.opaque("IFS is changed");
        }
        if args.is_empty() {
            // Assignments or redirections alone.
            return self.redirect_writes(shared.redirects, at);
        }
        self.record(args, words, ranges, shared, at, upstream);
    }

    /// `record` for a plain program with literal arguments (`Known::is_plain`, `lazy_bound`):
    /// its flags and operands sorted when first read, its writes only its redirections'.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn record_plain(
        &mut self,
        name: Span,
        program: Option<programs::ProgramId>,
        args: Span,
        bound: u32,
        shared: Shared,
        at: &At,
        upstream: Option<Range<usize>>,
    ) {
        let first_write = self.out.paths.len();
        if !shared.redirects.is_empty() {
            self.redirect_writes(shared.redirects, at);
        }
        let writes = self.out.span_from(first_write, self.out.paths.len());
        let upstream = self.upstream_names(upstream);
        let via = self.out.push_words(at.via.iter().map(Str::as_str));
        // `note_last` for this record, from what is at hand (no optional field is set).
        let size =
            args.len() + shared.assigns.len() + shared.redirects.len() + via.len() + upstream.len() + writes.len();
        self.out.widest = self.out.widest.max(size);
        self.out.widest_unsorted = self.out.widest_unsorted.max(size + bound as usize);
        self.out.records.push(Record {
            args,
            via,
            name,
            program,
            sorting: Sorting::Lazy { bound, sorted: std::sync::OnceLock::new() },
            subcommand: None,
            assigns: shared.assigns,
            redirects: shared.redirects,
            extra: None,
            upstream,
            writes,
            text: shared.text,
            recursive: false,
        });
    }

    /// `record` for a plain program but for its subcommand (`Known::is_plain_but_subcommanded`)
    /// whose arguments are few enough to sort lean: its subcommand is its first operand.
    #[inline(never)]
    fn record_subcommanded(
        &mut self,
        plain: Plain,
        args: &[Arg<'_>],
        shared: Shared,
        at: &At,
        upstream: Option<Range<usize>>,
    ) {
        let (flags, operand_bits) = self.sort_lean(plain.known.spec, args, plain.args);
        let first = operand_bits.trailing_zeros() as usize;
        let subcommand = match args.get(first) {
            Some(a) if operand_bits != 0 && a.dynamic.is_none() => {
                let run = self.out.words.get(plain.args.start as usize + first).copied();
                Some(run.unwrap_or_else(|| self.out.push_chars(a.text)))
            }
            _ => None,
        };
        let first_write = self.out.paths.len();
        if !shared.redirects.is_empty() {
            self.redirect_writes(shared.redirects, at);
        }
        let writes = self.out.span_from(first_write, self.out.paths.len());
        let operands = self.operand_bits(plain.args, operand_bits);
        let upstream = self.upstream_names(upstream);
        let via = self.out.push_words(at.via.iter().map(Str::as_str));
        self.out.records.push(Record {
            args: plain.args,
            via,
            name: plain.name,
            program: plain.known.id,
            sorting: Sorting::Done { flags, operands },
            subcommand,
            assigns: shared.assigns,
            redirects: shared.redirects,
            extra: None,
            upstream,
            writes,
            text: shared.text,
            recursive: false,
        });
        self.out.note_last();
    }

    /// Sorts a command's arguments (`args`, the words `args_span` of the view) as a lean
    /// command's are: its flags added to the view's words (a letter of an argument is a run of
    /// its text), its operands a bit per argument.
    fn sort_lean(&mut self, spec: Option<&'static programs::Spec>, args: &[Arg<'_>], args_span: Span) -> (Span, u64) {
        let start = self.out.words.len();
        let out = &mut self.out;
        let mut operands = 0u64;
        programs::sort_args(
            spec,
            args,
            |f, k| {
                // A letter of its argument is that run of the argument's text.
                let s = match (args.get(k), out.words.get(args_span.start as usize + k).copied()) {
                    (Some(a), Some(run)) => out.run_or_copy(f, a.text, run.start as usize),
                    _ => out.push_chars(f),
                };
                out.words.push(s);
            },
            |_, _| {},
            |i| {
                operands |= 1u64.checked_shl(u32::try_from(i).unwrap_or(64)).unwrap_or(0);
            },
        );
        (self.out.span_from(start, self.out.words.len()), operands)
    }

    /// The names of the commands `up` of the view (a pipeline's stages before one), added to
    /// the words: their run.
    fn upstream_names(&mut self, up: Option<Range<usize>>) -> Span {
        let Some(up) = up else { return Span::default() };
        let View { records, words, .. } = &mut self.out;
        let first = words.len();
        words.extend(records.get(up).unwrap_or_default().iter().map(|r| r.name));
        self.out.span_from(first, self.out.words.len())
    }

    /// `argv` once the lists a command may share with the command it wraps are in the view.
    /// `words`, when given, is where the view has `args` (the read's words are moved in whole).
    fn record(
        &mut self,
        args: &[Arg<'_>],
        words: Option<Span>,
        ranges: &[Range<usize>],
        shared: Shared,
        at: &mut At,
        upstream: Option<Range<usize>>,
    ) {
        // The program, then its arguments (and the commands run inside each).
        let Some((first, args)) = args.split_first() else { return };
        let ranges = ranges.get(1..).unwrap_or_default();
        let range_of = |args: &[Arg<'_>], text: &str| {
            args.iter().position(|w| w.text == text).and_then(|i| ranges.get(i)).cloned()
        };
        // Most names are a program the table knows, written as bash resolves it: one look-up.
        // Its name in the view's text: the first word's run when it is written as resolved.
        let resolved;
        let (name, known, name_run) = match programs::known_as_is(first.text) {
            Some(k) => (first.text, k, words.and_then(|w| self.out.words.get(w.start as usize).copied())),
            None => {
                resolved = resolve_name(first.text);
                (resolved.as_str(), programs::known(&resolved), None)
            }
        };
        // Most commands of a long script: a plain program (no wrapper, writer, subcommand,
        // `cd` or `find`) with literal arguments read as written. Recorded apart, on a short
        // path: the same record the rest of this function makes for it, without the steps
        // that make nothing for such a command (a smaller frame, fewer spills).
        // Next most: such a program but for a subcommand (`cargo test`, `npm run`), which
        // has its arguments sorted now.
        if let (Some(w), None, Some(run)) = (words, first.dynamic, name_run) {
            if known.is_plain() && args.len() <= 64 {
                if let Some(bound) = lazy_bound(args) {
                    return self.record_plain(run, known.id, run_of(w, 1, args.len()), bound, shared, at, upstream);
                }
            } else if known.is_plain_but_subcommanded() && args.len() <= 64 {
                let plain = Plain { name: run, known, args: run_of(w, 1, args.len()) };
                return self.record_subcommanded(plain, args, shared, at, upstream);
            }
        }
        let name_run = name_run.unwrap_or_else(|| self.out.push_chars(name));
        let mut opaque = None;
        if let Some(why) = first.dynamic {
            let why = format!("the command name comes from {why}");
            opaque = Some(why.clone());
            self.opaque(why);
        }
        // Most commands' flags go straight to the view's words and their operands are noted as
        // a bit per argument (`lean`); a writer's arguments (`writes_of` reads their option
        // values; git's it does not), a wrapper's, `find`'s and a long argv's are sorted into
        // a `Parsed`.
        let writes_by_parsed = known.writer && known.role != Role::Git;
        let lean = !writes_by_parsed && !known.runs && known.role != Role::Find && args.len() <= 64;
        let args_span = match words {
            Some(w) => run_of(w, 1, args.len()),
            None => self.out.push_words(args.iter().map(|a| a.text)),
        };
        let (mut lean_flags, mut lean_operands) = (Span::default(), 0u64);
        // Nothing here needs a lean command's arguments sorted but a subcommand and `cd`'s
        // directory (git's subcommand is found apart): the rest are sorted when read, and only
        // a bound on how many flags and operands they make is kept (`Sorting::Lazy`).
        let first_needed = (known.subcommanded && known.role != Role::Git) || known.role == Role::Cd;
        let unsorted = (lean && !first_needed).then(|| lazy_bound(args)).flatten();
        // A `Parsed` only for the commands not sorted lean (most are): it is large to make.
        let parsed = if unsorted.is_some() {
            None
        } else if lean {
            (lean_flags, lean_operands) = self.sort_lean(known.spec, args, args_span);
            None
        } else {
            Some(programs::parse_args(known.spec, args))
        };
        let first_operand = if unsorted.is_some() {
            None
        } else if lean {
            args.get(lean_operands.trailing_zeros() as usize).filter(|_| lean_operands != 0)
        } else {
            parsed.as_ref().and_then(|p| p.operands.first().copied())
        };

        // The git subcommand, through global options and inline aliases.
        let mut inners = Vec::new();
        let mut subcommand = None;
        if known.role == Role::Git {
            let (sub, alias_script, dynamic) = git_subcommand(args);
            if let Some(d) = dynamic {
                let why = format!("the git subcommand comes from {d}");
                opaque.get_or_insert(why.clone());
                self.opaque(why);
            }
            subcommand = sub;
            if let Some(s) = alias_script {
                inners.push(Inner::Script(programs::Script { text: s.into(), dynamic: None }));
            }
        } else if known.subcommanded {
            subcommand = first_operand.filter(|a| a.dynamic.is_none()).map(|a| Str::from(a.text));
        }
        // In the view's text: the first operand's run, or (git's, through aliases) a copy.
        let subcommand_run = match (&subcommand, first_operand) {
            (None, _) => None,
            (Some(sub), Some(a)) if known.role != Role::Git => {
                let i = args.iter().position(|x| std::ptr::eq(x, a));
                let run = i.and_then(|i| self.out.words.get(args_span.start as usize + i).copied());
                Some(run.unwrap_or_else(|| self.out.push_chars(sub)))
            }
            (Some(sub), _) => Some(self.out.push_chars(sub)),
        };
        if known.runs {
            inners.extend(programs::inner(name, args));
        }

        // Where it writes.
        let first_write = self.out.paths.len();
        // Most commands write nowhere: no list is made for them.
        if !shared.redirects.is_empty() || known.writer {
            self.redirect_writes(shared.redirects, at);
            if known.writer {
                let none;
                let p = match &parsed {
                    Some(p) => p,
                    None => {
                        none = programs::Parsed::default();
                        &none
                    }
                };
                for w in writes_of(name, subcommand.as_deref(), p, args) {
                    let path = self.abs(&w, at);
                    self.out.paths.push(path);
                }
            }
        }
        let writes = self.out.span_from(first_write, self.out.paths.len());

        // `cd` changes where the next commands of this list run.
        if known.role == Role::Cd {
            match first_operand {
                Some(a) if a.dynamic.is_none() && a.text != "-" => at.cwd = self.abs(a.text, at).into(),
                None => at.cwd = self.home.into(),
                Some(_) => {}
            }
        }

        // Flags and operands: a wrapper's own are those before the command it runs; `find`'s
        // predicates are not flags (rules read them in `args`).
        let sorting = if let Some(bound) = unsorted {
            Sorting::Lazy { bound, sorted: std::sync::OnceLock::new() }
        } else if known.role == Role::Find {
            let n = args.iter().take_while(|a| !a.text.starts_with('-')).count();
            Sorting::Done { flags: Span::default(), operands: run_of(args_span, 0, n) }
        } else if let Some(Inner::Argv(inner)) = inners.iter().find(|i| matches!(i, Inner::Argv(_))) {
            let own = args.len().saturating_sub(inner.len());
            let p = programs::parse_args(None, args.get(..own).unwrap_or(&[]));
            Sorting::Done { flags: self.out.push_words(p.flags), operands: self.operands(args, args_span, &p.operands) }
        } else if let Some(parsed) = &parsed {
            let operands = self.operands(args, args_span, &parsed.operands);
            Sorting::Done { flags: self.out.push_words(parsed.flags.iter().copied()), operands }
        } else {
            // Sorted lean above (`parsed` is `None` only for lean and unsorted commands).
            Sorting::Done { flags: lean_flags, operands: self.operand_bits(args_span, lean_operands) }
        };
        let upstream_names = self.upstream_names(upstream.clone());
        // What the inner scripts and process substitutions need of the words.
        let inner_ranges: smallvec::SmallVec<[Option<Range<usize>>; 2]> = if inners.is_empty() {
            smallvec::SmallVec::new()
        } else {
            inners
                .iter()
                .map(|i| match i {
                    Inner::Script(a) | Inner::Code(a) => range_of(args, &a.text),
                    Inner::Argv(_) | Inner::Stdin => None,
                })
                .collect()
        };
        let index = self.out.records.len();
        let via = self.out.push_words(at.via.iter().map(Str::as_str));
        self.out.records.push(Record {
            args: args_span,
            via,
            name: name_run,
            program: known.id,
            sorting,
            subcommand: subcommand_run,
            assigns: shared.assigns,
            redirects: shared.redirects,
            extra: opaque.map(|opaque| Box::new(super::Extra { code: None, opaque: Some(opaque) })),
            upstream: upstream_names,
            writes,
            text: shared.text,
            recursive: false,
        });
        // Noted where it was written (a record built apart is copied once more).
        self.out.note_last();
        let runs_more =
            !inners.is_empty() || known.shell || known.role == Role::Source || programs::is_interpreter(name);
        if !runs_more {
            return;
        }
        let mut via = at.via.clone();
        via.push(Str::from(name));
        for (inner, arg_range) in inners.into_iter().zip(inner_ranges) {
            match inner {
                Inner::Argv(words) => {
                    let mut inner_at = At { via: via.clone(), cwd: at.cwd.clone(), depth: at.depth };
                    // The inner command reads the wrapper's standard input and writes where
                    // the wrapper's redirections point: it shares them, and its text.
                    let shared = Shared { assigns: Span::default(), ..shared };
                    self.record(&words, None, &[], shared, &mut inner_at, upstream.clone());
                }
                Inner::Script(a) => {
                    if let Some(d) = a.dynamic {
                        let fed = arg_range.as_ref().and_then(|r| payload(self, r));
                        let why = match fed {
                            Some(kind) => format!("a {kind} payload is run by `{name}`"),
                            None => format!("`{name}` runs a script that comes from {d}"),
                        };
                        self.mark(index, &why);
                    } else {
                        let mut v = via.clone();
                        if let Some(last) = v.last_mut().filter(|_| programs::is_shell(name) || name == "su") {
                            last.push_str(" -c");
                        }
                        self.script(&a.text, v, at.cwd.clone(), at.depth + 1);
                    }
                }
                Inner::Code(a) => {
                    if a.dynamic.is_some() {
                        if let Some(kind) = arg_range.as_ref().and_then(|r| payload(self, r)) {
                            self.mark(index, &format!("a {kind} payload is run by `{name}`"));
                        }
                    }
                    // Commands the code hands to a shell (`os.system("rm -rf ~")`,
                    // `subprocess.run(["git", "push"])`, Ruby's backquotes) are commands too.
                    for script in programs::code_commands(&a.text) {
                        let mut v = via.clone();
                        if let Some(last) = v.last_mut() {
                            last.push_str(" code");
                        }
                        self.script(&script, v, at.cwd.clone(), at.depth + 1);
                    }
                    if let Some(c) = self.out.records.get_mut(index) {
                        c.extra().code = Some(a.text.into_owned());
                        self.out.some |= super::SOME_CODE;
                    }
                }
                Inner::Stdin => self.stdin_script(index, name, &via, at, upstream.clone()),
            }
        }
        // `bash <(curl ...)`, `source <(curl ...)`: a script from a process substitution.
        if known.shell || known.role == Role::Source || programs::is_interpreter(name) {
            for (a, r) in args.iter().zip(ranges) {
                if a.dynamic == Some("process substitution") {
                    if let Some(kind) = payload(self, r) {
                        self.mark(index, &format!("a {kind} payload is run by `{name}`"));
                    }
                }
            }
        }
    }

    /// The words of `operands`, arguments of `args` (whose words are `args_span`): when they
    /// are a run of them, as most commands' are (`git add a b`), that run of the words already
    /// in the view; otherwise copies.
    fn operands(&mut self, args: &[Arg<'_>], args_span: Span, operands: &[&Arg<'_>]) -> Span {
        let Some(first) = operands.first() else { return Span::default() };
        if let Some(i) = args.iter().position(|a| std::ptr::eq(a, *first)) {
            let run = args
                .get(i..i + operands.len())
                .is_some_and(|r| r.iter().zip(operands).all(|(a, o)| std::ptr::eq(a, *o)));
            if run {
                return run_of(args_span, i, operands.len());
            }
        }
        self.out.push_words(operands.iter().map(|a| a.text))
    }

    /// `operands` for operands given as a bit per argument (the words of `args_span`; `lean`
    /// in `record`).
    fn operand_bits(&mut self, args_span: Span, bits: u64) -> Span {
        if bits == 0 {
            return Span::default();
        }
        let (first, n) = (bits.trailing_zeros(), bits.count_ones());
        // One run (`git add a b`, `tail -n 20`: a flag and its operands): the words in the view.
        if (bits >> first).checked_add(1).is_some_and(|b| b == 1u64.checked_shl(n).unwrap_or(0)) {
            return run_of(args_span, first as usize, n as usize);
        }
        // Copies of the picked words' runs (their text is in the view already).
        let start = self.out.words.len();
        let mut rest = bits;
        while rest != 0 {
            // The set bits in order (each below `args.len()`: sorting gave their indices).
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let w = self.out.words.get(args_span.start as usize + i).copied();
            self.out.words.extend(w);
        }
        self.out.span_from(start, self.out.words.len())
    }

    /// A program read from standard input: from a here-document or here-string, from `echo`
    /// upstream (read), or from a download or a decoder upstream (opaque).
    fn stdin_script(&mut self, index: usize, name: &str, via: &[Str], at: &At, upstream: Option<Range<usize>>) {
        let body = self
            .out
            .command(index)
            .and_then(|c| c.redirects().iter().rev().find(|r| r.op == "<<" || r.op == "<<<"))
            .and_then(|r| r.body.clone());
        // `at` and `batch` read a shell script from standard input, as a shell does.
        let shell = programs::is_shell(name) || name == "at" || name == "batch";
        if let Some(b) = body {
            if b.dynamic.is_some() {
                self.mark(index, &format!("`{name}` runs a here-document that comes from {}", b.dynamic.unwrap_or("")));
            } else if shell {
                self.script(&b.text, via.to_vec(), at.cwd.clone(), at.depth + 1);
            } else if let Some(c) = self.out.records.get_mut(index) {
                c.extra().code = Some(b.text.to_string());
                self.out.some |= super::SOME_CODE;
            }
            return;
        }
        let Some(up) = upstream else { return };
        if let Some(kind) = payload(self, &up) {
            return self.mark(index, &format!("a {kind} payload is piped into `{name}`"));
        }
        // `echo 'ls -la' | sh`: the script is in plain sight.
        let one = (up.len() == 1).then(|| self.out.command(up.start)).flatten();
        let echoed = one.filter(|one| {
            one.name() == "echo" && one.via().len() == at.via.len() && !one.args().iter().any(|a| a.starts_with('-'))
        });
        if let Some(text) = echoed.map(|one| one.args().join(" ")) {
            if shell {
                self.script(&text, via.to_vec(), at.cwd.clone(), at.depth + 1);
            } else if let Some(c) = self.out.records.get_mut(index) {
                c.extra().code = Some(text);
                self.out.some |= super::SOME_CODE;
            }
        }
    }

    /// Records the files redirections `reds` write (a command's, or ones that belong to
    /// none): from the redirections straight to the paths, no target copied.
    fn redirect_writes(&mut self, reds: Span, at: &At) {
        let (home, View { redirects, paths, .. }) = (self.home, &mut self.out);
        let reds = redirects.get(reds.range()).unwrap_or_default();
        paths.extend(reds.iter().filter(|r| r.writes()).map(|r| abs(home, &r.target, &at.cwd)));
    }

    fn mark(&mut self, index: usize, why: &str) {
        if let Some(c) = self.out.records.get_mut(index) {
            c.extra().opaque.get_or_insert_with(|| why.to_string());
            self.out.some |= super::SOME_OPAQUE;
        }
        self.opaque(why.to_string());
    }

    /// `curl -o i.sh URL && bash i.sh`, `base64 -d > x.sh; . x.sh`, `wget URL; ./i.sh`: a
    /// command that runs a file another command of the script downloaded or decoded. What it
    /// runs is as unseen as `curl URL | sh`'s payload, so it is opaque. (A rule could not say
    /// this without quantifying over commands twice and their files twice, which the step
    /// bound refuses for a long script.) Relative names are read against the script's
    /// directory.
    pub(crate) fn fetched_then_run(&mut self, cwd: &str) {
        let fetched: Vec<(String, &'static str)> = (0..self.out.records.len())
            .filter_map(|i| self.out.command(i))
            .filter_map(|c| {
                let kind = if programs::DOWNLOADERS.contains(&c.name()) {
                    "downloaded"
                } else {
                    let args: Vec<Arg<'_>> = c.args().iter().map(Arg::lit).collect();
                    if !programs::is_decoder(c.name(), &args) {
                        return None;
                    }
                    "decoded"
                };
                Some(c.writes().iter().map(move |w| (w.clone(), kind)).collect::<Vec<_>>())
            })
            .flatten()
            .collect();
        if fetched.is_empty() {
            return;
        }
        let home = self.home;
        let place = |p: &str| crate::path::canonical(&abs(home, p, cwd), "/");
        let mut marks = Vec::new();
        for i in 0..self.out.records.len() {
            let Some(c) = self.out.command(i) else { continue };
            let name = c.name();
            let runner = programs::is_shell(name) || name == "source" || name == "." || programs::is_interpreter(name);
            let ran = if runner {
                c.operands().iter().next().map(place)
            } else {
                c.text().split_whitespace().next().filter(|w| w.contains('/')).map(place)
            };
            if let Some((_, kind)) = ran.and_then(|r| fetched.iter().find(|(w, _)| *w == r)) {
                marks.push((i, format!("a {kind} file is run by `{name}`")));
            }
        }
        for (i, why) in marks {
            self.mark(i, &why);
        }
    }

    /// A path as the command sees it (`abs`).
    fn abs(&self, p: &str, at: &At) -> String {
        abs(self.home, p, &at.cwd)
    }
}

/// A path as a command run in `cwd` by a user whose home is `home` sees it: `~` expanded,
/// made absolute against `cwd`, normalised.
fn abs(home: &str, p: &str, cwd: &str) -> String {
    if !matches!(p.as_bytes().first(), Some(b'~' | b'$')) {
        return crate::path::normalize(p, cwd); // most paths
    }
    let expanded;
    let p = if p == "~" || p == "$HOME" || p == "${HOME}" {
        home
    } else if p == "$PWD" || p == "${PWD}" {
        cwd
    } else if let Some(rest) =
        p.strip_prefix("~/").or_else(|| p.strip_prefix("$HOME/")).or_else(|| p.strip_prefix("${HOME}/"))
    {
        expanded = format!("{home}/{rest}");
        &expanded
    } else if let Some(rest) = p.strip_prefix("$PWD/").or_else(|| p.strip_prefix("${PWD}/")) {
        expanded = format!("{cwd}/{rest}");
        &expanded
    } else {
        p
    };
    crate::path::normalize(p, cwd)
}

/// Where `part` starts in `whole` when it is a slice of it: a difference of addresses (the
/// reader's words borrow the script; a flag's letter borrows its word).
fn offset_in(part: &str, whole: &str) -> Option<usize> {
    let off = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    (off <= whole.len() && part.len() <= whole.len() - off).then_some(off)
}

/// Why `text`, a script at `depth`, is refused before it is read, if it is: too deep, too
/// long, or input brush-parser is known to hang or panic on.
pub(super) fn refusal(text: &str, depth: usize) -> Option<String> {
    if depth > MAX_DEPTH {
        return Some(format!("scripts nested deeper than {MAX_DEPTH}"));
    }
    if text.len() > MAX_SCRIPT {
        return Some(format!("a script longer than {MAX_SCRIPT} bytes"));
    }
    let (deepest, unclosed) = nesting(text);
    let most =
        if unclosed > MAX_UNCLOSED_SUBSCRIPTED && subscripted(text) { MAX_UNCLOSED_SUBSCRIPTED } else { MAX_UNCLOSED };
    if deepest > MAX_NESTING || unclosed > most {
        return Some(format!("brackets nested deeper than {MAX_NESTING} or left open"));
    }
    if delimiterless_heredoc(text) {
        // brush-parser 0.4 never returns on `$(<< |d `, `` `<<\r ` `` or `<<\x0c `
        // (found by fuzzing); bash calls a here-document without a delimiter a syntax
        // error.
        return Some("a here-document without a delimiter".into());
    }
    None
}

/// Reads `script` with the plain reader alone (into a view of its own): `None` when it is not
/// plain, else whether a here-document inside a substitution holds quoting (looked for only
/// when `note_quoting` is set).
pub(super) fn read_plain(script: &str, note_quoting: bool) -> Option<bool> {
    let mut w = Walker { home: "/", out: View::default(), plain: true };
    w.out.chars.push_str(script);
    let at = At { via: Vec::new(), cwd: "/".into(), depth: 0 };
    super::plain::read(&mut w, script, 0, at, note_quoting)
}

/// For arguments that are all literal, a bound on how many flags and operands
/// `programs::sort_args` makes of them (`Sorting::Lazy`): one per argument, and for a short
/// cluster one more per letter past its first. `None` when some argument is dynamic (whose
/// sorting reads that).
fn lazy_bound(args: &[Arg<'_>]) -> Option<u32> {
    let mut bound = args.len();
    for a in args {
        if a.dynamic.is_some() {
            return None;
        }
        let b = a.text.as_bytes();
        if b.first() == Some(&b'-') && b.get(1) != Some(&b'-') {
            bound += b.len().saturating_sub(2);
        }
    }
    u32::try_from(bound).ok()
}

/// A command `record` takes a short path for: its name's run, what is known of it, and the
/// run of its arguments in the view's words.
struct Plain {
    name: Span,
    known: programs::Known,
    args: Span,
}

/// Words `i..i + n` of `span`.
fn run_of(span: Span, i: usize, n: usize) -> Span {
    // Within `span`, so within `u32` (see `View::span_from`).
    let at = |k: usize| (span.start as usize).saturating_add(k).min(span.end as usize) as u32;
    Span { start: at(i), end: at(i + n) }
}

/// A simple command as explanations and `c.text` show it: its words as written and its
/// redirections without the here-documents' bodies, one space apart (what the plain reader
/// shows too).
fn shown(s: &ast::SimpleCommand) -> String {
    let mut parts: Vec<String> = Vec::new();
    for item in s.prefix.iter().flat_map(|p| p.0.iter()) {
        parts.push(shown_item(item));
    }
    if let Some(w) = &s.word_or_name {
        parts.push(w.value.clone());
    }
    for item in s.suffix.iter().flat_map(|p| p.0.iter()) {
        parts.push(shown_item(item));
    }
    parts.join(" ")
}

fn shown_item(item: &ast::CommandPrefixOrSuffixItem) -> String {
    let fd = |n: &Option<i32>| n.map(|n| n.to_string()).unwrap_or_default();
    match item {
        ast::CommandPrefixOrSuffixItem::Word(w) | ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w) => {
            w.value.clone()
        }
        ast::CommandPrefixOrSuffixItem::IoRedirect(io) => match io {
            ast::IoRedirect::File(n, kind, target) => {
                let target = match target {
                    ast::IoFileRedirectTarget::Filename(w) | ast::IoFileRedirectTarget::Duplicate(w) => w.value.clone(),
                    ast::IoFileRedirectTarget::Fd(n) => n.to_string(),
                    t @ ast::IoFileRedirectTarget::ProcessSubstitution(..) => t.to_string(),
                };
                format!("{}{kind}{target}", fd(n))
            }
            ast::IoRedirect::OutputAndError(w, append) => format!("&>{}{}", if *append { ">" } else { "" }, w.value),
            ast::IoRedirect::HereString(n, w) => format!("{}<<<{}", fd(n), w.value),
            ast::IoRedirect::HereDocument(n, doc) => {
                format!("{}<<{}{}", fd(n), if doc.remove_tabs { "-" } else { "" }, doc.here_end.value)
            }
        },
        other => other.to_string(),
    }
}

/// Whether the commands in `r` produce a payload fak cannot read: `"downloaded"` or
/// `"decoded"`.
fn payload(w: &Walker<'_>, r: &Range<usize>) -> Option<&'static str> {
    let cs = w.out.records.get(r.clone())?;
    if cs.iter().any(|c| programs::DOWNLOADERS.contains(&run_text(&w.out.chars, c.name))) {
        return Some("downloaded");
    }
    let decoded = r.clone().filter_map(|i| w.out.command(i)).any(|c| {
        let args: Vec<Arg<'_>> = c.args().iter().map(Arg::lit).collect();
        programs::is_decoder(c.name(), &args)
    });
    decoded.then_some("decoded")
}

/// The program a command word names: quotes are already gone; the directory goes, and the
/// case (macOS and Windows find `RM` as `rm`).
fn resolve(word: &str) -> Str {
    let base = word.rsplit('/').next().unwrap_or(word);
    Str::from(base.to_lowercase())
}

/// The program a command word names, without allocating when the word is already the name
/// (the common case): `resolve`'s result.
fn resolve_name(word: &str) -> Str {
    // One lookup a byte: program names are checked for every command.
    #[allow(clippy::indexing_slicing)] // a const loop below 256 over a table of 256
    static KEPT: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 128 {
            t[b] = b as u8 != b'/' && !(b as u8).is_ascii_uppercase();
            b += 1;
        }
        t
    };
    if word.bytes().all(|b| KEPT.get(usize::from(b)).copied().unwrap_or(false)) {
        return Str::from(word);
    }
    resolve(word)
}

/// `git [global options] SUBCOMMAND`: the subcommand, an inline alias's shell script
/// (`-c alias.x='!rm -rf ~'`), and why the subcommand cannot be known.
fn git_subcommand(args: &[Arg<'_>]) -> (Option<Str>, Option<String>, Option<&'static str>) {
    let mut aliases: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        if let Some(d) = a.dynamic {
            return (None, None, Some(d));
        }
        let t = a.text;
        match t {
            "-C" | "--git-dir" | "--work-tree" | "--namespace" | "--exec-path" | "--super-prefix" | "--config-env" => {
                i += 1
            }
            "-c" => {
                if let Some(kv) = args.get(i) {
                    if let Some((k, v)) = kv.text.split_once('=') {
                        if let Some(name) = k.to_lowercase().strip_prefix("alias.") {
                            aliases.push((name.to_string(), v.to_string()));
                        }
                    }
                }
                i += 1;
            }
            _ if t.starts_with('-') => {}
            _ => {
                let sub = if t.bytes().any(|b| !b.is_ascii() || b.is_ascii_uppercase()) {
                    Str::from(t.to_lowercase())
                } else {
                    Str::from(t)
                };
                if let Some((_, v)) = aliases.iter().find(|(n, _)| *n == sub) {
                    if let Some(script) = v.strip_prefix('!') {
                        return (Some(sub), Some(script.to_string()), None);
                    }
                    let first = v.split_whitespace().next().unwrap_or("").to_lowercase();
                    return (Some(first.into()), None, None);
                }
                return (Some(sub), None, None);
            }
        }
    }
    (None, None, None)
}

/// Files a command writes (besides its redirections), as written; `programs::WRITERS` lists
/// the programs this knows.
fn writes_of(name: &str, sub: Option<&str>, p: &programs::Parsed<'_>, args: &[Arg<'_>]) -> Vec<Str> {
    if name == "git" {
        return git_writes(sub, args);
    }
    let ops: Vec<Str> = p.operands.iter().map(|a| Str::from(a.text)).collect();
    let last = || ops.last().cloned().into_iter().collect::<Vec<_>>();
    match name {
        "tee" | "truncate" | "shred" | "touch" | "rm" | "rmdir" | "unlink" | "mkdir" | "rustfmt" | "black"
        | "chattr" | "setfacl" => ops,
        "cp" | "ln" | "install" => match p.value("target-directory") {
            Some(t) => vec![Str::from(t.text)],
            None if p.has("directory") && name == "install" => ops,
            // Into a directory (`cp -r /tmp/kernel internal/`): each source's name inside it.
            None if ops.len() >= 2 && ops.last().is_some_and(|d| d.ends_with('/')) => {
                let dir = ops.last().cloned().unwrap_or_default();
                let into = ops.iter().take(ops.len() - 1).filter_map(|s| {
                    let name = s
                        .trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .filter(|n| !n.is_empty() && *n != "." && *n != "..")?;
                    Some(Str::from(format!("{dir}{name}")))
                });
                std::iter::once(dir.clone()).chain(into).collect()
            }
            None if ops.len() >= 2 => last(),
            None => Vec::new(),
        },
        // A move writes its destination and takes its sources away.
        "mv" => match p.value("target-directory") {
            Some(t) => std::iter::once(Str::from(t.text)).chain(ops).collect(),
            None if ops.len() >= 2 => ops,
            None => Vec::new(),
        },
        "rsync" | "scp" => last().into_iter().filter(|t| !t.contains(':')).collect(),
        "chmod" | "chown" | "chgrp" => {
            if p.value("reference").is_some() {
                ops
            } else {
                ops.into_iter().skip(1).collect()
            }
        }
        "sed" if p.has("in-place") => {
            if p.value("expression").is_some() || p.value("file").is_some() {
                ops
            } else {
                ops.into_iter().skip(1).collect()
            }
        }
        "perl" if args.iter().any(|a| a.text.starts_with('-') && !a.text.starts_with("--") && a.text.contains('i')) => {
            // `perl -pi -e CODE FILES`: the files follow the code.
            let code_at = args.iter().position(|a| a.text.ends_with('e') && a.text.starts_with('-'));
            code_at.map(|i| args.iter().skip(i + 2).map(|a| Str::from(a.text)).collect()).unwrap_or_default()
        }
        "dd" => ops.iter().filter_map(|o| o.strip_prefix("of=").map(Str::from)).collect(),
        "gofmt" | "goimports" | "prettier" if p.has("write") => ops,
        // Downloads: `-o FILE`, or the URL's last name (`curl -O`, `wget` without `-O`).
        "curl" => match p.value("output") {
            Some(o) => vec![Str::from(o.text)],
            None if p.has("remote-name") => ops.iter().filter_map(|u| url_file_name(u)).map(Str::from).collect(),
            None => Vec::new(),
        },
        "wget" => match p.value("output-document") {
            Some(o) if o.text == "-" => Vec::new(),
            Some(o) => vec![Str::from(o.text)],
            None => ops.iter().filter_map(|u| url_file_name(u)).map(Str::from).collect(),
        },
        "sort" => p.value("output").map(|o| vec![Str::from(o.text)]).unwrap_or_default(),
        // `patch [options] FILE [PATCHFILE]`: without a FILE the names come from the patch.
        "patch" => ops.into_iter().take(1).collect(),
        "clang-format" if p.has("i") => ops,
        "tar" if p.has("extract") || p.has("get") || old_style_tar(args) => {
            p.value("directory").map(|d| vec![Str::from(d.text)]).unwrap_or_default()
        }
        "unzip" => p.value("exdir").map(|d| vec![Str::from(d.text)]).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The name a download of `url` is saved under: its path's last name, without the query.
fn url_file_name(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split(['?', '#']).next()?;
    let (_, name) = path.rsplit_once('/')?;
    (!name.is_empty() && name != "." && name != "..").then_some(name)
}

/// The files git writes by subcommand (`git checkout -- F`, `git restore F`): read from its
/// arguments, not from a `Parsed` (git's arguments go the lean way in `record`).
fn git_writes(sub: Option<&str>, args: &[Arg<'_>]) -> Vec<Str> {
    match sub {
        Some("checkout") => match args.iter().position(|a| a.text == "--") {
            Some(i) => args.iter().skip(i + 1).map(|a| Str::from(a.text)).collect(),
            // `git checkout main src/x.rs`: after the tree, paths (a lone operand may be a branch).
            None => {
                let ops: Vec<&Arg<'_>> = args
                    .iter()
                    .skip_while(|a| a.text.to_lowercase() != "checkout")
                    .skip(1)
                    .filter(|a| !a.text.starts_with('-'))
                    .collect();
                ops.iter().skip(1).map(|a| Str::from(a.text)).collect()
            }
        },
        Some("restore" | "rm" | "mv") => args
            .iter()
            .skip_while(|a| a.text.to_lowercase() != sub.unwrap_or(""))
            .skip(1)
            .filter(|a| !a.text.starts_with('-'))
            .map(|a| Str::from(a.text))
            .collect(),
        _ => Vec::new(),
    }
}

/// `tar xzf a.tgz`: the first argument is a cluster of letters without a dash.
fn old_style_tar(args: &[Arg<'_>]) -> bool {
    args.first()
        .is_some_and(|a| a.dynamic.is_none() && a.text.chars().all(|c| c.is_ascii_alphabetic()) && a.text.contains('x'))
}

/// Whether brush-parser read a `$(` or a backquote as text: it falls back to text when it
/// cannot find where a substitution ends (`"$(rm -rf ~ <<EOF` with a lone `(` in the
/// here-document), and the commands inside would go unseen.
fn substitution_read_as_text(pieces: &[brush_parser::word::WordPieceWithSource]) -> bool {
    let mut dollar = false;
    pieces.iter().any(|p| match &p.piece {
        WordPiece::Text(t) => {
            let hidden = t.contains("$(") || t.contains('`') || (dollar && t.starts_with('('));
            dollar = t.ends_with('$');
            hidden
        }
        WordPiece::DoubleQuotedSequence(inner) | WordPiece::GettextDoubleQuotedSequence(inner) => {
            dollar = false;
            substitution_read_as_text(inner)
        }
        _ => {
            dollar = false;
            false
        }
    })
}

/// Whether `word` has a tilde expression brush-parser would read as a directory-stack index
/// past `i32`: an unquoted `~` at the start or after an unquoted `=` or `:`, an optional `+`
/// or `-`, and more than nine digits.
fn huge_tilde_index(word: &str) -> bool {
    let b = word.as_bytes();
    let (mut single, mut double) = (false, false);
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' if !single => i += 1,
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'~' if !single && !double && (i == 0 || matches!(b.get(i - 1), Some(b'=' | b':'))) => {
                let rest = word.get(i + 1..).unwrap_or("");
                let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
                if rest.bytes().take_while(u8::is_ascii_digit).count() > 9 {
                    return true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// Whether more than nine digits come right before a `<` or `>`: a redirection's descriptor
/// (read without regard to quoting: a false alarm only leaves the script to the plain reader).
fn huge_descriptor(text: &str) -> bool {
    let b = text.as_bytes();
    memchr::memchr2_iter(b'<', b'>', b).any(|at| {
        let before = b.get(..at).unwrap_or_default();
        before.iter().rev().take_while(|c| c.is_ascii_digit()).count() > 9
    })
}

/// How many `$((` in `text` are not closed by `))` (`MAX_AMBIGUOUS_ARITHMETIC`), counted
/// without regard to quoting (a false alarm only makes the script opaque) and only up to one
/// past the limit. Each `$((` is followed to its close: nesting is bounded before this runs
/// (`refusal`), so the scans are at most `MAX_NESTING` passes over the text.
fn ambiguous_arithmetic(text: &str) -> usize {
    let b = text.as_bytes();
    let mut n = 0;
    for at in memchr::memmem::find_iter(b, b"$((") {
        if !closes_as_arithmetic(b.get(at + 3..).unwrap_or_default()) {
            n += 1;
            if n > MAX_AMBIGUOUS_ARITHMETIC {
                break;
            }
        }
    }
    n
}

/// Whether the text after a `$((` closes it as arithmetic: the `)` that closes it comes right
/// after the one that closes its inner `(`.
fn closes_as_arithmetic(rest: &[u8]) -> bool {
    let mut depth = 2usize;
    // The byte before is the `)` that took the depth from 2 to 1.
    let mut inner_closed = false;
    for &c in rest {
        match c {
            b'(' => {
                depth += 1;
                inner_closed = false;
            }
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return inner_closed;
                }
                inner_closed = depth == 1;
            }
            _ => inner_closed = false,
        }
    }
    false
}

/// Whether some `<<` (not `<<<`) is followed, past an optional `-` and blanks, by a control
/// character (brush-parser reads `\r` and `\f` there as no delimiter), or, when the script
/// has a command substitution, by an operator or the end instead of a delimiter word, by
/// more than one blank, or by a delimiter holding a substitution. Read without regard to
/// quoting: a false alarm only makes the script opaque.
fn delimiterless_heredoc(text: &str) -> bool {
    let b = text.as_bytes();
    if memchr::memmem::find(b, b"<<").is_none() {
        return false;
    }
    let substituted = memchr::memmem::find(b, b"$(").is_some() || memchr::memchr(b'`', b).is_some();
    let finder = memchr::memmem::Finder::new(b"<<");
    let mut i = 0;
    while let Some(at) = b.get(i..).and_then(|r| finder.find(r)) {
        let mut j = i + at + 2;
        if b.get(j) == Some(&b'<') {
            i = j + 1; // `<<<`
            continue;
        }
        if b.get(j) == Some(&b'-') {
            j += 1;
        }
        let blanks = j;
        while matches!(b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        if b.get(j).is_some_and(|c| (*c < 0x20 && *c != b'\t' && *c != b'\n') || *c == 0x7f) {
            return true;
        }
        if substituted {
            // brush-parser 0.4 runs out of memory on `$(<<  r ` (two blanks before the
            // delimiter, the substitution left open; found by fuzzing).
            if j - blanks > 1 {
                return true;
            }
            if matches!(b.get(j), None | Some(b'|' | b';' | b'&' | b'(' | b')' | b'<' | b'>' | b'\n' | b'`')) {
                return true;
            }
            // brush-parser 0.4 runs out of memory on a delimiter holding a substitution
            // inside a substitution (`$(<<E$(  `, found by a differential test).
            let word = b.get(j..).unwrap_or_default();
            let end = word.iter().position(|c| matches!(c, b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>'));
            let word = word.get(..end.unwrap_or(word.len())).unwrap_or_default();
            if memchr::memmem::find(word, b"$(").is_some() || word.contains(&b'`') {
                return true;
            }
        }
        i = j;
    }
    false
}

/// How deep brackets nest, and how many are left open or met a closer of another kind
/// (`${a[)`), counted without regard to quoting (an over-estimate is safe: the script is then
/// opaque). A closer with nothing open is ignored.
fn nesting(text: &str) -> (usize, usize) {
    // Openers and closers found with memchr (vectorised) and merged in order: cheaper than a
    // byte-at-a-time scan even for code with brackets every few bytes (measured).
    let b = text.as_bytes();
    let Some(first) = memchr::memchr3(b'(', b'{', b'[', b) else { return (0, 0) };
    let b = b.get(first..).unwrap_or_default();
    let mut open = memchr::memchr3_iter(b'(', b'{', b'[', b).peekable();
    let mut close = memchr::memchr3_iter(b')', b'}', b']', b).peekable();
    let mut stack: smallvec::SmallVec<[u8; 32]> = smallvec::SmallVec::new();
    let (mut max, mut crossed) = (0usize, 0usize);
    loop {
        let at = match (open.peek(), close.peek()) {
            (Some(&o), Some(&c)) if o > c => close.next(),
            (Some(_), _) => open.next(),
            (None, Some(_)) => close.next(),
            (None, None) => return (max, stack.len() + crossed),
        };
        let Some(&c) = at.and_then(|i| b.get(i)) else { return (max, stack.len() + crossed) };
        match c {
            b'(' | b'{' | b'[' => {
                if stack.len() > MAX_NESTING {
                    return (stack.len(), stack.len() + crossed);
                }
                stack.push(c);
                max = max.max(stack.len());
            }
            _ => match stack.last() {
                None => {}
                Some(&o) if matches!((o, c), (b'(', b')') | (b'{', b'}') | (b'[', b']')) => {
                    stack.pop();
                }
                Some(_) => crossed += 1,
            },
        }
    }
}

/// Whether `text` has `${` and a name followed by `[`: an array subscript in an expansion.
fn subscripted(text: &str) -> bool {
    let b = text.as_bytes();
    memchr::memmem::find_iter(b, b"${").any(|at| {
        let rest = b.get(at + 2..).unwrap_or_default();
        let name = rest.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
        rest.get(name) == Some(&b'[')
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::programs;

    proptest! {
        /// A command's flags and operands in the view (sorted straight into it for most
        /// programs) are what `parse_args` sorts its arguments into: flags in order, operands
        /// the arguments that are neither options nor their values.
        #[test]
        fn flags_and_operands_are_parse_args(
            name in prop::sample::select(vec!["rm", "tail", "grep", "head", "ls", "cargo", "npm", "cd", "chmod", "curl", "git", "xyz"]),
            words in prop::collection::vec(
                prop::sample::select(vec!["-r", "-f", "-rf", "--force", "--recur", "--", "-", "a", "b", "-n5", "-n", "-t", "x", "--color=auto", "-e", "p q"]),
                0..12,
            ),
        ) {
            let script = std::iter::once(name.to_string())
                .chain(words.iter().map(|w| format!("'{w}'")))
                .collect::<Vec<_>>()
                .join(" ");
            let v = crate::shell::view(&script, "/w", "/h");
            let Some(c) = v.command(0) else { return Err(TestCaseError::fail(format!("no command in {script}"))) };
            let args: Vec<programs::Arg> = words.iter().map(|w| programs::Arg::lit(w)).collect();
            let p = programs::parse_args(programs::known(name).spec, &args);
            prop_assert_eq!(c.flags(), p.flags.as_slice(), "{}", script);
            let operands: Vec<&str> = p.operands.iter().map(|a| a.text).collect();
            prop_assert_eq!(c.operands(), operands.as_slice(), "{}", script);
        }
    }

    /// The byte-at-a-time scans `nesting` and `huge_descriptor` must agree with.
    fn nesting_naive(text: &str) -> (usize, usize) {
        let mut stack = Vec::new();
        let (mut max, mut crossed) = (0usize, 0usize);
        for c in text.bytes() {
            match c {
                b'(' | b'{' | b'[' => {
                    if stack.len() > super::MAX_NESTING {
                        return (stack.len(), stack.len() + crossed);
                    }
                    stack.push(c);
                    max = max.max(stack.len());
                }
                b')' | b'}' | b']' => match stack.last() {
                    None => {}
                    Some(&o) if (o == b'(' && c == b')') || (o == b'{' && c == b'}') || (o == b'[' && c == b']') => {
                        stack.pop();
                    }
                    Some(_) => crossed += 1,
                },
                _ => {}
            }
        }
        (max, stack.len() + crossed)
    }

    #[test]
    fn arithmetic_closes_with_two_adjacent_parentheses() {
        for (rest, closes) in [
            ("1))", true),
            (" (1 + 2) * $((3)) ))", true),
            ("x)))", true),
            ("x) )", false),
            ("x)", false),
            ("x", false),
            ("(x) ) )", false),
            ("cd /tmp && ls) | wc)", false),
        ] {
            assert_eq!(super::closes_as_arithmetic(rest.as_bytes()), closes, "{rest:?}");
        }
        assert_eq!(super::ambiguous_arithmetic("echo $((1)) $((x) ) $((y)"), 2);
        assert_eq!(super::ambiguous_arithmetic(&"$((x) ".repeat(100)), super::MAX_AMBIGUOUS_ARITHMETIC + 1);
    }

    fn huge_descriptor_naive(text: &str) -> bool {
        let mut digits = 0;
        for b in text.bytes() {
            match b {
                b'0'..=b'9' => digits += 1,
                b'<' | b'>' if digits > 9 => return true,
                _ => digits = 0,
            }
        }
        false
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn guards_agree_with_a_byte_at_a_time_scan(text in "[(){}\\[\\]a<>0-9 ]{0,80}|[(\\[{]{60,70}[)}\\]]{0,8}") {
            prop_assert_eq!(super::nesting(&text), nesting_naive(&text));
            prop_assert_eq!(super::huge_descriptor(&text), huge_descriptor_naive(&text));
        }

        #[test]
        fn descriptors_agree_with_a_byte_at_a_time_scan(text in "([0-9]{0,14}[<>a ]{0,2}){0,10}") {
            prop_assert_eq!(super::huge_descriptor(&text), huge_descriptor_naive(&text));
        }
    }
}
