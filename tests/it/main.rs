//! The integration tests: one binary, one module per suite; the cases live in tests/data,
//! the snapshots in tests/it/snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod util;

mod check;
mod cli;
mod corpus;
mod decide;
mod docs;
mod gateway;
mod grafana;
mod hook;
mod kernel;
mod parse;
mod props;
mod repl;
mod shell;
mod snapshot;
