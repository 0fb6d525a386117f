//! The checker: one file per diagnostic family in `tests/data/check`, each snapshotted as the
//! plain rendering of everything it reports; exact assertions for the diagnostics that matter
//! most; and every shipped policy and stdlib module checks clean and passes its tests.

use std::path::Path;
use std::sync::Arc;

use fak::diag::{Diag, Severity, Sources};

use crate::util::{self, Cases};

/// Snapshots every diagnostic of every `tests/data/check/*.fak` (their imports come along).
#[test]
fn families() {
    let mut cases = Cases::new();
    for path in util::files(&util::data("check"), "fak") {
        let name = util::rel(&path);
        cases.case(&name, || {
            // Relative to the repository root (the tests' working directory), so that
            // diagnostics name files the same on every machine.
            let loaded = load_like_check(&name);
            assert!(!loaded.diags.is_empty(), "no diagnostics");
            let mut report = util::render(&loaded.diags, &loaded.sources);
            let errors = loaded.diags.iter().filter(|d| d.is_error()).count();
            report.push_str(&format!("\n{errors} errors, {} warnings\n", loaded.diags.len() - errors));
            util::snapshot("check", &util::stem(&path), Some(&path), &report);
            let problems: Vec<String> = loaded.diags.iter().flat_map(|d| well_formed(d, &loaded.sources)).collect();
            assert!(problems.is_empty(), "diagnostics not in the house style:\n  {}", problems.join("\n  "));
        });
    }
    cases.finish("check families");
}

/// Loads a file as `fak policy --check` does.
fn load_like_check(name: &str) -> fak::load::Loaded {
    fak::load::from_path(Path::new(name))
}

/// What every diagnostic has: a code of its phase, a message in the house style, a span
/// inside its file, a label and help. Returns what is missing.
fn well_formed(d: &Diag, sources: &Sources) -> Vec<String> {
    let mut out = Vec::new();
    let mut want = |ok: bool, what: &str| {
        if !ok {
            out.push(format!("{} ({:?}): {what}", d.code, d.message));
        }
    };
    want(d.code.starts_with("fak::check::") || d.code.starts_with("fak::syntax::"), "a code of its phase");
    want(!d.message.is_empty(), "a message");
    want(!d.message.ends_with('.'), "no final period");
    want(!d.message.starts_with(|c: char| c.is_uppercase()), "a lowercase message");
    let text = sources.text(d.file);
    want(d.span.start <= d.span.end && d.span.end <= text.len(), "a span inside its file");
    want(!d.label.is_empty(), "a label");
    want(d.help.as_deref().is_some_and(|h| !h.is_empty()), "help");
    out
}

/// Checks inline source; imports reach the stdlib only.
fn check(text: &str) -> (Sources, Vec<Diag>, bool) {
    let loaded = fak::load::from_source("inline.fak", text);
    let ok = loaded.program.is_some();
    (loaded.sources, loaded.diags, ok)
}

/// The one diagnostic with `code`; asserts its severity, the text under its span, that it has
/// help, and returns it.
fn one(text: &str, code: &str, severity: Severity, span_text: &str) -> Diag {
    let (sources, diags, _) = check(text);
    let with: Vec<&Diag> = diags.iter().filter(|d| d.code == code).collect();
    let [d] = with.as_slice() else {
        panic!("expected one `{code}` in\n{text}\ngot:\n{}", util::render(&diags, &sources));
    };
    assert_eq!(d.severity, severity, "{code}");
    assert_eq!(&text[d.span.start..d.span.end], span_text, "{code}: span");
    assert!(d.help.is_some(), "{code}: no help");
    assert!(!d.label.is_empty(), "{code}: no label");
    (*d).clone()
}

#[test]
fn unknown_reason() {
    let d = one("deny x on Bash reason POLICY_BLOK;", "fak::check::unknown_reason", Severity::Error, "POLICY_BLOK");
    assert_eq!(d.message, "unknown reason `POLICY_BLOK`");
    assert!(d.help.unwrap().contains("did you mean `POLICY_BLOCK`?"));
    // Declared reasons are known, and an advisory list is checked too.
    let (_, diags, ok) =
        check("reason EGRESS_BLOCK terminal;\nadvisory EGRESS_BLOCK;\ndeny x on Bash reason EGRESS_BLOCK;");
    assert!(diags.is_empty() && ok, "{diags:?}");
    one("advisory EGRES_BLOCK;", "fak::check::unknown_reason", Severity::Error, "EGRES_BLOCK");
}

#[test]
fn bad_regex() {
    let d = one(
        "deny x on Bash when args.command matches r\"(unclosed\";",
        "fak::check::bad_regex",
        Severity::Error,
        "r\"(unclosed\"",
    );
    assert!(d.help.unwrap().contains("unclosed group"));
    one("regexes r = [r\"ok\", \"[z-a]\"];", "fak::check::bad_regex", Severity::Error, "\"[z-a]\"");
}

#[test]
fn bad_glob() {
    let d = one(
        "deny x on Write when args.file_path glob \"**/.env[\";",
        "fak::check::bad_glob",
        Severity::Error,
        "\"**/.env[\"",
    );
    assert!(d.message.starts_with("invalid glob: "), "{}", d.message);
    one("globs g = [\"ok/**\", \"{a,b\"];", "fak::check::bad_glob", Severity::Error, "\"{a,b\"");
}

#[test]
fn type_mismatch() {
    let d = one(
        "deny x on Bash when args.timeout matches r\"\\d+\";",
        "fak::check::type_mismatch",
        Severity::Error,
        "args.timeout",
    );
    assert_eq!(d.message, "a regex applied to a number");
    let d = one(
        "deny x on Bash when args.command glob \"**/x\";",
        "fak::check::type_mismatch",
        Severity::Error,
        "args.command",
    );
    assert_eq!(d.message, "a glob applied to a string");
    assert!(d.help.unwrap().contains("path(...)"));
    // The suggested fix checks.
    let (_, diags, ok) = check("deny x on Bash when path(args.command) glob \"**/x\";");
    assert!(diags.is_empty() && ok, "{diags:?}");
    one("deny x on Bash when args.timeout > \"600\";", "fak::check::type_mismatch", Severity::Error, "\"600\"");
}

#[test]
fn unknown_name() {
    let d = one("deny x on Bash when argz.command == \"rm\";", "fak::check::unknown_name", Severity::Error, "argz");
    assert_eq!(d.message, "unknown name `argz`");
    assert_eq!(d.help.as_deref(), Some("did you mean `args`?"));
    let d = one(
        "import std.paths;\ndeny x on Write when args.file_path glob paths.secretz;",
        "fak::check::unknown_name",
        Severity::Error,
        "secretz",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `paths.secrets`?"));
    one("import std.tools;\nallow x on tools.readerz;", "fak::check::unknown_name", Severity::Error, "tools.readerz");
}

#[test]
fn duplicate_rule() {
    let text = "allow read on Read;\ndeny same on Bash;\nallow same on Glob;";
    let d = one(text, "fak::check::duplicate_rule", Severity::Error, "same");
    assert_eq!(d.span.start, text.rfind("same").unwrap(), "points at the second use");
    assert_eq!(d.notes.len(), 1);
    let (loc, what) = &d.notes[0];
    assert_eq!(loc.span.start, text.find("same").unwrap(), "the note points at the first use");
    assert_eq!(what, "first used here");
}

#[test]
fn unknown_arg_is_a_warning() {
    let text = "deny x on Bash when args.comand contains \"rm\";";
    let d = one(text, "fak::check::unknown_arg", Severity::Warning, "comand");
    assert_eq!(d.help.as_deref(), Some("did you mean `args.command`?"));
    let (_, diags, ok) = check(text);
    assert!(ok, "a warning does not stop the policy: {diags:?}");
    assert!(fak::load::from_source("inline.fak", text).into_result().is_ok());
    // Tools fak has no schema for take any argument; so do rules on several tools that share it.
    let (_, diags, _) = check(
        "deny x on my_tool when args.anything == 1;\ndeny y on Read, Write when args.file_path glob \"/etc/**\";",
    );
    assert!(diags.is_empty(), "{diags:?}");
}

#[test]
fn import_cycle() {
    let loaded = fak::load::from_path(Path::new("tests/data/check/cycle/a.fak"));
    let cycles: Vec<&Diag> = loaded.diags.iter().filter(|d| d.code == "fak::check::import_cycle").collect();
    let [d] = cycles.as_slice() else { panic!("{:?}", loaded.diags) };
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(loaded.sources.name(d.file), "tests/data/check/cycle/b.fak", "reported where the cycle closes");
    let text = loaded.sources.text(d.file);
    assert_eq!(&text[d.span.start..d.span.end], "\"a.fak\"");
    assert_eq!(d.message, "import cycle: `tests/data/check/cycle/a.fak` → `tests/data/check/cycle/b.fak` → `tests/data/check/cycle/a.fak`");
    assert!(d.help.is_some());
    assert!(loaded.program.is_none());
}

#[test]
fn quarantine_on_call() {
    one("quarantine q on call Bash;", "fak::check::quarantine_on_call", Severity::Error, "call");
    // Without a side, a quarantine rule is on results.
    let (_, diags, ok) = check("quarantine q on Bash when result.text contains \"AKIA\";");
    assert!(diags.is_empty() && ok, "{diags:?}");
    let (_, diags, ok) = check("quarantine q on result * reason RESULT_SECRET_DISCOVERED;");
    assert!(diags.is_empty() && ok, "{diags:?}");
}

#[test]
fn never_fires_and_shadowed_are_warnings() {
    let d =
        one("deny x on Bash when args.command == \"a\" and false;", "fak::check::never_fires", Severity::Warning, "x");
    assert_eq!(d.label, "its condition is always false");
    let d = one("tools none = [];\nallow x on none;", "fak::check::never_fires", Severity::Warning, "x");
    assert_eq!(d.label, "it is on no tools");
    let text = "allow grep on Grep;\ndeny no-grep on Grep;";
    let d = one(text, "fak::check::shadowed", Severity::Warning, "grep");
    assert_eq!(d.message, "rule `grep` is shadowed by `no-grep`");
    assert_eq!(d.notes.len(), 1);
    // A conditional, advisory or advisory-reason deny shadows nothing.
    for text in [
        "allow grep on Grep;\ndeny no-grep on Grep when args.pattern == \"x\";",
        "allow grep on Grep;\ndeny no-grep on Grep advisory;",
        "advisory POLICY_BLOCK;\nallow grep on Grep;\ndeny no-grep on Grep;",
        "allow grep on Grep, Read;\ndeny no-grep on Grep;",
    ] {
        let (_, diags, _) = check(text);
        assert!(diags.is_empty(), "{text}: {diags:?}");
    }
    // A deny on every tool shadows every allow.
    let (_, diags, _) = check("allow a on Read;\nallow b on \"read_*\";\ndeny everything on *;");
    assert_eq!(diags.iter().filter(|d| d.code == "fak::check::shadowed").count(), 2, "{diags:?}");
}

/// A file with three independent mistakes gets three errors in one run, each with a code, a
/// span and help.
#[test]
fn three_mistakes_three_errors() {
    let loaded = fak::load::from_path(Path::new("tests/data/check/three-mistakes.fak"));
    let errors: Vec<&Diag> = loaded.diags.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 3, "{}", util::render(&loaded.diags, &loaded.sources));
    let codes: Vec<&str> = errors.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["fak::check::unknown_reason", "fak::check::bad_glob", "fak::check::unknown_name"]);
    let text = loaded.sources.text(errors[0].file);
    let spans: Vec<&str> = errors.iter().map(|d| &text[d.span.start..d.span.end]).collect();
    assert_eq!(spans, ["POLICY_BLOK", "\"**/.env[\"", "argz"]);
    for d in errors {
        assert!(!d.span.is_empty());
        assert!(d.help.as_deref().is_some_and(|h| !h.is_empty()));
    }
    assert!(loaded.program.is_none());
}

/// A chain of imports longer than the module limit is refused, not followed forever.
#[test]
fn too_many_modules() {
    struct Chain;
    impl fak::check::Loader for Chain {
        fn std_module(&self, _: &[String]) -> Option<(String, Arc<str>)> {
            None
        }
        fn file(&self, _from: &str, rel: &str) -> Result<(String, Arc<str>), String> {
            let n: usize = rel.trim_start_matches('m').trim_end_matches(".fak").parse().unwrap();
            Ok((rel.to_string(), Arc::from(format!("import \"m{}.fak\";\nallow r{n} on Read;\n", n + 1))))
        }
    }
    let mut sources = Sources::new();
    let root = sources.add("root.fak", "import \"m0.fak\";");
    let (program, diags) = fak::check::check(&mut sources, root, &Chain);
    assert!(program.is_none());
    assert!(diags.iter().any(|d| d.code == "fak::check::too_many_modules"), "{diags:?}");
}

/// Every `fak::check::` code in src/check.rs has a case in tests/data/check.
#[test]
fn every_check_code_has_a_case() {
    let src = std::fs::read_to_string(util::root().join("src/check.rs")).unwrap();
    let mut codes: Vec<&str> = src
        .match_indices("\"fak::check::")
        .map(|(i, _)| {
            let rest = &src[i + 1..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let mut seen = std::collections::BTreeSet::new();
    for path in util::files(&util::data("check"), "fak") {
        for d in load_like_check(&util::rel(&path)).diags {
            seen.insert(d.code);
        }
    }
    // too_many_modules needs 257 files; `too_many_modules` above covers it.
    let missing: Vec<&&str> =
        codes.iter().filter(|c| !seen.contains(**c) && **c != "fak::check::too_many_modules").collect();
    assert!(missing.is_empty(), "no case in tests/data/check for {missing:?}");
}

/// Every shipped policy and stdlib module checks with zero diagnostics, read from disk and
/// as embedded in the binary.
#[test]
fn shipped_policies_check_clean() {
    let mut cases = Cases::new();
    let mut on_disk = Vec::new();
    for dir in ["policies", "stdlib"] {
        on_disk.extend(util::files(&util::root().join(dir), "fak"));
    }
    for path in &on_disk {
        let name = util::rel(path);
        cases.case(&name, || {
            let loaded = fak::load::from_path(Path::new(&name));
            assert!(loaded.diags.is_empty(), "\n{}", util::render(&loaded.diags, &loaded.sources));
            assert!(loaded.program.is_some());
        });
    }
    for (name, text) in fak::stdlib::MODULES {
        cases.case(&format!("std.{name} (embedded)"), || {
            let on_disk = std::fs::read_to_string(util::root().join(format!("stdlib/{name}.fak"))).unwrap();
            assert_eq!(*text, on_disk, "the embedded module is the file");
            let loaded = fak::load::from_source(&format!("std.{name}"), text);
            assert!(loaded.diags.is_empty(), "\n{}", util::render(&loaded.diags, &loaded.sources));
        });
    }
    for (name, text) in fak::stdlib::POLICIES {
        cases.case(&format!("{name} (embedded)"), || {
            let loaded = fak::load::from_source(name, text);
            assert!(loaded.diags.is_empty(), "\n{}", util::render(&loaded.diags, &loaded.sources));
        });
    }
    cases.case("fak::load::builtin()", || {
        let loaded = fak::load::builtin();
        assert!(loaded.diags.is_empty(), "\n{}", util::render(&loaded.diags, &loaded.sources));
        let program = loaded.program.as_ref().unwrap();
        assert!(!program.rules.is_empty());
        assert!(!program.tests.is_empty());
    });
    // Every stdlib module is on disk and every file on disk is embedded.
    let embedded: Vec<String> = fak::stdlib::MODULES.iter().map(|(n, _)| format!("stdlib/{n}.fak")).collect();
    for path in on_disk.iter().filter(|p| util::rel(p).starts_with("stdlib/")) {
        if !embedded.contains(&util::rel(path)) {
            cases.fail(&util::rel(path), "not embedded in fak::stdlib::MODULES");
        }
    }
    cases.finish("shipped policies");
}

/// The `test` blocks of the floor and of every stdlib module pass.
#[test]
fn shipped_tests_pass() {
    let mut cases = Cases::new();
    let mut all: Vec<(String, fak::load::Loaded)> = vec![("builtin".into(), fak::load::builtin())];
    for (name, text) in fak::stdlib::MODULES {
        all.push((format!("std.{name}"), fak::load::from_source(&format!("std.{name}"), text)));
    }
    for (name, text) in fak::stdlib::POLICIES {
        all.push(((*name).to_string(), fak::load::from_source(name, text)));
    }
    let mut tests = 0;
    for (name, loaded) in all {
        let policy = match loaded.into_result() {
            Ok(p) => p,
            Err((sources, diags)) => {
                cases.fail(&name, util::render(&diags, &sources));
                continue;
            }
        };
        for o in fak::policytest::run(&policy) {
            tests += 1;
            cases.count();
            if !o.passed() {
                cases.fail(&format!("{name}: test {:?}", o.test.name), o.failures.join("; "));
            }
        }
    }
    assert!(tests >= 12, "only {tests} shipped tests ran");
    cases.finish("shipped tests");
}

/// A list of globs after `glob` is one atom; printed back (`--dump --format ir`) it reads as
/// the same list, one glob or several, and checks again.
#[test]
fn glob_lists_print_back() {
    for (src, printed) in [
        (r#"deny g on Write when args.file_path glob ["**/.git/**"];"#, r#"glob "**/.git/**""#),
        (r#"deny g on Write when args.file_path glob ["**/.git", "**/.git/**"];"#, r#"glob ["**/.git", "**/.git/**"]"#),
    ] {
        let program = fak::load::from_source("p.fak", src).program.unwrap();
        let text = fak::convert::to_source(&program, "");
        assert!(text.contains(printed), "{text}");
        let again = fak::load::from_source("again.fak", &text);
        assert!(again.diags.is_empty(), "{text}");
    }
}
