//! The shell view of a Bash command: what it really runs.
//!
//! A rule should never have to out-think the shell with a regex. `view` parses a command
//! string with a real bash parser (brush-parser; docs/decisions/0001-shell-parser.md says why)
//! and lists every simple command anywhere in it — across `;`, `&&`, `||`, `|`, `&`,
//! subshells, brace groups, `$(...)`, backticks, process substitutions, here-documents and
//! function bodies — with its program name as bash resolves it, its arguments after quote
//! removal, its flags normalised per program, its redirections, and the files it writes.
//! Wrappers are unwrapped recursively (`sudo`, `env`, `timeout`, `xargs`, `find -exec`,
//! `bash -c`, `eval`, `ssh host CMD`, ...; `programs` knows them) and every command found
//! inside one is listed too, with `via` naming the wrappers. What cannot be seen through is
//! opaque, with why: a command name computed at run time, a downloaded or decoded payload fed
//! to a shell, an `IFS` change, input the parser rejects, a budget exceeded.

mod plain;
pub mod programs;
mod view;

pub use view::AMBIGUOUS_ARITHMETIC;

/// The short strings of a view: program names, operators, redirection targets. Most are a
/// few bytes, and a `CompactString` keeps up to 24 of them inline.
pub type Str = compact_str::CompactString;

/// A word the view keeps whole: a here-document's or here-string's text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Word {
    /// Its text: its value when static; as written when `dynamic` is set.
    pub text: Str,
    /// Why its value is only known when the script runs.
    pub dynamic: Option<&'static str>,
}

/// Everything a command string runs.
///
/// The commands' lists live in arenas the view owns (every command's words one after
/// another, every redirection, every path written, every command's text), and a command holds
/// runs of them: a 127-command script is a handful of allocations, not a thousand. A word is
/// a run of one text (`chars`) that starts with the script itself, so a word read as written
/// (most are) is never copied: the reader notes where it is, and the view keeps that.
/// `commands()` gives each command with its lists.
#[derive(Clone, Default)]
pub struct View {
    records: Vec<Record>,
    /// Why parts of the script cannot be seen through; empty when all of it was.
    pub opaque: Vec<String>,
    /// Every word of every command's lists: runs of `chars`.
    words: Vec<Span>,
    /// The words' text: the scripts read, then the words that are not runs of them (quotes
    /// removed, flags' names, ...). Commands' texts are runs of it too.
    chars: String,
    redirects: Vec<Redirect>,
    /// Every file the script writes (`writes()`), a command's a run of them.
    paths: Vec<String>,
    /// Which optional fields some command has (`SOME_CODE`, ...): a scan of a field no command
    /// has (most scripts give no interpreter code) skips the commands.
    some: u8,
    /// `widest_command()` but for the commands not sorted yet (`Sorting::Lazy`), which are
    /// noted in `widest_unsorted` with their bound.
    widest: usize,
    widest_unsorted: usize,
}

const SOME_CODE: u8 = 1;
const SOME_OPAQUE: u8 = 2;
const SOME_SUBCOMMAND: u8 = 4;
const SOME_RECURSIVE: u8 = 8;

/// A run of one of a view's arenas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    fn is_empty(self) -> bool {
        self.start >= self.end
    }

    fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }
}

/// What a view keeps of one simple command: its scalars, and its lists as runs of the arenas.
#[derive(Clone, Debug, Default)]
struct Record {
    /// A run of the view's text (most often the command's first word).
    name: Span,
    /// The id of `name`, when it has one.
    program: Option<programs::ProgramId>,
    args: Span,
    /// Its flags and operands, sorted as recorded or when first read.
    sorting: Sorting,
    assigns: Span,
    via: Span,
    upstream: Span,
    redirects: Span,
    writes: Span,
    text: Span,
    /// A run of the view's text.
    subcommand: Option<Span>,
    /// What few commands have, out of line: the list of commands is written once per
    /// command, and a smaller command is less to write.
    extra: Option<Box<Extra>>,
    recursive: bool,
}

/// How a command's flags and operands are kept.
///
/// Most commands' are never read: rules read the flags of `rm`, `git` or `curl`, not of
/// `grep` or `tail` in a long chain. A command whose arguments nothing else in the view needs
/// sorted (no subcommand, no `cd`, no writes found through its options, no wrapped command)
/// and whose arguments are all literal keeps only a bound, and is sorted when a rule first
/// reads its flags or operands: the same lists, made once, later.
#[derive(Clone, Debug)]
enum Sorting {
    /// Runs of the view's words.
    Done { flags: Span, operands: Span },
    /// Sorted when first read. It has at most `bound` flags and operands together (each
    /// argument gives at most one operand or one long flag; a short cluster `-abc` a flag a
    /// letter), so `widest_command` sorts it only when that could be the widest.
    Lazy { bound: u32, sorted: std::sync::OnceLock<Box<Sorted>> },
}

impl Default for Sorting {
    fn default() -> Self {
        Sorting::Done { flags: Span::default(), operands: Span::default() }
    }
}

/// A `Sorting::Lazy` command's flags and operands once read.
#[derive(Clone, Debug, Default)]
struct Sorted {
    /// The flags' names, one after another: `flags` are runs of it.
    text: String,
    flags: Box<[Span]>,
    /// Runs of the view's text (its arguments').
    operands: Box<[Span]>,
}

#[derive(Clone, Debug, Default)]
struct Extra {
    code: Option<String>,
    opaque: Option<String>,
}

impl Record {
    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    fn code(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.code.as_deref())
    }

    fn opaque(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.opaque.as_deref())
    }
}

/// One simple command of a view.
#[derive(Clone, Copy)]
pub struct Command<'v> {
    view: &'v View,
    r: &'v Record,
}

impl<'v> Command<'v> {
    /// The program as bash finds it, lower-cased: no quotes, backslashes or directory
    /// (`/usr/bin/sudo` and `'Sudo'` are `sudo`; macOS finds `RM` as `rm`).
    pub fn name(&self) -> &'v str {
        run_text(&self.view.chars, self.r.name)
    }
    /// The id of `name()`, when the program has one (`ProgramId::names()[id] == name()`).
    pub fn program(&self) -> Option<programs::ProgramId> {
        self.r.program
    }
    /// The arguments after quote removal (words only known at run time as written).
    pub fn args(&self) -> Words<'v> {
        self.view.words_in(self.r.args)
    }
    /// Flags normalised for the program: `-rf`, `-r -f`, `-fr`, `--recursive --force` and
    /// `--recur --forc` are all `recursive`, `force` for `rm`; other programs' short flags are
    /// their letters.
    pub fn flags(&self) -> Words<'v> {
        match &self.r.sorting {
            Sorting::Done { flags, .. } => self.view.words_in(*flags),
            Sorting::Lazy { sorted, .. } => {
                let s = sorted.get_or_init(|| Box::new(self.view.sort(self.r)));
                Words { chars: &s.text, spans: &s.flags }
            }
        }
    }
    /// The arguments that are not options or option values.
    pub fn operands(&self) -> Words<'v> {
        match &self.r.sorting {
            Sorting::Done { operands, .. } => self.view.words_in(*operands),
            Sorting::Lazy { sorted, .. } => {
                let s = sorted.get_or_init(|| Box::new(self.view.sort(self.r)));
                Words { chars: &self.view.chars, spans: &s.operands }
            }
        }
    }
    /// `git push` (through global options and inline aliases), `npm run`, `cargo test`, ...
    pub fn subcommand(&self) -> Option<&'v str> {
        self.r.subcommand.map(|s| run_text(&self.view.chars, s))
    }
    /// `NAME=value` assignments before the command.
    pub fn assigns(&self) -> Words<'v> {
        self.view.words_in(self.r.assigns)
    }
    pub fn redirects(&self) -> &'v [Redirect] {
        self.view.redirects.get(self.r.redirects.range()).unwrap_or_default()
    }
    /// The wrappers it was found inside, outermost first (`sudo`, `bash -c`, `$(...)`).
    pub fn via(&self) -> Words<'v> {
        self.view.words_in(self.r.via)
    }
    /// Program text given to an interpreter (`python3 -c`, `perl -e`, `node -e`).
    pub fn code(&self) -> Option<&'v str> {
        self.r.code()
    }
    /// Why this command cannot be seen through, when it cannot.
    pub fn opaque(&self) -> Option<&'v str> {
        self.r.opaque()
    }
    /// The commands feeding its standard input through a pipe.
    pub fn upstream(&self) -> Words<'v> {
        self.view.words_in(self.r.upstream)
    }
    /// Files it writes: absolute, normalised.
    pub fn writes(&self) -> &'v [String] {
        self.view.paths.get(self.r.writes.range()).unwrap_or_default()
    }
    /// It runs the shell function it is defined in (`:(){ :|:& };:`).
    pub fn recursive(&self) -> bool {
        self.r.recursive
    }
    /// Its words and redirections as written (here-documents without their bodies), for
    /// explanations.
    pub fn text(&self) -> &'v str {
        self.view.chars.get(self.r.text.range()).unwrap_or_default()
    }
}

impl PartialEq for Command<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.name() == o.name()
            && self.args() == o.args()
            && self.flags() == o.flags()
            && self.operands() == o.operands()
            && self.subcommand() == o.subcommand()
            && self.assigns() == o.assigns()
            && self.redirects() == o.redirects()
            && self.via() == o.via()
            && self.code() == o.code()
            && self.opaque() == o.opaque()
            && self.upstream() == o.upstream()
            && self.writes() == o.writes()
            && self.recursive() == o.recursive()
            && self.text() == o.text()
    }
}

impl std::fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("name", &self.name())
            .field("args", &self.args())
            .field("flags", &self.flags())
            .field("operands", &self.operands())
            .field("subcommand", &self.subcommand())
            .field("assigns", &self.assigns())
            .field("redirects", &self.redirects())
            .field("via", &self.via())
            .field("code", &self.code())
            .field("opaque", &self.opaque())
            .field("upstream", &self.upstream())
            .field("writes", &self.writes())
            .field("recursive", &self.recursive())
            .field("text", &self.text())
            .finish()
    }
}

impl View {
    /// The view of no script.
    pub const EMPTY: View = View {
        records: Vec::new(),
        opaque: Vec::new(),
        words: Vec::new(),
        chars: String::new(),
        redirects: Vec::new(),
        paths: Vec::new(),
        some: 0,
        widest: 0,
        widest_unsorted: 0,
    };

    /// Every simple command, outer before inner, in source order.
    pub fn commands(&self) -> impl ExactSizeIterator<Item = Command<'_>> + DoubleEndedIterator + Clone + '_ {
        self.records.iter().map(move |r| Command { view: self, r })
    }

    /// Command `i` of `commands()`.
    pub fn command(&self, i: usize) -> Option<Command<'_>> {
        self.records.get(i).map(|r| Command { view: self, r })
    }

    /// Every file the script writes: absolute, normalised, `~` expanded, in the order the
    /// commands (and redirections that belong to none) appear.
    pub fn writes(&self) -> &[String] {
        &self.paths
    }

    /// The number of commands.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The most items one command holds in all its lists (a bound on any list inside it).
    pub fn widest_command(&self) -> usize {
        self.widest_command_over(0)
    }

    /// `widest_command().max(floor)`, sorting only the commands kept unsorted that could hold
    /// more than that (in a list of many commands, a bound of the view's size over the number
    /// of commands sorts none).
    pub fn widest_command_over(&self, floor: usize) -> usize {
        let known = self.widest.max(floor);
        if self.widest_unsorted <= known {
            return known;
        }
        // A sorted command's bound is 0: only unsorted ones are sorted here.
        self.commands()
            .filter_map(|c| {
                let (size, bound) = sizes(c.r);
                (bound > known).then(|| size + c.flags().len() + c.operands().len())
            })
            .fold(known, usize::max)
    }

    /// A `Sorting::Lazy` command's flags and operands, sorted as `Walker::record` sorts an
    /// argument list (`programs::sort_args`).
    fn sort(&self, r: &Record) -> Sorted {
        let words = self.words_in(r.args);
        let args: Vec<programs::Arg<'_>> = words.iter().map(programs::Arg::lit).collect();
        let spec = programs::known(run_text(&self.chars, r.name)).spec;
        let (mut text, mut flags, mut operands) = (String::new(), Vec::new(), Vec::new());
        programs::sort_args(
            spec,
            &args,
            |f, _| {
                let start = text.len();
                text.push_str(f);
                flags.push(self.span_from(start, text.len()));
            },
            |_, _| {},
            |i| operands.extend(words.spans.get(i).copied()),
        );
        Sorted { text, flags: flags.into(), operands: operands.into() }
    }

    /// Whether some command has code (`c.code`); false means none has.
    pub fn some_code(&self) -> bool {
        self.some & SOME_CODE != 0
    }

    /// Whether some command is opaque (`c.opaque`).
    pub fn some_opaque(&self) -> bool {
        self.some & SOME_OPAQUE != 0
    }

    /// Whether some command has a subcommand (`c.subcommand`).
    pub fn some_subcommand(&self) -> bool {
        self.some & SOME_SUBCOMMAND != 0
    }

    /// Whether some command is recursive (`c.recursive`).
    pub fn some_recursive(&self) -> bool {
        self.some & SOME_RECURSIVE != 0
    }

    /// Notes the last command recorded in `some` and `widest` (a field set later notes itself
    /// in `some`).
    fn note_last(&mut self) {
        if let Some(r) = self.records.last() {
            (self.some, self.widest, self.widest_unsorted) = noted((self.some, self.widest, self.widest_unsorted), r);
        }
    }

    /// `some` and `widest` noted again from the commands (after commands were taken out).
    fn renote(&mut self) {
        (self.some, self.widest, self.widest_unsorted) = self.records.iter().fold((0, 0, 0), noted);
    }

    fn words_in(&self, s: Span) -> Words<'_> {
        Words { chars: &self.chars, spans: self.words.get(s.range()).unwrap_or_default() }
    }
}

/// `some`, `widest` and `widest_unsorted` with command `r` noted.
fn noted((some, widest, unsorted): (u8, usize, usize), r: &Record) -> (u8, usize, usize) {
    let bit = |has: bool, b: u8| if has { b } else { 0 };
    let some = some
        | bit(r.code().is_some(), SOME_CODE)
        | bit(r.opaque().is_some(), SOME_OPAQUE)
        | bit(r.subcommand.is_some(), SOME_SUBCOMMAND)
        | bit(r.recursive, SOME_RECURSIVE);
    let (size, bound) = sizes(r);
    (some, widest.max(size), unsorted.max(bound))
}

/// How many items command `r` holds in all its lists, and at most how many once its flags
/// and operands are sorted, when they are not yet (else 0).
fn sizes(r: &Record) -> (usize, usize) {
    let size = r.args.len() + r.assigns.len() + r.redirects.len() + r.via.len() + r.upstream.len() + r.writes.len();
    match &r.sorting {
        Sorting::Done { flags, operands } => (size + flags.len() + operands.len(), 0),
        Sorting::Lazy { bound, .. } => (size, size + *bound as usize),
    }
}

/// A list of a command's words (`Command::args()`, `flags()`, ...): runs of the view's text.
#[derive(Clone, Copy)]
pub struct Words<'v> {
    chars: &'v str,
    spans: &'v [Span],
}

impl<'v> Words<'v> {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Word `i`.
    pub fn get(&self, i: usize) -> Option<&'v str> {
        self.spans.get(i).map(|s| run_text(self.chars, *s))
    }

    pub fn iter(&self) -> WordsIter<'v> {
        WordsIter { chars: self.chars, spans: self.spans.iter() }
    }

    /// Whether one of the words is `word` (a word of another length is not read).
    pub fn contains(&self, word: &str) -> bool {
        self.spans.iter().any(|s| s.len() == word.len() && run_text(self.chars, *s) == word)
    }

    /// The words with `sep` between them.
    pub fn join(&self, sep: &str) -> String {
        self.iter().collect::<Vec<_>>().join(sep)
    }
}

/// Run `s` of a view's text (spans are made at character boundaries; a bad one reads as empty).
pub(super) fn run_text(chars: &str, s: Span) -> &str {
    chars.get(s.range()).unwrap_or_default()
}

impl<'v> IntoIterator for Words<'v> {
    type Item = &'v str;
    type IntoIter = WordsIter<'v>;
    fn into_iter(self) -> WordsIter<'v> {
        self.iter()
    }
}

impl PartialEq for Words<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.len() == o.len() && self.iter().eq(o.iter())
    }
}

impl PartialEq<&[&str]> for Words<'_> {
    fn eq(&self, o: &&[&str]) -> bool {
        self.len() == o.len() && self.iter().eq(o.iter().copied())
    }
}

impl std::fmt::Debug for Words<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The words of a `Words`, in order.
#[derive(Clone)]
pub struct WordsIter<'v> {
    chars: &'v str,
    spans: std::slice::Iter<'v, Span>,
}

impl<'v> Iterator for WordsIter<'v> {
    type Item = &'v str;

    #[inline]
    fn next(&mut self) -> Option<&'v str> {
        self.spans.next().map(|s| run_text(self.chars, *s))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl DoubleEndedIterator for WordsIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.spans.next_back().map(|s| run_text(self.chars, *s))
    }
}

impl ExactSizeIterator for WordsIter<'_> {}

impl PartialEq for View {
    fn eq(&self, o: &Self) -> bool {
        self.opaque == o.opaque && self.writes() == o.writes() && self.commands().eq(o.commands())
    }
}

impl Eq for View {}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("commands", &self.commands().collect::<Vec<_>>())
            .field("opaque", &self.opaque)
            .field("writes", &self.writes())
            .finish()
    }
}

/// A redirection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redirect {
    /// `>`, `>>`, `<`, `<>`, `>|`, `>&`, `<&`, `&>`, `&>>`, `<<`, `<<<`.
    pub op: &'static str,
    pub fd: Option<u32>,
    /// The file (or `&N`); for a here-document its delimiter.
    pub target: Str,
    /// A here-document's or here-string's text (boxed: most redirections have none, and a
    /// view holds many).
    pub body: Option<Box<Word>>,
}

impl Redirect {
    /// Whether the redirection writes its target file.
    pub fn writes(&self) -> bool {
        // By bytes: every decision asks this of every redirection.
        let target = self.target.as_bytes();
        match self.op.as_bytes() {
            b">" | b">>" | b"<>" | b">|" | b"&>" | b"&>>" => target.first() != Some(&b'&'),
            // `>&file` is `&>file`; `>&2` and `>&-` duplicate or close a descriptor.
            b">&" => !target.is_empty() && target != b"-" && !target.iter().all(u8::is_ascii_digit),
            _ => false,
        }
    }
}

/// The view of `script`, run in `cwd` (absolute) by a user whose home is `home`.
pub fn view(script: &str, cwd: &str, home: &str) -> View {
    // Room for what a script of this length usually holds: the arenas then grow once or never.
    let out = View {
        // A command every thirty bytes or so (a `Record` is large: growing the list copies it).
        records: Vec::with_capacity(1 + script.len() / 32),
        words: Vec::with_capacity(4 + script.len() / 6),
        chars: String::with_capacity(script.len() + script.len() / 4 + 16),
        ..View::default()
    };
    let mut w = view::Walker { home, out, plain: true };
    let cwd = crate::path::normalize(cwd, "/");
    w.script(script, Vec::new(), cwd.as_str().into(), 0);
    w.fetched_then_run(&cwd);
    w.out
}

/// The view as brush-parser alone reads it, without the plain reader: the reference the
/// plain reader is tested against.
#[doc(hidden)]
pub fn view_by_brush(script: &str, cwd: &str, home: &str) -> View {
    let mut w = view::Walker { home, out: View::default(), plain: false };
    let cwd = crate::path::normalize(cwd, "/");
    w.script(script, Vec::new(), cwd.as_str().into(), 0);
    w.fetched_then_run(&cwd);
    w.out
}

/// Whether brush-parser gave up on a word of the script, or took a substitution in one for
/// text (`view_by_brush` calls either opaque). Bash reads some of these: in
/// `"$(cat <<'EOF'` / `x " y` / `EOF` / `)"` it reads the here-document's body as text, while
/// brush-parser pairs the body's `"` with the word's own and cannot read the word (a `$'` in
/// the body makes it take the substitution for text). Where the plain reader reads such a
/// script whole, its view (what bash does) stands, so the differential tests and the
/// `shell_view` fuzz target compare the two readers only where brush-parser read every word.
#[doc(hidden)]
pub fn brush_left_a_word_unread(v: &View) -> bool {
    v.opaque.iter().any(|o| o.ends_with(view::UNREADABLE_WORD) || o == view::SUBSTITUTION_AS_TEXT)
}

/// Whether brush-parser misread a script the plain reader reads as bash does, so that the
/// plain reader's view stands: brush-parser left a word unread (`brush_left_a_word_unread`;
/// in the script or in one nested in it, which `view` reads with the plain reader when
/// brush-parser reads the outer script), it was not asked because more than nine digits come
/// before a `<` or `>` somewhere in the text or too many `$((` are not closed by `))` (text
/// that only looks like either, `"1234567890>"`, `'$((x) )'`, is the plain reader's to read),
/// or it rejected a plain script with a here-document inside a command substitution whose body
/// holds quoting or an expansion character. Bash reads that body as text; brush-parser's
/// tokenizer reads its `'`, `"`, `$[`, `$(` ... and pairs them with quotes after the
/// substitution (`"$(cat <<'EOF'` / `x $[y'z` / `EOF` / `)'w"`: bash prints `x $[y'z'w`,
/// brush-parser finds a single quote unterminated). The differential tests and the
/// `shell_view` fuzz target compare the two readers everywhere else.
#[doc(hidden)]
pub fn brush_misread(script: &str, brush: &View) -> bool {
    // A word left unread counts wherever it is: `view` reads a script nested in one brush-parser
    // reads (a substitution's text) with the plain reader too.
    if brush_left_a_word_unread(brush) {
        return true;
    }
    // Text that looks like a descriptor past nine digits or like `$((` not closed by `))`
    // keeps a script from brush-parser (`"1234567890>"`, `'$((x) )'`, quoted); the plain
    // reader reads it, and leaves a real one to it.
    if brush.opaque.iter().any(|o| o == view::HUGE_DESCRIPTOR || o == view::AMBIGUOUS_ARITHMETIC) {
        return true;
    }
    let rejected = || brush.opaque.iter().any(|o| o.starts_with(view::REJECTED));
    quoting_in_substituted_heredoc(script) && rejected()
}

/// Whether the plain reader reads `script` (brush-parser reads the rest).
#[doc(hidden)]
pub fn is_plain(script: &str) -> bool {
    view::read_plain(script, false).is_some()
}

/// Whether a plain script has a here-document inside a command substitution whose body holds
/// a quote, a backslash, a `$` or a backquote (false when the script is not plain). Bash reads
/// such a body as text, as the plain reader does; brush-parser's tokenizer reads quoting and
/// expansions in it (`$[x'` pairs the `'` with one after the substitution) and misreads some
/// of these scripts (see `brush_misread`).
fn quoting_in_substituted_heredoc(script: &str) -> bool {
    view::read_plain(script, true) == Some(true)
}
