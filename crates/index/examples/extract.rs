//! What Quarry reads from files or whole folders, through the confined worker: the
//! `quarry extract` of this crate (the CLI wires the same calls).
//!
//! ```sh
//! cargo build --release -p quarry-index --bins --examples
//! target/release/examples/extract FILE_OR_FOLDER... [--json] [--pages A-B] [--no-ocr] [--summary]
//! ```
//!
//! Text by page (`--json`: one JSON object per file, [`quarry_index::extract::report`]), or
//! with `--summary` one tab-separated line per file: its format, pages, characters, engine and
//! warnings, or its reason.

use std::path::{Path, PathBuf};
use std::time::Instant;

use quarry_index::extract::report::{self, PageRange};
use quarry_index::extract::{Event, Extractor, ExtractorConfig, WorkerCommand};

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        entries.sort();
        for e in entries {
            files(&e, out);
        }
    } else {
        out.push(path.to_path_buf());
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let summary = args.iter().any(|a| a == "--summary");
    let no_ocr = args.iter().any(|a| a == "--no-ocr");
    let pages: Option<PageRange> = match args.iter().position(|a| a == "--pages") {
        Some(i) => Some(args.get(i + 1).map(String::as_str).unwrap_or("").parse().map_err(anyhow::Error::msg)?),
        None => None,
    };
    let page_arg = args.iter().position(|a| a == "--pages").map(|i| i + 1);
    let inputs: Vec<PathBuf> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && Some(*i) != page_arg)
        .map(|(_, a)| PathBuf::from(a))
        .collect();
    let mut list = Vec::new();
    for i in &inputs {
        files(i, &mut list);
    }
    let exe = std::env::current_exe()?;
    let worker = exe.parent().and_then(Path::parent).map(|d| d.join("quarry-extract-worker")).expect("target dir");
    let mut config = ExtractorConfig::readable(inputs.iter().map(|p| std::fs::canonicalize(p).unwrap_or(p.clone())));
    config.worker = WorkerCommand::bare(worker);
    config.ocr = !no_ocr;
    let mut extractor = Extractor::new(config)?;
    eprintln!("worker {:?}, PDF engine {:?}", extractor.info().active, extractor.info().pdfium);
    for f in &list {
        let started = Instant::now();
        let outcome = extractor.extract(f, &mut |ev| {
            if let Event::OcrPage { page, done, of } = ev {
                eprintln!("  OCR page {page} ({done}/{of})");
            }
        });
        let secs = started.elapsed().as_secs_f64();
        match outcome {
            Ok(ex) if summary => {
                let ocr = ex.pages.iter().filter(|p| p.ocr).count();
                println!(
                    "{}\tread\t{}\t{} pages{}\t{} chars\t{}\t{:.2}s\t{}",
                    f.display(),
                    ex.kind,
                    ex.pages.len(),
                    if ocr > 0 { format!(" ({ocr} by OCR)") } else { String::new() },
                    ex.chars(),
                    ex.extractor,
                    secs,
                    ex.warnings.join("; ")
                );
            }
            Ok(ex) if json => println!("{}", report::json(f, &ex, pages)),
            Ok(ex) => {
                print!("{}", report::text(f, &ex, pages));
                for w in &ex.warnings {
                    eprintln!("warning: {}: {w}", f.display());
                }
            }
            Err(e) if summary => println!(
                "{}\tREASON\t{}\t{:.2}s",
                f.display(),
                e.to_string().trim_start_matches(&format!("{}: ", f.display())),
                secs
            ),
            Err(e) => eprintln!("{e}"),
        }
    }
    Ok(())
}
