//! The standard library: `stdlib/*.fak`, embedded in the binary, imported as `std.<name>`;
//! and the built-in floor, `policies/dogfood-claude.fak`, used when no `--policy` is given.

use std::sync::Arc;

/// `(module name, source)` of every stdlib module.
pub const MODULES: &[(&str, &str)] = &[
    ("tools", include_str!("../stdlib/tools.fak")),
    ("paths", include_str!("../stdlib/paths.fak")),
    ("shell", include_str!("../stdlib/shell.fak")),
    ("selfmod", include_str!("../stdlib/selfmod.fak")),
    ("egress", include_str!("../stdlib/egress.fak")),
    ("secrets", include_str!("../stdlib/secrets.fak")),
    ("injection", include_str!("../stdlib/injection.fak")),
    ("taint", include_str!("../stdlib/taint.fak")),
];

/// The built-in floor's file name and source.
pub const FLOOR: (&str, &str) = ("policies/dogfood-claude.fak", include_str!("../policies/dogfood-claude.fak"));

/// Every shipped policy file (checked clean by the tests and `fak policy --check`).
pub const POLICIES: &[(&str, &str)] = &[FLOOR];

pub fn get(path: &[String]) -> Option<(String, Arc<str>)> {
    let [name] = path else { return None };
    MODULES.iter().find(|(n, _)| *n == name.as_str()).map(|(n, text)| (format!("std.{n}"), Arc::from(*text)))
}

pub fn names() -> Vec<&'static str> {
    MODULES.iter().map(|(n, _)| *n).collect()
}
