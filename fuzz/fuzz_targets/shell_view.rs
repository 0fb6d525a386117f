//! Any text as a Bash command: the shell view never panics, and the plain reader and
//! brush-parser give one view of every script (the plain reader gives up on what it does not
//! read, so the two must agree wherever brush-parser reads every word).

#![no_main]

use libfuzzer_sys::fuzz_target;

/// brush-parser's own panics are caught by fak, which makes the script opaque (tested in
/// tests/it/shell.rs); libFuzzer's hook would abort on them before `catch_unwind` runs, so
/// only panics elsewhere reach it.
fn quiet_brush_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("brush-parser")) {
                fuzzer_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    quiet_brush_panics();
    let Ok(script) = std::str::from_utf8(data) else { return };
    let fast = fak::shell::view(script, "/workspace/repo", "/home/dev");
    let slow = fak::shell::view_by_brush(script, "/workspace/repo", "/home/dev");
    // Where brush-parser misreads a script the plain reader reads as bash does, the plain
    // reader's view stands (`fak::shell::brush_misread`).
    assert!(fast == slow || fak::shell::brush_misread(script, &slow), "{script:?}\n  plain reader: {fast:#?}\n  brush-parser: {slow:#?}");
});
