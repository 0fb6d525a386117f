//! Any text as a Bash command: the shell view never panics, and the plain reader and
//! brush-parser give one view of every script (the plain reader gives up on what it does not
//! read, so the two must agree everywhere).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(script) = std::str::from_utf8(data) else { return };
    let fast = fak::shell::view(script, "/workspace/repo", "/home/dev");
    let slow = fak::shell::view_by_brush(script, "/workspace/repo", "/home/dev");
    assert!(fast == slow, "{script:?}\n  plain reader: {fast:#?}\n  brush-parser: {slow:#?}");
});
