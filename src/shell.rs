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

use programs::Arg;

/// The short strings of a view: program names, arguments, flags, operators. Most are a few
/// bytes, and a `CompactString` keeps up to 24 of them inline, so building a command's lists
/// and copying its words between them (`args` into `operands`, a name into `via` and
/// `upstream`) allocates only for the long ones.
pub type Str = compact_str::CompactString;

/// Everything a command string runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Every simple command, outer before inner, in source order.
    pub commands: Vec<Command>,
    /// Why parts of the script cannot be seen through; empty when all of it was.
    pub opaque: Vec<String>,
    /// Every file the script writes: absolute, normalised, `~` expanded.
    pub writes: Vec<String>,
}

/// One simple command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// The program as bash finds it, lower-cased: no quotes, backslashes or directory
    /// (`/usr/bin/sudo` and `'Sudo'` are `sudo`; macOS finds `RM` as `rm`).
    pub name: Str,
    /// The arguments after quote removal (words only known at run time as written).
    pub args: Vec<Str>,
    /// Flags normalised for the program: `-rf`, `-r -f`, `-fr`, `--recursive --force` and
    /// `--recur --forc` are all `recursive`, `force` for `rm`; other programs' short flags are
    /// their letters.
    pub flags: Vec<Str>,
    /// The arguments that are not options or option values.
    pub operands: Vec<Str>,
    /// `git push` (through global options and inline aliases), `npm run`, `cargo test`, ...
    pub subcommand: Option<Str>,
    /// `NAME=value` assignments before the command.
    pub assigns: Vec<Str>,
    pub redirects: Vec<Redirect>,
    /// The wrappers it was found inside, outermost first (`sudo`, `bash -c`, `$(...)`).
    pub via: Vec<Str>,
    /// Program text given to an interpreter (`python3 -c`, `perl -e`, `node -e`).
    pub code: Option<String>,
    /// Why this command cannot be seen through, when it cannot.
    pub opaque: Option<String>,
    /// The commands feeding its standard input through a pipe.
    pub upstream: Vec<Str>,
    /// Files it writes: absolute, normalised.
    pub writes: Vec<String>,
    /// It runs the shell function it is defined in (`:(){ :|:& };:`).
    pub recursive: bool,
    /// Its source text, for explanations.
    pub text: String,
}

/// A redirection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redirect {
    /// `>`, `>>`, `<`, `<>`, `>|`, `>&`, `<&`, `&>`, `&>>`, `<<`, `<<<`.
    pub op: Str,
    pub fd: Option<u32>,
    /// The file (or `&N`); for a here-document its delimiter.
    pub target: Str,
    /// A here-document's or here-string's text.
    pub body: Option<Arg>,
}

impl Redirect {
    /// Whether the redirection writes its target file.
    pub fn writes(&self) -> bool {
        match self.op.as_str() {
            ">" | ">>" | "<>" | ">|" | "&>" | "&>>" => !self.target.starts_with('&'),
            // `>&file` is `&>file`; `>&2` and `>&-` duplicate or close a descriptor.
            ">&" => !self.target.is_empty() && self.target != "-" && !self.target.bytes().all(|b| b.is_ascii_digit()),
            _ => false,
        }
    }
}

/// The view of `script`, run in `cwd` (absolute) by a user whose home is `home`.
pub fn view(script: &str, cwd: &str, home: &str) -> View {
    let mut w = view::Walker { home, out: View::default(), plain: true };
    w.script(script, Vec::new(), crate::path::normalize(cwd, "/").into(), 0);
    w.out
}

/// The view as brush-parser alone reads it, without the plain reader: the reference the
/// plain reader is tested against.
#[doc(hidden)]
pub fn view_by_brush(script: &str, cwd: &str, home: &str) -> View {
    let mut w = view::Walker { home, out: View::default(), plain: false };
    w.script(script, Vec::new(), crate::path::normalize(cwd, "/").into(), 0);
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
/// plain reader's view stands: brush-parser left a word unread (`brush_left_a_word_unread`),
/// or it rejected a script with a here-document inside a command substitution whose body
/// holds quoting or an expansion character. Bash reads that body as text; brush-parser's
/// tokenizer reads its `'`, `"`, `$[`, `$(` ... and pairs them with quotes after the
/// substitution (`"$(cat <<'EOF'` / `x $[y'z` / `EOF` / `)'w"`: bash prints `x $[y'z'w`,
/// brush-parser finds a single quote unterminated). The differential tests and the
/// `shell_view` fuzz target compare the two readers everywhere else.
#[doc(hidden)]
pub fn brush_misread(script: &str, brush: &View) -> bool {
    let rejected = || brush.opaque.iter().any(|o| o.starts_with(view::REJECTED));
    match plain::quoting_in_substituted_heredoc(script) {
        None => false,
        Some(quoting) => brush_left_a_word_unread(brush) || (quoting && rejected()),
    }
}

/// Whether the plain reader reads `script` (brush-parser reads the rest).
#[doc(hidden)]
pub fn is_plain(script: &str) -> bool {
    plain::read(script).is_some()
}
