//! `quarry extract FILE... [--json] [--pages A-B] [--no-ocr]`: what Quarry reads from a file —
//! the text by page, or one JSON object per file with its pages, labels, warnings and the
//! extractor used — through the same confined worker a folder is read with. It doubles as the
//! way to debug an answer. Errors go to stderr as one sentence naming the file; the exit code
//! is 1 when any file gave no text.
//!
//! Wiring (not yet in main.rs): `mod extract;`, a `Command::Extract(extract::ExtractArgs)`
//! variant, and `Command::Extract(args) => extract::run(args)` in the dispatch.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use quarry_index::extract::report::{self, PageRange};
use quarry_index::extract::{Event, Extractor, ExtractorConfig, WorkerCommand};
use quarry_index::Error;

#[derive(Args)]
pub struct ExtractArgs {
    /// The files to read.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// One JSON object per file: pages (number, label, lines, text), warnings, extractor.
    #[arg(long)]
    json: bool,
    /// Only these pages: A-B, A- or A (1-based physical pages).
    #[arg(long)]
    pages: Option<PageRange>,
    /// Do not OCR pages that have no text layer (OCR costs about a second a page).
    #[arg(long)]
    no_ocr: bool,
    /// The per-file time limit, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

pub fn run(args: ExtractArgs) -> anyhow::Result<ExitCode> {
    let absolute: Vec<PathBuf> =
        args.files.iter().map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())).collect();
    let mut config = ExtractorConfig::readable(absolute.clone());
    config.worker = WorkerCommand::current_exe();
    config.ocr = !args.no_ocr;
    config.timeout = Duration::from_secs(args.timeout);
    let mut extractor = Extractor::new(config)?;
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for (file, abs) in args.files.iter().zip(&absolute) {
        let outcome = extractor.extract(abs, &mut |ev| {
            if let Event::OcrPage { page, done, of } = ev {
                eprintln!("OCR {} p. {page} ({} of {of})", file.display(), done + 1);
            }
        });
        match outcome {
            Ok(ex) if args.json => writeln!(out, "{}", report::json(file, &ex, args.pages))?,
            Ok(ex) => {
                write!(out, "{}", report::text(file, &ex, args.pages))?;
                for w in &ex.warnings {
                    eprintln!("warning: {}: {w}", file.display());
                }
            }
            Err(Error::Unreadable { reason, .. }) => {
                failed = true;
                eprintln!("{}: {reason}", file.display());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
