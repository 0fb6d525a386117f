//! Reading policies: `.fak` files with their imports, `fak-policy/v1` manifests, the built-in
//! floor. The only place (besides the CLI) that touches the file system.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::check::{self, Loader};
use crate::compile::{self, CompileOptions, Dag};
use crate::diag::{Diag, Sources};
use crate::ir;

/// A policy that checked clean, compiled.
#[derive(Debug)]
pub struct Policy {
    pub dag: Arc<Dag>,
    pub sources: Arc<Sources>,
    /// Warnings the checker reported.
    pub warnings: Vec<Diag>,
}

/// The outcome of loading: the program when there are no errors, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    pub sources: Sources,
    pub diags: Vec<Diag>,
    pub program: Option<ir::Program>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.program.is_none() || crate::diag::has_errors(&self.diags)
    }

    pub fn compile(self, options: CompileOptions) -> Result<Policy, (Sources, Vec<Diag>)> {
        match self.program {
            Some(p) if !crate::diag::has_errors(&self.diags) => Ok(Policy {
                dag: Arc::new(compile::compile(p, options)),
                sources: Arc::new(self.sources),
                warnings: self.diags,
            }),
            _ => Err((self.sources, self.diags)),
        }
    }

    pub fn into_result(self) -> Result<Policy, (Sources, Vec<Diag>)> {
        self.compile(CompileOptions::default())
    }
}

/// Whether a source is a JSON manifest rather than `.fak`.
pub fn is_manifest(name: &str, text: &str) -> bool {
    name.ends_with(".json") || (!name.ends_with(".fak") && text.trim_start().starts_with('{'))
}

/// Loads a policy from text; `name` is what diagnostics call it and where its file imports
/// are resolved from.
pub fn from_source(name: &str, text: &str) -> Loaded {
    let mut sources = Sources::new();
    let id = sources.add(name, text);
    if is_manifest(name, text) {
        return match crate::manifest::load(text, id) {
            Ok(program) => Loaded { sources, diags: Vec::new(), program: Some(program) },
            Err(diags) => Loaded { sources, diags, program: None },
        };
    }
    let loader: &dyn Loader = if Path::new(name).exists() { &FsLoader } else { &check::StdOnly };
    let (program, diags) = check::check(&mut sources, id, loader);
    Loaded { sources, diags, program }
}

/// Loads a policy file.
pub fn from_path(path: &Path) -> Loaded {
    // One file, one name: `./a.fak` and `a.fak` must be the same module for cycle checks.
    let name = clean(path);
    match std::fs::read_to_string(path) {
        Ok(text) => from_source(&name, &text),
        Err(e) => {
            let mut sources = Sources::new();
            let id = sources.add(name.clone(), "");
            let d = Diag::error("fak::load::io", id, crate::ast::Span::new(0, 0))
                .message(format!("cannot read `{name}`: {e}"))
                .help("check the path and its permissions");
            Loaded { sources, diags: vec![d], program: None }
        }
    }
}

/// The built-in floor: the program checked when fak was built (see `snapshot`), or checked
/// now when that does not match the sources.
pub fn builtin() -> Loaded {
    if let Some((sources, program)) = crate::snapshot::load() {
        return Loaded { sources, diags: Vec::new(), program: Some(program) };
    }
    builtin_from_source()
}

/// The built-in floor, checked from its sources.
pub fn builtin_from_source() -> Loaded {
    let (name, text) = crate::stdlib::FLOOR;
    let mut sources = Sources::new();
    let id = sources.add(name, text);
    let (program, diags) = check::check(&mut sources, id, &check::StdOnly);
    Loaded { sources, diags, program }
}

/// Resolves `import "x.fak"` against the importing file's directory, and `std.*` against the
/// embedded stdlib.
pub struct FsLoader;

impl Loader for FsLoader {
    fn std_module(&self, path: &[String]) -> Option<(String, Arc<str>)> {
        crate::stdlib::get(path)
    }

    fn file(&self, from: &str, rel: &str) -> Result<(String, Arc<str>), String> {
        if from.starts_with("std.") {
            return Err("a stdlib module cannot import files".into());
        }
        let base = Path::new(from).parent().map_or_else(PathBuf::new, Path::to_path_buf);
        let path = base.join(rel);
        let name = clean(&path);
        std::fs::read_to_string(&path).map(|t| (name, Arc::from(t))).map_err(|e| format!("{e}"))
    }
}

/// A lexically cleaned path string, so one file has one name however it is reached.
fn clean(p: &Path) -> String {
    let mut out: Vec<String> = Vec::new();
    let abs = p.is_absolute();
    for c in p.components() {
        match c {
            std::path::Component::CurDir | std::path::Component::RootDir | std::path::Component::Prefix(_) => {}
            std::path::Component::ParentDir => {
                if out.last().is_some_and(|l| l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..".into());
                }
            }
            std::path::Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
        }
    }
    let joined = out.join("/");
    if abs {
        format!("/{joined}")
    } else {
        joined
    }
}
