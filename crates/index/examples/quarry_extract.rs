//! quarry's extraction commands, built without the rest of `quarry` (which links llama.cpp):
//! the very modules `crates/cli` wires (`crates/cli/src/extract.rs`,
//! `crates/cli/src/bench/extract.rs`) behind the same `worker extract` dispatch, so they are
//! compiled and run here.
//!
//! ```sh
//! cargo build --release -p quarry-index --examples
//! target/release/examples/quarry_extract extract FILE... [--json] [--pages A-B] [--no-ocr]
//! target/release/examples/quarry_extract bench extract --corpus DIR [--json]
//! ```

#[path = "../../cli/src/bench/extract.rs"]
mod bench_extract;
#[path = "../../cli/src/extract.rs"]
mod extract;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Extract(extract::ExtractArgs),
    #[command(subcommand)]
    Bench(Bench),
    #[command(subcommand)]
    Worker(Worker),
}

#[derive(Subcommand)]
enum Bench {
    Extract(bench_extract::BenchExtractArgs),
}

#[derive(Subcommand)]
enum Worker {
    Extract,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // Before anything else starts a thread: the worker unshares namespaces.
        Command::Worker(Worker::Extract) => quarry_index::extract::worker::main(),
        Command::Extract(args) => extract::run(args),
        Command::Bench(Bench::Extract(args)) => bench_extract::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
