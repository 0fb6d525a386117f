//! Syscall engines: what runs a call `POST /v1/fak/syscall` has decided.
//!
//! Two engines, both off unless `fak serve --engine` names them:
//!
//! - `fs` (`fs.rs`): Read, Write, Edit, MultiEdit, Glob, Grep and LS inside the workspace. Every
//!   path is opened through a capability on the workspace directory (cap-std: `openat2` with
//!   `RESOLVE_BENEATH` where the kernel has it, a checked walk elsewhere), so neither `..` nor
//!   a symlink leads out of it — also one planted between the decision and the run.
//! - `shell` (`shell.rs`): Bash, run by `bash -c` in the workspace with a scrubbed environment,
//!   a time limit (its whole process group is killed) and a cap on the output kept.
//!
//! An engine returns the tool result the model would read; the kernel admits it like any
//! other result before returning it.

pub mod fs;
pub mod shell;

use std::time::Duration;

use serde_json::Value as Json;

/// Which engines are on, and their limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Engines {
    pub fs: bool,
    pub shell: bool,
    /// How long a shell command may run (FAK_SHELL_TIMEOUT_SECS).
    pub shell_timeout: Duration,
    /// The most bytes of output a result keeps (FAK_ENGINE_OUTPUT_BYTES).
    pub output_cap: usize,
    /// The largest file a shell command may write (FAK_ENGINE_FILE_BYTES).
    pub file_bytes: u64,
}

impl Default for Engines {
    fn default() -> Self {
        Engines {
            fs: false,
            shell: false,
            shell_timeout: Duration::from_secs(120),
            output_cap: 256 * 1024,
            file_bytes: 1 << 30,
        }
    }
}

impl Engines {
    /// `fs,shell`, `fs`, `shell`, or `none`.
    pub fn parse(list: &str) -> Result<Engines, String> {
        let mut e = Engines::default();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "fs" => e.fs = true,
                "shell" => e.shell = true,
                "none" => {}
                other => return Err(format!("no engine `{other}`: the engines are `fs` and `shell`")),
            }
        }
        Ok(e)
    }
}

/// The engine that runs a tool, if any does.
pub fn engine_of(tool: &str) -> Option<&'static str> {
    match tool {
        "Read" | "Write" | "Edit" | "MultiEdit" | "Glob" | "Grep" | "LS" => Some("fs"),
        "Bash" => Some("shell"),
        _ => None,
    }
}

/// Whether `engine` is on.
pub fn is_on(e: &Engines, engine: &str) -> bool {
    match engine {
        "fs" => e.fs,
        "shell" => e.shell,
        _ => false,
    }
}

/// What running a call gave: the tool result's text, and whether the tool failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub text: String,
    pub is_error: bool,
}

impl Output {
    pub fn ok(text: impl Into<String>) -> Output {
        Output { text: text.into(), is_error: false }
    }

    pub fn error(text: impl Into<String>) -> Output {
        Output { text: text.into(), is_error: true }
    }
}

/// A string argument.
fn arg<'a>(args: &'a Json, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Json::as_str)
}

/// Cuts `text` to at most `cap` bytes on a character boundary, saying so.
pub fn capped(mut text: String, cap: usize) -> String {
    if text.len() > cap {
        let mut at = cap;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let total = text.len();
        text.truncate(at);
        text.push_str(&format!("\n[fak: output cut at {cap} of {total} bytes]"));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn engines_are_named_and_unknown_ones_refused() {
        let e = Engines::parse("fs, shell").unwrap();
        assert!(e.fs && e.shell);
        assert!(!Engines::parse("fs").unwrap().shell);
        assert!(!Engines::parse("none").unwrap().fs);
        assert!(Engines::parse("net").unwrap_err().contains("no engine `net`"));
        assert_eq!(engine_of("Bash"), Some("shell"));
        assert_eq!(engine_of("Grep"), Some("fs"));
        assert_eq!(engine_of("WebFetch"), None);
    }

    #[test]
    fn output_is_cut_on_a_character_boundary() {
        assert_eq!(capped("abc".into(), 10), "abc");
        let c = capped("aé".repeat(10), 4);
        assert!(c.starts_with("aéa\n[fak: output cut at 4 of 30 bytes]"), "{c}");
    }
}
