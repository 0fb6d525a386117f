//! What fak knows of programs: which options take a value, what their flags are called, and
//! which programs run another command (and where in their arguments that command is).
//!
//! Written by hand: this is knowledge of coreutils, git, sudo and friends, not parsing, and no
//! crate carries it. Tables stay small and literal so that a reader can check them against the
//! programs' manuals.

/// A word of a command after quote removal, borrowed from where the reader keeps it (the
/// script itself for a word read as written, the read's `Bump` for one with quotes removed):
/// the walker reads words without copying them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg<'a> {
    /// The word's text: its value when static; as written when `dynamic` is set.
    pub text: &'a str,
    /// Why the word's value is only known when the script runs (`$x`, `$(...)`, a glob, ...).
    pub dynamic: Option<&'static str>,
}

impl<'a> Arg<'a> {
    pub fn lit(s: &'a str) -> Arg<'a> {
        Arg { text: s, dynamic: None }
    }
}

/// A script or program text a wrapper runs: one of its words, or several joined (`eval a b`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Script<'a> {
    pub text: std::borrow::Cow<'a, str>,
    pub dynamic: Option<&'static str>,
}

impl<'a> From<Arg<'a>> for Script<'a> {
    fn from(a: Arg<'a>) -> Script<'a> {
        Script { text: std::borrow::Cow::Borrowed(a.text), dynamic: a.dynamic }
    }
}

/// How a program spells its options.
pub(crate) struct Spec {
    pub names: &'static [&'static str],
    /// Short letters and the long name they are normalised to.
    pub short: &'static [(char, &'static str)],
    /// Short letters that take a value (`-n 5`, `-n5`).
    pub short_value: &'static str,
    /// Long options the program knows (for GNU's unambiguous prefixes); a trailing `=` marks one
    /// that takes a value.
    pub long: &'static [&'static str],
    /// Whether options may follow operands (GNU argument permutation).
    pub permute: bool,
}

const fn spec(names: &'static [&'static str]) -> Spec {
    Spec { names, short: &[], short_value: "", long: &[], permute: true }
}

/// Programs whose options matter to the floor, or whose value-taking options must be known to
/// find operands and inner commands.
pub(crate) static SPECS: &[Spec] = &[
    Spec {
        short: &[
            ('r', "recursive"),
            ('R', "recursive"),
            ('f', "force"),
            ('d', "dir"),
            ('i', "interactive"),
            ('v', "verbose"),
        ],
        long: &[
            "recursive",
            "force",
            "dir",
            "interactive=",
            "one-file-system",
            "no-preserve-root",
            "preserve-root",
            "verbose",
        ],
        ..spec(&["rm"])
    },
    Spec {
        short: &[('r', "recursive"), ('R', "recursive"), ('f', "force"), ('t', "target-directory"), ('v', "verbose")],
        short_value: "tS",
        long: &["recursive", "force", "target-directory=", "verbose", "suffix=", "backup=", "no-target-directory"],
        ..spec(&["cp", "mv"])
    },
    Spec {
        short: &[('s', "symbolic"), ('f', "force"), ('t', "target-directory")],
        short_value: "tS",
        long: &["symbolic", "force", "target-directory=", "suffix=", "backup=", "no-target-directory"],
        ..spec(&["ln"])
    },
    Spec {
        short: &[('t', "target-directory"), ('m', "mode"), ('d', "directory")],
        short_value: "tmogS",
        long: &["target-directory=", "mode=", "owner=", "group=", "directory", "suffix="],
        ..spec(&["install"])
    },
    Spec {
        short: &[('R', "recursive"), ('f', "silent"), ('v', "verbose")],
        long: &[
            "recursive",
            "silent",
            "quiet",
            "verbose",
            "reference=",
            "changes",
            "no-preserve-root",
            "preserve-root",
        ],
        ..spec(&["chmod", "chown", "chgrp"])
    },
    Spec {
        short: &[('i', "in-place"), ('e', "expression"), ('f', "file"), ('n', "quiet")],
        short_value: "ef",
        long: &["in-place", "expression=", "file=", "quiet", "silent", "regexp-extended"],
        ..spec(&["sed"])
    },
    Spec { short: &[('a', "append")], long: &["append", "ignore-interrupts"], ..spec(&["tee"]) },
    Spec { short_value: "sr", long: &["size=", "reference=", "no-create"], ..spec(&["truncate"]) },
    Spec {
        short: &[('u', "remove"), ('z', "zero")],
        short_value: "ns",
        long: &["iterations=", "remove", "zero", "size="],
        ..spec(&["shred"])
    },
    Spec { short: &[('w', "write"), ('l', "list")], ..spec(&["gofmt", "goimports"]) },
    Spec { short_value: "pidoBDFrVYzg", ..spec(&["patch"]) },
    Spec {
        short: &[('R', "recursive"), ('m', "modify")],
        short_value: "mMxX",
        long: &["modify=", "modify-file=", "remove=", "remove-file=", "set=", "set-file=", "recursive"],
        ..spec(&["setfacl"])
    },
    Spec {
        short: &[('o', "output")],
        short_value: "otSTk",
        long: &["output=", "field-separator=", "key=", "buffer-size=", "temporary-directory="],
        ..spec(&["sort"])
    },
    Spec { short: &[('w', "write"), ('c', "check")], long: &["write", "check"], ..spec(&["prettier"]) },
    Spec {
        short: &[('r', "recursive"), ('a', "archive")],
        short_value: "e",
        long: &[
            "recursive",
            "archive",
            "delete",
            "delete-before",
            "delete-after",
            "delete-during",
            "rsh=",
            "exclude=",
            "include=",
        ],
        ..spec(&["rsync"])
    },
    Spec {
        short: &[
            ('d', "data"),
            ('F', "form"),
            ('T', "upload-file"),
            ('o', "output"),
            ('X', "request"),
            ('O', "remote-name"),
        ],
        short_value: "dFToXHAeuUxKbcEwrmY",
        long: &[
            "data=",
            "data-binary=",
            "data-raw=",
            "data-urlencode=",
            "form=",
            "upload-file=",
            "output=",
            "request=",
            "header=",
            "user-agent=",
            "referer=",
            "user=",
            "proxy=",
            "config=",
            "cookie=",
            "cookie-jar=",
            "max-time=",
            "connect-timeout=",
            "write-out=",
            "silent",
            "location",
            "fail",
            "show-error",
            "head",
            "include",
            "insecure",
            "remote-name",
        ],
        ..spec(&["curl"])
    },
    Spec {
        short: &[('O', "output-document"), ('q', "quiet")],
        short_value: "OoaPUeti",
        long: &[
            "output-document=",
            "post-data=",
            "post-file=",
            "body-data=",
            "body-file=",
            "method=",
            "header=",
            "quiet",
            "directory-prefix=",
        ],
        ..spec(&["wget"])
    },
    Spec {
        short: &[('d', "decode")],
        short_value: "w",
        long: &["decode", "ignore-garbage", "wrap="],
        ..spec(&["base64", "base32", "basenc"])
    },
    Spec { short: &[('r', "revert")], short_value: "cglos", ..spec(&["xxd"]) },
    // The options that take a value, so that an identity file (`-i ~/.ssh/id_ed25519`) or a
    // config is not an operand: using a key to log in does not send it.
    Spec { short_value: "BbcDEeFIiJLlmOoPpQRSWw", permute: false, ..spec(&["ssh"]) },
    Spec { short_value: "cDFiJloPSX", ..spec(&["scp"]) },
    Spec { short_value: "BbcDFiJloPRSsX", ..spec(&["sftp"]) },
    Spec {
        short: &[('x', "extract"), ('c', "create"), ('C', "directory"), ('f', "file")],
        short_value: "CfT",
        long: &["extract", "get", "create", "directory=", "file="],
        ..spec(&["tar"])
    },
    Spec { short: &[('d', "exdir")], short_value: "d", ..spec(&["unzip"]) },
];

/// A command's arguments sorted into flags, option values and operands. Held inline for a
/// typical command (the view sorts the arguments of every command it reads; allocating these
/// lists was a good part of that).
#[derive(Debug, Default)]
pub(crate) struct Parsed<'a> {
    /// Normalised flag names: `-rf`, `-r -f`, `--recursive --force` all give `recursive`, `force`.
    pub flags: smallvec::SmallVec<[&'a str; 3]>,
    /// Options with their values, by normalised name.
    pub values: Vec<(&'a str, Arg<'a>)>,
    pub operands: smallvec::SmallVec<[&'a Arg<'a>; 6]>,
}

impl<'a> Parsed<'a> {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    pub fn value(&self, name: &str) -> Option<&Arg<'a>> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Sorts `args` (argv without the program name) by `spec`; programs without a spec get the
/// generic reading: `-abc` is three flags, `--name[=v]` one, nothing takes a value.
pub(crate) fn parse_args<'a>(spec: Option<&Spec>, args: &'a [Arg<'a>]) -> Parsed<'a> {
    let mut out = Parsed::default();
    let mut values = Vec::new();
    let mut operands = smallvec::SmallVec::new();
    sort_args(spec, args, |f, _| out.flags.push(f), |n, v| values.push((n, v)), |i| operands.extend(args.get(i)));
    out.values = values;
    out.operands = operands;
    out
}

/// `parse_args` as calls: each flag's normalised name (with the index of the argument it is
/// in: a name that is not the spec's is a run of that argument), each option value with its
/// flag's name, each operand's index in `args`, in order. The view sorts every command's arguments
/// this way into its own lists, without building a `Parsed` to move them through.
#[inline]
pub(crate) fn sort_args<'a>(
    spec: Option<&Spec>,
    args: &[Arg<'a>],
    mut flag: impl FnMut(&'a str, usize),
    mut value: impl FnMut(&'a str, Arg<'a>),
    mut operand: impl FnMut(usize),
) {
    let mut i = 0;
    let mut options_done = false;
    while let Some(a) = args.get(i) {
        let at = i;
        i += 1;
        let t = a.text;
        if options_done || a.dynamic.is_some() || t == "-" || !t.starts_with('-') {
            operand(i - 1);
            if spec.is_some_and(|s| !s.permute) {
                options_done = true;
            }
            continue;
        }
        if t == "--" {
            options_done = true;
            continue;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let (name, takes) = resolve_long(spec, name);
            if takes {
                let v = match inline {
                    Some(v) => Some(Arg::lit(v)),
                    None => {
                        i += 1;
                        args.get(i - 1).copied()
                    }
                };
                if let Some(v) = v {
                    value(name, v);
                }
            }
            flag(name, at);
            continue;
        }
        // A short cluster: `-rf`, `-n5`, `-t DIR`.
        let cluster = t.get(1..).unwrap_or("");
        for (k, c) in cluster.char_indices() {
            // The letter itself (a slice of the word) when the spec has no name for it.
            let letter = cluster.get(k..k + c.len_utf8()).unwrap_or("");
            let name = spec.and_then(|s| s.short.iter().find(|(l, _)| *l == c)).map_or(letter, |(_, n)| *n);
            if spec.is_some_and(|s| s.short_value.contains(c)) {
                let rest = cluster.get(k + c.len_utf8()..).unwrap_or("");
                let v = if rest.is_empty() {
                    i += 1;
                    args.get(i - 1).copied()
                } else {
                    Some(Arg::lit(rest))
                };
                if let Some(v) = v {
                    value(name, v);
                }
                flag(name, at);
                break;
            }
            flag(name, at);
        }
    }
}

/// A long option's full name, resolving GNU's unambiguous prefixes (`--recur` is
/// `--recursive`), and whether it takes a value.
fn resolve_long<'a>(spec: Option<&Spec>, name: &'a str) -> (&'a str, bool) {
    let Some(spec) = spec else { return (name, false) };
    let bare = |l: &'static str| l.strip_suffix('=').unwrap_or(l);
    if let Some(l) = spec.long.iter().find(|l| bare(l) == name) {
        return (bare(l), l.ends_with('='));
    }
    let mut matches = spec.long.iter().filter(|l| !name.is_empty() && bare(l).starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(l), None) => (bare(l), l.ends_with('=')),
        _ => (name, false),
    }
}

/// What a wrapper runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Inner<'a> {
    /// Another command, its name first.
    Argv(Vec<Arg<'a>>),
    /// A script in a string: `sh -c`, `eval`, `su -c`, `ssh host CMD`, `watch CMD`.
    Script(Script<'a>),
    /// A program read from standard input: `sh`, `python3 -`, `perl`, `iex`.
    Stdin,
    /// Program text for an interpreter that is not a shell (`python3 -c`, `perl -e`).
    Code(Script<'a>),
}

const SHELLS: &[&str] =
    &["sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "yash", "fish", "busybox-sh", "csh", "tcsh", "rbash"];
/// Whether `name` is an interpreter fak knows (`python3`, `perl`, `node`, ...).
pub(crate) fn is_interpreter(name: &str) -> bool {
    INTERPRETERS.contains(&name)
}

const INTERPRETERS: &[&str] = &[
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "node",
    "nodejs",
    "php",
    "lua",
    "tclsh",
    "osascript",
    "pwsh",
    "powershell",
    "deno",
    "bun",
    "rscript",
];

/// Programs `inner` looks into besides shells and interpreters: wrappers, `find`, `ssh`, ...
const RUNNERS: &[&str] = &[
    "sudo",
    "doas",
    "pkexec",
    "su",
    "env",
    "command",
    "builtin",
    "nohup",
    "busybox",
    "chronic",
    "unbuffer",
    "caffeinate",
    "flock-free",
    "exec",
    "nice",
    "ionice",
    "timeout",
    "time",
    "stdbuf",
    "setsid",
    "taskset-free",
    "xargs",
    "parallel",
    "watch",
    "ssh",
    "eval",
    "find",
    "iex",
    "invoke-expression",
    "strace",
    "ltrace",
    "flock",
    "chroot",
    "unshare",
    "runuser",
    "script",
    "tmux",
    "screen",
    "at",
    "batch",
    "sg",
    "awk",
    "gawk",
    "mawk",
    "nawk",
];

/// Programs that write files named in their arguments (`view::writes_of` says which).
pub(crate) const WRITERS: &[&str] = &[
    "tee",
    "truncate",
    "shred",
    "touch",
    "rm",
    "rmdir",
    "unlink",
    "mkdir",
    "rustfmt",
    "black",
    "chattr",
    "cp",
    "ln",
    "install",
    "mv",
    "rsync",
    "chmod",
    "chown",
    "chgrp",
    "sed",
    "perl",
    "dd",
    "gofmt",
    "prettier",
    "clang-format",
    "tar",
    "unzip",
    "git",
    "curl",
    "wget",
    "sort",
    "goimports",
    "patch",
    "scp",
    "setfacl",
];

/// Programs whose first operand is a subcommand (`npm run`, `cargo test`); git's is found
/// through its global options and aliases instead.
pub(crate) const SUBCOMMANDED: &[&str] = &["npm", "pnpm", "yarn", "cargo", "go", "docker", "kubectl", "pip", "pip3"];

/// Ordinary programs agents run often, listed so that they have a `ProgramId` too: a policy's
/// tables answer for them by index (see `ProgramId`).
const COMMON: &[&str] = &[
    "ls",
    "cat",
    "head",
    "tail",
    "grep",
    "rg",
    "egrep",
    "fgrep",
    "echo",
    "printf",
    "wc",
    "sort",
    "uniq",
    "cut",
    "tr",
    "awk",
    "diff",
    "pwd",
    "which",
    "true",
    "false",
    "test",
    "[",
    "date",
    "sleep",
    "basename",
    "dirname",
    "realpath",
    "readlink",
    "stat",
    "file",
    "du",
    "df",
    "ps",
    "kill",
    "make",
    "cmake",
    "gcc",
    "cc",
    "clang",
    "rustc",
    "rustup",
    "pytest",
    "jq",
    "yq",
    "less",
    "more",
    "tree",
    "export",
    "set",
    "unset",
    "read",
    "exit",
    "return",
    "type",
    "hash",
    "uname",
    "whoami",
    "id",
    "hostname",
    "env",
    "curl",
    "wget",
    "nc",
    "gh",
    "npx",
    "tsc",
    "eslint",
    "ruff",
    "mypy",
    "zip",
    "gzip",
    "gunzip",
    "xz",
    "base64",
    "sha256sum",
    "md5sum",
    "openssl",
    "ssh-keygen",
    "scp",
    "mktemp",
    "seq",
    "yes",
    "xxd",
    "od",
    "hexdump",
    "strings",
    "nl",
    "paste",
    "join",
    "comm",
    "column",
    "fold",
    "fmt",
    "rev",
    "tac",
];

/// A program fak has a name for (every program `known` knows, and `COMMON`): its index in
/// one sorted list. A command's `ProgramId` names exactly its resolved name, so a table a
/// policy computes once per program name (the quantifiers keyed by it, what a field filter
/// reports on it) answers for every command that runs the program without hashing or
/// scanning the name again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProgramId(u16);

impl ProgramId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// Every program with an id, in id order.
    pub fn names() -> &'static [&'static str] {
        &PROGRAM_NAMES
    }
}

static PROGRAM_NAMES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    let mut names: Vec<&'static str> = KNOWN_ROLES.keys().copied().chain(COMMON.iter().copied()).collect();
    names.sort_unstable();
    names.dedup();
    names
});

/// What fak knows of a program, by its resolved name: one hash lookup per command instead of
/// a search of each table.
#[derive(Clone, Copy, Default)]
pub(crate) struct Known {
    pub spec: Option<&'static Spec>,
    pub shell: bool,
    /// `inner` may find a command, a script or program text in its arguments.
    pub runs: bool,
    pub writer: bool,
    pub subcommanded: bool,
    /// The programs the walker treats specially, named here so that it does not compare
    /// every command's name with each of them.
    pub role: Role,
    /// Its id, when it has one.
    pub id: Option<ProgramId>,
}

impl Known {
    /// A program the walker does nothing special for: no shell, wrapper or interpreter, no
    /// writer, subcommand or role. Its record is its words, redirections and where it runs.
    pub fn is_plain(&self) -> bool {
        !(self.shell || self.runs || self.writer || self.subcommanded) && self.role == Role::None
    }

    /// A plain program (`is_plain`) but for a subcommand: `cargo`, `npm`, `docker`, ...
    pub fn is_plain_but_subcommanded(&self) -> bool {
        !(self.shell || self.runs || self.writer) && self.subcommanded && self.role == Role::None
    }
}

/// A program the walker reads in its own way.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    #[default]
    None,
    /// `git`: its subcommand behind global options and inline aliases.
    Git,
    /// `find`: its predicates are not flags.
    Find,
    /// `cd`, `pushd`: where the next commands run.
    Cd,
    /// `source`, `.`: runs a script in this shell.
    Source,
}

static KNOWN: std::sync::LazyLock<NameTable> = std::sync::LazyLock::new(|| {
    let mut t = KNOWN_ROLES.clone();
    for n in COMMON {
        t.entry(n).or_default();
    }
    for (i, n) in PROGRAM_NAMES.iter().enumerate() {
        if let (Some(k), Ok(i)) = (t.get_mut(n), u16::try_from(i)) {
            k.id = Some(ProgramId(i));
        }
    }
    NameTable::new(t.into_iter())
});

/// `KNOWN`'s table: open addressing keyed by a name's length and first seven bytes. A
/// command's name is looked up once per command; a hash map hashed the whole name and compared
/// it with `memcmp`, where this takes a multiply and, for a name of up to seven bytes, one
/// comparison of two words. Written here: the perfect-hash crates build their tables at
/// compile time from literals, and this one merges several lists when first used.
struct NameTable {
    slots: Vec<Option<(u64, &'static str, Known)>>,
    /// `64 - log2(slots.len())`: the top bits of the multiplied key pick the slot.
    shift: u32,
}

impl NameTable {
    fn new(entries: impl ExactSizeIterator<Item = (&'static str, Known)>) -> NameTable {
        // At most a quarter full: probes are short.
        let size = (entries.len() * 4).next_power_of_two().max(16);
        let mut t = NameTable { slots: vec![None; size], shift: 64 - size.trailing_zeros() };
        for (name, k) in entries {
            let key = NameTable::key(name);
            let mut i = t.slot(key);
            while t.slots.get(i).is_some_and(Option::is_some) {
                i = (i + 1) & (size - 1);
            }
            if let Some(slot) = t.slots.get_mut(i) {
                *slot = Some((key, name, k));
            }
        }
        t
    }

    /// A name's first seven bytes and its length in one word (a name of up to seven bytes is
    /// its key exactly).
    fn key(name: &str) -> u64 {
        let b = name.as_bytes();
        // The bytes little-endian: four in one load, the rest by the length left (most names
        // are two to six bytes; a loop a byte cost three times as much).
        let first = match b.first_chunk::<4>() {
            Some(four) => {
                let rest = match b.get(4..).unwrap_or_default() {
                    [] => 0,
                    [e] => u64::from(*e),
                    [e, f] => u64::from(u16::from_le_bytes([*e, *f])),
                    [e, f, g, ..] => u64::from(u16::from_le_bytes([*e, *f])) | u64::from(*g) << 16,
                };
                u64::from(u32::from_le_bytes(*four)) | rest << 32
            }
            None => match b {
                [a, c, d] => u64::from(u16::from_le_bytes([*a, *c])) | u64::from(*d) << 16,
                [a, c] => u64::from(u16::from_le_bytes([*a, *c])),
                [a] => u64::from(*a),
                _ => 0,
            },
        };
        (b.len() as u64) << 56 | first
    }

    fn slot(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    fn get(&self, name: &str) -> Option<&Known> {
        let key = NameTable::key(name);
        let mut i = self.slot(key);
        let mask = self.slots.len() - 1;
        // The table is never full: the probe ends at an empty slot.
        while let Some(Some((k, n, known))) = self.slots.get(i) {
            if *k == key && (name.len() <= 7 || *n == name) {
                return Some(known);
            }
            i = (i + 1) & mask;
        }
        None
    }
}

/// What the tables say of each program they name (`KNOWN` adds `COMMON` and the ids).
static KNOWN_ROLES: std::sync::LazyLock<rustc_hash::FxHashMap<&'static str, Known>> = std::sync::LazyLock::new(|| {
    let mut t: rustc_hash::FxHashMap<&'static str, Known> = rustc_hash::FxHashMap::default();
    for s in SPECS {
        for n in s.names {
            t.entry(n).or_default().spec = Some(s);
        }
    }
    for n in SHELLS {
        let k = t.entry(n).or_default();
        k.shell = true;
        k.runs = true;
    }
    for n in INTERPRETERS.iter().chain(RUNNERS) {
        t.entry(n).or_default().runs = true;
    }
    for n in WRITERS {
        t.entry(n).or_default().writer = true;
    }
    for n in SUBCOMMANDED {
        t.entry(n).or_default().subcommanded = true;
    }
    for (n, role) in [
        ("git", Role::Git),
        ("find", Role::Find),
        ("cd", Role::Cd),
        ("pushd", Role::Cd),
        ("source", Role::Source),
        (".", Role::Source),
    ] {
        t.entry(n).or_default().role = role;
    }
    t
});

/// What fak knows of `name` (resolved: no directory, quotes removed, lower case).
pub(crate) fn known(name: &str) -> Known {
    match KNOWN.get(name) {
        Some(k) => *k,
        // `python3.12` and the like.
        None if name.starts_with("python3.") => Known { runs: true, ..Known::default() },
        None => Known::default(),
    }
}

/// What fak knows of `name` when it is one of the table's names exactly (each is already as
/// bash resolves it: lower case, no directory), without the rules for others.
pub(crate) fn known_as_is(name: &str) -> Option<Known> {
    KNOWN.get(name).copied()
}

pub fn is_shell(name: &str) -> bool {
    known(name).shell
}

/// Splits leading options off a wrapper's arguments: `value` lists short letters that take a
/// value, `long_value` long ones; returns the index of the first operand.
fn skip_options(args: &[Arg<'_>], value: &str, long_value: &[&str], stop_at_operand: bool) -> (Vec<String>, usize) {
    let mut flags = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let t = a.text;
        if a.dynamic.is_some() || !t.starts_with('-') || t == "-" {
            if stop_at_operand {
                break;
            }
            i += 1;
            continue;
        }
        i += 1;
        if t == "--" {
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            flags.push(name.to_string());
            if !long.contains('=') && long_value.contains(&name) {
                i += 1;
            }
            continue;
        }
        let cluster = t.get(1..).unwrap_or("");
        for (at, c) in cluster.char_indices() {
            flags.push(c.to_string());
            if value.contains(c) {
                if cluster.len() == at + c.len_utf8() {
                    i += 1;
                }
                break;
            }
        }
    }
    (flags, i)
}

fn rest<'a>(args: &[Arg<'a>], from: usize) -> Vec<Arg<'a>> {
    args.get(from..).map(<[Arg<'a>]>::to_vec).unwrap_or_default()
}

/// The value of a `-c`-like option anywhere in the arguments (`-c CMD`, `--command=CMD`,
/// `--command CMD`).
fn option_value<'a>(args: &[Arg<'a>], short: &str, long: &str) -> Option<Arg<'a>> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a.dynamic.is_some() {
            continue;
        }
        // `-c CMD`, and a cluster that ends with it (`script -qc CMD`).
        let cluster = a.text.len() > short.len()
            && a.text.starts_with('-')
            && !a.text.starts_with("--")
            && a.text.ends_with(short.trim_start_matches('-'))
            && a.text.bytes().skip(1).all(|b| b.is_ascii_alphabetic());
        if a.text == short || a.text == long || cluster {
            return it.next().copied();
        }
        if let Some(v) = a.text.strip_prefix(long).and_then(|v| v.strip_prefix('=')) {
            return Some(Arg::lit(v));
        }
    }
    None
}

/// Joins words into one script, as `eval` and `ssh` do.
fn joined<'a>(args: &[Arg<'a>]) -> Script<'a> {
    let text = args.iter().map(|a| a.text).collect::<Vec<_>>().join(" ");
    Script { text: text.into(), dynamic: args.iter().find_map(|a| a.dynamic) }
}

/// What `name` (already resolved: no directory, quotes removed) runs, given its arguments.
/// `None`: it runs nothing fak can name (or it is not a wrapper).
pub(crate) fn inner<'a>(name: &str, args: &[Arg<'a>]) -> Vec<Inner<'a>> {
    // Most commands run nothing else: one look-up says so.
    if !known(name).runs {
        return Vec::new();
    }
    let argv_from = |i: usize| -> Vec<Inner<'a>> {
        let r = rest(args, i);
        if r.is_empty() {
            Vec::new()
        } else {
            vec![Inner::Argv(r)]
        }
    };
    match name {
        "sudo" => {
            let (_, i) = skip_options(
                args,
                "ugCDhprtTU",
                &[
                    "user",
                    "group",
                    "close-from",
                    "chdir",
                    "host",
                    "prompt",
                    "role",
                    "type",
                    "command-timeout",
                    "other-user",
                ],
                true,
            );
            argv_from(i)
        }
        "doas" => argv_from(skip_options(args, "Cu", &[], true).1),
        "pkexec" => argv_from(skip_options(args, "", &["user"], true).1),
        "su" => {
            // `su [options] [user [args]]`; GNU su permutes, so `-c` may follow the user.
            let mut out = Vec::new();
            let mut i = 0;
            while let Some(a) = args.get(i) {
                i += 1;
                let t = a.text;
                let cmd = if t == "-c" || t == "--command" {
                    i += 1;
                    args.get(i - 1).copied()
                } else if let Some(v) = t.strip_prefix("--command=") {
                    Some(Arg::lit(v))
                } else if let Some(v) = t.strip_prefix("-c").filter(|v| !v.is_empty() && !t.starts_with("--")) {
                    Some(Arg::lit(v))
                } else {
                    if matches!(t, "-s" | "--shell" | "-g" | "--group" | "-G" | "--supp-group" | "-w") {
                        i += 1;
                    }
                    None
                };
                if let Some(c) = cmd {
                    out.push(Inner::Script(c.into()));
                }
            }
            out
        }
        "env" => {
            let mut i = 0;
            let mut out = Vec::new();
            while let Some(a) = args.get(i) {
                let t = a.text;
                if a.dynamic.is_none() && (t == "-S" || t == "--split-string") {
                    if let Some(s) = args.get(i + 1) {
                        out.push(Inner::Script((*s).into()));
                    }
                    return out;
                }
                if let Some(s) =
                    t.strip_prefix("--split-string=").or_else(|| t.strip_prefix("-S").filter(|s| !s.is_empty()))
                {
                    out.push(Inner::Script(Arg::lit(s).into()));
                    return out;
                }
                if a.dynamic.is_none() && t.starts_with('-') && t != "-" {
                    i += 1;
                    if matches!(t, "-u" | "--unset" | "-C" | "--chdir") {
                        i += 1;
                    }
                    continue;
                }
                if a.dynamic.is_none() && is_assignment(t) || t == "-" {
                    i += 1;
                    continue;
                }
                break;
            }
            argv_from(i)
        }
        "command" => {
            let (flags, i) = skip_options(args, "", &[], true);
            if flags.iter().any(|f| f == "v" || f == "V") {
                Vec::new() // a lookup, not a run
            } else {
                argv_from(i)
            }
        }
        "builtin" | "nohup" | "busybox" | "chronic" | "unbuffer" | "caffeinate" | "flock-free" => argv_from(0),
        "exec" => argv_from(skip_options(args, "a", &[], true).1),
        "nice" => {
            let mut i = 0;
            while let Some(a) = args.get(i) {
                let t = a.text;
                if t == "-n" || t == "--adjustment" {
                    i += 2;
                } else if t.starts_with('-') && t.len() > 1 && a.dynamic.is_none() {
                    i += 1; // `-n5`, `-5`, `--adjustment=5`
                } else {
                    break;
                }
            }
            argv_from(i)
        }
        "ionice" => {
            let (flags, i) = skip_options(args, "cnpPu", &["class", "classdata", "pid", "pgid", "uid"], true);
            if flags.iter().any(|f| matches!(f.as_str(), "p" | "P" | "u" | "pid" | "pgid" | "uid")) {
                Vec::new()
            } else {
                argv_from(i)
            }
        }
        "timeout" => {
            let (_, i) = skip_options(args, "ks", &["kill-after", "signal"], true);
            argv_from(i + 1) // the duration, then the command
        }
        "time" => argv_from(skip_options(args, "of", &["output", "format"], true).1),
        // Tracers run the command they are given.
        "strace" | "ltrace" => argv_from(
            skip_options(
                args,
                "abeEIoOpPsSuUXnLA",
                &["output", "signal", "trace", "user", "attach", "string-limit", "env", "summary-sort-by"],
                true,
            )
            .1,
        ),
        // `flock [options] FILE COMMAND...` or `flock FILE -c COMMAND`.
        "flock" => match option_value(args, "-c", "--command") {
            Some(c) => vec![Inner::Script(c.into())],
            None => argv_from(skip_options(args, "wE", &["timeout", "wait", "conflict-exit-code"], true).1 + 1),
        },
        "chroot" => argv_from(skip_options(args, "", &["userspec", "groups", "skip-chdir"], true).1 + 1),
        "unshare" => argv_from(skip_options(args, "SGRw", &["setuid", "setgid", "root", "wd"], true).1),
        // `runuser -u USER -- COMMAND` or `runuser USER -c COMMAND`; `sg GROUP -c COMMAND`.
        "runuser" | "sg" => match option_value(args, "-c", "--command") {
            Some(c) => vec![Inner::Script(c.into())],
            None if name == "runuser" => {
                argv_from(skip_options(args, "ugGw", &["user", "group", "supp-group", "whitelist-environment"], true).1)
            }
            None => argv_from(1),
        },
        // `script -c COMMAND [FILE]` runs the command in a new terminal.
        "script" => option_value(args, "-c", "--command").map(|c| vec![Inner::Script(c.into())]).unwrap_or_default(),
        // `tmux new-session -d 'CMD'`, `tmux new-window CMD`, `tmux split-window CMD`,
        // `tmux run-shell CMD`: the words after the options are a shell command.
        "tmux" => {
            let (_, i) = skip_options(args, "LSf", &[], true);
            match args.get(i).map(|a| a.text) {
                Some(
                    "new-session" | "new" | "new-window" | "neww" | "split-window" | "splitw" | "respawn-pane"
                    | "respawnp" | "respawn-window" | "respawnw" | "run-shell" | "run",
                ) => {
                    let rest = args.get(i + 1..).unwrap_or_default();
                    let (_, j) = skip_options(rest, "censtxyFlpTB", &[], true);
                    let cmd = rest.get(j..).unwrap_or_default();
                    if cmd.is_empty() {
                        Vec::new()
                    } else {
                        vec![Inner::Script(joined(cmd))]
                    }
                }
                _ => Vec::new(),
            }
        }
        "screen" => argv_from(skip_options(args, "SceEhpTtXl", &[], true).1),
        // `at` and `batch` read the commands to run later from standard input.
        "at" | "batch" => vec![Inner::Stdin],
        // awk's program is its code (`system("...")` runs a shell), unless it comes from `-f`.
        "awk" | "gawk" | "mawk" | "nawk" => {
            let (flags, i) = skip_options(args, "Fvf", &["field-separator", "assign", "file"], true);
            if flags.iter().any(|f| f == "f" || f == "file") {
                Vec::new()
            } else {
                args.get(i).map(|c| vec![Inner::Code((*c).into())]).unwrap_or_default()
            }
        }
        "stdbuf" => argv_from(skip_options(args, "ioe", &["input", "output", "error"], true).1),
        "setsid" | "taskset-free" => argv_from(skip_options(args, "", &[], true).1),
        "xargs" => {
            let (_, i) = skip_options(
                args,
                "aEdILnPs",
                &[
                    "arg-file",
                    "delimiter",
                    "eof",
                    "replace",
                    "max-lines",
                    "max-args",
                    "max-procs",
                    "max-chars",
                    "process-slot-var",
                ],
                true,
            );
            argv_from(i)
        }
        "parallel" => {
            let (_, i) = skip_options(
                args,
                "jSNLIEdaX",
                &["jobs", "sshlogin", "delimiter", "arg-file", "joblog", "results"],
                true,
            );
            let cmd: Vec<Arg<'a>> =
                rest(args, i).into_iter().take_while(|a| !a.text.starts_with(":::") && a.text != "::::").collect();
            match cmd.as_slice() {
                [] => Vec::new(),
                [one] if one.text.contains(' ') => vec![Inner::Script((*one).into())],
                _ => vec![Inner::Argv(cmd)],
            }
        }
        "watch" => {
            let (flags, i) = skip_options(args, "nq", &["interval", "equexit"], true);
            let r = rest(args, i);
            if r.is_empty() {
                Vec::new()
            } else if flags.iter().any(|f| f == "x" || f == "exec") {
                vec![Inner::Argv(r)]
            } else {
                vec![Inner::Script(joined(&r))]
            }
        }
        "ssh" => {
            let (_, i) = skip_options(args, "BbcDEeFIiJLlmOoPpQRSWw", &[], true);
            let r = rest(args, i + 1); // the host, then the remote command
            if r.is_empty() {
                Vec::new()
            } else {
                vec![Inner::Script(joined(&r))]
            }
        }
        "eval" => {
            if args.is_empty() {
                Vec::new()
            } else {
                vec![Inner::Script(joined(args))]
            }
        }
        "find" => {
            let mut out = Vec::new();
            let mut i = 0;
            while let Some(a) = args.get(i) {
                i += 1;
                if matches!(a.text, "-exec" | "-execdir" | "-ok" | "-okdir") && a.dynamic.is_none() {
                    let cmd: Vec<Arg<'a>> =
                        rest(args, i).into_iter().take_while(|w| w.text != ";" && w.text != "+").collect();
                    i += cmd.len() + 1;
                    if !cmd.is_empty() {
                        out.push(Inner::Argv(cmd));
                    }
                }
            }
            out
        }
        "source" | "." => Vec::new(),
        n if is_shell(n) => shell_inner(args),
        n if INTERPRETERS.contains(&n) || n.starts_with("python3.") => interpreter_inner(n, args),
        "iex" | "invoke-expression" => vec![Inner::Stdin],
        _ => Vec::new(),
    }
}

/// `sh -c CMD`, `bash -lc CMD`, `sh -s`, `sh` (stdin), `sh script.sh` (a file: nothing seen).
fn shell_inner<'a>(args: &[Arg<'a>]) -> Vec<Inner<'a>> {
    let mut command = false;
    let mut stdin = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let t = a.text;
        if a.dynamic.is_some() || !(t.starts_with('-') || t.starts_with('+')) || t == "-" || t == "--" {
            if t == "-" || t == "--" {
                i += 1;
            }
            break;
        }
        i += 1;
        if t.starts_with("--") {
            if matches!(t, "--rcfile" | "--init-file") {
                i += 1;
            }
            continue;
        }
        let cluster = t.get(1..).unwrap_or("");
        for c in cluster.chars() {
            match c {
                'c' => command = true,
                's' => stdin = true,
                'o' | 'O' => i += 1,
                _ => {}
            }
        }
    }
    if command {
        return match args.get(i) {
            Some(a) => vec![Inner::Script((*a).into())],
            None => Vec::new(),
        };
    }
    if stdin || args.get(i).is_none() {
        vec![Inner::Stdin]
    } else {
        Vec::new() // a script file: running it is opaque to fak, as `make` is
    }
}

/// `python3 -c CODE`, `perl -e CODE`, `node -e CODE`, `pwsh -c CODE`; no program argument (or
/// `-`) means the program comes from standard input.
fn interpreter_inner<'a>(name: &str, args: &[Arg<'a>]) -> Vec<Inner<'a>> {
    let code_flags: &[&str] = match name {
        "perl" => &["-e", "-E"],
        "ruby" | "node" | "nodejs" | "osascript" | "lua" => &["-e"],
        "php" => &["-r"],
        "pwsh" | "powershell" => &["-c", "-command", "-Command", "-EncodedCommand", "-encodedcommand", "-e", "-ec"],
        "deno" | "bun" => &["eval"],
        _ => &["-c"],
    };
    let mut i = 0;
    let mut module = false;
    while let Some(a) = args.get(i) {
        let t = a.text;
        i += 1;
        if code_flags.contains(&t) {
            return args.get(i).map(|c| vec![Inner::Code((*c).into())]).unwrap_or_default();
        }
        // Perl and Python clusters: `perl -pi -e`, `python3 -Bc`.
        if t.starts_with('-')
            && !t.starts_with("--")
            && t.len() > 2
            && a.dynamic.is_none()
            && t.bytes().skip(1).all(|b| b.is_ascii_alphabetic())
        {
            let last = t.chars().last().unwrap_or(' ');
            if (name == "perl" && (last == 'e' || last == 'E')) || (name.starts_with("python") && last == 'c') {
                return args.get(i).map(|c| vec![Inner::Code((*c).into())]).unwrap_or_default();
            }
        }
        if t == "-m" || (name.starts_with("python") && t.starts_with("-m") && t.len() > 2) {
            module = true;
            break;
        }
        if t == "-" {
            return vec![Inner::Stdin];
        }
        if !t.starts_with('-') || a.dynamic.is_some() {
            return Vec::new(); // a script file
        }
    }
    if module {
        Vec::new()
    } else {
        vec![Inner::Stdin]
    }
}

/// The shell commands a program's code hands to a shell or runs as a process, when they are
/// written as string literals: `os.system("rm -rf ~")`, `subprocess.run("git push",
/// shell=True)`, `subprocess.run(["rm", "-rf", "/home/dev"])` (the list's words quoted back
/// into one command), `system("...")` in Perl, Ruby, PHP and awk, Node's `execSync("...")`,
/// backquotes and `%x(...)` in Ruby and Perl. A command built at run time is not found: the
/// code is still `c.code`, which rules read too. Written here because no crate reads the
/// calls of six languages; the regexes only look for literal arguments of known calls.
pub(crate) fn code_commands(code: &str) -> Vec<String> {
    use std::sync::LazyLock;
    static CALL: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(
            r#"(?x)
            (?: \bos\s*\.\s*(?:system|popen|exec[lv]p?e?)
              | \bsubprocess\s*\.\s*(?:run|call|check_call|check_output|Popen|getoutput|getstatusoutput)
              | \bcommands\s*\.\s*getoutput | \bpty\s*\.\s*spawn
              | \bsystem | \bchild_process\s*\.\s*exec\w* | \bexec(?:Sync|FileSync|File)\b | \bspawn(?:Sync)?
              | \bshell_exec | \bpassthru
              | \bpopen | \bproc_open | \bIO\s*\.\s*popen | \bOpen3\s*\.\s*\w+ | \bKernel\s*\.\s*(?:system|exec|spawn)
              | \bRuntime\s*\.\s*getRuntime\s*\(\s*\)\s*\.\s*exec
            ) \s*\(?\s* (?:[rbfu]{0,2})
            (?: "((?:[^"\\]|\\.)*)" | '((?:[^'\\]|\\.)*)' | \[([^\]]*)\] )
            (\s*,\s*\[([^\]]*)\])?
            "#,
        )
        .ok()
    });
    static QUOTED: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r#""((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'"#).ok());
    static BACKQUOTE: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r#"`([^`]+)`|%x\(([^)]*)\)|%x\{([^}]*)\}|\bqx\s*[({]([^)}]*)[)}]"#).ok());
    let (Some(call), Some(quoted), Some(backquote)) = (&*CALL, &*QUOTED, &*BACKQUOTE) else {
        return Vec::new();
    };
    let unescape =
        |s: &str| s.replace("\\\\", "\u{0}").replace("\\\"", "\"").replace("\\'", "'").replace('\u{0}', "\\");
    // A list of string literals as one command, each word quoted for the shell.
    let words = |list: &str| -> Option<String> {
        let ws: Vec<String> = quoted
            .captures_iter(list)
            .filter_map(|c| c.get(1).or_else(|| c.get(2)))
            .map(|m| format!("'{}'", unescape(m.as_str()).replace('\'', "'\\''")))
            .collect();
        (!ws.is_empty()).then(|| ws.join(" "))
    };
    let mut out = Vec::new();
    for c in call.captures_iter(code) {
        if let Some(s) = c.get(1).or_else(|| c.get(2)) {
            // `execFile("rm", ["-rf", "/"])`: a program, then its arguments.
            match c.get(5).and_then(|l| words(l.as_str())) {
                Some(rest) => out.push(format!("'{}' {rest}", unescape(s.as_str()).replace('\'', "'\\''"))),
                None => out.push(unescape(s.as_str())),
            }
        } else if let Some(list) = c.get(3).and_then(|l| words(l.as_str())) {
            out.push(list);
        }
    }
    for c in backquote.captures_iter(code) {
        if let Some(m) = (1..=4).find_map(|i| c.get(i)) {
            out.push(m.as_str().to_string());
        }
    }
    out.truncate(16);
    out
}

/// `NAME=value`, as the shell recognises an assignment word.
pub fn is_assignment(t: &str) -> bool {
    match t.split_once('=') {
        Some((name, _)) => {
            let mut cs = name.chars();
            cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

/// Programs whose output is a payload fetched over the network.
pub const DOWNLOADERS: &[&str] = &[
    "curl",
    "wget",
    "fetch",
    "aria2c",
    "http",
    "https",
    "xh",
    "iwr",
    "irm",
    "invoke-webrequest",
    "invoke-restmethod",
    "nc",
    "ncat",
    "socat",
    "lynx",
    "links",
];

/// Whether text spells bytes as escapes (`\x72`, `\0162`, `\162`, `\u0072`) at least twice.
fn escaped_bytes(t: &str) -> bool {
    let b = t.as_bytes();
    let mut n = 0;
    for (i, w) in b.windows(2).enumerate() {
        if let [b'\\', b'x' | b'u' | b'U' | b'0'..=b'7'] = w {
            if b.get(i + 2).is_some_and(u8::is_ascii_hexdigit) {
                n += 1;
            }
        }
    }
    n >= 2
}

/// Whether a command (name and parsed arguments) decodes an opaque payload.
pub fn is_decoder(name: &str, args: &[Arg<'_>]) -> bool {
    let has = |f: &str| args.iter().any(|a| a.text == f);
    match name {
        "base64" | "base32" | "basenc" => args.iter().any(|a| {
            a.text == "--decode" || (a.text.starts_with('-') && !a.text.starts_with("--") && a.text.contains('d'))
        }),
        "xxd" => args
            .iter()
            .any(|a| a.text == "-r" || a.text == "-revert" || (a.text.starts_with("-r") && a.text.len() <= 3)),
        "openssl" => has("-d") || has("base64") && has("-d"),
        "uudecode" | "gunzip" | "zcat" | "bunzip2" | "xz" | "unxz" | "rev" => true,
        "gzip" | "bzip2" | "zstd" => has("-d") || has("--decompress") || has("-dc"),
        // A translation (`tr 'a-z' 'n-za-m'`, rot13) rewrites what it is fed; `tr -d '\r'`
        // only deletes.
        "tr" => args.iter().filter(|a| !a.text.starts_with('-')).count() >= 2,
        // Bytes spelled as escapes: `printf '\x72\x6d'`, `echo -e '\0162'`.
        "printf" | "echo" => {
            (name == "printf" || args.iter().any(|a| a.text.starts_with("-e") || a.text == "-ne"))
                && args.iter().any(|a| escaped_bytes(a.text))
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A name's key is its length and its first seven bytes, one a byte (`get` trusts it
    /// alone for names of up to seven bytes).
    #[test]
    fn keys_are_the_length_and_the_first_seven_bytes() {
        let reference = |name: &str| {
            let b = name.as_bytes();
            let mut key = (b.len() as u64) << 56;
            for (i, c) in b.iter().take(7).enumerate() {
                key |= u64::from(*c) << (8 * i);
            }
            key
        };
        let bytes = "abcdefghijklmnopqrstuvwxyz0123456789-._+é";
        for len in 0..=12 {
            for start in 0..bytes.len() {
                let name: String = bytes.chars().cycle().skip(start).take(len).collect();
                assert_eq!(NameTable::key(&name), reference(&name), "{name:?}");
            }
        }
    }

    fn args(s: &str) -> Vec<Arg<'_>> {
        s.split_whitespace().map(Arg::lit).collect()
    }

    fn flags(name: &str, s: &str) -> Vec<String> {
        let mut f: Vec<String> = parse_args(known(name).spec, &args(s)).flags.iter().map(|f| f.to_string()).collect();
        f.sort();
        f.dedup();
        f
    }

    #[test]
    fn rm_flag_spellings_agree() {
        let want = vec!["force".to_string(), "recursive".to_string()];
        for s in ["-rf ~", "-r -f ~", "-fr ~", "-Rf ~", "--recursive --force ~", "--recur --forc ~", "~ -rf", "-vfr x"]
        {
            let got: Vec<String> = flags("rm", s).into_iter().filter(|f| f != "verbose").collect();
            assert_eq!(got, want, "{s}");
        }
        // An ambiguous prefix stays as written; an exact name beats longer ones.
        assert_eq!(flags("curl", "--da x"), vec!["da".to_string()]);
        assert_eq!(flags("curl", "--data x"), vec!["data".to_string()]);
        assert_eq!(flags("rm", "--no x"), vec!["no-preserve-root".to_string()]);
        // After `--` nothing is a flag.
        assert!(flags("rm", "-- -rf").is_empty());
    }

    #[test]
    fn values_are_not_operands() {
        let cp = args("-t /dest a b");
        let p = parse_args(known("cp").spec, &cp);
        assert_eq!(p.value("target-directory").map(|a| a.text), Some("/dest"));
        assert_eq!(p.operands.len(), 2);
        let curl = args("-s -d @- https://x");
        let p = parse_args(known("curl").spec, &curl);
        assert_eq!(p.operands.to_vec(), vec![&Arg::lit("https://x")]);
    }

    fn inner_argv(name: &str, s: &str) -> Vec<String> {
        match inner(name, &args(s)).first() {
            Some(Inner::Argv(a)) => a.iter().map(|a| a.text.to_string()).collect(),
            other => panic!("{name} {s}: {other:?}"),
        }
    }

    #[test]
    fn one_lookup_knows_a_program() {
        let k = known("bash");
        assert!(k.shell && k.runs && !k.writer);
        let k = known("rm");
        assert!(k.writer && !k.runs && k.spec.is_some());
        assert!(known("cargo").subcommanded && !known("git").subcommanded && known("git").writer);
        for (name, role) in
            [("git", Role::Git), ("find", Role::Find), ("pushd", Role::Cd), (".", Role::Source), ("ls", Role::None)]
        {
            assert_eq!(known(name).role, role, "{name}");
        }
        assert!(known("python3.12").runs && known("sudo").runs && known("find").runs);
        let k = known("ls");
        assert!(!k.shell && !k.runs && !k.writer && !k.subcommanded && k.spec.is_none());
        // Every program with a spec, and every shell, is in the table.
        for s in SPECS {
            for n in s.names {
                assert!(known(n).spec.is_some_and(|k| std::ptr::eq(k, s)), "{n}");
            }
        }
        assert!(SHELLS.iter().chain(INTERPRETERS).chain(RUNNERS).all(|n| known(n).runs));
    }

    #[test]
    fn the_name_table_finds_every_name_and_nothing_else() {
        for (i, n) in ProgramId::names().iter().enumerate() {
            assert_eq!(known(n).id.map(ProgramId::index), Some(i), "{n}");
            // Names that share a name's first seven bytes, or all of it and more, are others.
            let last_changed = format!("{}#", n.get(..n.len() - 1).unwrap_or(""));
            for other in
                [format!("{n}x"), format!("x{n}"), n.get(..n.len() - 1).unwrap_or("").to_string(), last_changed]
            {
                if !ProgramId::names().contains(&other.as_str()) {
                    assert_eq!(known(&other).id, None, "{other}");
                }
            }
        }
        assert!(known("python3.12").runs && known("python3.12").id.is_none());
        // A name found as written is the name bash resolves it to (`known_as_is`).
        for n in ProgramId::names() {
            assert!(n.bytes().all(|b| b.is_ascii() && b != b'/' && !b.is_ascii_uppercase()), "{n}");
            assert!(known_as_is(n).is_some(), "{n}");
        }
        assert!(known_as_is("Rm").is_none() && known_as_is("/bin/rm").is_none());
        assert!(known("").id.is_none() && known("invoke-expressionx").id.is_none());
    }

    #[test]
    fn wrappers_find_their_command() {
        assert_eq!(inner_argv("sudo", "-u root -E rm -rf /"), ["rm", "-rf", "/"]);
        assert_eq!(inner_argv("timeout", "-s KILL 60 rm -rf /opt"), ["rm", "-rf", "/opt"]);
        assert_eq!(inner_argv("nice", "-n 5 rm x"), ["rm", "x"]);
        assert_eq!(inner_argv("nice", "-5 rm x"), ["rm", "x"]);
        assert_eq!(inner_argv("env", "-i FOO=1 BAR=2 rm -rf /"), ["rm", "-rf", "/"]);
        assert_eq!(inner_argv("xargs", "-n1 -I{} rm -rf"), ["rm", "-rf"]);
        assert_eq!(inner_argv("find", ". -name x -exec rm -rf {} +"), ["rm", "-rf", "{}"]);
        assert_eq!(inner_argv("stdbuf", "-oL rm x"), ["rm", "x"]);
        assert_eq!(inner_argv("ionice", "-c 3 rm x"), ["rm", "x"]);
        assert_eq!(inner_argv("command", "git push"), ["git", "push"]);
        assert!(inner("command", &args("-v rm")).is_empty());
        assert_eq!(inner_argv("doas", "-u root pkg_add git"), ["pkg_add", "git"]);
        assert_eq!(inner_argv("watch", "-x rm -rf /"), ["rm", "-rf", "/"]);
    }

    #[test]
    fn scripts_in_strings() {
        assert_eq!(inner("bash", &args("-lc x")), vec![Inner::Script(Arg::lit("x").into())]);
        assert_eq!(inner("sh", &args("-s -- --yes")), vec![Inner::Stdin]);
        assert_eq!(inner("sh", &[]), vec![Inner::Stdin]);
        assert!(inner("sh", &args("install.sh")).is_empty());
        assert_eq!(inner("su", &args("root -c id")), vec![Inner::Script(Arg::lit("id").into())]);
        assert_eq!(inner("ssh", &args("-p 22 host rm -rf /")), vec![Inner::Script(Arg::lit("rm -rf /").into())]);
        assert_eq!(inner("eval", &args("rm -rf ~")), vec![Inner::Script(Arg::lit("rm -rf ~").into())]);
        assert_eq!(inner("watch", &args("-n 5 ls -la")), vec![Inner::Script(Arg::lit("ls -la").into())]);
        assert_eq!(inner("python3", &args("-c x")), vec![Inner::Code(Arg::lit("x").into())]);
        assert_eq!(inner("perl", &args("-pi -e s/a/b/ f")), vec![Inner::Code(Arg::lit("s/a/b/").into())]);
        assert!(inner("python3", &args("-m json.tool")).is_empty());
        assert_eq!(inner("perl", &[]), vec![Inner::Stdin]);
    }
}
