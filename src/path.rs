//! Lexical path normalisation: what a path names, without touching the file system.

/// Makes `p` absolute against `workspace` and removes `.`, `..`, repeated and trailing `/`.
/// `..` above the root stays at the root, as the kernel resolves it.
pub fn normalize(p: &str, workspace: &str) -> String {
    // One pass over the bytes, popping back to the last `/` on `..`: this runs for every
    // path-typed argument of every decision.
    let mut out = String::with_capacity(p.len() + workspace.len() + 1);
    let base = if p.starts_with('/') { "" } else { workspace };
    for part in [base, p] {
        for seg in part.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    let cut = out.rfind('/').unwrap_or(0);
                    out.truncate(cut);
                }
                s => {
                    out.push('/');
                    out.push_str(s);
                }
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
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
}
