//! The REPL's integration tests, one binary (ripgrep's layout): everything runs against the real
//! sandboxed worker binary of this package.

mod common;
mod hostile;
mod repl;
