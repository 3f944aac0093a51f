//! `quarry extract FILE_OR_FOLDER... [--json | --summary] [--pages A-B] [--no-ocr]`: what Quarry
//! reads from files — the text by page, one JSON object per file (pages, labels, warnings, the
//! extractor used), or one summary line per file — through the same confined worker a folder is
//! read with. It doubles as the way to debug an answer ("what did the model actually see?").
//! A folder is read file by file, in path order. A file that gives no text gets one sentence on
//! stderr naming it (or a `REASON` line with `--summary`); the exit code is then 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use quarry_index::extract::report::{self, PageRange};
use quarry_index::extract::{Event, Extractor, ExtractorConfig, WorkerCommand};
use quarry_index::Error;

#[derive(Args)]
pub struct ExtractArgs {
    /// The files to read; a folder stands for every file under it.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// One JSON object per file: pages (number, label, lines, text), warnings, extractor.
    #[arg(long, conflicts_with = "summary")]
    json: bool,
    /// One tab-separated line per file: its format, pages, characters, extractor, seconds and
    /// warnings, or `REASON` and why it gave no text.
    #[arg(long)]
    summary: bool,
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

/// Every file under `path` (itself when it is not a folder), sorted.
fn expand(path: &Path, out: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(rd) if path.is_dir() => {
            let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for e in entries {
                if !e.is_symlink() || !e.is_dir() {
                    expand(&e, out);
                }
            }
        }
        _ => out.push(path.to_path_buf()),
    }
}

pub fn run(args: ExtractArgs) -> anyhow::Result<ExitCode> {
    let readable: Vec<PathBuf> =
        args.files.iter().map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())).collect();
    let mut files = Vec::new();
    let mut failed = false;
    for f in &args.files {
        if std::fs::symlink_metadata(f).is_err() {
            eprintln!("{}: no such file or folder", f.display());
            failed = true;
            continue;
        }
        expand(f, &mut files);
    }
    let mut config = ExtractorConfig::readable(readable);
    config.worker = WorkerCommand::current_exe();
    config.ocr = !args.no_ocr;
    config.timeout = Duration::from_secs(args.timeout);
    let mut extractor = Extractor::new(config)?;
    let mut out = std::io::stdout().lock();
    for file in &files {
        let abs = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
        let started = Instant::now();
        let outcome = extractor.extract(&abs, &mut |ev| match ev {
            Event::OcrPage { page, done, of } => eprintln!("OCR {} p. {page} ({} of {of})", file.display(), done + 1),
            Event::Restarted { reason } => eprintln!("warning: {}: {reason}; the worker was restarted", file.display()),
        });
        let secs = started.elapsed().as_secs_f64();
        match outcome {
            Ok(ex) if args.summary => {
                let ocr = ex.pages.iter().filter(|p| p.ocr).count();
                writeln!(
                    out,
                    "{}\t{}\t{} {}{}{}\t{} chars\t{}\t{secs:.2}s\t{}",
                    file.display(),
                    ex.kind.name(),
                    ex.pages.len(),
                    ex.kind.unit(),
                    if ex.pages.len() == 1 { "" } else { "s" },
                    if ocr > 0 { format!(" ({ocr} by OCR)") } else { String::new() },
                    ex.chars(),
                    ex.extractor,
                    ex.warnings.join("; ")
                )?;
            }
            Ok(ex) if args.json => writeln!(out, "{}", report::json(file, &ex, args.pages))?,
            Ok(ex) => {
                write!(out, "{}", report::text(file, &ex, args.pages))?;
                for w in &ex.warnings {
                    eprintln!("warning: {}: {w}", file.display());
                }
            }
            Err(Error::Unreadable { reason, .. }) => {
                failed = true;
                if args.summary {
                    writeln!(out, "{}\tREASON\t{reason}\t{secs:.2}s", file.display())?;
                } else {
                    eprintln!("{}: {reason}", file.display());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
