//! Any text as a tool result: the floor's detectors never panic nor hang, find through their
//! keyword automaton (and the block run finder) exactly what the line-by-line definition
//! finds, and the Dag admits the result as the reference interpreter does.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn floor() -> &'static (fak::compile::Dag, fak::ir::Program) {
    static FLOOR: OnceLock<(fak::compile::Dag, fak::ir::Program)> = OnceLock::new();
    FLOOR.get_or_init(|| {
        let program = fak::load::builtin().program.expect("the floor checks clean");
        let dag = fak::compile::compile(program.clone(), fak::compile::CompileOptions { prefilter: true });
        dag.warm();
        (dag, program)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (dag, program) = floor();
    let fast = dag.detectors().find(&text);
    let slow = dag.detectors().find_naive(&text);
    assert!(fast == slow, "{text:?}\n  automaton:    {fast:?}\n  line by line: {slow:?}");
    let trace = fak::eval::TraceState::with_workspace("/workspace/repo").home("/home/dev");
    let r = fak::eval::ToolResult { tool: "WebFetch".into(), text: text.into_owned() };
    let a = fak::eval::admit(dag, &r, &trace);
    let b = fak::eval::reference::admit(program, &r, &trace);
    assert_eq!(a, b, "{:?}", r.text);
});
