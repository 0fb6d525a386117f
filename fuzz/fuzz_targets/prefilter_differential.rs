//! Structured: a policy and calls drawn from the grammar of tests/it/props/gen.rs, the bytes
//! read through `arbitrary::Unstructured`; the Dag with prefilters, the Dag without and the
//! reference interpreter must agree on every call, and shuffling the policy's items must
//! not change a verdict (tests/it/props/differential.rs).
//!
//! The policy description is the sequence of grammar choices the bytes make, rather than a
//! `#[derive(Arbitrary)]` tree: the property tests and this target then share one grammar,
//! and a byte flipped by libFuzzer changes one choice.

#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/props/gen.rs"]
mod gen;

#[path = "../../tests/it/props/differential.rs"]
mod differential;

struct Bytes<'a>(Unstructured<'a>);

impl gen::Choices for Bytes<'_> {
    fn below(&mut self, n: usize) -> usize {
        // Past the end of the input every choice is 0, the simplest.
        self.0.int_in_range(0..=n.max(1) - 1).unwrap_or(0)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Bytes(Unstructured::new(data));
    if let Err(e) = differential::run(&mut c) {
        panic!("{e}");
    }
});
