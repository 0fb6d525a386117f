//! Links the `fak` binary as a fixed-address (non-PIE) executable on Linux.
//!
//! A position-independent executable carries some 13,000 relative relocations that the
//! dynamic loader applies, page by page, at every start: about half a millisecond, a sixth of
//! `fak preflight`'s 3 ms budget (benches/README.md). Linked non-PIE, the linker applies them
//! once. Only the binary is affected; the library and its users are built as usual.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
