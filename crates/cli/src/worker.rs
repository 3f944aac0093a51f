//! `quarry worker ...`: the child processes the host starts of its own executable. Not for
//! people: they speak JSON lines on stdin/stdout.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum WorkerCommand {
    /// The sandboxed Python REPL worker (see crates/repl-worker).
    Repl,
    /// The confined document extraction worker (see crates/index/src/extract).
    Extract,
}

/// Runs before the async runtime exists: the workers must still be single-threaded when they
/// unshare their user and network namespaces. Never returns.
pub fn run(cmd: &WorkerCommand) -> ! {
    match cmd {
        WorkerCommand::Repl => quarry_repl_worker::main(),
        WorkerCommand::Extract => quarry_index::extract::worker::main(),
    }
}
