//! The labelled corpus (tests/data/corpus/calls.jsonl): every call gets its label from
//! `fak preflight --batch` on the built-in floor. A JUDGEMENT-marked case the floor decides
//! differently must be listed, with the reason, in docs/decisions/0002-corpus-judgements.md —
//! and a listed case must really differ, so the document stays true.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value as Json;

use crate::util;

const BIN: &str = env!("CARGO_BIN_EXE_fak");

/// At most this share of the labelled cases may be decided against their label.
const MAX_DEVIATIONS_PERCENT: usize = 2;

struct Case {
    id: String,
    expect: String,
    category: String,
    judgement: bool,
    line: String,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(util::data("corpus/calls.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let j: Json = serde_json::from_str(l).unwrap();
            let s = |k: &str| j.get(k).and_then(Json::as_str).unwrap_or_default().to_string();
            Case {
                id: s("id"),
                expect: s("expect"),
                category: s("category"),
                judgement: s("note").starts_with("JUDGEMENT"),
                line: l.to_string(),
            }
        })
        .collect()
}

/// The ids docs/decisions/0002-corpus-judgements.md lists as decided against their label:
/// lines `- \`cNNN\`: ...` under its "Deviations" heading.
fn listed_deviations() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(util::root().join("docs/decisions/0002-corpus-judgements.md")).unwrap();
    let Some((_, section)) = doc.split_once("## Deviations") else { return BTreeSet::new() };
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split_once('`').map(|(id, _)| id.to_string()))
        .collect()
}

#[test]
fn every_call_gets_its_label_from_preflight() {
    let cases = cases();
    assert!(cases.len() >= 200, "the corpus has {} cases", cases.len());
    let input: String = cases.iter().map(|c| format!("{}\n", c.line)).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("calls.jsonl");
    std::fs::write(&file, input).unwrap();
    let out = Command::new(BIN)
        .args(["preflight", "--batch"])
        .arg(&file)
        .args(["--workspace", "/workspace/repo", "--home", "/home/dev"])
        .output()
        .unwrap();
    assert!(out.status.success(), "preflight failed: {}", String::from_utf8_lossy(&out.stderr));
    let verdicts: Vec<Json> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(verdicts.len(), cases.len(), "one verdict per call");

    let listed = listed_deviations();
    let mut unexpected = Vec::new();
    let mut deviations = BTreeSet::new();
    for (c, v) in cases.iter().zip(&verdicts) {
        let got = v["verdict"].as_str().unwrap_or_default();
        if got == c.expect {
            continue;
        }
        deviations.insert(c.id.clone());
        if !(c.judgement && listed.contains(&c.id)) {
            unexpected.push(format!(
                "{} [{}] expected {}, got {} by {} ({}): {}",
                c.id,
                c.category,
                c.expect,
                got,
                v["by"]["rule"].as_str().unwrap_or_default(),
                v["reason"].as_str().unwrap_or_default(),
                c.line.chars().take(160).collect::<String>()
            ));
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} calls decided against their label:\n  {}",
        unexpected.len(),
        unexpected.join("\n  ")
    );
    let stale: Vec<&String> = listed.difference(&deviations).collect();
    assert!(stale.is_empty(), "docs/decisions/0002-corpus-judgements.md lists {stale:?}, which now get their label");
    assert!(
        deviations.len() * 100 <= cases.len() * MAX_DEVIATIONS_PERCENT,
        "{} deviations is more than {MAX_DEVIATIONS_PERCENT}% of {} cases",
        deviations.len(),
        cases.len()
    );
}

/// The copy in tests/data matches the shared corpus when that is beside the repository.
#[test]
fn the_copy_matches_the_shared_corpus() {
    let shared = util::root().join("../shared/corpus/calls.jsonl");
    if let Ok(text) = std::fs::read_to_string(&shared) {
        let copy = std::fs::read_to_string(util::data("corpus/calls.jsonl")).unwrap();
        assert!(text == copy, "tests/data/corpus/calls.jsonl differs from {}: copy it again", shared.display());
    }
}
