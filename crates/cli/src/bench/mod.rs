//! `quarry bench ...`: speed measurements printed next to the reference they compete with,
//! measured in the same run.

mod extract;
mod index;
mod llm;
mod repl;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The local engine: raw llama.cpp vs served, concurrency, prefix caching.
    Llm(llm::BenchLlmArgs),
    /// Document extraction: pages/s and MB/s by format, next to pdftotext on the same PDFs.
    Extract(extract::BenchExtractArgs),
    /// Collections: cold build and no-change update of a corpus, memory, index size; or
    /// `--torture`, kill -9 at random moments while indexing, checking the index each time.
    Index(index::BenchIndexArgs),
    /// The sandboxed REPL: worker spawn, execution and llm_query round trips, context loading.
    Repl(repl::BenchReplArgs),
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        BenchCommand::Llm(args) => llm::run(args).await,
        BenchCommand::Repl(args) => repl::run(args),
        BenchCommand::Extract(args) => extract::run(args),
        BenchCommand::Index(args) => index::run(args),
    }
}

/// The `q` quantile (0.5 the median) of `samples`, nearest rank; sorts them. At least one sample.
fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}
