//! `quarry worker ...`: the child processes the host starts of its own executable. Not for
//! people: they speak JSON lines on stdin/stdout.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum WorkerCommand {
    /// The sandboxed Python REPL worker (see crates/repl).
    Repl,
}

/// Runs before the async runtime exists: the REPL worker must still be single-threaded when it
/// unshares its user and network namespaces. Never returns.
pub fn run(cmd: &WorkerCommand) -> ! {
    match cmd {
        WorkerCommand::Repl => quarry_repl::worker::main(),
    }
}
