//! The views a rule reads besides the raw arguments: what a call really does.
//!
//! Computed at most once per decision, on first use, and shared by every rule (`eval::Input`
//! holds it): the shell view of a Bash `command` (`shell.commands`, `shell.opaque`), every
//! file the call writes (`writes`: file tools' targets and the shell's), and every URL it
//! reaches (`urls`: WebFetch's `url`, and the targets of `curl`, `wget`, `nc`, ...). The
//! checker types field accesses with the tables here, so a misspelt field is a diagnostic,
//! not a rule that silently never fires.

use serde_json::Value as Json;

use crate::shell::{self, Command};
use crate::tools::Ty;

/// The views of one call.
#[derive(Clone, Debug, Default)]
pub struct CallView {
    /// The shell view of a Bash call; boxed, and absent for other tools, so that a `CallView`
    /// stays small to move and drop (an Edit decision builds one too).
    pub(crate) shell: Option<Box<shell::View>>,
    /// Every file the call writes, in canonical form (`path::canonical`: absolute,
    /// normalised, case-folded), as rules compare them.
    pub writes: Vec<String>,
    pub urls: Vec<Url>,
    /// The secrets in a result's text (empty for a call).
    pub secrets: Vec<crate::secrets::Finding>,
    /// The injections in a result's normalised text (empty for a call).
    pub injections: Vec<crate::secrets::Finding>,
}

impl CallView {
    /// The shell view (empty for a call that runs no shell command).
    pub fn shell(&self) -> &shell::View {
        static EMPTY: shell::View = shell::View::EMPTY;
        self.shell.as_deref().unwrap_or(&EMPTY)
    }

    /// The number of items in all the view's lists: a bound on any list inside it.
    pub fn size(&self) -> u64 {
        let shell = self.shell();
        let top = shell.len()
            + shell.opaque.len()
            + self.writes.len()
            + self.urls.len()
            + self.secrets.len()
            + self.injections.len();
        shell.widest_command_over(top) as u64
    }
}

/// A view root a rule can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Field {
    /// `shell.commands`
    Commands,
    /// `shell.opaque`
    Opaque,
    /// `writes`
    Writes,
    /// `urls`
    Urls,
    /// `result.secrets`
    Secrets,
    /// `result.injections`
    Injections,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Commands => "shell.commands",
            Field::Opaque => "shell.opaque",
            Field::Writes => "writes",
            Field::Urls => "urls",
            Field::Secrets => "result.secrets",
            Field::Injections => "result.injections",
        }
    }

    pub fn ty(self) -> Ty {
        match self {
            Field::Commands => Ty::Cmds,
            Field::Opaque => Ty::Strs,
            Field::Writes => Ty::Paths,
            Field::Urls => Ty::Urls,
            Field::Secrets | Field::Injections => Ty::Secrets,
        }
    }
}

/// Names that start a view, reserved: no set may take them.
pub const ROOTS: &[&str] = &["shell", "writes", "urls"];

/// The fields of a command (`c` in `any(c in shell.commands: ...)`), with their types and
/// what they hold; docs/POLICY.md repeats this table.
pub const COMMAND_FIELDS: &[(&str, Ty, &str)] = &[
    ("name", Ty::Str, "the program as bash finds it, lower-cased, without quotes or directory"),
    ("args", Ty::Strs, "the arguments after quote removal"),
    ("flags", Ty::Strs, "options normalised for the program (`recursive`, `force` for rm)"),
    ("operands", Ty::Strs, "the arguments that are not options"),
    ("subcommand", Ty::Str, "`push` of `git push`, `run` of `npm run`"),
    ("assigns", Ty::Strs, "`NAME=value` assignments before the command"),
    ("redirects", Ty::Redirs, "its redirections"),
    ("via", Ty::Strs, "the wrappers it was found inside, outermost first"),
    ("code", Ty::Str, "program text given to an interpreter (`python3 -c`, `perl -e`)"),
    ("opaque", Ty::Str, "why it cannot be seen through, when it cannot"),
    ("upstream", Ty::Strs, "the programs piping into its standard input"),
    ("writes", Ty::Paths, "the files it writes"),
    ("recursive", Ty::Bool, "it runs the shell function it is defined in (a fork bomb)"),
    ("text", Ty::Str, "its words and redirections as written (here-documents without their bodies)"),
];

pub const REDIRECT_FIELDS: &[(&str, Ty, &str)] = &[
    ("op", Ty::Str, "`>`, `>>`, `<`, `<<`, `<<<`, `&>`, ..."),
    ("fd", Ty::Num, "the file descriptor written before the operator"),
    ("target", Ty::Str, "the file, `&N`, or a here-document's delimiter"),
    ("body", Ty::Str, "a here-document's or here-string's text"),
];

pub const URL_FIELDS: &[(&str, Ty, &str)] = &[
    ("url", Ty::Str, "the whole URL, normalised"),
    ("scheme", Ty::Str, "`https`, `http`, `ftp`, `tcp` (nc), `dns` (dig), ..."),
    ("host", Ty::Str, "lower-case; IPv4 in dotted decimal whatever its spelling; IPv6 without brackets"),
    ("port", Ty::Num, "the port, explicit or the scheme's default"),
    ("path", Ty::Str, "the path and query"),
    ("by", Ty::Str, "the tool or program that reaches it"),
];

/// The fields of a record type, for the checker.
pub fn fields(t: Ty) -> Option<&'static [(&'static str, Ty, &'static str)]> {
    match t {
        Ty::Cmd => Some(COMMAND_FIELDS),
        Ty::Redir => Some(REDIRECT_FIELDS),
        Ty::Url => Some(URL_FIELDS),
        Ty::Secret => Some(crate::secrets::FINDING_FIELDS),
        _ => None,
    }
}

/// Tools whose `command` argument is a shell command.
pub const SHELL_TOOLS: &[&str] = &["Bash"];

/// Tools that write the file their path argument names.
pub(crate) const FILE_WRITERS: &[(&str, &str)] =
    &[("Write", "file_path"), ("Edit", "file_path"), ("MultiEdit", "file_path"), ("NotebookEdit", "notebook_path")];

/// Where the call runs and whose home `~` is.
pub struct Env<'a> {
    pub workspace: &'a str,
    /// The workspace in canonical form (`path::canonical(workspace, "/")`), which the caller
    /// has worked out already: equal to `workspace` when that is canonical.
    pub workspace_key: &'a str,
    pub home: &'a str,
}

/// Computes the views of a call.
pub fn of(tool: &str, args: &Json, env: &Env<'_>) -> CallView {
    let mut v = CallView::default();
    // A linear search: tools take a handful of arguments, and hashing a key costs more.
    let arg = |k: &str| args.as_object()?.iter().find(|(name, _)| *name == k).and_then(|(_, v)| v.as_str());
    if SHELL_TOOLS.contains(&tool) {
        if let Some(cmd) = arg("command") {
            let sv = shell::view(cmd, env.workspace, env.home);
            // A script often writes one file many times (`>> log` after each step): each
            // is copied once.
            v.writes.extend(first_of_each(sv.writes()).cloned());
            for c in sv.commands() {
                urls_of(c, &mut v.urls);
            }
            v.shell = Some(Box::new(sv));
        }
    }
    // Against the canonical workspace the caller has: `path::canonical` would work out the
    // workspace's form again for every path.
    let place = |p: &str| crate::path::canonical_in(p, env.workspace_key).into_owned();
    for w in &mut v.writes {
        if !crate::path::is_canonical(w) {
            *w = place(w);
        }
    }
    for (t, key) in FILE_WRITERS {
        if *t == tool {
            if let Some(p) = arg(key) {
                v.writes.push(place(&expand_home(p, env.home)));
            }
        }
    }
    dedup_keep_first(&mut v.writes);
    if tool == "WebFetch" {
        if let Some(u) = arg("url").and_then(|u| parse_url(u, "WebFetch")) {
            v.urls.push(u);
        }
    }
    v
}

/// For each item of `items`, whether no earlier item equals it. A call writes a handful of
/// files: a short list is compared pairwise, without hashing; a long one goes through a set,
/// but for an item the same as the one before (a long chain appending to one log).
fn firsts(items: &[String]) -> impl Iterator<Item = bool> + '_ {
    let mut seen = rustc_hash::FxHashSet::default();
    let long = items.len() > 16;
    items.iter().enumerate().map(move |(i, w)| {
        if long {
            let again = i.checked_sub(1).and_then(|j| items.get(j)) == Some(w);
            !again && seen.insert(w.as_str())
        } else {
            !items.get(..i).unwrap_or_default().contains(w)
        }
    })
}

/// The items of `items` that no earlier item equals, in order.
fn first_of_each(items: &[String]) -> impl Iterator<Item = &String> {
    items.iter().zip(firsts(items)).filter_map(|(w, first)| first.then_some(w))
}

/// Removes repeated items, keeping each first one in place.
fn dedup_keep_first(items: &mut Vec<String>) {
    // Most calls write one file or none.
    if items.len() < 2 {
        return;
    }
    let keep: smallvec::SmallVec<[bool; 16]> = firsts(items).collect();
    let mut keep = keep.into_iter();
    items.retain(|_| keep.next().unwrap_or(false));
}

pub(crate) fn expand_home<'p>(p: &'p str, home: &str) -> std::borrow::Cow<'p, str> {
    match p.strip_prefix('~') {
        Some("") => std::borrow::Cow::Owned(home.to_string()),
        Some(rest) if rest.starts_with('/') => std::borrow::Cow::Owned(format!("{home}{rest}")),
        _ => std::borrow::Cow::Borrowed(p),
    }
}

// ------------------------------------------------------------------------------------------
// URLs

/// A URL a call reaches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Url {
    pub url: String,
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
    pub path: String,
    pub by: String,
}

/// Programs that fetch or send over HTTP(S)/FTP, whose operands are URLs (a scheme-less one
/// is `http://`, as curl and wget read it).
const URL_CLIENTS: &[&str] =
    &["curl", "wget", "aria2c", "http", "https", "xh", "lynx", "links", "w3m", "iwr", "irm", "invoke-webrequest"];

/// Programs that open a TCP connection to `host port`.
const SOCKET_CLIENTS: &[&str] = &["nc", "ncat", "netcat", "telnet"];

/// Programs that resolve a name (their lookups leave the machine too).
const DNS_CLIENTS: &[&str] = &["dig", "nslookup", "host", "drill"];

/// Which of the lists above a program is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    None,
    Url,
    Socket,
    Dns,
}

fn client_kind(name: &str) -> Client {
    if URL_CLIENTS.contains(&name) {
        Client::Url
    } else if SOCKET_CLIENTS.contains(&name) {
        Client::Socket
    } else if DNS_CLIENTS.contains(&name) {
        Client::Dns
    } else {
        Client::None
    }
}

/// `client_kind` of each program with an id, by id: a command's is one look-up.
static CLIENT_KINDS: std::sync::LazyLock<Vec<Client>> =
    std::sync::LazyLock::new(|| shell::programs::ProgramId::names().iter().map(|n| client_kind(n)).collect());

fn urls_of(c: Command<'_>, out: &mut Vec<Url>) {
    let kind = match c.program() {
        Some(id) => CLIENT_KINDS.get(id.index()).copied().unwrap_or(Client::None),
        None => client_kind(c.name()),
    };
    if kind == Client::None {
        return;
    }
    let name = c.name();
    match kind {
        Client::None => {}
        Client::Url => {
            for op in c.operands() {
                if op.starts_with('-') || op.is_empty() {
                    continue;
                }
                let looks_like_url = op.contains("://") || op.contains('.') || op.contains(':') || op == "localhost";
                if looks_like_url {
                    let text = if op.contains("://") { op.to_string() } else { format!("http://{op}") };
                    if let Some(u) = parse_url(&text, name) {
                        out.push(u);
                    }
                }
            }
        }
        Client::Socket => {
            let ops: Vec<&str> = c.operands().iter().filter(|o| !o.starts_with('-')).collect();
            if let Some(host) = ops.first() {
                let port = ops.get(1).map_or(String::new(), |p| format!(":{p}"));
                if let Some(u) = parse_url(&format!("tcp://{}{port}", bracket_v6(host)), name) {
                    out.push(u);
                }
            }
        }
        Client::Dns => {
            for op in c.operands().iter().filter(|o| !o.starts_with('-') && !o.starts_with('@') && o.contains('.')) {
                if let Some(u) = parse_url(&format!("dns://{}", bracket_v6(op)), name) {
                    out.push(u);
                }
            }
        }
    }
}

fn bracket_v6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Parses and normalises a URL with the WHATWG rules browsers use (the `url` crate): hosts
/// lower-cased, IPv4 written in any base or short form (`0xA9FEA9FE`, `2852039166`,
/// `0251.0376.0251.0376`, `169.254.43518`) becomes dotted decimal, IPv6 is compressed. An
/// IPv4-mapped IPv6 address (`::ffff:169.254.169.254`) is its IPv4 address. `None` when it does
/// not parse.
pub fn parse_url(text: &str, by: &str) -> Option<Url> {
    let u = url::Url::parse(text.trim()).ok()?;
    let mut host = match u.host()? {
        url::Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => a.to_string(),
        },
    };
    if host.is_empty() {
        host = ".".into();
    }
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    Some(Url {
        url: u.to_string(),
        scheme: u.scheme().to_string(),
        host,
        port: u.port_or_known_default().or(match u.scheme() {
            "dns" => Some(53),
            _ => None,
        }),
        path,
        by: by.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `first_of_each` and `dedup_keep_first` keep each item's first occurrence, in order, on
    /// short lists (compared pairwise) and long ones (hashed) alike.
    #[test]
    fn repeated_items_keep_their_first_occurrence_in_order() {
        let naive = |items: &[String]| {
            let mut out: Vec<String> = Vec::new();
            for w in items {
                if !out.contains(w) {
                    out.push(w.clone());
                }
            }
            out
        };
        // Repeats apart, and repeats in a row (a long list's fast path) and apart.
        let spreads: [fn(usize) -> usize; 2] = [|i| (i * 7) % 5, |i| (i / 3) % 4];
        for (n, spread) in [0, 1, 5, 16, 17, 40].into_iter().flat_map(|n| spreads.map(|s| (n, s))) {
            let items: Vec<String> = (0..n).map(|i| format!("/w/{}", spread(i))).collect();
            let got: Vec<String> = first_of_each(&items).cloned().collect();
            assert_eq!(got, naive(&items), "{n} items");
            let mut deduped = items.clone();
            dedup_keep_first(&mut deduped);
            assert_eq!(deduped, naive(&items), "{n} items, in place");
        }
    }

    #[test]
    fn hosts_are_normalised() {
        let h = |s: &str| parse_url(s, "t").map(|u| (u.host, u.port));
        assert_eq!(h("http://169.254.169.254/latest"), Some(("169.254.169.254".into(), Some(80))));
        assert_eq!(h("http://0xA9FEA9FE/"), Some(("169.254.169.254".into(), Some(80))));
        assert_eq!(h("http://2852039166/"), Some(("169.254.169.254".into(), Some(80))));
        assert_eq!(h("http://0251.0376.0251.0376/"), Some(("169.254.169.254".into(), Some(80))));
        assert_eq!(h("http://169.254.43518/"), Some(("169.254.169.254".into(), Some(80))));
        assert_eq!(h("http://[::ffff:169.254.169.254]/"), Some(("169.254.169.254".into(), Some(80))));
        assert_eq!(h("http://[fd00:ec2:0::254]/"), Some(("fd00:ec2::254".into(), Some(80))));
        assert_eq!(h("https://Metadata.Google.Internal./x"), Some(("metadata.google.internal".into(), Some(443))));
        assert_eq!(h("not a url"), None);
    }

    #[test]
    fn shell_and_fetch_urls() {
        let env = Env { workspace: "/w", workspace_key: "/w", home: "/home/dev" };
        let v = of("Bash", &serde_json::json!({"command": "curl -s 169.254.169.254/latest && nc 10.0.0.1 80"}), &env);
        let hosts: Vec<(&str, &str)> = v.urls.iter().map(|u| (u.host.as_str(), u.by.as_str())).collect();
        assert_eq!(hosts, [("169.254.169.254", "curl"), ("10.0.0.1", "nc")]);
        let v = of("WebFetch", &serde_json::json!({"url": "https://docs.rs/x", "prompt": "p"}), &env);
        assert_eq!(v.urls.first().map(|u| u.host.as_str()), Some("docs.rs"));
        let v = of("Write", &serde_json::json!({"file_path": "~/.bashrc", "content": ""}), &env);
        assert_eq!(v.writes, ["/home/dev/.bashrc"]);
    }
}
