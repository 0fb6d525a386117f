//! Any text: `syntax::parse` returns a tree or a diagnostic, never panics; a tree formats to
//! text that parses back to the same tree, and formatting that text changes nothing.
//!
//! Findings so far are regression tests in tests/it/props.rs (`regression_*`).

#![no_main]

use fak::diag::FileId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(ast) = fak::syntax::parse(text, FileId(0)) else { return };
    let printed = fak::ast::print::file(&ast);
    let again = match fak::syntax::parse(&printed, FileId(0)) {
        Ok(a) => a,
        Err(d) => panic!("formatted text does not parse: {d:?}\n--- input\n{text}\n--- formatted\n{printed}"),
    };
    let twice = fak::ast::print::file(&again);
    assert!(ast == again, "formatting changed the tree\n--- input\n{text}\n--- formatted\n{printed}");
    assert!(printed == twice, "formatting is not idempotent\n--- first\n{printed}\n--- second\n{twice}");
});
