//! `quarry`: the headless tool. Everything the desktop app does is reachable from here, which is
//! also how tests, benchmarks and evaluations drive the system. This file only parses and
//! dispatches; each command family lives in its own module.

mod ask;
mod bench;
mod eval;
mod extract;
mod flags;
mod grep;
mod history;
mod index;
mod models;
mod progress;
mod repl;
mod serve;
mod system;
mod worker;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "quarry", version, about = "Ask questions of a whole folder with local language models.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List, download, verify and import models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Answer a question about a folder with a local model.
    Ask(ask::AskArgs),
    /// Answer an evaluation task file (evalkit format) and write predictions.
    Eval(eval::EvalArgs),
    /// Print what Quarry reads from files: their text by page (or JSON), through the confined
    /// extraction worker a folder is read with.
    Extract(extract::ExtractArgs),
    /// Search a collection's text as ripgrep does (pages and lines of PDFs and Office files too).
    Grep(grep::GrepArgs),
    /// The questions asked before: list, show, search, export, remove or ask one again.
    #[command(subcommand)]
    History(history::HistoryCommand),
    /// Collections: folders indexed once (tantivy + a SQLite catalog) and kept up to date.
    #[command(subcommand)]
    Index(index::IndexCommand),
    /// An interactive sandboxed Python, as the RLM's root model gets it.
    Repl(repl::ReplArgs),
    /// Serve local models through an OpenAI-compatible HTTP API.
    Serve(serve::ServeArgs),
    /// What this machine and build run models on: CPU features and the kernels selected.
    System(system::SystemArgs),
    /// Measure speed next to the reference tools.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Child processes started by quarry itself (not for direct use).
    #[command(subcommand, hide = true)]
    Worker(worker::WorkerCommand),
}

fn main() -> std::process::ExitCode {
    quarry_engine::prepare_process_env();
    quarry_llm::logging::init();
    let cli = Cli::parse();
    if let Command::Worker(cmd) = &cli.command {
        worker::run(cmd); // before the runtime: the workers must start single-threaded
    }
    // Folders are read by this same executable's `worker extract`, confined (crates/index).
    quarry_index::set_default_worker(quarry_index::WorkerCommand::current_exe());
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Models(cmd) => models::run(cmd).await,
            Command::Ask(args) => ask::run(args).await,
            Command::Eval(args) => eval::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Repl(args) => repl::run(args),
            Command::Bench(cmd) => bench::run(cmd).await,
            Command::System(args) => system::run(args),
            Command::Extract(args) => extract::run(args),
            Command::Index(cmd) => index::run(cmd).await,
            Command::History(cmd) => history::run(cmd).await,
            Command::Grep(args) => grep::run(args).await,
            Command::Worker(_) => unreachable!("handled before the runtime starts"),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
