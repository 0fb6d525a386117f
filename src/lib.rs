//! fak: a tool-call firewall for AI coding agents.
//!
//! A policy, written in the fak language (`.fak`) or as a `fak-policy/v1` JSON manifest, is
//! checked and compiled into a `Dag` that decides every tool call before it runs and every
//! tool result before the model reads it:
//!
//! ```text
//! .fak ──syntax::parse──▶ ast ──check::check──▶ ir ──compile::compile──▶ Dag ──eval::decide──▶ Verdict
//! JSON ──manifest::load────────────────────────┘
//! ```
//!
//! ```
//! use fak::eval::{Call, TraceState};
//!
//! let policy = fak::load::from_source("p.fak", r#"
//!     allow read on Read;
//!     deny no-rm on Bash reason POLICY_BLOCK when args.command matches r"\brm\s+-rf\b";
//!     allow bash on Bash;
//! "#).into_result().unwrap();
//! let call = Call { tool: "Bash".into(), args: serde_json::json!({"command": "rm -rf /"}) };
//! let v = fak::eval::decide(&policy.dag, &call, &TraceState::default());
//! assert_eq!(&*v.reason, "POLICY_BLOCK");
//! assert_eq!(&*v.by.rule, "no-rm");
//! ```
//!
//! ARCHITECTURE.md maps the modules; docs/POLICY.md is the language reference.

pub mod alloc;
pub mod ast;
pub mod audit;
pub mod check;
pub mod cli;
pub mod compile;
pub mod convert;
pub mod diag;
pub mod engine;
pub mod eval;
pub mod gateway;
pub mod ir;
pub mod ledger;
pub mod load;
pub mod manifest;
pub mod normalize;
pub(crate) mod par;
pub mod path;
pub mod policytest;
pub mod secrets;
pub mod shell;
pub mod snapshot;
pub mod stdlib;
pub mod store;
pub mod syntax;
pub mod tools;
pub mod view;
