//! The built-in floor's stored snapshot (`src/generated/floor.postcard`) against its sources.

use std::path::Path;

/// The stored bytes are what checking the sources gives now. When they are not, the file is
/// rewritten (outside CI) and the test fails: rebuild and run again.
#[test]
fn embedded_floor_is_fresh() {
    let fresh = fak::snapshot::build().unwrap_or_else(|e| panic!("{e}"));
    if fresh == fak::snapshot::STORED {
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(fak::snapshot::PATH);
    if std::env::var_os("CI").is_some() {
        panic!("{} is stale: run `cargo test --test it snapshot` locally and commit the file", path.display());
    }
    std::fs::write(&path, &fresh).unwrap();
    panic!("{} was stale and has been rewritten: rebuild and run the tests again", path.display());
}

/// This binary takes the fast path; a stale or undecodable snapshot would silently fall back
/// to checking from source, which is correct but slow.
#[test]
fn the_builtin_floor_comes_from_the_snapshot() {
    assert!(fak::snapshot::load().is_some(), "the stored snapshot was not used; see embedded_floor_is_fresh");
}

/// Both ways of getting the floor give the same program.
#[test]
fn snapshot_and_source_agree() {
    let Some((sources, program)) = fak::snapshot::load() else { panic!("no snapshot") };
    let from_source = fak::load::builtin_from_source();
    let Some(checked) = from_source.program else { panic!("the floor checks clean") };
    assert_eq!(format!("{program:?}"), format!("{checked:?}"));
    let names = |s: &fak::diag::Sources| s.files().iter().map(|f| (f.name.clone(), f.text.clone())).collect::<Vec<_>>();
    assert_eq!(names(&sources), names(&from_source.sources));
}

/// The snapshot lists the regexes the floor's check accepted, so that checking a policy that
/// imports the stdlib does not parse them again: every one of them compiles now (under the
/// size limit), a regex of one's own is not among them, and a policy with a bad regex of its
/// own is still refused.
#[test]
fn the_snapshots_regexes_are_the_floors_and_compile() {
    let known = fak::snapshot::known_regexes();
    assert!(known.len() >= 100, "only {} regexes listed", known.len());
    assert!(known.windows(2).all(|w| w[0] < w[1]), "not sorted");
    for src in known {
        assert!(fak::ir::compile_regex_now(src).is_ok(), "{src:?} does not compile");
    }
    assert!(fak::snapshot::known_regex(r"shutil\s*\.\s*rmtree"));
    assert!(!fak::snapshot::known_regex(r"shutil\s*\.\s*rmtree("));
    assert!(!fak::snapshot::known_regex("my own (regex)"));
    let mut sources = fak::diag::Sources::new();
    let text = "import std.shell;\ndeny bad on Bash when args.command matches r\"shutil(\";\n";
    let id = sources.add("bad.fak", text);
    let (program, diags) = fak::check::check(&mut sources, id, &fak::check::StdOnly);
    assert!(program.is_none() && !diags.is_empty(), "a bad regex of one's own checked clean");
}
