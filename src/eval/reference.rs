//! The reference interpreter: every rule of the program, in source order, each condition
//! walked as written. Slow and obviously right; the Dag must agree with it on every input
//! (tests/it/props.rs and fuzz/ hold it to that).

use crate::eval::{
    cost, is_advisory, over_budget, precheck, precheck_result, Call, Input, Outcome, Scope, ToolResult, TraceState,
    Verdict,
};
use crate::ir::{self, Side};

pub fn decide(program: &ir::Program, call: &Call, trace: &TraceState) -> Verdict {
    let nodes = match precheck(call) {
        Ok(n) => n,
        Err(v) => return v,
    };
    let input = Input::new(nodes, &call.tool, &call.args, None, trace);
    run(program, Side::Call, &input)
}

pub fn admit(program: &ir::Program, result: &ToolResult, trace: &TraceState) -> Verdict {
    let nodes = match precheck_result(result) {
        Ok(n) => n,
        Err(v) => return v,
    };
    let args = serde_json::Value::Object(serde_json::Map::new());
    let detectors = crate::secrets::Detectors::new(&program.detectors);
    let input = Input::new(nodes, &result.tool, &args, Some(&result.text), trace).with_detectors(&detectors, true);
    let mut v = run(program, Side::Result, &input);
    v.kinds = input.found_kinds();
    v
}

fn run(program: &ir::Program, side: Side, input: &Input<'_>) -> Verdict {
    let mut out = Outcome::new();
    let mut scope = Scope::new(input);
    let applicable: Vec<&ir::Rule> =
        program.rules.iter().filter(|r| r.side == side && r.tools.matches(input.tool)).collect();
    let bound = applicable.iter().map(|r| cost(&r.cond, &scope)).fold(0, u64::saturating_add);
    if let Some(v) = over_budget(bound) {
        return v;
    }
    for r in applicable {
        match scope.expr(&r.cond) {
            Ok(true) => out.add(r, is_advisory(program, r)),
            Ok(false) => {}
            Err(e) => {
                out.error = Some((r, e));
                break;
            }
        }
    }
    out.finish(program, side, input.tool, input.args)
}
