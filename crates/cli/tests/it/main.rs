//! The `quarry` binary's integration tests, one binary: the commands end to end (a data room
//! of real documents among them), `quarry serve`
//! as a real process, the loop against the real 0.5B model served by it, and a build without
//! AMX kernels. `quarry history` over a recorded history (`history`); every test's `quarry`
//! records in a data directory under target (`common::test_data_dir`), never the user's.

mod cli;
mod common;
mod documents;
mod history;
mod index;
mod no_amx;
mod repl;
mod rlm_real_model;
mod serve;
