//! `quarry bench extract --corpus DIR [--json] [--workers N]`: pages/s and MB/s by format,
//! `pdftotext` on the same PDFs in the same run, peak RSS (quarry_index::extract::bench).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use quarry_index::extract::{bench, ExtractorConfig, WorkerCommand};

#[derive(Args)]
pub struct BenchExtractArgs {
    /// The folder whose files are read (e.g. ../shared/corpora/documents).
    #[arg(long)]
    corpus: PathBuf,
    /// The whole report, per file included, as JSON.
    #[arg(long)]
    json: bool,
    /// Worker processes (0: one per CPU, at most 4, as a folder is read).
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

pub fn run(args: BenchExtractArgs) -> anyhow::Result<ExitCode> {
    let corpus = args.corpus.canonicalize()?;
    let config = ExtractorConfig { worker: WorkerCommand::current_exe(), ..Default::default() };
    let tty = std::io::stderr().is_terminal();
    let report = bench::run(&corpus, config, args.workers, &mut |i, n, f| {
        if tty {
            eprint!("\r[{}/{n}] {}\x1b[K", i + 1, f.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
        }
    })?;
    if tty {
        eprintln!();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(ExitCode::SUCCESS)
}
