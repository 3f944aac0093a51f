//! `quarry bench ...`: speed measurements printed next to the reference they compete with,
//! measured in the same run.

mod llm;
mod repl;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The local engine: raw llama.cpp vs served, concurrency, prefix caching.
    Llm(llm::BenchLlmArgs),
    /// The sandboxed REPL: worker spawn, execution and llm_query round trips, context loading.
    Repl(repl::BenchReplArgs),
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        BenchCommand::Llm(args) => llm::run(args).await,
        BenchCommand::Repl(args) => repl::run(args),
    }
}
