//! `quarry bench index --corpus DIR [--json]`: a collection's cold build (MB/s and files/s,
//! text apart from documents), a no-change update, peak memory (VmHWM, and the largest
//! anonymous RSS sampled, which excludes tantivy's mapped files), and the index's size against
//! the text's (with and without the trigram postings that narrow grep), and grep: the 50
//! [`FIXED_PATTERNS`] through the collection's grep against `rg -j2` warm over a mirror of the
//! same extracted text, `--grep-runs` times each, asserting identical matches (files, lines,
//! ranges) and reporting per pattern the path taken, the candidate fraction and the ratio.
//! `quarry bench index --torture [--rounds N]`: kill -9 real indexing processes at
//! random moments, with edits, and check the index after each (quarry_index::collection::torture).

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use quarry_index::collection::torture::{self, TortureOptions};
use quarry_index::collection::{CollectionRow, GrepOptions, FIXED_PATTERNS};
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
    /// Timed runs of each grep pattern, ours and rg's (0: no grep benchmark).
    #[arg(long, default_value_t = 5)]
    grep_runs: usize,
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
    let trigram_bytes = {
        let chunks = library.chunks(&row)?;
        let reader = chunks.reader()?;
        chunks.trigram_bytes(&reader.searcher())?
    };
    let grep = match args.grep_runs {
        0 => serde_json::Value::Null,
        runs => bench_grep(&library, &row, runs, args.json)?,
    };
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
        "trigram_bytes": trigram_bytes,
        "index_to_text_without_trigrams": status.index_bytes.saturating_sub(trigram_bytes) as f64 / status.text_bytes.max(1) as f64,
        "grep": grep,
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
        println!(
            "                  {:.1} MB of it trigram postings; {:.2}x without them",
            trigram_bytes as f64 / 1e6,
            f("index_to_text_without_trigrams")
        );
        if !grep.is_null() {
            let g = &grep["summary"];
            let ms = |k: &str| g[k].as_f64().unwrap_or(0.0);
            println!(
                "grep (50 patterns) ours p50 {:.2} ms, p95 {:.2} ms; rg -j2 p50 {:.2} ms, p95 {:.2} ms; {} narrowed, {} scanned",
                ms("ours_p50_ms"),
                ms("ours_p95_ms"),
                ms("rg_p50_ms"),
                ms("rg_p95_ms"),
                g["narrowed"],
                g["scanned"]
            );
            println!(
                "                  selective (<=1% of chunks): {} patterns, speed-up over rg min {:.1}x, median {:.1}x; slowest pattern {:.2}x rg's time",
                g["selective"],
                ms("selective_min_speedup"),
                ms("selective_median_speedup"),
                ms("worst_time_ratio")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// (path, line, match ranges) of each matching line.
type Matches = Vec<(String, usize, Vec<[usize; 2]>)>;

fn rg_json(mirror: &std::path::Path, flags: &[&str], pattern: &str) -> Result<Matches> {
    let out = Command::new("rg")
        .args(["-uuu", "--sort", "path", "--json"])
        .args(flags)
        .arg("--")
        .arg(pattern)
        .arg(".")
        .current_dir(mirror)
        .output()
        .context("ripgrep (rg) is needed for the grep benchmark")?;
    if out.status.code() == Some(2) {
        bail!("rg {pattern:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut matches = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["type"] != "match" {
            continue;
        }
        let d = &v["data"];
        let path = d["path"]["text"].as_str().unwrap_or_default().trim_start_matches("./").to_string();
        let ranges = d["submatches"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| [m["start"].as_u64().unwrap_or(0) as usize, m["end"].as_u64().unwrap_or(0) as usize])
                    .collect()
            })
            .unwrap_or_default();
        matches.push((path, d["line_number"].as_u64().unwrap_or(0) as usize, ranges));
    }
    Ok(matches)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The grep part: a mirror of the extracted text, then each fixed pattern through
/// `Library::grep` and through `rg -j2` (warm: its first run is not timed), matches compared.
fn bench_grep(library: &Library, row: &CollectionRow, runs: usize, quiet: bool) -> Result<serde_json::Value> {
    let mirror = tempfile::Builder::new().prefix("quarry-bench-mirror-").tempdir()?;
    let mut mirror_files = 0;
    for f in library.snapshot(row)?.into_iter().filter(|f| f.status == "indexed") {
        mirror_files += 1;
        let path = mirror.path().join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap_or(mirror.path()))?;
        std::fs::write(path, f.text)?;
    }
    let (mut all_ours, mut all_rg) = (Vec::new(), Vec::new());
    let mut patterns = Vec::new();
    if !quiet {
        println!(
            "{:<44} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8}",
            "pattern", "path", "cand.", "ours ms", "rg ms", "speedup", "lines"
        );
    }
    for p in FIXED_PATTERNS {
        let mut flags = vec![];
        if p.ignore_case {
            flags.push("-i");
        }
        if p.fixed {
            flags.push("-F");
        }
        let options = GrepOptions { ignore_case: p.ignore_case, fixed: p.fixed, ..Default::default() };
        let report = library.grep(row, p.pattern, &options)?;
        let ours: Matches = report.hits.iter().map(|h| (h.path.clone(), h.line, h.ranges.clone())).collect();
        let theirs = rg_json(mirror.path(), &flags, p.pattern)?;
        if ours != theirs {
            let first = ours.iter().zip(&theirs).position(|(a, b)| a != b).unwrap_or(ours.len().min(theirs.len()));
            bail!(
                "{:?} {flags:?}: grep found {} lines, rg {}; first difference at {first}: ours {:?}, rg {:?}",
                p.pattern,
                ours.len(),
                theirs.len(),
                ours.get(first),
                theirs.get(first)
            );
        }
        let mut ours_ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let r = library.grep(row, p.pattern, &options)?;
            ours_ms.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(r);
        }
        let mut rg = Command::new("rg");
        rg.args(["-j2", "-uuu", "-n"]).args(&flags).arg("--").arg(p.pattern).arg(".").current_dir(mirror.path());
        rg.output()?; // warm
        let mut rg_ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let out = rg.output()?;
            rg_ms.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(out);
        }
        all_ours.extend(&ours_ms);
        all_rg.extend(&rg_ms);
        let (ours_ms, rg_ms) = (sorted(ours_ms), sorted(rg_ms));
        let (o50, r50) = (percentile(&ours_ms, 0.5), percentile(&rg_ms, 0.5));
        let fraction = report.candidates as f64 / report.total_chunks.max(1) as f64;
        if !quiet {
            let shown: String = p.pattern.chars().take(36).collect();
            let flagged =
                format!("{shown}{}{}", if p.ignore_case { " -i" } else { "" }, if p.fixed { " -F" } else { "" });
            println!(
                "{flagged:<44} {:>8} {:>8.2}% {o50:>9.2} {r50:>9.2} {:>7.1}x {:>8}",
                report.path,
                fraction * 100.0,
                r50 / o50.max(1e-9),
                ours.len()
            );
        }
        patterns.push(serde_json::json!({
            "pattern": p.pattern,
            "ignore_case": p.ignore_case,
            "fixed": p.fixed,
            "path": report.path,
            "candidates": report.candidates,
            "total_chunks": report.total_chunks,
            "candidate_fraction": fraction,
            "lines": ours.len(),
            "ours_p50_ms": o50,
            "ours_p95_ms": percentile(&ours_ms, 0.95),
            "rg_p50_ms": r50,
            "rg_p95_ms": percentile(&rg_ms, 0.95),
            "speedup": r50 / o50.max(1e-9),
        }));
    }
    let (all_ours, all_rg) = (sorted(all_ours), sorted(all_rg));
    let speedup = |p: &serde_json::Value| p["speedup"].as_f64().unwrap_or(0.0);
    let selective = sorted(
        patterns.iter().filter(|p| p["candidate_fraction"].as_f64().unwrap_or(1.0) <= 0.01).map(speedup).collect(),
    );
    let worst = patterns.iter().map(|p| 1.0 / speedup(p).max(1e-9)).fold(0.0, f64::max);
    let narrowed = patterns.iter().filter(|p| p["path"] == "narrowed").count();
    Ok(serde_json::json!({
        "runs": runs,
        "mirror_files": mirror_files,
        "summary": {
            "ours_p50_ms": percentile(&all_ours, 0.5),
            "ours_p95_ms": percentile(&all_ours, 0.95),
            "rg_p50_ms": percentile(&all_rg, 0.5),
            "rg_p95_ms": percentile(&all_rg, 0.95),
            "narrowed": narrowed,
            "scanned": patterns.len() - narrowed,
            "selective": selective.len(),
            "selective_min_speedup": selective.first().copied().unwrap_or(0.0),
            "selective_median_speedup": percentile(&selective, 0.5),
            "worst_time_ratio": worst,
        },
        "patterns": patterns,
    }))
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
