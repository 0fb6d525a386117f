//! The `fs` engine: Claude Code's file tools inside the workspace.
//!
//! A path argument is placed in the workspace lexically (`path::normalize`: absolute, `.` and
//! `..` resolved) and must lie inside it; what is left is opened beneath a cap-std `Dir` of
//! the workspace, which refuses to follow `..` or a symlink out of it. The lexical check gives
//! the clear message; the capability is what holds when the tree changes under us.

use std::io::Read as _;
use std::path::Path;

use cap_std::fs::Dir;
use serde_json::Value as Json;

use super::{arg, capped, Output};

/// Entries a Glob or Grep walk visits at most.
const MAX_VISITS: usize = 200_000;
/// Matches a Glob or Grep lists at most.
const MAX_MATCHES: usize = 1000;
/// Files larger than this are not searched.
const MAX_GREP_FILE: u64 = 10 << 20;

/// Runs a file tool in `workspace` (absolute).
pub fn run(workspace: &str, tool: &str, args: &Json, cap: usize) -> Output {
    let ws = crate::path::normalize(workspace, "/");
    let dir = match Dir::open_ambient_dir(&ws, cap_std::ambient_authority()) {
        Ok(d) => d,
        Err(e) => return Output::error(format!("the workspace {ws} cannot be opened: {e}")),
    };
    let fs = Fs { ws: &ws, dir: &dir, cap };
    let r = match tool {
        "Read" => fs.read(args),
        "Write" => fs.write(args),
        "Edit" => fs.edit(args),
        "MultiEdit" => fs.multi_edit(args),
        "LS" => fs.ls(args),
        "Glob" => fs.glob(args),
        "Grep" => fs.grep(args),
        other => Err(format!("the fs engine does not run {other}")),
    };
    match r {
        Ok(text) => Output::ok(capped(text, cap)),
        Err(e) => Output::error(e),
    }
}

struct Fs<'a> {
    /// The workspace, normalised.
    ws: &'a str,
    dir: &'a Dir,
    cap: usize,
}

impl Fs<'_> {
    /// The workspace-relative form of a path argument ("" for the workspace itself).
    fn place(&self, p: &str) -> Result<String, String> {
        if p.is_empty() {
            return Err("the path is empty".into());
        }
        let abs = crate::path::normalize(p, self.ws);
        match crate::path::relative(&abs, self.ws) {
            Some(rel) => Ok(rel.trim_start_matches('/').to_string()),
            None => Err(format!("{abs} is outside the workspace {}", self.ws)),
        }
    }

    fn required<'j>(&self, args: &'j Json, key: &str) -> Result<&'j str, String> {
        arg(args, key).ok_or_else(|| format!("the argument `{key}` (a string) is missing"))
    }

    /// The directory a search starts in (`path`, default the workspace).
    fn search_root(&self, args: &Json) -> Result<(String, Dir), String> {
        let rel = match arg(args, "path") {
            Some(p) => self.place(p)?,
            None => String::new(),
        };
        let d = if rel.is_empty() { self.dir.try_clone() } else { self.dir.open_dir(&rel) };
        d.map(|d| (rel.clone(), d)).map_err(|e| format!("{}: {e}", self.show(&rel)))
    }

    fn show(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.ws.to_string()
        } else {
            format!("{}/{rel}", self.ws.trim_end_matches('/'))
        }
    }

    fn read(&self, args: &Json) -> Result<String, String> {
        let rel = self.place(self.required(args, "file_path")?)?;
        let mut bytes = Vec::new();
        self.dir
            .open(&rel)
            .and_then(|f| f.take(self.cap as u64 * 4).read_to_end(&mut bytes))
            .map_err(|e| format!("{}: {e}", self.show(&rel)))?;
        let text = String::from_utf8_lossy(&bytes);
        let offset = args.get("offset").and_then(Json::as_u64).unwrap_or(1).max(1);
        let limit = args.get("limit").and_then(Json::as_u64).unwrap_or(2000);
        let mut out = String::new();
        for (n, line) in text.lines().enumerate().skip((offset - 1) as usize).take(limit as usize) {
            out.push_str(&format!("{:>6}\t{line}\n", n + 1));
        }
        Ok(out)
    }

    fn write(&self, args: &Json) -> Result<String, String> {
        let rel = self.place(self.required(args, "file_path")?)?;
        let content = self.required(args, "content")?;
        if let Some(parent) = Path::new(&rel).parent().filter(|p| !p.as_os_str().is_empty()) {
            self.dir.create_dir_all(parent).map_err(|e| format!("{}: {e}", self.show(&rel)))?;
        }
        self.dir.write(&rel, content).map_err(|e| format!("{}: {e}", self.show(&rel)))?;
        Ok(format!("Wrote {} bytes to {}", content.len(), self.show(&rel)))
    }

    fn edit(&self, args: &Json) -> Result<String, String> {
        let rel = self.place(self.required(args, "file_path")?)?;
        let edit = Edit::of(args)?;
        let text = self.dir.read_to_string(&rel).map_err(|e| format!("{}: {e}", self.show(&rel)))?;
        let (text, n) = edit.apply(&text)?;
        self.dir.write(&rel, text).map_err(|e| format!("{}: {e}", self.show(&rel)))?;
        Ok(format!("Edited {} ({n} replacement{})", self.show(&rel), if n == 1 { "" } else { "s" }))
    }

    /// Every edit in order, all or nothing.
    fn multi_edit(&self, args: &Json) -> Result<String, String> {
        let rel = self.place(self.required(args, "file_path")?)?;
        let edits = args.get("edits").and_then(Json::as_array).ok_or("the argument `edits` (a list) is missing")?;
        let mut text = self.dir.read_to_string(&rel).map_err(|e| format!("{}: {e}", self.show(&rel)))?;
        for (i, e) in edits.iter().enumerate() {
            let (t, _) = Edit::of(e)?.apply(&text).map_err(|m| format!("edit {}: {m}", i + 1))?;
            text = t;
        }
        self.dir.write(&rel, text).map_err(|e| format!("{}: {e}", self.show(&rel)))?;
        Ok(format!("Applied {} edits to {}", edits.len(), self.show(&rel)))
    }

    fn ls(&self, args: &Json) -> Result<String, String> {
        let (rel, d) = self.search_root(args)?;
        let mut names = Vec::new();
        for e in d.entries().map_err(|e| format!("{}: {e}", self.show(&rel)))? {
            let e = e.map_err(|e| e.to_string())?;
            let dir = e.file_type().is_ok_and(|t| t.is_dir());
            names.push(format!("{}{}", e.file_name().to_string_lossy(), if dir { "/" } else { "" }));
        }
        names.sort();
        Ok(format!("{}/\n{}", self.show(&rel), names.iter().map(|n| format!("  {n}\n")).collect::<String>()))
    }

    fn glob(&self, args: &Json) -> Result<String, String> {
        let pattern = self.required(args, "pattern")?;
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("the pattern {pattern:?}: {e}"))?
            .compile_matcher();
        let (rel, d) = self.search_root(args)?;
        let mut found = Vec::new();
        walk(&d, &mut |path, _| {
            if glob.is_match(path) {
                found.push(path.to_string());
            }
            found.len() < MAX_MATCHES
        })?;
        found.sort();
        if found.is_empty() {
            return Ok("No files found".into());
        }
        let base = self.show(&rel);
        Ok(found.iter().map(|p| format!("{}/{p}\n", base.trim_end_matches('/'))).collect())
    }

    fn grep(&self, args: &Json) -> Result<String, String> {
        let pattern = self.required(args, "pattern")?;
        let re = regex::RegexBuilder::new(pattern)
            .case_insensitive(args.get("-i").and_then(Json::as_bool).unwrap_or(false))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("the pattern {pattern:?}: {e}"))?;
        let filter = match arg(args, "glob") {
            Some(g) => Some(globset::Glob::new(g).map_err(|e| format!("the glob {g:?}: {e}"))?.compile_matcher()),
            None => None,
        };
        let mode = arg(args, "output_mode").unwrap_or("files_with_matches");
        let (rel, d) = self.search_root(args)?;
        let base = self.show(&rel);
        let mut out = Vec::new();
        walk(&d, &mut |path, d| {
            let name = path.rsplit('/').next().unwrap_or(path);
            if filter.as_ref().is_some_and(|f| !f.is_match(path) && !f.is_match(name)) {
                return true;
            }
            let Ok(meta) = d.metadata(path) else { return true };
            if meta.len() > MAX_GREP_FILE {
                return true;
            }
            let Ok(bytes) = d.read(path) else { return true };
            if bytes.iter().take(8192).any(|b| *b == 0) {
                return true;
            }
            let text = String::from_utf8_lossy(&bytes);
            let shown = format!("{}/{path}", base.trim_end_matches('/'));
            match mode {
                "content" => {
                    for (n, line) in text.lines().enumerate() {
                        if re.is_match(line) && out.len() < MAX_MATCHES {
                            out.push(format!("{shown}:{}:{line}", n + 1));
                        }
                    }
                }
                "count" => {
                    let n = text.lines().filter(|l| re.is_match(l)).count();
                    if n > 0 {
                        out.push(format!("{shown}:{n}"));
                    }
                }
                _ => {
                    if re.is_match(&text) {
                        out.push(shown);
                    }
                }
            }
            out.len() < MAX_MATCHES
        })?;
        if mode != "content" {
            out.sort();
        }
        if out.is_empty() {
            return Ok("No matches found".into());
        }
        Ok(out.iter().map(|l| format!("{l}\n")).collect())
    }
}

/// One `old_string` → `new_string` replacement.
struct Edit<'a> {
    old: &'a str,
    new: &'a str,
    all: bool,
}

impl<'a> Edit<'a> {
    fn of(args: &'a Json) -> Result<Edit<'a>, String> {
        let old = arg(args, "old_string").ok_or("the argument `old_string` (a string) is missing")?;
        let new = arg(args, "new_string").ok_or("the argument `new_string` (a string) is missing")?;
        let all = args.get("replace_all").and_then(Json::as_bool).unwrap_or(false);
        if old == new {
            return Err("old_string and new_string are the same".into());
        }
        if old.is_empty() {
            return Err("old_string is empty".into());
        }
        Ok(Edit { old, new, all })
    }

    fn apply(&self, text: &str) -> Result<(String, usize), String> {
        let n = text.matches(self.old).count();
        match (n, self.all) {
            (0, _) => Err("old_string was not found in the file".into()),
            (1, _) | (_, true) => Ok((text.replace(self.old, self.new), n)),
            (n, false) => {
                Err(format!("old_string occurs {n} times: give more context to make it unique, or set replace_all"))
            }
        }
    }
}

/// Visits every file under `d` (paths relative to it, `/`-separated), not following symlinks
/// and skipping `.git`, until `visit` returns false or `MAX_VISITS` entries were seen.
fn walk(d: &Dir, visit: &mut dyn FnMut(&str, &Dir) -> bool) -> Result<(), String> {
    let mut stack: Vec<(String, Dir)> = vec![(String::new(), d.try_clone().map_err(|e| e.to_string())?)];
    let mut seen = 0usize;
    while let Some((prefix, dir)) = stack.pop() {
        let Ok(entries) = dir.entries() else { continue };
        let mut subdirs = Vec::new();
        let mut files = Vec::new();
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_VISITS {
                return Ok(());
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ty) = e.file_type() else { continue };
            if ty.is_dir() {
                if name != ".git" {
                    if let Ok(sub) = e.open_dir() {
                        subdirs.push((format!("{prefix}{name}/"), sub));
                    }
                }
            } else if ty.is_file() {
                files.push(name);
            }
        }
        files.sort();
        for f in files {
            if !visit(&format!("{prefix}{f}"), d) {
                return Ok(());
            }
        }
        subdirs.sort_by(|a, b| b.0.cmp(&a.0));
        stack.extend(subdirs);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn ws() -> (tempfile::TempDir, String) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_string_lossy().into_owned();
        (d, p)
    }

    #[test]
    fn write_read_edit_round_trip() {
        let (_d, ws) = ws();
        let w = run(
            &ws,
            "Write",
            &json!({"file_path": format!("{ws}/src/a.rs"), "content": "fn a() {}\nfn b() {}\n"}),
            1 << 20,
        );
        assert!(!w.is_error, "{w:?}");
        let r = run(&ws, "Read", &json!({"file_path": "src/a.rs"}), 1 << 20);
        assert_eq!(r.text, "     1\tfn a() {}\n     2\tfn b() {}\n");
        let e =
            run(&ws, "Edit", &json!({"file_path": "src/a.rs", "old_string": "fn", "new_string": "pub fn"}), 1 << 20);
        assert!(e.is_error && e.text.contains("occurs 2 times"), "{e:?}");
        let e = run(
            &ws,
            "Edit",
            &json!({"file_path": "src/a.rs", "old_string": "fn", "new_string": "pub fn", "replace_all": true}),
            1 << 20,
        );
        assert!(!e.is_error, "{e:?}");
        let m = run(
            &ws,
            "MultiEdit",
            &json!({"file_path": "src/a.rs", "edits": [{"old_string": "a()", "new_string": "x()"}, {"old_string": "nope", "new_string": "y"}]}),
            1 << 20,
        );
        assert!(m.is_error && m.text.starts_with("edit 2:"), "all or nothing: {m:?}");
        assert_eq!(std::fs::read_to_string(format!("{ws}/src/a.rs")).unwrap(), "pub fn a() {}\npub fn b() {}\n");
        let g = run(&ws, "Glob", &json!({"pattern": "**/*.rs"}), 1 << 20);
        assert_eq!(g.text, format!("{ws}/src/a.rs\n"));
        let g = run(&ws, "Grep", &json!({"pattern": "b\\(", "output_mode": "content"}), 1 << 20);
        assert_eq!(g.text, format!("{ws}/src/a.rs:2:pub fn b() {{}}\n"));
        let l = run(&ws, "LS", &json!({"path": ws}), 1 << 20);
        assert!(l.text.contains("  src/\n"), "{l:?}");
    }

    #[test]
    fn nothing_leaves_the_workspace() {
        let (_d, ws) = ws();
        let (_o, outside) = self::ws();
        std::fs::write(format!("{outside}/secret"), "s3cret").unwrap();
        for p in [format!("{outside}/secret"), "../secret".to_string(), format!("{ws}/../x")] {
            let r = run(&ws, "Read", &json!({"file_path": p}), 1 << 20);
            assert!(r.is_error && r.text.contains("outside the workspace"), "{p}: {r:?}");
        }
        // A symlink inside that points outside: cap-std refuses to follow it.
        std::os::unix::fs::symlink(&outside, format!("{ws}/link")).unwrap();
        let r = run(&ws, "Read", &json!({"file_path": "link/secret"}), 1 << 20);
        assert!(r.is_error && !r.text.contains("s3cret"), "{r:?}");
        let w = run(&ws, "Write", &json!({"file_path": "link/planted", "content": "x"}), 1 << 20);
        assert!(w.is_error, "{w:?}");
        assert!(!Path::new(&format!("{outside}/planted")).exists());
        std::os::unix::fs::symlink(format!("{outside}/secret"), format!("{ws}/file-link")).unwrap();
        let r = run(&ws, "Read", &json!({"file_path": "file-link"}), 1 << 20);
        assert!(r.is_error, "{r:?}");
        // Walks do not follow it either.
        let g = run(&ws, "Grep", &json!({"pattern": "s3cret"}), 1 << 20);
        assert_eq!(g.text, "No matches found");
    }

    #[test]
    fn output_is_capped_and_bad_arguments_are_errors() {
        let (_d, ws) = ws();
        std::fs::write(format!("{ws}/big"), "x".repeat(5000)).unwrap();
        let r = run(&ws, "Read", &json!({"file_path": "big"}), 100);
        assert!(r.text.contains("[fak: output cut at 100"), "{r:?}");
        assert!(run(&ws, "Read", &json!({}), 100).text.contains("`file_path`"));
        assert!(run(&ws, "Grep", &json!({"pattern": "("}), 100).is_error);
    }
}
