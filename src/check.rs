//! `ast` to `ir`: names, imports, types, patterns, reasons, lints.
//!
//! The checker reports every problem it finds, not just the first: each item is checked on
//! its own, and a broken rule is dropped from the program but does not stop the others from
//! being checked. A program is produced only when there are no errors.
//!
//! Imports reach files only through the `Loader` trait (the CLI's loader reads the file
//! system and the embedded stdlib; tests use memory), so this module does no IO itself.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::ast::{self, BinOp, ExprKind, Span};
use crate::diag::{did_you_mean, Diag, FileId, Loc, Sources};
use crate::ir::{self, Atom, CmpOp, Lit, Pattern, Side, Value, VerdictKind};
use crate::tools::{self, Ty};

/// Finds the text of imported modules.
pub trait Loader {
    /// The text of `import std.<path>`: `(display name, text)`.
    fn std_module(&self, path: &[String]) -> Option<(String, Arc<str>)>;
    /// The text of `import "<rel>"`, relative to the importing file `from`.
    fn file(&self, from: &str, rel: &str) -> Result<(String, Arc<str>), String>;
}

/// A loader that knows only the stdlib (sources from stdin or memory).
pub struct StdOnly;

impl Loader for StdOnly {
    fn std_module(&self, path: &[String]) -> Option<(String, Arc<str>)> {
        crate::stdlib::get(path)
    }

    fn file(&self, _from: &str, rel: &str) -> Result<(String, Arc<str>), String> {
        Err(format!("cannot import `{rel}` here: the policy was not read from a file"))
    }
}

/// The most modules one policy may pull in.
const MAX_MODULES: usize = 256;

/// Checks the file `root` (already in `sources`) and everything it imports.
pub fn check(sources: &mut Sources, root: FileId, loader: &dyn Loader) -> (Option<ir::Program>, Vec<Diag>) {
    let (program, diags, _) = check_with(sources, root, loader, true);
    (program, diags)
}

/// `check` for the snapshot (`snapshot::build`): every regex is checked afresh, not taken
/// from the snapshot's table of regexes known to check clean, and the sources of those that
/// do are returned, sorted, for the next snapshot's table.
pub(crate) fn check_listing_regexes(
    sources: &mut Sources,
    root: FileId,
    loader: &dyn Loader,
) -> (Option<ir::Program>, Vec<Diag>, Vec<String>) {
    check_with(sources, root, loader, false)
}

fn check_with(
    sources: &mut Sources,
    root: FileId,
    loader: &dyn Loader,
    trust_known: bool,
) -> (Option<ir::Program>, Vec<Diag>, Vec<String>) {
    let parsed = parse_ahead(sources, root, loader);
    let mut c = Checker {
        parsed,
        sources,
        loader,
        diags: Vec::new(),
        modules: HashMap::new(),
        stack: Vec::new(),
        program: ir::Program::default(),
        rule_ids: HashMap::new(),
        secret_kinds: HashMap::new(),
        next_var: 0,
        reason_decls: HashMap::new(),
        regexes: HashMap::new(),
        trust_known,
    };
    c.module(root, String::new(), true);
    c.lint_shadowing();
    c.diags.sort_by_key(|d| (d.file, d.span.start));
    let ok = !crate::diag::has_errors(&c.diags);
    let program = if ok { Some(c.program) } else { None };
    // Only the snapshot asks for the list (`check_listing_regexes`, the one caller that does
    // not trust the stored one).
    let mut good = Vec::new();
    if !trust_known {
        good.extend(c.regexes.into_iter().filter(|(_, r)| r.is_ok()).map(|(src, _)| src));
        good.sort_unstable();
    }
    (program, c.diags, good)
}

/// Parses the root file, then the stdlib modules it imports two at a time (pest is most of
/// the time checking takes: the shipped floor's five stdlib modules take 12 of its 24 million
/// instructions). Keyed by module name; a module that fails to parse is left out, so that
/// `Checker::module` parses it again and reports the error against its own file.
fn parse_ahead(sources: &Sources, root: FileId, loader: &dyn Loader) -> HashMap<String, ast::File> {
    let mut out = HashMap::new();
    let Ok(root_ast) = crate::syntax::parse(sources.text(root), root) else { return out };
    let mut std: Vec<(String, Arc<str>)> = Vec::new();
    for item in &root_ast.items {
        if let ast::ItemKind::Import(ast::Import { target: ast::ImportTarget::Std(path, _), .. }) = &item.kind {
            if let Some(found) = loader.std_module(path) {
                if !std.iter().any(|(n, _)| *n == found.0) {
                    std.push(found);
                }
            }
        }
    }
    out.insert(sources.name(root).to_string(), root_ast);
    let parse_all = |mods: &[(String, Arc<str>)]| -> Vec<(String, ast::File)> {
        // The file id is a placeholder: an AST holds spans, not files, and errors are not kept.
        mods.iter()
            .filter_map(|(n, t)| crate::syntax::parse(t, FileId(u32::MAX)).ok().map(|a| (n.clone(), a)))
            .collect()
    };
    if std.len() < 2 {
        out.extend(parse_all(&std));
        return out;
    }
    let (mine, theirs) = crate::par::deal_two(std, |(_, t)| t.len());
    let (a, b) = std::thread::scope(|s| {
        let other = s.spawn(|| parse_all(&theirs));
        let own = parse_all(&mine);
        (own, other.join().unwrap_or_default())
    });
    out.extend(a);
    out.extend(b);
    out
}

/// What a name in a condition can be besides a value.
#[derive(Clone, Debug)]
struct SetDef {
    kind: ast::SetKind,
    /// Strings (tools: names, `x*` prefixes).
    items: Vec<String>,
    regexes: Vec<Pattern<ir::Regex>>,
    globs: Vec<Pattern<ir::Glob>>,
    loc: Loc,
}

#[derive(Default)]
struct Module {
    sets: HashMap<String, SetDef>,
    /// `alias` → imported module key.
    imports: HashMap<String, String>,
}

struct Checker<'a> {
    /// Files parsed ahead (`parse_ahead`), taken when their module is checked.
    parsed: HashMap<String, ast::File>,
    sources: &'a mut Sources,
    loader: &'a dyn Loader,
    diags: Vec<Diag>,
    /// Checked modules by key (`std.shell`, a file path).
    modules: HashMap<String, Module>,
    /// Modules being checked, for cycle detection.
    stack: Vec<String>,
    program: ir::Program,
    rule_ids: HashMap<String, Loc>,
    /// Detector kinds (secrets and injections), over every module: a kind names one detector.
    secret_kinds: HashMap<String, Loc>,
    next_var: u32,
    reason_decls: HashMap<String, Loc>,
    /// Regexes checked so far, by source: a `regexes` set named in the `except` of thirty
    /// secrets is parsed once, and its compiled form (built on first use) is shared.
    regexes: HashMap<String, Result<ir::Regex, String>>,
    /// Take a regex the built-in floor's snapshot lists as checked clean without parsing it
    /// again (`snapshot::known_regex`).
    trust_known: bool,
}

/// Where a condition is being checked.
/// Names that start a value (`args.x`, `shell.commands`, ...): no set may take them.
const RESERVED_ROOTS: &[&str] = &["tool", "args", "trace", "principal", "result", "shell", "writes", "urls"];

struct Ctx<'m> {
    file: FileId,
    module: &'m Module,
    side: Side,
    /// The tools the rule is on, when all are known exactly.
    tools: Option<Vec<String>>,
    /// Quantifier variables in scope: name, id, element type.
    vars: Vec<(String, u32, Ty)>,
}

impl Checker<'_> {
    /// Checks a regex (`ir::compile_regex`) once per source text.
    fn regex(&mut self, src: &str) -> Result<ir::Regex, String> {
        if let Some(r) = self.regexes.get(src) {
            return r.clone();
        }
        // The stdlib's regexes (most of what a policy importing it holds) were checked by this
        // same checker when the snapshot was made: parsing them again is most of a check.
        let r = if self.trust_known && crate::snapshot::known_regex(src) {
            Ok(ir::Regex::checked_before(src))
        } else {
            ir::compile_regex(src)
        };
        self.regexes.insert(src.to_owned(), r.clone());
        r
    }

    fn err(&mut self, d: Diag) {
        self.diags.push(d);
    }

    /// Checks one module and adds its rules to the program; returns the module key.
    fn module(&mut self, file: FileId, prefix: String, is_root: bool) -> Option<String> {
        let key = self.sources.name(file).to_string();
        let text = self.sources.text(file).to_string();
        let ast = match self.parsed.remove(&key).map_or_else(|| crate::syntax::parse(&text, file), Ok) {
            Ok(a) => a,
            Err(d) => {
                self.err(d);
                return None;
            }
        };
        self.stack.push(key.clone());
        let mut m = Module::default();
        // Imports first, then sets and reasons, then rules and tests: a rule may use a set
        // declared below it.
        for item in &ast.items {
            if let ast::ItemKind::Import(imp) = &item.kind {
                self.import(file, &key, imp, &mut m);
            }
        }
        for item in &ast.items {
            match &item.kind {
                ast::ItemKind::Set(s) => self.set_decl(file, s, &mut m),
                ast::ItemKind::Reason(r) => self.reason_decl(file, r),
                ast::ItemKind::Posture(p) => {
                    if !is_root {
                        self.err(
                            Diag::error("fak::check::posture_in_module", file, p.span)
                                .message("`posture` in an imported module")
                                .label("only the policy's root file sets the posture")
                                .help("move the `posture` line to the file that imports this one"),
                        );
                    }
                    match ir::Posture::parse(&p.name) {
                        Some(posture) => self.program.posture = posture,
                        None => self.err(
                            Diag::error("fak::check::unknown_posture", file, p.span)
                                .message(format!("unknown posture `{}`", p.name))
                                .label("not a posture")
                                .help("the postures are `fail_closed` (the default) and `admit_and_log`"),
                        ),
                    }
                }
                _ => {}
            }
        }
        for item in &ast.items {
            if let ast::ItemKind::Advisory(names) = &item.kind {
                if !is_root {
                    self.err(
                        Diag::error("fak::check::advisory_in_module", file, item.span)
                            .message("`advisory` in an imported module")
                            .label("only the policy's root file may soften refusals")
                            .help("an imported module must not weaken the policy that imports it; move the line to the root file"),
                    );
                    continue;
                }
                for n in names {
                    if self.reason_known(&n.name) {
                        self.program.advisory_reasons.insert(n.name.clone());
                    } else {
                        self.unknown_reason(file, n);
                    }
                }
            }
        }
        for item in &ast.items {
            match &item.kind {
                ast::ItemKind::Rule(r) => self.rule(file, &prefix, r, &m),
                ast::ItemKind::Secret(s) => self.secret_decl(file, s, &m),
                ast::ItemKind::Source(s) => self.source_decl(file, s, &m),
                _ => {}
            }
        }
        if is_root {
            for item in &ast.items {
                if let ast::ItemKind::Test(t) = &item.kind {
                    self.test(file, t, &m);
                }
            }
        }
        self.stack.pop();
        self.modules.insert(key.clone(), m);
        Some(key)
    }

    fn import(&mut self, file: FileId, from: &str, imp: &ast::Import, m: &mut Module) {
        let (loaded, span, default_alias) = match &imp.target {
            ast::ImportTarget::Std(path, span) => {
                let found = self.loader.std_module(path).ok_or_else(|| {
                    let all = crate::stdlib::names();
                    let wanted = path.join(".");
                    let mut d = Diag::error("fak::check::unknown_module", file, *span)
                        .message(format!("no stdlib module `std.{wanted}`"))
                        .label("not in the stdlib");
                    let help = match did_you_mean(&wanted, all.iter().copied()) {
                        Some(s) => format!("did you mean `std.{s}`?"),
                        None => format!(
                            "the stdlib modules are {}",
                            all.iter().map(|n| format!("`std.{n}`")).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    d = d.help(help);
                    d
                });
                (found, *span, path.last().cloned().unwrap_or_default())
            }
            ast::ImportTarget::File(s) => {
                let found = self.loader.file(from, &s.value).map_err(|e| {
                    Diag::error("fak::check::import_failed", file, s.span)
                        .message(format!("cannot read `{}`", s.value))
                        .label(e)
                        .help("a file import is relative to the importing file")
                });
                let stem = s.value.rsplit('/').next().unwrap_or("").trim_end_matches(".fak").to_string();
                (found, s.span, stem)
            }
        };
        let alias = imp.alias.as_ref().map_or(default_alias, |a| a.name.clone());
        let (name, text) = match loaded {
            Ok(x) => x,
            Err(d) => {
                self.err(d);
                return;
            }
        };
        if self.stack.contains(&name) {
            let chain = self
                .stack
                .iter()
                .chain(std::iter::once(&name))
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(" → ");
            self.err(
                Diag::error("fak::check::import_cycle", file, span)
                    .message(format!("import cycle: {chain}"))
                    .label("this import closes the cycle")
                    .help("modules cannot import each other; move what both need into a third module"),
            );
            return;
        }
        if m.imports.insert(alias.clone(), name.clone()).is_some() {
            self.err(
                Diag::error("fak::check::duplicate_name", file, span)
                    .message(format!("two imports named `{alias}`"))
                    .label("this import reuses the name")
                    .help("give one of them another name with `as`"),
            );
        }
        if self.modules.contains_key(&name) {
            return; // already checked and its rules added (a diamond)
        }
        if self.modules.len() + self.stack.len() >= MAX_MODULES {
            self.err(
                Diag::error("fak::check::too_many_modules", file, span)
                    .message(format!("more than {MAX_MODULES} modules")),
            );
            return;
        }
        let id = self.sources.add(name.clone(), text);
        // Rule ids are prefixed with the module's own name, not the alias, so a module
        // imported twice has one set of ids whatever the order of the imports.
        self.module(id, module_prefix(&name), false);
    }

    fn set_decl(&mut self, file: FileId, s: &ast::SetDecl, m: &mut Module) {
        let loc = Loc { file, span: s.name.span };
        if RESERVED_ROOTS.contains(&s.name.name.as_str()) {
            self.err(
                Diag::error("fak::check::reserved_name", file, s.name.span)
                    .message(format!("`{}` names a value every rule can read; a set cannot take it", s.name.name))
                    .label("reserved")
                    .help(format!("give the set another name, such as `{}_set`", s.name.name)),
            );
            return;
        }
        if let Some(prev) = m.sets.get(&s.name.name) {
            let prev = prev.loc;
            self.err(
                Diag::error("fak::check::duplicate_name", file, s.name.span)
                    .message(format!("`{}` is defined twice", s.name.name))
                    .label("defined again here")
                    .note(prev, "first defined here")
                    .help("rename one of them"),
            );
            return;
        }
        let mut def = SetDef { kind: s.kind, items: Vec::new(), regexes: Vec::new(), globs: Vec::new(), loc };
        for item in &s.items {
            let text = match (s.kind, item) {
                (_, ast::Lit::Str(st)) => st.value.clone(),
                (ast::SetKind::Tools, ast::Lit::Name(n)) => n.name.clone(),
                _ => {
                    self.err(
                        Diag::error("fak::check::bad_set_item", file, item.span())
                            .message(format!("a `{}` set holds strings", s.kind.keyword()))
                            .label("not a string")
                            .help(if s.kind == ast::SetKind::Tools {
                                "write a tool name, bare or quoted"
                            } else {
                                "quote it: `\"...\"`"
                            }),
                    );
                    continue;
                }
            };
            match s.kind {
                ast::SetKind::Regexes => match self.regex(&text) {
                    Ok(re) => def.regexes.push(Pattern { src: Arc::from(text.as_str()), compiled: re }),
                    Err(e) => self.err(bad_regex(file, item.span(), &e)),
                },
                ast::SetKind::Globs => match ir::compile_glob(&text) {
                    Ok(g) => def.globs.push(Pattern { src: Arc::from(text.as_str()), compiled: g }),
                    Err(e) => self.err(bad_glob(file, item.span(), &e)),
                },
                _ => {}
            }
            def.items.push(text);
        }
        m.sets.insert(s.name.name.clone(), def);
    }

    /// A `secret` or `injection` declaration: a detector for `result.secrets` or
    /// `result.injections`.
    fn secret_decl(&mut self, file: FileId, s: &ast::SecretDecl, m: &Module) {
        let at = s.name.span;
        let errors_before = self.error_count();
        let mut keywords: Option<Vec<String>> = None;
        let mut pattern: Option<ir::Regex> = None;
        let mut entropy = None;
        let mut except: Option<Vec<ir::Regex>> = None;
        let mut finds = Vec::new();
        let mut ignores = Vec::new();
        let mut seen: Vec<&'static str> = Vec::new();
        for c in &s.clauses {
            let (what, span) = match c {
                ast::SecretClause::Keywords(_, sp) => ("keywords", *sp),
                ast::SecretClause::Pattern(st) => ("pattern", st.span),
                ast::SecretClause::Entropy(_, _, sp) => ("entropy", *sp),
                ast::SecretClause::Except(_, sp) => ("except", *sp),
                ast::SecretClause::Finds(_) | ast::SecretClause::Ignores(_) => ("", at),
            };
            if !what.is_empty() {
                if seen.contains(&what) {
                    self.err(
                        Diag::error("fak::check::duplicate_clause", file, span)
                            .message(format!(
                                "{} {} has one `{what}`",
                                if s.class == crate::secrets::Class::Secret { "a" } else { "an" },
                                s.class.keyword()
                            ))
                            .label("second one")
                            .help("merge them into one"),
                    );
                    continue;
                }
                seen.push(what);
            }
            match c {
                ast::SecretClause::Keywords(items, _) => {
                    let words = self.secret_list(file, m, items, ast::SetKind::Strings);
                    for item in items {
                        if matches!(item, ast::Lit::Str(st) if st.value.is_empty()) {
                            self.err(
                                Diag::error("fak::check::empty_keyword", file, item.span())
                                    .message("an empty keyword")
                                    .label("every line holds it")
                                    .help("a keyword narrows the lines the pattern is tried on; write one the secret's line always holds"),
                            );
                        }
                        if matches!(item, ast::Lit::Str(st) if st.value.contains('\n')) {
                            self.err(
                                Diag::error("fak::check::multiline_keyword", file, item.span())
                                    .message("a keyword with a line break")
                                    .label("no line holds it")
                                    .help("detectors are tried line by line: a keyword is on one line"),
                            );
                        }
                    }
                    keywords = Some(words);
                }
                ast::SecretClause::Pattern(st) => match self.regex(&st.value) {
                    Ok(re) => pattern = Some(re),
                    Err(e) => self.err(bad_regex(file, st.span, &e)),
                },
                ast::SecretClause::Entropy(n, _, sp) => {
                    if (0.0..=8.0).contains(n) {
                        entropy = Some(*n);
                    } else {
                        self.err(
                            Diag::error("fak::check::bad_entropy", file, *sp)
                                .message("entropy is between 0 and 8")
                                .label("out of range")
                                .help("the threshold is Shannon entropy in bits per byte: about 3 for random hex, 4.5 and more for random base64"),
                        );
                    }
                }
                ast::SecretClause::Except(items, sp) => {
                    let srcs = self.secret_list(file, m, items, ast::SetKind::Regexes);
                    let mut res = Vec::new();
                    for src in &srcs {
                        match self.regex(src) {
                            Ok(re) => res.push(re),
                            Err(e) => {
                                // Set items were checked where the set is; a quoted one is
                                // reported at itself.
                                let at = items
                                    .iter()
                                    .find(|i| matches!(i, ast::Lit::Str(st) if st.value == *src))
                                    .map_or(*sp, ast::Lit::span);
                                self.err(bad_regex(file, at, &e));
                            }
                        }
                    }
                    except = Some(res);
                }
                ast::SecretClause::Finds(st) => finds.push(st.value.clone()),
                ast::SecretClause::Ignores(st) => ignores.push(st.value.clone()),
            }
        }
        let mut missing = Vec::new();
        let has_keywords = s.clauses.iter().any(|c| matches!(c, ast::SecretClause::Keywords(..)));
        if !has_keywords || keywords.as_ref().is_some_and(|k| k.is_empty() && self.error_count() == errors_before) {
            missing.push("`keywords [...]`");
        }
        if pattern.is_none() && !s.clauses.iter().any(|c| matches!(c, ast::SecretClause::Pattern(_))) {
            missing.push("`pattern r\"...\"`");
        }
        if finds.is_empty() {
            missing.push("`finds \"...\"` (a text it finds)");
        }
        if ignores.is_empty() {
            missing.push("`ignores \"...\"` (a look-alike it must not find)");
        }
        if !missing.is_empty() {
            self.err(
                Diag::error("fak::check::incomplete_secret", file, at)
                    .message(format!("{} `{}` needs {}", s.class.keyword(), s.name.name, missing.join(", ")))
                    .label("declared here")
                    .help("`fak policy --test` checks that the detector finds every `finds` text and none of the `ignores` texts"),
            );
        }
        let loc = Loc { file, span: at };
        if let Some(prev) = self.secret_kinds.get(&s.name.name).copied() {
            self.err(
                Diag::error("fak::check::duplicate_name", file, at)
                    .message(format!("detector kind `{}` is declared twice", s.name.name))
                    .label("declared again here")
                    .note(prev, "first declared here")
                    .help("a kind names one detector, whichever module declares it: rename one"),
            );
            return;
        }
        self.secret_kinds.insert(s.name.name.clone(), loc);
        if let (Some(keywords), Some(pattern)) = (keywords, pattern) {
            self.program.detectors.push(crate::secrets::Detector {
                class: s.class,
                kind: s.name.name.clone(),
                keywords,
                pattern,
                entropy,
                except: except.unwrap_or_default(),
                finds,
                ignores,
                loc,
            });
        }
    }

    /// The strings of a `keywords` or `except` list: quoted items, and the items of sets of
    /// `kind` named in it.
    fn secret_list(&mut self, file: FileId, m: &Module, items: &[ast::Lit], kind: ast::SetKind) -> Vec<String> {
        let mut out = Vec::new();
        for item in items {
            match item {
                ast::Lit::Str(st) => out.push(st.value.clone()),
                ast::Lit::Name(n) => match m.sets.get(&n.name) {
                    Some(d) if d.kind == kind => out.extend(d.items.iter().cloned()),
                    Some(d) => self.err(
                        Diag::error("fak::check::bad_set_item", file, n.span)
                            .message(format!("`{}` is a `{}` set", n.name, d.kind.keyword()))
                            .label(format!("not a `{}` set", kind.keyword()))
                            .help(match kind {
                                ast::SetKind::Strings => "keywords are plain strings: name a `strings` set",
                                _ => "exceptions are patterns: name a `regexes` set",
                            }),
                    ),
                    None => self.err(
                        Diag::error("fak::check::unknown_name", file, n.span)
                            .message(format!("no `{}` set named `{}`", kind.keyword(), n.name))
                            .label("not a set of this module")
                            .help(format!("declare `{} {} = [...];` or quote the item", kind.keyword(), n.name)),
                    ),
                },
                _ => self.err(
                    Diag::error("fak::check::bad_set_item", file, item.span())
                        .message("a string or a set name")
                        .label("not a string")
                        .help("quote it: `\"...\"`"),
                ),
            }
        }
        out
    }

    fn reason_decl(&mut self, file: FileId, r: &ast::ReasonDecl) {
        let loc = Loc { file, span: r.name.span };
        if ir::is_builtin_reason(&r.name.name) || r.name.name == ir::NONE {
            self.err(
                Diag::error("fak::check::duplicate_name", file, r.name.span)
                    .message(format!("`{}` is a built-in reason", r.name.name))
                    .label("already in the vocabulary")
                    .help("built-in reasons cannot be redeclared; pick another name"),
            );
            return;
        }
        if let Some(prev) = self.reason_decls.get(&r.name.name).copied() {
            if self.program.reasons.get(&r.name.name).map(|d| d.keyword()) != Some(r.disposition.name.as_str()) {
                self.err(
                    Diag::error("fak::check::duplicate_name", file, r.name.span)
                        .message(format!("reason `{}` is declared twice with different dispositions", r.name.name))
                        .label("declared again here")
                        .note(prev, "first declared here")
                        .help("a reason has one disposition; keep one declaration"),
                );
            }
            return;
        }
        match ir::Disposition::parse(&r.disposition.name) {
            Some(d) => {
                self.program.reasons.insert(r.name.name.clone(), d);
                self.reason_decls.insert(r.name.name.clone(), loc);
            }
            None => {
                let wanted = ["retryable", "wait", "escalate", "terminal"];
                let help = match did_you_mean(&r.disposition.name, wanted) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "a disposition is one of `retryable`, `wait`, `escalate`, `terminal`".to_string(),
                };
                self.err(
                    Diag::error("fak::check::unknown_disposition", file, r.disposition.span)
                        .message(format!("unknown disposition `{}`", r.disposition.name))
                        .label("not a disposition")
                        .help(help),
                );
            }
        }
    }

    fn reason_known(&self, r: &str) -> bool {
        ir::is_builtin_reason(r) || self.program.reasons.contains_key(r)
    }

    fn unknown_reason(&mut self, file: FileId, n: &ast::Ident) {
        let declared: Vec<&str> = self.program.reasons.keys().map(String::as_str).collect();
        let all = ir::BUILTIN_REASONS.iter().copied().chain(declared.iter().copied());
        let help = match did_you_mean(&n.name, all) {
            Some(s) => format!("did you mean `{s}`? A new reason is declared with `reason {} terminal;`", n.name),
            None => format!(
                "reasons are a closed vocabulary: {}; declare a new one with `reason {} terminal;`",
                ir::BUILTIN_REASONS.join(", "),
                n.name
            ),
        };
        self.err(
            Diag::error("fak::check::unknown_reason", file, n.span)
                .message(format!("unknown reason `{}`", n.name))
                .label("not in the vocabulary")
                .help(help),
        );
    }

    fn rule(&mut self, file: FileId, prefix: &str, r: &ast::Rule, m: &Module) {
        let id = if prefix.is_empty() { r.id.name.clone() } else { format!("{prefix}.{}", r.id.name) };
        let loc = Loc { file, span: r.id.span };
        let errors_before = self.error_count();
        if let Some(prev) = self.rule_ids.get(&id).copied() {
            self.err(
                Diag::error("fak::check::duplicate_rule", file, r.id.span)
                    .message(format!("rule id `{id}` is used twice"))
                    .label("used again here")
                    .note(prev, "first used here")
                    .help("rule ids name verdicts (`by=`); each must be unique"),
            );
        } else {
            self.rule_ids.insert(id.clone(), loc);
        }
        // Side and tools.
        let side =
            r.on.as_ref()
                .and_then(|o| o.side)
                .map_or(if r.verdict == VerdictKind::Quarantine { Side::Result } else { Side::Call }, |(s, _)| s);
        if r.verdict == VerdictKind::Quarantine && side == Side::Call {
            let span = r.on.as_ref().and_then(|o| o.side).map_or(r.verdict_span, |(_, s)| s);
            self.err(
                Diag::error("fak::check::quarantine_on_call", file, span)
                    .message("`quarantine` applies to tool results, not calls")
                    .label("a call cannot be quarantined")
                    .help("write `quarantine ... on result ...`, or `deny` to refuse the call"),
            );
        }
        let (sel, known_tools) = match &r.on {
            None => (ir::ToolSel::any(), None),
            Some(on) => self.tool_sel(file, m, on),
        };
        // Clauses.
        let mut reason: Option<&ast::Ident> = None;
        let mut message = None;
        let mut conds = Vec::new();
        let mut set = Vec::new();
        let mut advisory = false;
        let mut ctx = Ctx { file, module: m, side, tools: known_tools, vars: Vec::new() };
        for c in &r.clauses {
            match c {
                ast::Clause::Reason(n) => {
                    if reason.is_some() {
                        self.err(dup_clause(file, n.span, "reason"));
                    }
                    reason = Some(n);
                }
                ast::Clause::Message(s) => {
                    if message.is_some() {
                        self.err(dup_clause(file, s.span, "message"));
                    }
                    message = Some(Arc::from(s.value.as_str()));
                }
                ast::Clause::When(e) => {
                    if let Some(x) = self.cond(&mut ctx, e) {
                        conds.push(x);
                    }
                }
                ast::Clause::Set(path, value) => {
                    if r.verdict != VerdictKind::Transform {
                        self.err(
                            Diag::error("fak::check::set_outside_transform", file, path.span)
                                .message(format!("`set` in a `{}` rule", r.verdict.keyword()))
                                .label("only a transform rewrites arguments")
                                .help("make the rule a `transform`, or remove the `set`"),
                        );
                    } else if path.root.name != "args" || path.segs.is_empty() || side == Side::Result {
                        self.err(
                            Diag::error("fak::check::bad_set_target", file, path.span)
                                .message("`set` rewrites a call's arguments: `set args.<key> = <json>`")
                                .label("not an argument")
                                .help("write the target as `args.key` or `args[\"key\"]`"),
                        );
                    } else {
                        set.push((path.segs.iter().map(|s| s.name().to_string()).collect(), value.value.clone()));
                    }
                }
                ast::Clause::Advisory(_) => advisory = true,
            }
        }
        if r.verdict == VerdictKind::Transform && side == Side::Result {
            self.err(
                Diag::error("fak::check::transform_on_result", file, r.verdict_span)
                    .message("`transform` on a tool result")
                    .label("results cannot be rewritten by a rule")
                    .help("refuse the result with `deny`, or page it out with `quarantine`"),
            );
        }
        let bad_set = r.clauses.iter().any(|c| matches!(c, ast::Clause::Set(..)));
        if r.verdict == VerdictKind::Transform && set.is_empty() && !bad_set && side == Side::Call {
            self.err(
                Diag::error("fak::check::transform_without_set", file, r.id.span)
                    .message(format!("transform `{id}` changes nothing"))
                    .label("no `set` clause")
                    .help("add `set args.<key> = <json>`, or make the rule an `allow`"),
            );
        }
        let reason: Arc<str> = match (r.verdict, reason) {
            (VerdictKind::Allow, Some(n)) => {
                self.err(
                    Diag::warning("fak::check::allow_reason", file, n.span)
                        .message("an `allow` rule's reason is ignored")
                        .label("ALLOW always has reason NONE")
                        .help("remove the `reason` clause"),
                );
                Arc::from(ir::NONE)
            }
            (VerdictKind::Allow, None) => Arc::from(ir::NONE),
            (VerdictKind::Transform, None) => Arc::from(ir::NONE),
            (_, None) => Arc::from("POLICY_BLOCK"),
            (_, Some(n)) => {
                if !self.reason_known(&n.name) {
                    self.unknown_reason(file, n);
                }
                Arc::from(n.name.as_str())
            }
        };
        let cond = match conds.len() {
            0 => ir::Expr::True,
            1 => conds.pop().unwrap_or(ir::Expr::True),
            _ => ir::Expr::And(conds),
        };
        let cond = simplify(cond);
        if self.error_count() > errors_before {
            return;
        }
        if cond == ir::Expr::False || sel.is_empty() {
            self.err(
                Diag::warning("fak::check::never_fires", file, r.id.span)
                    .message(format!("rule `{id}` can never fire"))
                    .label(if sel.is_empty() { "it is on no tools" } else { "its condition is always false" })
                    .help("remove the rule, or fix its condition"),
            );
        }
        self.program.rules.push(ir::Rule {
            id: Arc::from(id.as_str()),
            verdict: r.verdict,
            side,
            tools: sel,
            reason,
            message,
            cond,
            set,
            advisory,
            loc,
        });
    }

    /// The set an `on` item names: a local set, or `module.set`; `None` for a tool name
    /// (after reporting an unknown `module.set`).
    fn source_decl(&mut self, file: FileId, d: &ast::SourceDecl, m: &Module) {
        let level = ir::taint_rank(&d.level.name);
        if level.is_none() {
            self.err(
                Diag::error("fak::check::bad_taint", file, d.level.span)
                    .message(format!("unknown taint level `{}`", d.level.name))
                    .label("not a taint level")
                    .help("the levels are `trusted`, `untrusted` and `quarantined`"),
            );
        }
        if let Some((_, span)) = d.on.side {
            self.err(
                Diag::error("fak::check::source_side", file, span)
                    .message("a `source` is about results; it takes no side")
                    .label("drop this")
                    .help("write `source untrusted on WebFetch;`"),
            );
        }
        let (tools, _) = self.tool_sel(file, m, &d.on);
        if let Some(level) = level {
            self.program.sources.push(ir::Source { level, tools, loc: Loc { file, span: d.level.span } });
        }
    }

    /// The tools an `on` clause names, and the exact list when no `*` or prefix is among them.
    fn tool_sel(&mut self, file: FileId, m: &Module, on: &ast::On) -> (ir::ToolSel, Option<Vec<String>>) {
        let mut sel = ir::ToolSel::default();
        let mut known_tools: Option<Vec<String>> = Some(Vec::new());
        for t in &on.tools {
            match t {
                ast::ToolItem::Star(_) => {
                    sel.any = true;
                    known_tools = None;
                }
                ast::ToolItem::Str(s) => {
                    if let Some(p) = s.value.strip_suffix('*') {
                        sel.prefixes.insert(p.to_string());
                        known_tools = None;
                    } else {
                        sel.exact.insert(s.value.clone());
                        if let Some(k) = known_tools.as_mut() {
                            k.push(s.value.clone());
                        }
                    }
                }
                ast::ToolItem::Name(n) => {
                    let found = self.tools_set_ref(file, m, n);
                    if found.is_none() && n.name.contains('.') {
                        continue;
                    }
                    if let Some(set) = found {
                        if set.kind != ast::SetKind::Tools {
                            self.err(
                                Diag::error("fak::check::type_mismatch", file, n.span)
                                    .message(format!(
                                        "`{}` is a `{}` set, not a `tools` set",
                                        n.name,
                                        set.kind.keyword()
                                    ))
                                    .label("not tools")
                                    .note(set.loc, "defined here")
                                    .help("`on` takes tool names and `tools` sets"),
                            );
                            continue;
                        }
                        for item in &set.items {
                            if let Some(p) = item.strip_suffix('*') {
                                sel.prefixes.insert(p.to_string());
                                known_tools = None;
                            } else {
                                sel.exact.insert(item.clone());
                                if let Some(k) = known_tools.as_mut() {
                                    k.push(item.clone());
                                }
                            }
                        }
                    } else {
                        self.tool_name_lint(file, n);
                        sel.exact.insert(n.name.clone());
                        if let Some(k) = known_tools.as_mut() {
                            k.push(n.name.clone());
                        }
                    }
                }
            }
        }
        (sel, known_tools)
    }

    fn tools_set_ref(&mut self, file: FileId, m: &Module, n: &ast::Ident) -> Option<SetDef> {
        let Some((alias, name)) = n.name.split_once('.') else {
            return m.sets.get(&n.name).cloned();
        };
        let found =
            m.imports.get(alias).and_then(|key| self.modules.get(key)).and_then(|md| md.sets.get(name)).cloned();
        if found.is_none() {
            let help = if m.imports.contains_key(alias) {
                format!("module `{alias}` has no set `{name}`")
            } else if crate::stdlib::names().contains(&alias) {
                format!("there is no import named `{alias}`; add `import std.{alias};`")
            } else {
                format!("there is no import named `{alias}`; import the module, or quote a tool name that has a dot")
            };
            self.err(
                Diag::error("fak::check::unknown_name", file, n.span)
                    .message(format!("unknown set `{}`", n.name))
                    .label("not defined")
                    .help(help),
            );
        }
        found
    }

    fn error_count(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }

    fn tool_name_lint(&mut self, file: FileId, n: &ast::Ident) {
        if tools::schema(&n.name).is_some() {
            return;
        }
        let known = tools::KNOWN_TOOLS.iter().map(|t| t.name);
        if let Some(s) = did_you_mean(&n.name, known) {
            self.err(
                Diag::warning("fak::check::unknown_tool", file, n.span)
                    .message(format!("`{}` is not a Claude Code tool", n.name))
                    .label("unknown tool")
                    .help(format!(
                        "did you mean `{s}`? (rules may name any tool; quote the name to silence this: `\"{}\"`)",
                        n.name
                    )),
            );
        }
    }

    /// Warns about rules that a higher-priority unconditional rule makes irrelevant.
    fn lint_shadowing(&mut self) {
        let mut warnings = Vec::new();
        for d in &self.program.rules {
            if d.verdict != VerdictKind::Deny || d.cond != ir::Expr::True || d.advisory {
                continue;
            }
            if self.program.advisory_reasons.contains(d.reason.as_ref()) {
                continue;
            }
            for r in &self.program.rules {
                if r.side != d.side || r.verdict == VerdictKind::Deny || r.advisory {
                    continue;
                }
                let covered = d.tools.any
                    || (!r.tools.any
                        && r.tools.prefixes.iter().all(|p| d.tools.prefixes.iter().any(|q| p.starts_with(q.as_str())))
                        && r.tools.exact.iter().all(|t| d.tools.matches(t)));
                if covered && !r.tools.is_empty() {
                    warnings.push(
                        Diag::warning("fak::check::shadowed", r.loc.file, r.loc.span)
                            .message(format!("rule `{}` is shadowed by `{}`", r.id, d.id))
                            .label("this rule can never decide")
                            .note(d.loc, "this rule denies every call it could match")
                            .help("the most restrictive verdict wins; remove one of the rules or narrow the deny"),
                    );
                }
            }
        }
        self.diags.extend(warnings);
    }

    // --------------------------------------------------------------------------------------
    // Conditions

    /// A condition: a boolean expression.
    fn cond(&mut self, ctx: &mut Ctx<'_>, e: &ast::Expr) -> Option<ir::Expr> {
        match &e.kind {
            ExprKind::Paren(inner) => self.cond(ctx, inner),
            ExprKind::Not(inner) => Some(ir::Expr::Not(Box::new(self.cond(ctx, inner)?))),
            ExprKind::Binary(op @ (BinOp::And | BinOp::Or), l, r) => {
                let (l, r) = (self.cond(ctx, l), self.cond(ctx, r));
                let (l, r) = (l?, r?);
                Some(if *op == BinOp::And { ir::Expr::And(vec![l, r]) } else { ir::Expr::Or(vec![l, r]) })
            }
            ExprKind::Binary(op, l, r) => self.comparison(ctx, *op, l, r, e.span),
            ExprKind::Lit(ast::Lit::Bool(b, _)) => Some(if *b { ir::Expr::True } else { ir::Expr::False }),
            ExprKind::Quant(q, var, list, body) => {
                let (lv, lt) = self.value(ctx, list)?;
                if !(lt.is_list() || lt == Ty::Any) {
                    self.err(type_err(
                        ctx.file,
                        list.span,
                        format!("`{}` iterates over a list, not a {}", quant_name(*q), lt.name()),
                        lt,
                    ));
                    return None;
                }
                let id = self.next_var;
                self.next_var += 1;
                ctx.vars.push((var.name.clone(), id, lt.elem()));
                let body = self.cond(ctx, body);
                ctx.vars.pop();
                Some(ir::Expr::Quant { all: *q == ast::Quant::All, var: id, list: lv, body: Arc::new(body?) })
            }
            _ => {
                let (v, t) = self.value(ctx, e)?;
                if matches!(t, Ty::Bool | Ty::Any) {
                    Some(ir::Expr::Atom(Atom::Truthy(v)))
                } else {
                    self.err(
                        Diag::error("fak::check::type_mismatch", ctx.file, e.span)
                            .message(format!("expected a condition, found a {}", t.name()))
                            .label("not true or false")
                            .help("compare it: `==`, `contains`, `matches`, `glob`, ..., or test presence with `has(...)`"),
                    );
                    None
                }
            }
        }
    }

    fn comparison(
        &mut self,
        ctx: &mut Ctx<'_>,
        op: BinOp,
        l: &ast::Expr,
        r: &ast::Expr,
        span: Span,
    ) -> Option<ir::Expr> {
        let left = self.value(ctx, l);
        // The right side may name a set.
        let set = self.set_ref(ctx, r);
        let (lv, lt) = left?;
        if let Some(set) = set {
            return self.against_set(ctx, op, lv, lt, l.span, r.span, set?);
        }
        let (rv, rt) = self.value(ctx, r)?;
        let file = ctx.file;
        match op {
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let cmp = match op {
                    BinOp::Eq => CmpOp::Eq,
                    BinOp::Ne => CmpOp::Ne,
                    BinOp::Lt => CmpOp::Lt,
                    BinOp::Le => CmpOp::Le,
                    BinOp::Gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                // Taint compares by rank.
                if lt == Ty::Taint || rt == Ty::Taint {
                    let (tv, other, other_span, flipped) =
                        if lt == Ty::Taint { (lv, &rv, r.span, false) } else { (rv.clone(), &lv, l.span, true) };
                    let level = match other {
                        Value::Lit(Lit(Json::String(s))) => ir::taint_rank(s),
                        _ => None,
                    };
                    let Some(level) = level else {
                        self.err(
                            Diag::error("fak::check::bad_taint", file, other_span)
                                .message("taint is compared with a level")
                                .label("not a taint level")
                                .help("the levels, in order: \"trusted\" < \"untrusted\" < \"quarantined\""),
                        );
                        return None;
                    };
                    let lit = Value::Lit(Lit(Json::from(level)));
                    let cmp = if flipped { flip(cmp) } else { cmp };
                    return Some(ir::Expr::Atom(Atom::Cmp(cmp, tv, lit)));
                }
                if !matches!(cmp, CmpOp::Eq | CmpOp::Ne) {
                    for (t, sp) in [(lt, l.span), (rt, r.span)] {
                        if !matches!(t, Ty::Num | Ty::Any) {
                            self.err(type_err(
                                file,
                                sp,
                                format!("`{}` compares numbers, not a {}", op.symbol(), t.name()),
                                t,
                            ));
                            return None;
                        }
                    }
                }
                // A path compares with a path: normalise a literal on the other side too.
                let (lv, rv) = match (lt, rt) {
                    (Ty::Path, Ty::Str) | (Ty::Path, Ty::Any) if matches!(rv, Value::Lit(_)) => (lv, path_of(rv)),
                    (Ty::Str, Ty::Path) | (Ty::Any, Ty::Path) if matches!(lv, Value::Lit(_)) => (path_of(lv), rv),
                    _ => (lv, rv),
                };
                Some(ir::Expr::Atom(Atom::Cmp(cmp, lv, rv)))
            }
            BinOp::In => {
                if !(rt.is_list() || rt == Ty::Any) {
                    self.err(type_err(
                        file,
                        r.span,
                        format!("`in` needs a list on its right, found a {}", rt.name()),
                        rt,
                    ));
                    return None;
                }
                Some(ir::Expr::Atom(Atom::In(lv, if lt == Ty::Path { paths_of(rv) } else { rv })))
            }
            BinOp::Contains => {
                if !(lt.is_list() || matches!(lt, Ty::Str | Ty::Path | Ty::Any)) {
                    self.err(type_err(
                        file,
                        l.span,
                        format!("`contains` looks inside a string or list, not a {}", lt.name()),
                        lt,
                    ));
                    return None;
                }
                Some(ir::Expr::Atom(Atom::Contains(lv, if lt == Ty::Path { fold_lit(rv) } else { rv })))
            }
            BinOp::StartsWith | BinOp::EndsWith => {
                if !lt.is_textual() {
                    self.err(type_err(
                        file,
                        l.span,
                        format!("`{}` needs a string, found a {}", op.symbol(), lt.name()),
                        lt,
                    ));
                    return None;
                }
                let rv = if lt == Ty::Path && op == BinOp::StartsWith && matches!(rv, Value::Lit(_)) {
                    path_of(rv)
                } else if lt == Ty::Path {
                    fold_lit(rv)
                } else {
                    rv
                };
                Some(ir::Expr::Atom(if op == BinOp::StartsWith {
                    Atom::StartsWith(lv, rv)
                } else {
                    Atom::EndsWith(lv, rv)
                }))
            }
            BinOp::Matches => {
                self.textual(file, l.span, lt, "a regex")?;
                let Value::Lit(Lit(Json::String(src))) = &rv else {
                    self.err(
                        Diag::error("fak::check::type_mismatch", file, r.span)
                            .message("`matches` takes a regex literal or a `regexes` set")
                            .label("not a regex")
                            .help("write the regex as a string: `matches r\"\\bsudo\\b\"`"),
                    );
                    return None;
                };
                match self.regex(src) {
                    Ok(re) => {
                        Some(ir::Expr::Atom(Atom::Matches(lv, Pattern { src: Arc::from(src.as_str()), compiled: re })))
                    }
                    Err(e) => {
                        self.err(bad_regex(file, r.span, &e));
                        None
                    }
                }
            }
            BinOp::Glob => {
                self.pathish(file, l.span, lt)?;
                // A list of globs: any of them (what `--dump --format ir` writes for a set).
                if let Value::Lit(Lit(Json::Array(items))) = &rv {
                    let srcs: Option<Vec<&str>> = items.iter().map(Json::as_str).collect();
                    if let Some(srcs) = srcs.filter(|s| !s.is_empty()) {
                        return self.glob_any(file, r.span, lv, &srcs);
                    }
                }
                let Value::Lit(Lit(Json::String(src))) = &rv else {
                    self.err(
                        Diag::error("fak::check::type_mismatch", file, r.span)
                            .message("`glob` takes a glob literal, a list of them, or a `globs` set")
                            .label("not a glob")
                            .help("write the glob as a string: `glob \"**/.git/**\"`"),
                    );
                    return None;
                };
                match ir::compile_glob(src) {
                    Ok(g) => Some(ir::Expr::Atom(Atom::Glob(
                        path_of(lv),
                        Pattern { src: Arc::from(src.as_str()), compiled: g },
                    ))),
                    Err(e) => {
                        self.err(bad_glob(file, r.span, &e));
                        None
                    }
                }
            }
            BinOp::And | BinOp::Or => {
                let _ = span;
                None
            }
        }
    }

    /// `lv glob` any of `srcs`: one atom, so a set of globs is one GlobSet match.
    fn glob_any(&mut self, file: FileId, span: Span, lv: Value, srcs: &[&str]) -> Option<ir::Expr> {
        let src = match srcs {
            [] => return Some(ir::Expr::False),
            [one] => (*one).to_string(),
            many => ir::globs_src(many),
        };
        match ir::compile_globs(srcs) {
            Ok(g) => Some(ir::Expr::Atom(Atom::Glob(path_of(lv), Pattern { src: Arc::from(src), compiled: g }))),
            Err(e) => {
                self.err(bad_glob(file, span, &e));
                None
            }
        }
    }

    fn textual(&mut self, file: FileId, span: Span, t: Ty, what: &str) -> Option<()> {
        if t.is_textual() {
            Some(())
        } else {
            self.err(
                Diag::error("fak::check::type_mismatch", file, span)
                    .message(format!("{what} applied to a {}", t.name()))
                    .label(format!("this is a {}", t.name()))
                    .help("regexes match strings and paths; compare numbers with `==`, `<`, `>`"),
            );
            None
        }
    }

    fn pathish(&mut self, file: FileId, span: Span, t: Ty) -> Option<()> {
        if matches!(t, Ty::Path | Ty::Any) {
            Some(())
        } else {
            self.err(
                Diag::error("fak::check::type_mismatch", file, span)
                    .message(format!("a glob applied to a {}", t.name()))
                    .label(format!("this is a {}, not a path", t.name()))
                    .help(if t == Ty::Str {
                        "globs match paths; if this string names a file, write `path(...) glob \"...\"`; to match text use `matches`"
                    } else {
                        "globs match paths"
                    }),
            );
            None
        }
    }

    fn against_set(
        &mut self,
        ctx: &Ctx<'_>,
        op: BinOp,
        lv: Value,
        lt: Ty,
        lspan: Span,
        rspan: Span,
        set: SetDef,
    ) -> Option<ir::Expr> {
        let file = ctx.file;
        let wrong = |this: &mut Self, want: &str| {
            this.err(
                Diag::error("fak::check::type_mismatch", file, rspan)
                    .message(format!("`{}` needs {want}, and this is a `{}` set", op.symbol(), set.kind.keyword()))
                    .label("wrong kind of set")
                    .note(set.loc, "defined here")
                    .help("`in` and `contains` take `strings` or `tools` sets, `matches` a `regexes` set, `glob` a `globs` set"),
            );
        };
        let strs =
            |items: &[String]| items.iter().map(|s| Value::Lit(Lit(Json::String(s.clone())))).collect::<Vec<_>>();
        let ors = |atoms: Vec<Atom>| -> ir::Expr {
            if atoms.is_empty() {
                ir::Expr::False
            } else {
                ir::Expr::Or(atoms.into_iter().map(ir::Expr::Atom).collect())
            }
        };
        match (op, set.kind) {
            (BinOp::In, ast::SetKind::Tools) => {
                let (exact, prefixes): (Vec<&String>, Vec<&String>) = set.items.iter().partition(|s| !s.ends_with('*'));
                let mut parts = Vec::new();
                if !exact.is_empty() {
                    let list = Json::Array(exact.iter().map(|s| Json::String((*s).clone())).collect());
                    parts.push(ir::Expr::Atom(Atom::In(lv.clone(), Value::Lit(Lit(list)))));
                }
                for p in prefixes {
                    let p = p.trim_end_matches('*').to_string();
                    parts.push(ir::Expr::Atom(Atom::StartsWith(lv.clone(), Value::Lit(Lit(Json::String(p))))));
                }
                Some(if parts.is_empty() { ir::Expr::False } else { ir::Expr::Or(parts) })
            }
            (BinOp::In, ast::SetKind::Strings) => {
                let list = Value::Lit(Lit(Json::Array(set.items.iter().map(|s| Json::String(s.clone())).collect())));
                Some(ir::Expr::Atom(Atom::In(lv, if lt == Ty::Path { paths_of(list) } else { list })))
            }
            (BinOp::Contains, ast::SetKind::Strings) => {
                if !(lt.is_list() || matches!(lt, Ty::Str | Ty::Path | Ty::Any)) {
                    self.err(type_err(
                        file,
                        lspan,
                        format!("`contains` looks inside a string or list, not a {}", lt.name()),
                        lt,
                    ));
                    return None;
                }
                Some(ors(strs(&set.items).into_iter().map(|s| Atom::Contains(lv.clone(), s)).collect()))
            }
            (BinOp::StartsWith | BinOp::EndsWith, ast::SetKind::Strings) => {
                if !lt.is_textual() {
                    self.err(type_err(
                        file,
                        lspan,
                        format!("`{}` needs a string, found a {}", op.symbol(), lt.name()),
                        lt,
                    ));
                    return None;
                }
                Some(ors(strs(&set.items)
                    .into_iter()
                    .map(|s| {
                        if op == BinOp::StartsWith {
                            Atom::StartsWith(lv.clone(), s)
                        } else {
                            Atom::EndsWith(lv.clone(), s)
                        }
                    })
                    .collect()))
            }
            (BinOp::Matches, ast::SetKind::Regexes) => {
                self.textual(file, lspan, lt, "a regex")?;
                Some(ors(set.regexes.iter().map(|re| Atom::Matches(lv.clone(), re.clone())).collect()))
            }
            (BinOp::Glob, ast::SetKind::Globs) => {
                self.pathish(file, lspan, lt)?;
                // One atom for the whole set: one GlobSet match instead of one per glob.
                let srcs: Vec<&str> = set.globs.iter().map(|g| &*g.src).collect();
                self.glob_any(file, rspan, lv, &srcs)
            }
            (BinOp::Matches, _) => {
                wrong(self, "a `regexes` set");
                None
            }
            (BinOp::Glob, _) => {
                wrong(self, "a `globs` set");
                None
            }
            (BinOp::In | BinOp::Contains | BinOp::StartsWith | BinOp::EndsWith, _) => {
                wrong(self, "a `strings` set");
                None
            }
            _ => {
                wrong(self, "a value");
                None
            }
        }
    }

    /// `Some` when the expression names a set: `Some(Err)` after reporting a problem.
    fn set_ref(&mut self, ctx: &Ctx<'_>, e: &ast::Expr) -> Option<Option<SetDef>> {
        let ExprKind::Path(p) = &e.kind else { return None };
        if ctx.vars.iter().any(|(n, _, _)| *n == p.root.name) {
            return None;
        }
        if p.segs.is_empty() {
            return ctx.module.sets.get(&p.root.name).cloned().map(Some);
        }
        let key = ctx.module.imports.get(&p.root.name)?;
        let [seg] = p.segs.as_slice() else {
            self.err(
                Diag::error("fak::check::unknown_name", ctx.file, p.span)
                    .message(format!("`{}` is a module, not a set", p.root.name))
                    .label("a module")
                    .help(format!("name one of its sets: `{}.<set>`", p.root.name)),
            );
            return Some(None);
        };
        let found = self.modules.get(key).and_then(|m| m.sets.get(seg.name())).cloned();
        if found.is_none() {
            let names: Vec<String> =
                self.modules.get(key).map(|m| m.sets.keys().cloned().collect()).unwrap_or_default();
            let help = match did_you_mean(seg.name(), names.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{}.{s}`?", p.root.name),
                None => format!("`{}` defines: {}", p.root.name, names.join(", ")),
            };
            self.err(
                Diag::error("fak::check::unknown_name", ctx.file, seg.span())
                    .message(format!("module `{}` has no set `{}`", p.root.name, seg.name()))
                    .label("not defined there")
                    .help(help),
            );
        }
        Some(found)
    }

    /// A value and its type.
    fn value(&mut self, ctx: &mut Ctx<'_>, e: &ast::Expr) -> Option<(Value, Ty)> {
        let file = ctx.file;
        match &e.kind {
            ExprKind::Lit(l) => Some(match l {
                ast::Lit::Str(s) => (Value::Lit(Lit(Json::String(s.value.clone()))), Ty::Str),
                ast::Lit::Num(n, _, _) => (Value::Lit(Lit(num_json(*n))), Ty::Num),
                ast::Lit::Bool(b, _) => (Value::Lit(Lit(Json::Bool(*b))), Ty::Bool),
                ast::Lit::Name(n) => {
                    self.err(
                        Diag::error("fak::check::unknown_name", file, n.span)
                            .message(format!("unexpected name `{}`", n.name)),
                    );
                    return None;
                }
            }),
            ExprKind::Paren(inner) => self.value(ctx, inner),
            ExprKind::List(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for i in items {
                    match self.value(ctx, i) {
                        Some((v, _)) => out.push(v),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                // A list of literals is one literal (the prefilters read it).
                let lits: Option<Vec<Json>> = out
                    .iter()
                    .map(|v| match v {
                        Value::Lit(l) => Some(l.0.clone()),
                        _ => None,
                    })
                    .collect();
                Some(match lits {
                    Some(l) => (Value::Lit(Lit(Json::Array(l))), Ty::List),
                    None => (Value::List(out), Ty::List),
                })
            }
            ExprKind::Call(f, args) => self.call(ctx, f, args, e.span),
            ExprKind::Path(p) => self.path(ctx, p),
            ExprKind::Not(_) | ExprKind::Binary(..) | ExprKind::Quant(..) => {
                let c = self.cond(ctx, e)?;
                // A condition used as a value: only where a bool is wanted (`x == (a and b)`
                // is not supported).
                let _ = c;
                self.err(
                    Diag::error("fak::check::type_mismatch", file, e.span)
                        .message("a condition cannot be used as a value here")
                        .label("this is a condition")
                        .help("conditions combine with `and`, `or`, `not`; they are not compared"),
                );
                None
            }
        }
    }

    fn call(&mut self, ctx: &mut Ctx<'_>, f: &ast::Ident, args: &[ast::Expr], span: Span) -> Option<(Value, Ty)> {
        const FUNCTIONS: &[&str] = &["len", "bytes", "lower", "path", "has"];
        let file = ctx.file;
        if !FUNCTIONS.contains(&f.name.as_str()) {
            let help = match did_you_mean(&f.name, FUNCTIONS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "the functions are {}",
                    FUNCTIONS.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                ),
            };
            self.err(
                Diag::error("fak::check::unknown_function", file, f.span)
                    .message(format!("unknown function `{}`", f.name))
                    .label("not a function")
                    .help(help),
            );
            return None;
        }
        let [arg] = args else {
            self.err(
                Diag::error("fak::check::arity", file, span)
                    .message(format!("`{}` takes one argument, {} given", f.name, args.len()))
                    .label("here")
                    .help(format!("write `{}(x)`", f.name)),
            );
            return None;
        };
        let (v, t) = self.value(ctx, arg)?;
        Some(match f.name.as_str() {
            "len" => {
                if matches!(t, Ty::Num | Ty::Bool | Ty::Taint) {
                    self.err(type_err(
                        file,
                        arg.span,
                        format!("`len` measures a string or list, not a {}", t.name()),
                        t,
                    ));
                    return None;
                }
                (Value::Len(Box::new(v)), Ty::Num)
            }
            "bytes" => (Value::Bytes(Box::new(v)), Ty::Num),
            "lower" => {
                self.textual(file, arg.span, t, "`lower`")?;
                (Value::Lower(Box::new(v)), Ty::Str)
            }
            "path" => {
                self.textual(file, arg.span, t, "`path`")?;
                (path_of(v), Ty::Path)
            }
            _ => (Value::Has(Box::new(v)), Ty::Bool),
        })
    }

    fn path(&mut self, ctx: &mut Ctx<'_>, p: &ast::ValuePath) -> Option<(Value, Ty)> {
        let file = ctx.file;
        let segs: Vec<String> = p.segs.iter().map(|s| s.name().to_string()).collect();
        if let Some((_, id, ty)) = ctx.vars.iter().rev().find(|(n, _, _)| *n == p.root.name) {
            let (id, mut ty) = (*id, *ty);
            // Fields of a view's record are typed; other values are JSON, known at run time.
            for seg in &p.segs {
                let Some(fields) = crate::view::fields(ty) else {
                    ty = Ty::Any;
                    break;
                };
                match fields.iter().find(|(n, _, _)| *n == seg.name()) {
                    Some((_, t, _)) => ty = *t,
                    None => {
                        self.unknown_field(file, seg, ty, fields);
                        return None;
                    }
                }
            }
            let v = Value::Var(id, segs);
            return Some(if ty == Ty::Path { (path_of(v), Ty::Path) } else { (v, ty) });
        }
        let no_fields = |this: &mut Self, what: &str| -> Option<(Value, Ty)> {
            if let Some(s) = p.segs.first() {
                this.err(
                    Diag::error("fak::check::unknown_name", file, s.span())
                        .message(format!("`{}` has no fields", p.root.name))
                        .label("no such field")
                        .help(format!("`{}` is {what}", p.root.name)),
                );
                return None;
            }
            Some((Value::Tool, Ty::Str))
        };
        match p.root.name.as_str() {
            "tool" => no_fields(self, "the tool's name"),
            "principal" => no_fields(self, "who the call is made for").map(|_| (Value::Principal, Ty::Str)),
            "args" => {
                if ctx.side == Side::Result {
                    self.err(
                        Diag::error("fak::check::wrong_side", file, p.span)
                            .message("`args` in a result rule")
                            .label("results have no arguments")
                            .help("result rules read `result.text` and `tool`"),
                    );
                    return None;
                }
                let t = match (segs.as_slice(), &ctx.tools) {
                    ([], _) => Ty::Any,
                    ([key], Some(tools)) if !tools.is_empty() => self.arg_type(file, p, key, tools),
                    _ => Ty::Any,
                };
                let v = Value::Args(segs);
                Some(if t == Ty::Path { (path_of(v), Ty::Path) } else { (v, t) })
            }
            "shell" | "writes" | "urls" => self.view_root(ctx, p, &segs),
            "trace" => match segs.as_slice() {
                [t] if t == "taint" => Some((Value::TaintRank, Ty::Taint)),
                _ => {
                    self.err(
                        Diag::error("fak::check::unknown_name", file, p.span)
                            .message(format!("unknown trace field `{}`", crate::ast::print::path(p)))
                            .label("not a trace field")
                            .help("the trace has `trace.taint`"),
                    );
                    None
                }
            },
            "result" => {
                if ctx.side == Side::Call {
                    self.err(
                        Diag::error("fak::check::wrong_side", file, p.span)
                            .message("`result` in a call rule")
                            .label("a call has no result yet")
                            .help("write the rule `on result ...` to judge tool results"),
                    );
                    return None;
                }
                match segs.as_slice() {
                    [t] if t == "text" => Some((Value::ResultText, Ty::Str)),
                    [t] if t == "tool" => Some((Value::Tool, Ty::Str)),
                    [t] if t == "secrets" => {
                        Some((Value::View(crate::view::Field::Secrets), crate::view::Field::Secrets.ty()))
                    }
                    [t] if t == "injections" => {
                        Some((Value::View(crate::view::Field::Injections), crate::view::Field::Injections.ty()))
                    }
                    _ => {
                        self.err(
                            Diag::error("fak::check::unknown_name", file, p.span)
                                .message(format!("unknown result field `{}`", crate::ast::print::path(p)))
                                .label("not a result field")
                                .help("a result has `result.text`, `result.tool`, `result.secrets` and `result.injections`"),
                        );
                        None
                    }
                }
            }
            name => {
                if let Some(set) = ctx.module.sets.get(name).filter(|_| p.segs.is_empty()) {
                    // A set used as a value: a list of its strings.
                    let list = Json::Array(set.items.iter().map(|s| Json::String(s.clone())).collect());
                    return Some((Value::Lit(Lit(list)), Ty::List));
                }
                let mut candidates: Vec<&str> = vec!["tool", "args", "trace", "principal", "result"];
                candidates.extend(ctx.module.sets.keys().map(String::as_str));
                candidates.extend(ctx.module.imports.keys().map(String::as_str));
                candidates.extend(ctx.vars.iter().map(|(n, _, _)| n.as_str()));
                candidates.extend(crate::view::ROOTS.iter().copied());
                let help = match did_you_mean(name, candidates.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "values are `tool`, `args.<key>`, `trace.taint`, `principal`, `result.text`, a set, or a quantifier variable".to_string(),
                };
                self.err(
                    Diag::error("fak::check::unknown_name", file, p.root.span)
                        .message(format!("unknown name `{name}`"))
                        .label("not defined")
                        .help(help),
                );
                None
            }
        }
    }

    /// `shell.commands`, `shell.opaque`, `writes`, `urls`.
    fn view_root(&mut self, ctx: &Ctx<'_>, p: &ast::ValuePath, segs: &[String]) -> Option<(Value, Ty)> {
        use crate::view::Field;
        let file = ctx.file;
        if ctx.side == Side::Result {
            self.err(
                Diag::error("fak::check::wrong_side", file, p.span)
                    .message(format!("`{}` in a result rule", p.root.name))
                    .label("results have no calls to look into")
                    .help("result rules read `result.text` and `tool`"),
            );
            return None;
        }
        let field = match (p.root.name.as_str(), segs) {
            ("shell", [s]) if s == "commands" => Field::Commands,
            ("shell", [s]) if s == "opaque" => Field::Opaque,
            ("writes", []) => Field::Writes,
            ("urls", []) => Field::Urls,
            (root, _) => {
                let help = match root {
                    "shell" => match did_you_mean(segs.first().map_or("", String::as_str), ["commands", "opaque"]) {
                        Some(s) => format!("did you mean `shell.{s}`?"),
                        None => "the shell view has `shell.commands` (each simple command) and `shell.opaque` (why parts cannot be seen through)".to_string(),
                    },
                    _ => format!(
                        "`{root}` is a list; look inside it with `any({x} in {root}: ...)`",
                        x = if root == "urls" { "u" } else { "p" }
                    ),
                };
                self.err(
                    Diag::error("fak::check::unknown_name", file, p.span)
                        .message(format!("unknown view `{}`", crate::ast::print::path(p)))
                        .label("not a view")
                        .help(help),
                );
                return None;
            }
        };
        Some((Value::View(field), field.ty()))
    }

    fn unknown_field(&mut self, file: FileId, seg: &ast::Seg, ty: Ty, fields: &[(&str, Ty, &str)]) {
        let names = fields.iter().map(|(n, _, _)| *n);
        let help = match did_you_mean(seg.name(), names.clone()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("a {} has {}", ty.name(), names.map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")),
        };
        self.err(
            Diag::error("fak::check::unknown_field", file, seg.span())
                .message(format!("a {} has no field `{}`", ty.name(), seg.name()))
                .label("no such field")
                .help(help),
        );
    }

    fn arg_type(&mut self, file: FileId, p: &ast::ValuePath, key: &str, tools: &[String]) -> Ty {
        let known: Vec<&tools::ToolSchema> = tools.iter().filter_map(|t| tools::schema(t)).collect();
        if known.len() != tools.len() {
            return Ty::Any; // some tool fak has no schema for
        }
        let types: Vec<Option<Ty>> = tools.iter().map(|t| tools::arg_type(t, key)).collect();
        if types.iter().all(Option::is_none) {
            let mut keys: Vec<&str> = known.iter().flat_map(|s| s.args.iter().map(|(k, _, _)| *k)).collect();
            keys.sort_unstable();
            keys.dedup();
            let help = match did_you_mean(key, keys.iter().copied()) {
                Some(s) => format!("did you mean `args.{s}`?"),
                None => format!(
                    "`{}` takes {}",
                    tools.join("`, `"),
                    keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                ),
            };
            let span = p.segs.first().map_or(p.span, ast::Seg::span);
            self.err(
                Diag::warning("fak::check::unknown_arg", file, span)
                    .message(format!("`{}` has no argument `{key}`", tools.join("`, `")))
                    .label("unknown argument")
                    .help(help),
            );
            return Ty::Any;
        }
        // Tools without the key see it absent; the type is what the others agree on.
        let mut found = types.iter().flatten();
        let first = found.next().copied().unwrap_or(Ty::Any);
        if found.all(|t| *t == first) {
            first
        } else {
            Ty::Any
        }
    }

    // --------------------------------------------------------------------------------------
    // Tests

    fn test(&mut self, file: FileId, t: &ast::Test, _m: &Module) {
        let loc = Loc { file, span: t.name.span };
        let mut input = None;
        let mut taint = 0u8;
        let mut expect = None;
        for s in &t.stmts {
            match s {
                ast::TestStmt::Call { tool, args } => {
                    if input.is_some() {
                        self.err(test_shape(file, tool.span(), "a test holds one call or one result"));
                    }
                    input = Some(ir::TestInput::Call { tool: tool.name().to_string(), args: args.value.clone() });
                }
                ast::TestStmt::Result { tool, text } => {
                    if input.is_some() {
                        self.err(test_shape(file, tool.span(), "a test holds one call or one result"));
                    }
                    input = Some(ir::TestInput::Result { tool: tool.name().to_string(), text: text.value.clone() });
                }
                ast::TestStmt::Taint(level) => match ir::taint_rank(&level.name) {
                    Some(r) => taint = r,
                    None => self.err(
                        Diag::error("fak::check::bad_taint", file, level.span)
                            .message(format!("unknown taint level `{}`", level.name))
                            .label("not a level")
                            .help("the levels are `trusted`, `untrusted`, `quarantined`"),
                    ),
                },
                ast::TestStmt::Expect(e) => {
                    if expect.is_some() {
                        self.err(test_shape(file, e.span, "a test has one `expect`"));
                    }
                    if let Some(r) = &e.reason {
                        if !self.reason_known(&r.name) && r.name != ir::NONE {
                            self.unknown_reason(file, r);
                        }
                    }
                    if let Some(by) = &e.by {
                        let builtin = ["default", "fak.input", "fak.schema", "fak.budget"];
                        if !self.rule_ids.contains_key(&by.name) && !builtin.contains(&by.name.as_str()) {
                            let help = match did_you_mean(&by.name, self.rule_ids.keys().map(String::as_str)) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None => "name a rule of this policy (imported rules are `module.id`), or `default`"
                                    .to_string(),
                            };
                            self.err(
                                Diag::error("fak::check::unknown_rule", file, by.span)
                                    .message(format!("no rule `{}`", by.name))
                                    .label("not a rule id")
                                    .help(help),
                            );
                        }
                    }
                    expect = Some(ir::Expect {
                        verdict: e.verdict,
                        reason: e.reason.as_ref().map(|r| r.name.clone()),
                        by: e.by.as_ref().map(|b| b.name.clone()),
                        with: e.with.as_ref().map(|w| w.value.clone()),
                        loc: Loc { file, span: e.span },
                    });
                }
            }
        }
        let (Some(input), Some(expect)) = (input, expect) else {
            self.err(test_shape(file, t.name.span, "a test needs a `call` (or `result`) and an `expect`"));
            return;
        };
        if let (ir::TestInput::Call { .. }, VerdictKind::Quarantine) = (&input, expect.verdict) {
            self.err(test_shape(file, expect.loc.span, "a call is never quarantined; only results are"));
        }
        self.program.tests.push(ir::Test { name: t.name.value.clone(), loc, input, taint, expect });
    }
}

/// The prefix of a module's rule ids: `std.tools` → `tools`, `lib/net.fak` → `net`.
fn module_prefix(key: &str) -> String {
    let last = key.rsplit(['/', '.']).find(|s| !s.is_empty() && *s != "fak").unwrap_or(key);
    last.to_string()
}

/// A number as JSON: integral values as integers, so they print as written.
fn num_json(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Json::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
    }
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

fn path_of(v: Value) -> Value {
    match v {
        p @ Value::Path(_) => p,
        other => Value::Path(Box::new(other)),
    }
}

/// A string literal looked for inside a canonical path is folded the same way.
fn fold_lit(v: Value) -> Value {
    match v {
        Value::Lit(Lit(Json::String(s))) => Value::Lit(Lit(Json::String(crate::path::fold(&s).into_owned()))),
        other => other,
    }
}

/// A list compared with a path: its string items become paths too.
fn paths_of(list: Value) -> Value {
    match list {
        Value::Lit(Lit(Json::Array(items))) => Value::List(
            items
                .into_iter()
                .map(|i| if i.is_string() { path_of(Value::Lit(Lit(i))) } else { Value::Lit(Lit(i)) })
                .collect(),
        ),
        Value::List(items) => {
            Value::List(items.into_iter().map(|i| if matches!(i, Value::Lit(_)) { path_of(i) } else { i }).collect())
        }
        other => other,
    }
}

fn quant_name(q: ast::Quant) -> &'static str {
    match q {
        ast::Quant::Any => "any",
        ast::Quant::All => "all",
    }
}

fn type_err(file: FileId, span: Span, message: String, t: Ty) -> Diag {
    Diag::error("fak::check::type_mismatch", file, span)
        .message(message)
        .label(format!("this is a {}", t.name()))
        .help("see docs/POLICY.md, \"Types\", for what each operator takes")
}

fn bad_regex(file: FileId, span: Span, e: &str) -> Diag {
    Diag::error("fak::check::bad_regex", file, span)
        .message("invalid regex")
        .label("this regex")
        .help(format!("the regex crate says:\n{e}"))
}

fn bad_glob(file: FileId, span: Span, e: &str) -> Diag {
    Diag::error("fak::check::bad_glob", file, span)
        .message(format!("invalid glob: {e}"))
        .label("this glob")
        .help("globs use `*`, `?`, `**`, `[...]`, `{a,b}`; escape a special character with `\\`")
}

fn dup_clause(file: FileId, span: Span, what: &str) -> Diag {
    Diag::error("fak::check::duplicate_clause", file, span)
        .message(format!("a rule has one `{what}`"))
        .label("second one")
        .help("remove one of them")
}

fn test_shape(file: FileId, span: Span, what: &str) -> Diag {
    Diag::error("fak::check::test_shape", file, span)
        .message(what.to_string())
        .label("here")
        .help("a test is `test \"name\" { call Tool {...}; expect deny REASON by rule-id; }`")
}

/// Flattens nested `and`/`or` and folds constants.
pub fn simplify(e: ir::Expr) -> ir::Expr {
    use ir::Expr;
    match e {
        Expr::And(items) => {
            let mut out = Vec::new();
            for i in items {
                match simplify(i) {
                    Expr::True => {}
                    Expr::False => return Expr::False,
                    Expr::And(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            match out.len() {
                0 => Expr::True,
                1 => out.pop().unwrap_or(Expr::True),
                _ => Expr::And(out),
            }
        }
        Expr::Or(items) => {
            let mut out = Vec::new();
            for i in items {
                match simplify(i) {
                    Expr::False => {}
                    Expr::True => return Expr::True,
                    Expr::Or(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            match out.len() {
                0 => Expr::False,
                1 => out.pop().unwrap_or(Expr::False),
                _ => Expr::Or(out),
            }
        }
        Expr::Not(inner) => match simplify(*inner) {
            Expr::True => Expr::False,
            Expr::False => Expr::True,
            Expr::Not(x) => *x,
            other => Expr::Not(Box::new(other)),
        },
        Expr::Quant { all, var, list, body } => {
            Expr::Quant { all, var, list, body: Arc::new(simplify(Arc::unwrap_or_clone(body))) }
        }
        other => other,
    }
}
