//! The differential oracle: one generated policy decided by the Dag with prefilters, the Dag
//! without, and the reference interpreter, and again with its items shuffled. Shared by
//! tests/it/props.rs and the `prefilter_differential` fuzz target (which includes this file
//! and `gen.rs` with `#[path]`).

#![allow(dead_code)]

use fak::compile::{compile, CompileOptions, Dag};
use fak::diag::Format;
use fak::eval::{self, Call, ToolResult, TraceState, Verdict};
use fak::ir;
use serde_json::Value as Json;

use super::gen::{self, Choices};

/// Calls decided per generated policy (plus one more call, or a tool result when the policy
/// has result rules).
pub const CALLS_PER_POLICY: usize = 4;

/// Loads a policy that must check clean.
pub fn load(src: &str) -> Result<ir::Program, String> {
    let loaded = fak::load::from_source("gen.fak", src);
    let errors: Vec<String> = loaded
        .diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| fak::diag::render(d, &loaded.sources, Format::Plain, false))
        .collect();
    match loaded.program {
        Some(p) if errors.is_empty() => Ok(p),
        _ => Err(format!("the generated policy does not check:\n{src}\n{}", errors.join("\n"))),
    }
}

/// The same policy three ways (and the Dag with prefilters once more, warmed as a server
/// warms it: its list filters scan with DFAs and SIMD gates instead of NFAs).
pub struct Three {
    pub program: ir::Program,
    pub with: Dag,
    pub without: Dag,
    pub warmed: Dag,
}

impl Three {
    pub fn new(program: ir::Program) -> Three {
        let warmed = compile(program.clone(), CompileOptions { prefilter: true });
        warmed.warm();
        Three {
            with: compile(program.clone(), CompileOptions { prefilter: true }),
            without: compile(program.clone(), CompileOptions { prefilter: false }),
            warmed,
            program,
        }
    }

    pub fn from_source(src: &str) -> Result<Three, String> {
        load(src).map(Three::new)
    }

    /// Decides a call three ways; `Err` describes a disagreement.
    pub fn decide(&self, call: &Call, trace: &TraceState) -> Result<Verdict, String> {
        let a = eval::decide(&self.with, call, trace);
        let b = eval::decide(&self.without, call, trace);
        let r = eval::reference::decide(&self.program, call, trace);
        let w = eval::decide(&self.warmed, call, trace);
        agree(&a, &b, &r)
            .and_then(|()| agree(&w, &b, &r))
            .map(|()| a)
            .map_err(|e| format!("{e}\ncall: {} {}\ntrace: {trace:?}", call.tool, call.args))
    }

    pub fn admit(&self, result: &ToolResult, trace: &TraceState) -> Result<Verdict, String> {
        let a = eval::admit(&self.with, result, trace);
        let b = eval::admit(&self.without, result, trace);
        let r = eval::reference::admit(&self.program, result, trace);
        let w = eval::admit(&self.warmed, result, trace);
        agree(&a, &b, &r)
            .and_then(|()| agree(&w, &b, &r))
            .map(|()| a)
            .map_err(|e| format!("{e}\nresult: {} {:?}\ntrace: {trace:?}", result.tool, result.text))
    }
}

/// What a verdict says, without where the deciding rule is written.
pub fn gist(v: &Verdict) -> (ir::VerdictKind, &str, &str, Option<&Json>, Vec<&str>, Option<&str>) {
    (
        v.verdict,
        &v.reason,
        &v.by.rule,
        v.args.as_ref(),
        v.advisories.iter().map(|a| &*a.rule).collect(),
        v.message.as_deref(),
    )
}

/// The three verdicts must be equal in everything, the deciding rule's location included.
pub fn agree(with: &Verdict, without: &Verdict, reference: &Verdict) -> Result<(), String> {
    if with == without && without == reference {
        return Ok(());
    }
    Err(format!(
        "verdicts differ\n  dag with prefilters:    {}\n  dag without prefilters: {}\n  reference:              {}",
        show(with),
        show(without),
        show(reference)
    ))
}

pub fn show(v: &Verdict) -> String {
    let (k, reason, by, args, adv, message) = gist(v);
    let mut s = format!("{} {reason} by {by}", eval::kind_str(k));
    if let Some(a) = args {
        s.push_str(&format!(" with {a}"));
    }
    if !adv.is_empty() {
        s.push_str(&format!(" advisories {adv:?}"));
    }
    if let Some(m) = message {
        s.push_str(&format!(" message {m:?}"));
    }
    s
}

/// One generated case: a policy, the calls and results to decide, checked three ways and
/// against the policy with its items shuffled. Returns how many inputs were decided.
pub fn run(c: &mut impl Choices) -> Result<usize, String> {
    let policy = gen::policy(c);
    let src = policy.source();
    let three = Three::from_source(&src)?;
    let shuffled_src = policy.shuffled(c);
    let shuffled = compile(load(&shuffled_src)?, CompileOptions::default());
    let has_result_rules = three.program.rules.iter().any(|r| r.side == ir::Side::Result);
    let fail = |e: String| format!("{e}\npolicy:\n{src}");
    for i in 0..=CALLS_PER_POLICY {
        let trace = gen::trace(c);
        if i == CALLS_PER_POLICY && has_result_rules {
            let result = gen::result(c, &policy);
            let v = three.admit(&result, &trace).map_err(fail)?;
            let s = eval::admit(&shuffled, &result, &trace);
            if gist(&v) != gist(&s) {
                return Err(format!(
                    "rule order changed the verdict on {result:?}\n  in order: {}\n  shuffled: {}\npolicy:\n{src}\nshuffled:\n{shuffled_src}",
                    show(&v),
                    show(&s)
                ));
            }
        } else {
            let call = gen::call(c, &policy);
            let v = three.decide(&call, &trace).map_err(fail)?;
            let s = eval::decide(&shuffled, &call, &trace);
            if gist(&v) != gist(&s) {
                return Err(format!(
                    "rule order changed the verdict on {} {}\n  in order: {}\n  shuffled: {}\npolicy:\n{src}\nshuffled:\n{shuffled_src}",
                    call.tool,
                    call.args,
                    show(&v),
                    show(&s)
                ));
            }
        }
    }
    Ok(CALLS_PER_POLICY + 1)
}
