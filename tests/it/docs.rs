//! The documentation's policies are real: every ```fak block in README.md and
//! docs/POLICY.md checks with no diagnostics (warnings included) and its `test` blocks pass,
//! as docs/POLICY.md promises. (docs/diagnostics.md's examples are mistakes on purpose; the
//! check suite covers them.)

use crate::util;

fn blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == "```fak" => current = Some((n + 2, String::new())),
            Some(_) if line.trim_start() == "```" => out.extend(current.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn documented_policies_check_clean_and_pass_their_tests() {
    let mut cases = util::Cases::new();
    for doc in ["README.md", "docs/POLICY.md"] {
        let text = std::fs::read_to_string(util::root().join(doc)).unwrap();
        let found = blocks(&text);
        assert!(!found.is_empty(), "{doc} has no fak blocks");
        // Blocks that start `# file: PATH` are files of one example: written to a directory,
        // and the one named `policy.fak` is loaded from there.
        let dir = tempfile::tempdir().unwrap();
        for (_, src) in &found {
            if let Some(name) = src.lines().next().and_then(|l| l.strip_prefix("# file: ")) {
                let path = dir.path().join(name.trim());
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, src).unwrap();
            }
        }
        for (line, src) in found {
            let file = src.lines().next().and_then(|l| l.strip_prefix("# file: ")).map(str::trim);
            if file.is_some_and(|f| f != "policy.fak") {
                continue; // checked through the policy that imports it
            }
            cases.case(&format!("{doc}:{line}"), || {
                let loaded = match file {
                    Some(f) => fak::load::from_path(&dir.path().join(f)),
                    None => fak::load::from_source("example.fak", &src),
                };
                let rendered = util::render(&loaded.diags, &loaded.sources);
                assert!(loaded.diags.is_empty(), "{rendered}");
                let policy = loaded.into_result().map_err(|_| "errors").unwrap();
                let failed: Vec<String> = fak::policytest::run(&policy)
                    .iter()
                    .filter(|o| !o.passed())
                    .map(|o| format!("{}: {}", o.test.name, o.failures.join("; ")))
                    .collect();
                assert!(failed.is_empty(), "failing tests:\n  {}", failed.join("\n  "));
            });
        }
    }
    cases.finish("documented policies");
}
