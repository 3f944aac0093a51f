//! The loop's integration tests, one binary: a scripted fake root model and a fake sub model
//! against the real sandboxed REPL worker. The loop against the real 0.5B model lives with the
//! `quarry` binary that serves it (crates/cli/tests/it/rlm_real_model.rs).

mod corpus;
mod scripted;
