//! `quarry bench index --corpus DIR [--json]`: a collection's cold build (MB/s and files/s,
//! text apart from documents), a no-change update, peak memory (VmHWM, and the largest
//! anonymous RSS sampled, which excludes tantivy's mapped files), and the index's size against
//! the text's. `quarry bench index --torture [--rounds N]`: kill -9 real indexing processes at
//! random moments, with edits, and check the index after each (quarry_index::collection::torture).

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use quarry_index::collection::torture::{self, TortureOptions};
use quarry_index::{Library, UpdateEvent, UpdateOptions};

#[derive(Args)]
pub struct BenchIndexArgs {
    /// The folder to index (e.g. ../shared/corpora).
    #[arg(long, required_unless_present = "torture")]
    corpus: Option<PathBuf>,
    /// Instead: kill -9 indexing processes at random moments and check the index each time.
    #[arg(long)]
    torture: bool,
    /// Rounds of --torture.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// The seed of --torture's delays and edits (a failure names it, to replay).
    #[arg(long, default_value_t = 15)]
    seed: u64,
    /// Real documents to put in --torture's fixture (PDFs, Office files), beside its text files.
    #[arg(long = "with")]
    with: Vec<PathBuf>,
    /// Reading workers (0: one per CPU, at most 4).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    #[arg(long)]
    json: bool,
}

pub fn run(args: BenchIndexArgs) -> Result<ExitCode> {
    if args.torture {
        return run_torture(&args);
    }
    let corpus = args.corpus.as_ref().expect("clap requires it").canonicalize().context("--corpus")?;
    let data = tempfile::Builder::new().prefix("quarry-bench-index-").tempdir()?;
    let mut library = Library::open(data.path())?;
    let row = library.add(&corpus, Some("bench"))?;
    let mut options = UpdateOptions { workers: args.workers, ..Default::default() };
    if let Some(c) = options.extractor.as_mut() {
        c.ocr = false;
    }
    let peak_anon = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let (cold, cold_s) = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                peak_anon.fetch_max(proc_status_kb("RssAnon:"), Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        let r = library.update(&row, &options, &|_: &UpdateEvent| {}, None);
        done.store(true, Ordering::SeqCst);
        (r, started.elapsed().as_secs_f64())
    });
    let cold = cold?;
    let again = Instant::now();
    let noop = library.update(&row, &options, &|_: &UpdateEvent| {}, None)?;
    let noop_s = again.elapsed().as_secs_f64();
    let row = library.get("bench")?;
    let status = library.status(&row)?;
    let (mut text_bytes, mut text_files, mut doc_bytes, mut doc_files) = (0u64, 0u64, 0u64, 0u64);
    for f in status.formats.iter() {
        if f.format == "text" || f.format == "csv" || f.format == "tsv" {
            text_bytes += f.bytes;
            text_files += f.files;
        } else {
            doc_bytes += f.bytes;
            doc_files += f.files;
        }
    }
    let report = serde_json::json!({
        "corpus": corpus,
        "files": status.files,
        "indexed": status.indexed,
        "failed": status.failed,
        "bytes_read": cold.bytes_read,
        "text_bytes": status.text_bytes,
        "cold_seconds": cold_s,
        "cold_mb_per_s": cold.bytes_read as f64 / cold_s / 1e6,
        "cold_files_per_s": (cold.indexed + cold.failed) as f64 / cold_s,
        "text_and_code": { "files": text_files, "bytes": text_bytes },
        "documents": { "files": doc_files, "bytes": doc_bytes },
        "batches": cold.batches,
        "no_change_update_seconds": noop_s,
        "no_change_update_read": noop.indexed + noop.failed + noop.same_content,
        "vm_hwm_mb": proc_status_kb("VmHWM:") as f64 / 1024.0,
        "peak_rss_anon_mb": peak_anon.load(Ordering::SeqCst) as f64 / 1024.0,
        "index_bytes": status.index_bytes,
        "index_to_text": status.index_bytes as f64 / status.text_bytes.max(1) as f64,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let f = |k: &str| report[k].as_f64().unwrap_or(0.0);
        println!("corpus            {}", corpus.display());
        println!(
            "files             {} ({} indexed, {} without text): {} text/code files ({:.1} MB), {} documents ({:.1} MB)",
            status.files,
            status.indexed,
            status.failed,
            text_files,
            text_bytes as f64 / 1e6,
            doc_files,
            doc_bytes as f64 / 1e6
        );
        println!(
            "cold build        {:.2} s: {:.1} MB/s, {:.0} files/s, {} batches",
            cold_s,
            f("cold_mb_per_s"),
            f("cold_files_per_s"),
            cold.batches
        );
        println!("no-change update  {:.3} s ({} files re-read)", noop_s, report["no_change_update_read"]);
        println!("peak memory       VmHWM {:.0} MB, anonymous RSS {:.0} MB", f("vm_hwm_mb"), f("peak_rss_anon_mb"));
        println!(
            "index size        {:.1} MB for {:.1} MB of text ({:.2}x)",
            status.index_bytes as f64 / 1e6,
            status.text_bytes as f64 / 1e6,
            f("index_to_text")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A `kB` field of /proc/self/status (0 where there is none).
fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn run_torture(args: &BenchIndexArgs) -> Result<ExitCode> {
    let work = tempfile::Builder::new().prefix("quarry-torture-").tempdir()?;
    let exe = std::env::current_exe().context("this program's path")?;
    let workers = args.workers;
    let options = TortureOptions {
        rounds: args.rounds,
        seed: args.seed,
        work: work.path().join("t"),
        documents: args.with.clone(),
        command: Box::new(move |folder, data| {
            let mut c = Command::new(&exe);
            c.args(["index", "add", "--name", torture::COLLECTION, "--no-ocr", "--batch-files", "8"])
                .arg("--workers")
                .arg(workers.to_string())
                .arg(folder)
                .env("QUARRY_DATA_DIR", data);
            c
        }),
    };
    let json = args.json;
    match torture::run(&options, &mut |line| {
        if !json {
            eprintln!("{line}")
        }
    }) {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} rounds ({} killed mid-run, {} finished first), {} edits while indexing, {} files at the end: every check passed, and the resumed index equals a clean build ({:.1} s)",
                    report.rounds, report.killed, report.finished, report.edits, report.files, report.seconds
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => bail!("torture (seed {}): {e}", args.seed),
    }
}
