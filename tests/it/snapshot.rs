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
