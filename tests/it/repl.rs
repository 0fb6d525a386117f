//! `fak preflight` on a terminal: the line editor through a pseudo-terminal (rexpect), as a
//! person types into it — Tab completion, JSON over several lines, colour, history kept
//! across sessions, `NO_COLOR`. What each input answers is covered through a pipe in cli.rs.

use std::process::Command;

use rexpect::session::{spawn_command, PtySession};

const BIN: &str = env!("CARGO_BIN_EXE_fak");
const ENTER: &str = "\r";

fn start(state: &std::path::Path, no_color: bool) -> PtySession {
    let mut cmd = Command::new(BIN);
    cmd.args(["preflight", "--trace", "pty", "--state-dir"]).arg(state);
    cmd.env("TERM", "xterm").env_remove("NO_COLOR");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let mut p = spawn_command(cmd, Some(20_000)).unwrap();
    p.exp_string("Tab completes").unwrap();
    p.exp_string("fak> ").unwrap();
    p
}

/// Types `keys` (rexpect buffers what is sent until a flush).
fn keys(p: &mut PtySession, keys: &str) {
    p.send(keys).unwrap();
    p.flush().unwrap();
}

fn quit(mut p: PtySession) {
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn the_repl_edits_completes_colours_and_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path();
    let mut p = start(st, false);

    // A denied call, its verdict in red.
    keys(&mut p, &format!("Bash rm -rf ~/{ENTER}"));
    p.exp_string("\x1b[1;31mverdict=DENY\x1b[0m reason=POLICY_BLOCK by=shell.rm-recursive").unwrap();

    // `:wh` + Tab completes to `:why`; the rule's source is shown, its name underlined.
    keys(&mut p, &format!(":wh\t{ENTER}"));
    p.exp_string("decided by rule `shell.rm-recursive` at std.shell:").unwrap();
    p.exp_string("command: rm -rf ~/").unwrap();
    p.exp_regex(r"\| deny rm-recursive on Bash").unwrap();
    p.exp_regex(r"\|\s+\x1b\[1;31m\^{12}\x1b\[0m").unwrap();

    // A tool name and an argument key completed with Tab, the JSON typed over two lines:
    // Enter on open brackets goes on to the next line instead of deciding.
    keys(&mut p, &format!("Mult\t{{\"fi\t\".git/hooks/pre-commit\", \"edits\": [{ENTER}"));
    p.exp_string("\r\n").unwrap();
    keys(&mut p, &format!("{{\"old_string\": \"a\", \"new_string\": \"b\"}}]}}{ENTER}"));
    p.exp_string("\x1b[1;31mverdict=DENY\x1b[0m reason=SELF_MODIFY by=selfmod.vcs").unwrap();

    // An allowed one in green.
    keys(&mut p, &format!("Bash ls -la{ENTER}"));
    p.exp_string("\x1b[32mverdict=ALLOW\x1b[0m reason=NONE").unwrap();
    quit(p);

    // The history outlives the session: the previous session's last input is one Up away.
    let history = std::fs::read_to_string(st.join("repl-history")).unwrap();
    assert!(history.contains("Bash rm -rf ~/") && history.contains("Bash ls -la"), "{history}");
    assert!(history.contains("MultiEdit {\"file_path\": \".git/hooks/pre-commit\""), "{history}");
    let mut p = start(st, true);
    keys(&mut p, &format!("\x1b[A\x1b[A{ENTER}"));
    // NO_COLOR: the same answer without escapes.
    p.exp_string("\nverdict=DENY reason=SELF_MODIFY by=selfmod.vcs").unwrap();
    quit(p);
}

/// A `:load` of a broken policy shows its diagnostics and keeps deciding with the old one;
/// completion then offers the new policy's tool names.
#[test]
fn the_repl_loads_policies_and_completes_their_tools() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.fak");
    std::fs::write(&good, "allow db on mcp__db__query;\n").unwrap();
    let bad = dir.path().join("bad.fak");
    std::fs::write(&bad, "allow db on mcp__db__query\n").unwrap();
    let mut p = start(dir.path(), true);
    keys(&mut p, &format!(":load {}{ENTER}", bad.display()));
    p.exp_string("still deciding with the one loaded before").unwrap();
    keys(&mut p, &format!(":load {}{ENTER}", good.display()));
    p.exp_string("loaded ").unwrap();
    keys(&mut p, &format!("mcp__d\t{{}}{ENTER}"));
    p.exp_string("verdict=ALLOW reason=NONE by=db").unwrap();
    keys(&mut p, &format!("Bash ls{ENTER}"));
    p.exp_string("verdict=DENY reason=DEFAULT_DENY").unwrap();
    keys(&mut p, &format!(":quit{ENTER}"));
    p.exp_eof().unwrap();
}
