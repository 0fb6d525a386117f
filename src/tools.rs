//! What fak knows about the tools of Claude Code: argument names and types.
//!
//! The checker uses it to type `args.<key>` and to warn about keys a tool does not have; the
//! evaluator uses it to refuse a call whose arguments have the wrong shape (a Bash `command`
//! that is a list would otherwise slip past every rule about commands).

/// The type of a value in a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    Bool,
    Num,
    Str,
    /// A string naming a file: compared in absolute, normalised form.
    Path,
    List,
    /// The trace's taint level.
    Taint,
    /// Unknown until run time (a tool fak has no schema for).
    Any,
    /// Lists of a view: strings, paths, commands, redirections, URLs.
    Strs,
    Paths,
    Cmds,
    Redirs,
    Urls,
    /// What detectors found in a result (`result.secrets`, `result.injections`).
    Secrets,
    /// Records of a view (`crate::view` lists their fields).
    Cmd,
    Redir,
    Url,
    Secret,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::Num => "number",
            Ty::Str => "string",
            Ty::Path => "path",
            Ty::List => "list",
            Ty::Taint => "taint",
            Ty::Any => "any",
            Ty::Strs => "list of strings",
            Ty::Paths => "list of paths",
            Ty::Cmds => "list of commands",
            Ty::Redirs => "list of redirections",
            Ty::Urls => "list of URLs",
            Ty::Cmd => "command",
            Ty::Redir => "redirection",
            Ty::Url => "URL",
            Ty::Secrets => "list of findings",
            Ty::Secret => "finding",
        }
    }

    /// Whether the value is a list (of anything).
    pub fn is_list(self) -> bool {
        matches!(self, Ty::List | Ty::Strs | Ty::Paths | Ty::Cmds | Ty::Redirs | Ty::Urls | Ty::Secrets)
    }

    /// What a quantifier variable over a list of this type holds.
    pub fn elem(self) -> Ty {
        match self {
            Ty::Strs => Ty::Str,
            Ty::Paths => Ty::Path,
            Ty::Cmds => Ty::Cmd,
            Ty::Redirs => Ty::Redir,
            Ty::Urls => Ty::Url,
            Ty::Secrets => Ty::Secret,
            _ => Ty::Any,
        }
    }

    /// Whether a value of this type reads as text (strings, paths, unknown).
    pub fn is_textual(self) -> bool {
        matches!(self, Ty::Str | Ty::Path | Ty::Any)
    }
}

pub struct ToolSchema {
    pub name: &'static str,
    /// `(key, type, required)`.
    pub args: &'static [(&'static str, Ty, bool)],
    /// Accepts keys not listed (tools whose arguments are free-form).
    pub open: bool,
}

use Ty::*;

pub const KNOWN_TOOLS: &[ToolSchema] = &[
    ToolSchema {
        name: "Bash",
        args: &[
            ("command", Str, true),
            ("timeout", Num, false),
            ("description", Str, false),
            ("run_in_background", Bool, false),
            ("dangerouslyDisableSandbox", Bool, false),
        ],
        open: false,
    },
    ToolSchema { name: "BashOutput", args: &[("bash_id", Str, true), ("filter", Str, false)], open: false },
    ToolSchema { name: "KillShell", args: &[("shell_id", Str, true)], open: false },
    ToolSchema { name: "KillBash", args: &[("shell_id", Str, true)], open: false },
    ToolSchema {
        name: "Read",
        args: &[("file_path", Path, true), ("offset", Num, false), ("limit", Num, false)],
        open: false,
    },
    ToolSchema { name: "Write", args: &[("file_path", Path, true), ("content", Str, true)], open: false },
    ToolSchema {
        name: "Edit",
        args: &[
            ("file_path", Path, true),
            ("old_string", Str, true),
            ("new_string", Str, true),
            ("replace_all", Bool, false),
        ],
        open: false,
    },
    ToolSchema { name: "MultiEdit", args: &[("file_path", Path, true), ("edits", List, true)], open: false },
    ToolSchema {
        name: "NotebookEdit",
        args: &[
            ("notebook_path", Path, true),
            ("new_source", Str, true),
            ("cell_id", Str, false),
            ("cell_type", Str, false),
            ("edit_mode", Str, false),
        ],
        open: false,
    },
    ToolSchema { name: "Glob", args: &[("pattern", Str, true), ("path", Path, false)], open: false },
    ToolSchema {
        name: "Grep",
        args: &[
            ("pattern", Str, true),
            ("path", Path, false),
            ("glob", Str, false),
            ("type", Str, false),
            ("output_mode", Str, false),
            ("-i", Bool, false),
            ("-n", Bool, false),
            ("-A", Num, false),
            ("-B", Num, false),
            ("-C", Num, false),
            ("multiline", Bool, false),
            ("head_limit", Num, false),
            ("offset", Num, false),
        ],
        open: false,
    },
    ToolSchema { name: "LS", args: &[("path", Path, true), ("ignore", List, false)], open: false },
    ToolSchema { name: "WebFetch", args: &[("url", Str, true), ("prompt", Str, false)], open: false },
    ToolSchema {
        name: "WebSearch",
        args: &[("query", Str, true), ("allowed_domains", List, false), ("blocked_domains", List, false)],
        open: false,
    },
    ToolSchema { name: "TodoWrite", args: &[("todos", List, true)], open: false },
    ToolSchema {
        name: "Task",
        args: &[
            ("description", Str, false),
            ("prompt", Str, true),
            ("subagent_type", Str, false),
            ("model", Str, false),
        ],
        open: false,
    },
    ToolSchema { name: "ExitPlanMode", args: &[("plan", Str, false)], open: false },
    ToolSchema { name: "Skill", args: &[], open: true },
    ToolSchema { name: "SlashCommand", args: &[("command", Str, false)], open: true },
];

pub fn schema(tool: &str) -> Option<&'static ToolSchema> {
    KNOWN_TOOLS.iter().find(|t| t.name == tool)
}

/// The type of `args.<key>` of a known tool; `None` when the tool does not have the key.
pub fn arg_type(tool: &str, key: &str) -> Option<Ty> {
    let s = schema(tool)?;
    s.args.iter().find(|(k, _, _)| *k == key).map(|(_, t, _)| *t).or(if s.open { Some(Ty::Any) } else { None })
}

/// Tools whose calls only read: `posture admit_and_log` admits their DEFAULT_DENY.
pub fn is_read_shaped(tool: &str) -> bool {
    const READERS: &[&str] = &["Read", "Glob", "Grep", "LS", "WebSearch", "BashOutput", "NotebookRead", "TodoRead"];
    const PREFIXES: &[&str] =
        &["read_", "get_", "search_", "list_", "lookup_", "find_", "fetch_", "query_", "describe_"];
    READERS.contains(&tool) || PREFIXES.iter().any(|p| tool.starts_with(p))
}

/// Tools that write the file named by their path argument.
pub const WRITE_TOOLS: &[&str] = &["Write", "Edit", "MultiEdit", "NotebookEdit"];

/// Checks a call's arguments against the tool's schema: the required keys are present and
/// every known key has its type. `Err` names the first problem.
pub fn validate(tool: &str, args: &serde_json::Value) -> Result<(), String> {
    let Some(s) = schema(tool) else { return Ok(()) };
    let Some(obj) = args.as_object() else {
        return Err(format!("arguments of `{tool}` must be a JSON object"));
    };
    // Walk the arguments rather than look each key up: no hashing, and a call has few keys.
    let mut present: u64 = 0;
    for (key, v) in obj {
        let Some(i) = s.args.iter().position(|(k, _, _)| *k == key.as_str()) else { continue };
        let Some((_, ty, _)) = s.args.get(i) else { continue };
        if v.is_null() {
            continue;
        }
        let ok = match ty {
            Str | Path => v.is_string(),
            Num => v.is_number(),
            Bool => v.is_boolean(),
            List | Strs | Paths | Cmds | Redirs | Urls | Secrets => v.is_array(),
            Taint | Any | Cmd | Redir | Url | Secret => true,
        };
        if !ok {
            return Err(format!("argument `{key}` of `{tool}` must be a {}", ty.name()));
        }
        present |= 1 << (i % 64);
    }
    for (i, (key, _, required)) in s.args.iter().enumerate() {
        if *required && present & (1 << (i % 64)) == 0 {
            return Err(format!("`{tool}` needs the argument `{key}`"));
        }
    }
    Ok(())
}
