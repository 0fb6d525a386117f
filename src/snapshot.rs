//! The built-in floor, checked when fak was built.
//!
//! Checking the floor's sources (parse, names, types, regex syntax) takes about a millisecond
//! on a warm cache and more in a fresh process, a third of `fak preflight`'s 3 ms budget, and
//! it grows with the floor. So the checked program is stored in the binary:
//! `src/generated/floor.postcard` is the floor's IR, serialised with postcard, beside the
//! names of the files its locations point into.
//!
//! The snapshot is only an accelerator; the sources stay the truth:
//!
//! - it carries a fingerprint of the source texts it was made from, and is used only when the
//!   sources embedded in this binary have the same fingerprint; otherwise (someone edited a
//!   `.fak` file and has not regenerated) the floor is checked from source as before;
//! - a snapshot that does not decode is ignored the same way;
//! - the test `embedded_floor_is_fresh` fails when the stored bytes differ from what checking
//!   the sources gives now (which also catches a change to the checker or the IR), and
//!   rewrites the file unless it runs in CI. A release is built from a tree where it passed.
//!
//! It also lists the regex sources the check accepted (`known_regex`): a policy of one's own
//! that imports the stdlib is checked without parsing those again (regex-syntax's parse and
//! translation were most of a check). The snapshot is made without the list, and the list is
//! read only from a snapshot of this binary's sources.
//!
//! Why not a build script: the checker needs most of the crate, and a build script cannot use
//! the crate it builds.

use serde::{Deserialize, Serialize};

use crate::diag::{self, Sources};
use crate::ir::Program;
use crate::stdlib;

/// The stored snapshot.
pub const STORED: &[u8] = include_bytes!("generated/floor.postcard");

/// Where `STORED` lives, for the test that regenerates it.
pub const PATH: &str = "src/generated/floor.postcard";

/// Bumped when the snapshot's own layout changes.
const FORMAT: u64 = 2;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    fingerprint: u64,
    /// File names in `FileId` order, as the checker registered them.
    files: Vec<String>,
    /// Every regex source the checker accepted while checking the floor, sorted: a policy of
    /// one's own that imports the stdlib is checked without parsing these again
    /// (`known_regex`). Before `program`, so that `Head` decodes them alone.
    regexes: Vec<String>,
    program: Program,
}

/// The start of a `Snapshot`, decoded without the program (postcard reads fields in order
/// and leaves the rest of the bytes unread).
#[derive(Deserialize)]
struct Head {
    fingerprint: u64,
    #[allow(dead_code)] // decoded to reach `regexes`
    files: Vec<String>,
    regexes: Vec<String>,
}

/// Whether `src` is a regex this binary's checker accepted when the stored snapshot was made
/// (the snapshot is kept fresh by `embedded_floor_is_fresh`; one made from other sources, or
/// that does not decode, lists nothing).
pub fn known_regex(src: &str) -> bool {
    known_regexes().binary_search_by(|k| k.as_str().cmp(src)).is_ok()
}

/// The regexes `known_regex` knows, sorted.
pub fn known_regexes() -> &'static [String] {
    static KNOWN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(|| match postcard::from_bytes::<Head>(STORED) {
        Ok(head) if head.fingerprint == FINGERPRINT => head.regexes,
        _ => Vec::new(),
    })
}

/// FNV-1a over the floor's and every stdlib module's name and text; computed at compile time.
pub const FINGERPRINT: u64 = fingerprint();

const fn fingerprint() -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    const fn eat(mut h: u64, mut bytes: &[u8]) -> u64 {
        while let [b, rest @ ..] = bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(PRIME);
            bytes = rest;
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h.wrapping_mul(PRIME)
    }
    let mut h = eat(0xcbf2_9ce4_8422_2325, &FORMAT.to_le_bytes());
    h = eat(h, stdlib::FLOOR.0.as_bytes());
    h = eat(h, stdlib::FLOOR.1.as_bytes());
    let mut modules = stdlib::MODULES;
    while let [(name, text), rest @ ..] = modules {
        h = eat(h, name.as_bytes());
        h = eat(h, text.as_bytes());
        modules = rest;
    }
    h
}

/// Checks the floor from source and serialises the result; `Err` is the diagnostics, rendered,
/// when the floor does not check clean (warnings included: the floor has none). Only the test
/// that keeps `STORED` fresh calls this.
pub fn build() -> Result<Vec<u8>, String> {
    let (name, text) = stdlib::FLOOR;
    let mut sources = Sources::new();
    let id = sources.add(name, text);
    let (program, diags, regexes) = crate::check::check_listing_regexes(&mut sources, id, &crate::check::StdOnly);
    let program = match program {
        Some(p) if diags.is_empty() => p,
        _ => {
            let text: Vec<String> =
                diags.iter().map(|d| diag::render(d, &sources, diag::Format::Plain, false)).collect();
            return Err(format!("the built-in floor does not check clean:\n{}", text.join("\n")));
        }
    };
    let files = sources.files().iter().map(|f| f.name.clone()).collect();
    let snapshot = Snapshot { fingerprint: FINGERPRINT, files, regexes, program };
    postcard::to_stdvec(&snapshot).map_err(|e| format!("cannot serialise the checked floor: {e}"))
}

/// The stored floor and its sources, when the snapshot matches the sources in this binary.
pub fn load() -> Option<(Sources, Program)> {
    load_from(STORED)
}

fn load_from(bytes: &[u8]) -> Option<(Sources, Program)> {
    let snapshot: Snapshot = postcard::from_bytes(bytes).ok()?;
    if snapshot.fingerprint != FINGERPRINT {
        return None;
    }
    let mut sources = Sources::new();
    for name in &snapshot.files {
        let text = if name == stdlib::FLOOR.0 {
            stdlib::FLOOR.1
        } else {
            let module = name.strip_prefix("std.")?;
            stdlib::MODULES.iter().find(|(n, _)| *n == module)?.1
        };
        sources.add(name.as_str(), text);
    }
    Some((sources, snapshot.program))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_of_other_sources_is_not_used() {
        let Ok(bytes) = build() else { panic!("the floor checks clean") };
        assert!(load_from(&bytes).is_some());
        let mut snapshot: Snapshot = postcard::from_bytes(&bytes).unwrap();
        snapshot.fingerprint ^= 1;
        assert!(load_from(&postcard::to_stdvec(&snapshot).unwrap()).is_none());
    }

    #[test]
    fn a_snapshot_that_does_not_decode_is_not_used() {
        let Ok(bytes) = build() else { panic!("the floor checks clean") };
        assert!(load_from(&bytes[..bytes.len() / 2]).is_none());
        assert!(load_from(b"").is_none());
    }

    #[test]
    fn a_snapshot_naming_a_file_this_binary_lacks_is_not_used() {
        let Ok(bytes) = build() else { panic!("the floor checks clean") };
        let mut snapshot: Snapshot = postcard::from_bytes(&bytes).unwrap();
        snapshot.files.push("std.nonexistent".into());
        assert!(load_from(&postcard::to_stdvec(&snapshot).unwrap()).is_none());
    }
}
