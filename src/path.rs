//! Lexical path normalisation: what a path names, without touching the file system.
//!
//! Two forms. `normalize` is the path as written, made absolute and cleaned (`.`, `..`, `//`,
//! trailing `/`): what explanations show. `canonical` is the form rules compare: normalised,
//! then folded the way case-insensitive file systems fold names — git's `core.protectHFS` and
//! `core.protectNTFS` guard against exactly these aliases of `.git`:
//!
//! - letters are lower-cased (APFS, HFS+ and NTFS find `.GIT` as `.git`);
//! - code points HFS+ ignores are removed (`.g\u{200c}it` is `.git`, CVE-2014-9390);
//! - trailing dots and spaces of a name are dropped (NTFS opens `.git.` and `.git ` as `.git`);
//! - the NTFS 8.3 short name `git~1` is `.git` (CVE-2019-1353).
//!
//! Folding is on for every path comparison (`glob`, `==`, `in`, `starts_with` on paths):
//! over-matching a protected path costs a refusal, under-matching costs the repository.

/// Makes `p` absolute against `workspace` and removes `.`, `..`, repeated and trailing `/`.
/// `..` above the root stays at the root, as the kernel resolves it.
pub fn normalize(p: &str, workspace: &str) -> String {
    if is_canonical(p) {
        // Absolute and clean already (and more): every shell view normalises its cwd.
        return p.to_string();
    }
    let mut out = String::with_capacity(p.len() + workspace.len() + 1);
    if !p.starts_with('/') {
        push_names(&mut out, workspace);
    }
    push_names(&mut out, p);
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// `normalize` against a workspace that is normalised already (`TraceState::workspace`, a
/// canonical workspace key): it is copied, not read name by name.
pub fn normalize_in(p: &str, workspace_norm: &str) -> String {
    let mut out = String::with_capacity(p.len() + workspace_norm.len() + 1);
    if !p.starts_with('/') && workspace_norm != "/" {
        out.push_str(workspace_norm);
    }
    push_names(&mut out, p);
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Appends the names of `part` to `out` (`/name` each), dropping empty names and `.`, and
/// popping back to the last `/` on `..`. This runs for every path-typed argument of every
/// decision: one pass over the bytes (paths are short: a loop costs less than `memchr`'s
/// set-up), the names copied whole.
fn push_names(out: &mut String, part: &str) {
    let b = part.as_bytes();
    let mut start = 0;
    for end in (0..=b.len()).filter(|&i| i == b.len() || b.get(i) == Some(&b'/')) {
        match b.get(start..end).unwrap_or_default() {
            [] | [b'.'] => {}
            [b'.', b'.'] => {
                let cut = out.rfind('/').unwrap_or(0);
                out.truncate(cut);
            }
            _ => {
                out.push('/');
                out.push_str(part.get(start..end).unwrap_or_default());
            }
        }
        start = end + 1;
    }
}

/// The form of a path rules compare: `normalize`d, then folded as a case-insensitive file
/// system would (see the module documentation). Idempotent.
pub fn canonical(p: &str, workspace: &str) -> String {
    if is_canonical(workspace) {
        // The common case: no workspace to fold, and `canonical_in`'s one-copy paths.
        return canonical_in(p, workspace).into_owned();
    }
    canonical_cow(p, workspace).into_owned()
}

/// `canonical`, borrowing `p` when it is canonical already (the common case for paths a view
/// computed): no allocation then.
pub fn canonical_cow<'a>(p: &'a str, workspace: &str) -> std::borrow::Cow<'a, str> {
    if is_canonical(p) {
        return std::borrow::Cow::Borrowed(p);
    }
    // Names are folded before `.` and `..` are resolved: `..\u{200c}` names the parent on
    // HFS+, so it must climb here too.
    std::borrow::Cow::Owned(normalize(&fold(p), &fold(workspace)))
}

/// `canonical_cow` against a workspace already in canonical form (`eval::Input::workspace_key`):
/// the workspace is not folded again.
pub fn canonical_in<'a>(p: &'a str, workspace_key: &str) -> std::borrow::Cow<'a, str> {
    if is_canonical(p) {
        return std::borrow::Cow::Borrowed(p);
    }
    if is_canonical_relative(p) {
        // The common case: `src/main.rs`. Nothing to fold or clean, only to place.
        let mut out = String::with_capacity(workspace_key.len() + 1 + p.len());
        if workspace_key != "/" {
            out.push_str(workspace_key);
        }
        out.push('/');
        out.push_str(p);
        return std::borrow::Cow::Owned(out);
    }
    // `fold` borrows a path with nothing to fold (`is_folded`).
    std::borrow::Cow::Owned(normalize_in(&fold(p), workspace_key))
}

/// Whether `fold` would leave `p` as it is, by a cheaper test that may say no to some paths
/// `fold` leaves alone: ASCII without capitals or `~`, and no name ending in a dot or a space
/// but `.` and `..`. One pass over the bytes.
fn is_folded(p: &str) -> bool {
    let b = p.as_bytes();
    let mut name_start = 0;
    for (i, &c) in b.iter().enumerate() {
        if !c.is_ascii() || c.is_ascii_uppercase() || c == b'~' {
            return false;
        }
        if c == b'/' {
            if !plain_name_end(b.get(name_start..i).unwrap_or_default()) {
                return false;
            }
            name_start = i + 1;
        }
    }
    plain_name_end(b.get(name_start..).unwrap_or_default())
}

/// A name NTFS would not trim: not ending in a dot or a space, or exactly `.` or `..`.
fn plain_name_end(name: &[u8]) -> bool {
    !matches!(name.last(), Some(b'.' | b' ')) || name == b"." || name == b".."
}

/// Whether `canonical` would return `p` unchanged: absolute, no empty, `.` or `..` name, no
/// trailing `/` (but `/` itself), and every name folded (ASCII without capitals, no trailing
/// dot or space, not `git~1`). One pass over the bytes; anything not ASCII takes the slow path.
pub fn is_canonical(p: &str) -> bool {
    let b = p.as_bytes();
    match b {
        [] => return false,
        [b'/'] => return true,
        [_] => return false,
        [first, .., last] if *first != b'/' || matches!(last, b'/' | b'.' | b' ') => return false,
        _ => {}
    }
    names_canonical(b, 0)
}

/// Whether `"/" + p` is canonical, for a relative `p`: then `p` placed in a canonical
/// workspace is canonical as it stands, and placing it is one copy.
fn is_canonical_relative(p: &str) -> bool {
    let b = p.as_bytes();
    match b {
        [] | [b'/', ..] | [.., b'/' | b'.' | b' '] => false,
        // As if after a `/`: a leading `./`, `../` or `/` ends a name badly.
        _ => names_canonical(b, SLASH | ENDS_NAME_BADLY),
    }
}

/// The per-byte half of `is_canonical`: no byte a canonical path never holds, no name that
/// is empty, `.`, `..` or ends in a dot or a space before a `/` (exactly when a `/` follows a
/// `/`, `.` or space), no `git~1`. `prev` is the class of the byte before `b`. Branch-free, a
/// table look-up a byte: this runs on every path a rule compares.
fn names_canonical(b: &[u8], mut prev: u8) -> bool {
    let (mut seen, mut pairs) = (0u8, 0u8);
    for &c in b {
        let k = BYTE_CLASS.get(c as usize).copied().unwrap_or(BAD);
        seen |= k;
        pairs |= prev & (k << 1);
        prev = k;
    }
    if seen & BAD != 0 || pairs & ENDS_NAME_BADLY != 0 {
        return false;
    }
    // `git~1` (a short name of `.git`) is rare: only then are the names looked at.
    seen & TILDE == 0 || !b.split(|c| *c == b'/').any(|seg| seg.eq_ignore_ascii_case(b"git~1"))
}

/// `is_canonical`'s byte classes: a `/` (`SLASH`); a byte a name must not end in before a
/// `/` (`ENDS_NAME_BADLY`: `/`, `.`, space), set one bit above `SLASH` so that
/// `prev & (k << 1)` is a bad name end followed by a `/`; a byte a canonical path never holds
/// (`BAD`: not ASCII, a capital); `~`.
const SLASH: u8 = 1;
const ENDS_NAME_BADLY: u8 = 2;
const BAD: u8 = 4;
const TILDE: u8 = 8;
// Indexing in a const block: an index out of bounds fails the build, never a decision.
#[allow(clippy::indexing_slicing)]
const BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b'/' => SLASH | ENDS_NAME_BADLY,
            b'.' | b' ' => ENDS_NAME_BADLY,
            b'A'..=b'Z' | 0x80..=0xff => BAD,
            b'~' => TILDE,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// Folds every name of a path (see the module documentation); `/`s are kept as they are.
pub fn fold(p: &str) -> std::borrow::Cow<'_, str> {
    let plain = is_folded(p)
        || p.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase())
            && !p.contains("~1")
            && !p.split('/').any(needs_trim);
    if plain {
        return std::borrow::Cow::Borrowed(p);
    }
    let mut out = String::with_capacity(p.len());
    for (i, seg) in p.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let kept: String = seg.chars().filter(|c| !is_ignorable(*c)).collect::<String>().to_lowercase();
        let trimmed = if needs_trim(&kept) { kept.trim_end_matches(['.', ' ']) } else { kept.as_str() };
        out.push_str(if trimmed == "git~1" { ".git" } else { trimmed });
    }
    std::borrow::Cow::Owned(out)
}

/// Whether NTFS would drop trailing dots or spaces from this name (never from `.` or `..`,
/// nor from a name that is only dots and spaces).
fn needs_trim(seg: &str) -> bool {
    seg.ends_with(['.', ' ']) && seg != "." && seg != ".." && !seg.trim_end_matches(['.', ' ']).is_empty()
}

/// Code points HFS+ ignores in file names (the list git's `is_hfs_dotgit` skips), and the
/// other invisible format characters that render as nothing.
pub fn is_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{206a}'..='\u{206f}' | '\u{feff}')
}

/// The path relative to the workspace root, when it lies inside it (`""` for the root).
pub fn relative<'a>(abs: &'a str, workspace_norm: &str) -> Option<&'a str> {
    if workspace_norm == "/" {
        return abs.strip_prefix('/');
    }
    let rest = abs.strip_prefix(workspace_norm)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/')
    }
}

/// Whether `path` is `prefix` or lies under it, component-wise.
pub fn starts_with(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(normalize("src/./main.rs", "/ws"), "/ws/src/main.rs");
        assert_eq!(normalize("../x//y/", "/ws/repo"), "/ws/x/y");
        assert_eq!(normalize("/../../etc", "/ws"), "/etc");
        assert_eq!(normalize("", "/ws"), "/ws");
        assert_eq!(relative("/ws/a/b", "/ws"), Some("a/b"));
        assert_eq!(relative("/wsx/a", "/ws"), None);
        assert!(starts_with("/etc/passwd", "/etc"));
        assert!(!starts_with("/etcx", "/etc"));
    }

    #[test]
    fn canonical_folds_what_case_insensitive_file_systems_fold() {
        let ws = "/workspace/repo";
        assert_eq!(canonical(".GIT/config", ws), "/workspace/repo/.git/config");
        assert_eq!(canonical(".g\u{200c}it/hooks/pre-commit", ws), "/workspace/repo/.git/hooks/pre-commit");
        assert_eq!(canonical("GIT~1/config", ws), "/workspace/repo/.git/config");
        assert_eq!(canonical(".git./config", ws), "/workspace/repo/.git/config");
        assert_eq!(canonical(".git /config", ws), "/workspace/repo/.git/config");
        assert_eq!(canonical("Internal/Kernel/x.go", ws), "/workspace/repo/internal/kernel/x.go");
        assert_eq!(canonical("a/.../b", ws), "/workspace/repo/a/.../b");
        assert_eq!(canonical("src/main.rs", ws), "/workspace/repo/src/main.rs");
        assert_eq!(canonical("/Users/Dev/X", ws), "/users/dev/x");
        // Names are folded before `..` is resolved.
        assert_eq!(canonical("a./..", ws), "/workspace/repo");
        assert_eq!(canonical("src/..\u{200c}/.git/config", ws), "/workspace/repo/.git/config");
        assert_eq!(canonical("x/\u{200c}/y", ws), "/workspace/repo/x/y");
        assert_eq!(canonical("a", "/Work/Repo"), "/work/repo/a");
        for p in [".GIT/config", "a. /b", "GIT~1", "\u{feff}x", "/", "/a/b", "a/../../..", "/x/"] {
            let once = canonical(p, ws);
            assert_eq!(canonical(&once, ws), once, "{p:?}");
            assert!(is_canonical(&once) || !once.is_ascii(), "{once:?}");
        }
        for p in ["/a//b", "/a/./b", "/a/../b", "/a/", "/A", "/a./b", "/git~1", "a", "", "/a/.."] {
            assert!(!is_canonical(p), "{p:?}");
            assert_ne!(canonical(p, ws), p, "{p:?}");
        }
    }

    /// `is_canonical` never says yes to a path `canonical` would change, and says yes to the
    /// plain ones: every string of up to five characters over the bytes that matter.
    #[test]
    fn is_canonical_is_exact_on_ascii() {
        let alphabet = ['/', '.', ' ', 'a', 'A', '~', 'g', 'i', 't', '1'];
        let mut words = vec![String::new()];
        for _ in 0..5 {
            let mut next = Vec::new();
            for w in &words {
                for c in alphabet {
                    next.push(format!("{w}{c}"));
                }
            }
            for w in &words {
                if is_canonical(w) {
                    assert_eq!(canonical(w, "/ws"), *w);
                }
                if is_folded(w) {
                    assert_eq!(fold(w), *w, "{w:?}");
                }
                if is_canonical_relative(w) {
                    assert!(is_canonical(&format!("/ws/{w}")), "{w:?}");
                    assert_eq!(canonical(w, "/ws"), format!("/ws/{w}"), "{w:?}");
                }
                assert_eq!(canonical_in(w, "/ws"), canonical(w, "/ws"), "{w:?}");
                assert_eq!(canonical(w, "/ws"), normalize(&fold(w), "/ws"), "{w:?}");
                assert_eq!(canonical(w, "/W/s."), canonical(w, "/w/s"), "{w:?}");
                // Against a workspace's canonical key, as `view::of` places paths.
                assert_eq!(canonical_in(w, &canonical("/W/s.", "/")), canonical(w, "/W/s."), "{w:?}");
                assert_eq!(normalize_in(w, "/ws"), normalize(w, "/ws"), "{w:?}");
                assert_eq!(normalize_in(w, "/"), normalize(w, "/"), "{w:?}");
                let plain = w.starts_with('/')
                    && !w.contains("//")
                    && (w.len() == 1 || !w.ends_with('/'))
                    && w.bytes().all(|c| matches!(c, b'/' | b'a' | b'g' | b'i' | b't' | b'1'));
                if plain {
                    assert!(is_canonical(w), "{w:?}");
                }
            }
            words = next;
        }
    }
}
