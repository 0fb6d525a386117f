//! `fak policy`: check, format, test, dump, convert.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::{json, Value as Json};

use super::output::{print_diags, verdict_line};
use super::{fail, DiagArgs};
use crate::diag::{Diag, Sources};
use crate::eval::kind_str;
use crate::load::{self, Loaded};

/// Check, format, test, dump or convert policies.
///
/// FILE is a `.fak` policy or a `fak-policy/v1` JSON manifest; `-` reads stdin. With no FILE,
/// `--check` and `--test` take the built-in floor and the stdlib.
///
/// Exit status: 0 when clean (warnings are shown), 1 on an error, a file `--fmt --check`
/// would change, or a failing test; 2 when fak could not run.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  fak policy --check policies/*.fak\n  fak policy --fmt --check policy.fak\n  fak policy --test policy.fak\n  fak policy --dump | fak policy --check -\n  fak policy --convert manifest.json > policy.fak"
)]
pub struct PolicyArgs {
    /// Check the files: syntax, names, types, patterns, reasons, lints.
    #[arg(long)]
    pub check: bool,
    /// Format the files in place (`-`: stdin to stdout); with `--check`, only report files
    /// that are not formatted.
    #[arg(long)]
    pub fmt: bool,
    /// Run the files' `test` blocks.
    #[arg(long)]
    pub test: bool,
    /// Print the built-in floor (or FILE) as source, or in another `--format`.
    #[arg(long)]
    pub dump: bool,
    /// What `--dump` prints.
    #[arg(long, value_enum, default_value_t = DumpFormat::Fak, requires = "dump")]
    pub format: DumpFormat,
    /// Print a `fak-policy/v1` manifest as equivalent `.fak` source.
    #[arg(long)]
    pub convert: bool,
    /// Policy files.
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,
    #[command(flatten)]
    pub diag: DiagArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum DumpFormat {
    /// The policy's source.
    Fak,
    /// The checked program as JSON.
    Json,
    /// The syntax tree.
    Ast,
    /// The checked program as `.fak` source: imports inlined, sets expanded.
    Ir,
    /// The compiled decision DAG: buckets, rule order, prefilters.
    Dag,
}

pub fn run(a: &PolicyArgs) -> ExitCode {
    let modes = [a.fmt, a.test, a.dump, a.convert].iter().filter(|m| **m).count();
    if modes > 1 {
        return fail("choose one of --fmt, --test, --dump, --convert");
    }
    if a.fmt {
        fmt(a)
    } else if a.test {
        test(a)
    } else if a.dump {
        dump(a)
    } else if a.convert {
        convert(a)
    } else if a.check {
        check(a)
    } else {
        fail("say what to do: --check, --fmt, --test, --dump or --convert (see `fak policy --help`)")
    }
}

/// A named input: a path, or `-`.
struct Input {
    name: String,
    text: String,
}

fn read(spec: &str) -> Result<Input, String> {
    if spec == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read stdin: {e}"))?;
        return Ok(Input { name: "<stdin>".into(), text });
    }
    let text = std::fs::read_to_string(spec).map_err(|e| format!("cannot read `{spec}`: {e}"))?;
    Ok(Input { name: spec.to_string(), text })
}

fn load_spec(spec: &str) -> Loaded {
    if spec == "-" {
        match read(spec) {
            Ok(i) => load::from_source(&i.name, &i.text),
            Err(e) => io_error(&e),
        }
    } else {
        load::from_path(Path::new(spec))
    }
}

fn io_error(e: &str) -> Loaded {
    let mut sources = Sources::new();
    let id = sources.add("<input>", "");
    Loaded {
        diags: vec![Diag::error("fak::load::io", id, crate::ast::Span::new(0, 0)).message(e.to_string())],
        sources,
        program: None,
    }
}

/// The built-in floor and every stdlib module, for `--check` / `--test` with no files.
fn shipped() -> Vec<(String, Loaded)> {
    let mut out = vec![(crate::stdlib::FLOOR.0.to_string(), load::builtin())];
    for (name, text) in crate::stdlib::MODULES {
        out.push((format!("std.{name}"), load::from_source(&format!("std.{name}"), text)));
    }
    out
}

fn inputs(a: &PolicyArgs) -> Vec<(String, Loaded)> {
    if a.files.is_empty() {
        shipped()
    } else {
        a.files.iter().map(|f| (f.clone(), load_spec(f))).collect()
    }
}

fn check(a: &PolicyArgs) -> ExitCode {
    let mut errors = 0;
    let mut warnings = 0;
    let all = inputs(a);
    for (_, l) in &all {
        let (e, w) = print_diags(&l.diags, &l.sources, a.diag.error_format);
        errors += e;
        warnings += w;
        if l.program.is_none() && e == 0 {
            errors += 1;
        }
    }
    if a.diag.error_format != super::ErrorFormat::Json {
        eprintln!(
            "checked {} file{}: {errors} error{}, {warnings} warning{}",
            all.len(),
            plural(all.len()),
            plural(errors),
            plural(warnings)
        );
    }
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn fmt(a: &PolicyArgs) -> ExitCode {
    if a.files.is_empty() {
        return fail("--fmt needs FILE arguments (or `-` for stdin)");
    }
    let mut unformatted = 0;
    let mut broken = 0;
    for spec in &a.files {
        let input = match read(spec) {
            Ok(i) => i,
            Err(e) => return fail(e),
        };
        if load::is_manifest(&input.name, &input.text) {
            eprintln!("fak: `{}` is a JSON manifest; --fmt formats .fak files (convert it with --convert)", input.name);
            broken += 1;
            continue;
        }
        let mut sources = Sources::new();
        let id = sources.add(input.name.clone(), input.text.as_str());
        let ast = match crate::syntax::parse(&input.text, id) {
            Ok(ast) => ast,
            Err(d) => {
                print_diags(&[d], &sources, a.diag.error_format);
                broken += 1;
                continue;
            }
        };
        let formatted = crate::ast::print::file(&ast);
        if spec == "-" {
            if a.check {
                if formatted != input.text {
                    eprintln!("<stdin> is not formatted");
                    unformatted += 1;
                }
            } else {
                super::emit(&formatted.to_string());
            }
        } else if formatted != input.text {
            if a.check {
                eprintln!("{} is not formatted", input.name);
                unformatted += 1;
            } else if let Err(e) = std::fs::write(spec, &formatted) {
                return fail(format!("cannot write `{spec}`: {e}"));
            }
        }
    }
    if broken > 0 || unformatted > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn test(a: &PolicyArgs) -> ExitCode {
    let mut failed = 0usize;
    let mut passed = 0usize;
    let mut broken = false;
    for (name, loaded) in inputs(a) {
        let policy = match loaded.into_result() {
            Ok(p) => p,
            Err((sources, diags)) => {
                print_diags(&diags, &sources, a.diag.error_format);
                broken = true;
                continue;
            }
        };
        for o in crate::policytest::run_detectors(&policy) {
            let (line, _) = policy.sources.line_col(o.detector.loc.file, o.detector.loc.span.start);
            let what = format!(
                "{}:{line} {} {}",
                policy.sources.name(o.detector.loc.file),
                o.detector.class.keyword(),
                o.detector.kind
            );
            if o.failures.is_empty() {
                passed += 1;
                super::emit(&format!("ok    {what}\n"));
            } else {
                failed += 1;
                super::emit(&format!("FAIL  {what}\n"));
                for f in &o.failures {
                    super::emit(&format!("      - {f}\n"));
                }
            }
        }
        for o in crate::policytest::run(&policy) {
            let (line, _) = policy.sources.line_col(o.test.loc.file, o.test.loc.span.start);
            if o.passed() {
                passed += 1;
                super::emit(&format!("ok    {name}:{line} {}\n", o.test.name));
            } else {
                failed += 1;
                super::emit(&format!("FAIL  {name}:{line} {}\n", o.test.name));
                match &o.test.input {
                    crate::ir::TestInput::Call { tool, args } => {
                        super::emit(&format!("      call:     {tool} {args}\n"))
                    }
                    crate::ir::TestInput::Result { tool, text } => {
                        super::emit(&format!("      result:   {tool} {}\n", Json::from(text.as_str())))
                    }
                }
                let e = &o.test.expect;
                let mut want = kind_str(e.verdict).to_string();
                if let Some(r) = &e.reason {
                    want.push_str(&format!(" reason={r}"));
                }
                if let Some(b) = &e.by {
                    want.push_str(&format!(" by={b}"));
                }
                super::emit(&format!("      expected: {want}\n"));
                super::emit(&format!("      actual:   {}\n", verdict_line(&o.verdict)));
                if let Some(loc) = o.verdict.by.loc {
                    let (l, c) = policy.sources.line_col(loc.file, loc.span.start);
                    super::emit(&format!(
                        "      decided by `{}` at {}:{l}:{c}\n",
                        o.verdict.by.rule,
                        policy.sources.name(loc.file)
                    ));
                }
                for f in &o.failures {
                    super::emit(&format!("      - {f}\n"));
                }
            }
        }
    }
    super::emit(&format!("{passed} passed, {failed} failed\n"));
    if failed > 0 || broken {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn dump(a: &PolicyArgs) -> ExitCode {
    let (name, text) = match a.files.as_slice() {
        [] => (crate::stdlib::FLOOR.0.to_string(), crate::stdlib::FLOOR.1.to_string()),
        [one] => match read(one) {
            Ok(i) => (i.name, i.text),
            Err(e) => return fail(e),
        },
        _ => return fail("--dump takes at most one FILE"),
    };
    if a.format == DumpFormat::Fak {
        super::emit(&text.to_string());
        return ExitCode::SUCCESS;
    }
    if a.format == DumpFormat::Ast {
        let mut sources = Sources::new();
        let id = sources.add(name.clone(), text.as_str());
        return match crate::syntax::parse(&text, id) {
            Ok(ast) => {
                super::emit(&format!("{ast:#?}\n"));
                ExitCode::SUCCESS
            }
            Err(d) => {
                print_diags(&[d], &sources, a.diag.error_format);
                ExitCode::from(1)
            }
        };
    }
    let loaded = if a.files.is_empty() { load::builtin() } else { load_spec(&name) };
    let policy = match loaded.into_result() {
        Ok(p) => p,
        Err((sources, diags)) => {
            print_diags(&diags, &sources, a.diag.error_format);
            return ExitCode::from(1);
        }
    };
    let program = policy.dag.program();
    match a.format {
        DumpFormat::Json => super::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&program_json(program, &policy.sources)).unwrap_or_default()
        )),
        DumpFormat::Ir => super::emit(&crate::convert::to_source(
            program,
            &format!("{name}, checked: imports inlined, sets expanded"),
        )),
        _ => super::emit(&dag_text(&policy)),
    }
    ExitCode::SUCCESS
}

fn program_json(p: &crate::ir::Program, sources: &Sources) -> Json {
    let rules: Vec<Json> = p
        .rules
        .iter()
        .map(|r| {
            let (line, column) = sources.line_col(r.loc.file, r.loc.span.start);
            json!({
                "id": &*r.id,
                "verdict": kind_str(r.verdict),
                "side": match r.side { crate::ir::Side::Call => "call", crate::ir::Side::Result => "result" },
                "tools": {"any": r.tools.any, "exact": r.tools.exact, "prefixes": r.tools.prefixes},
                "reason": &*r.reason,
                "message": r.message.as_deref(),
                "when": crate::convert::expr(&r.cond, 0),
                "set": r.set.iter().map(|(p, v)| json!({"path": p, "value": v})).collect::<Vec<_>>(),
                "advisory": r.advisory,
                "file": sources.name(r.loc.file),
                "line": line,
                "column": column,
            })
        })
        .collect();
    json!({
        "posture": p.posture.as_str(),
        "reasons": p.reasons.iter().map(|(k, v)| (k.clone(), Json::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
        "advisory_reasons": p.advisory_reasons,
        "rules": rules,
        "tests": p.tests.len(),
    })
}

fn dag_text(policy: &crate::load::Policy) -> String {
    let program = policy.dag.program();
    let mut s = String::new();
    for (side, b) in policy.dag.buckets() {
        let name = &b.name;
        let side = match side {
            crate::ir::Side::Call => "call",
            crate::ir::Side::Result => "result",
        };
        s.push_str(&format!(
            "bucket {side} {name}: {} rules, {} nodes, {} atoms, {} fields\n",
            b.rules.len(),
            b.nodes.len(),
            b.atoms.len(),
            b.fields.len()
        ));
        for (pos, br) in b.rules.iter().enumerate() {
            let Some(r) = program.rules.get(br.rule) else { continue };
            let trig =
                if b.always.contains(&u32::try_from(pos).unwrap_or(u32::MAX)) { "always" } else { "on prefilter hit" };
            s.push_str(&format!(
                "  {pos:>3} {} {} ({trig}{})\n",
                kind_str(r.verdict),
                r.id,
                if br.advisory { ", advisory" } else { "" }
            ));
        }
        for line in b.prefilter.summary(&b.fields) {
            s.push_str(&format!("  prefilter {line}\n"));
        }
        for l in &b.lists {
            for line in l.summary() {
                s.push_str(&format!("  {line}\n"));
            }
        }
    }
    s
}

fn convert(a: &PolicyArgs) -> ExitCode {
    let [spec] = a.files.as_slice() else { return fail("--convert takes one FILE, a fak-policy/v1 manifest") };
    let input = match read(spec) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    if !load::is_manifest(&input.name, &input.text) {
        return fail(format!("`{}` is not a JSON manifest", input.name));
    }
    let loaded = load::from_source(&input.name, &input.text);
    let Some(program) = loaded.program.as_ref().filter(|_| !loaded.has_errors()) else {
        print_diags(&loaded.diags, &loaded.sources, a.diag.error_format);
        return ExitCode::from(1);
    };
    super::emit(
        &crate::convert::to_source(program, &format!("Converted from {} by `fak policy --convert`.", input.name))
            .to_string(),
    );
    ExitCode::SUCCESS
}
