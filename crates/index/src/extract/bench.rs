//! `quarry bench extract`: pages per second and MB/s by format over a corpus folder, through
//! the confined worker exactly as a folder is read, with `pdftotext` (poppler) timed on the same
//! PDFs in the same run as the reference, and the peak RSS of this (the app's) process and of
//! the workers.
//!
//! Timings are wall-clock around [`Extractor::extract`] (so they include the worker round trip
//! and JSON), with as many workers as a folder load uses, OCR off: scanned pages are a separate
//! cost of about a second each (notes §5). `pdftotext` runs as a process per file, as many at
//! a time, its output discarded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use super::{Extractor, ExtractorConfig, Kind};
use crate::{Error, Result};

#[derive(Debug, Clone, Default, Serialize)]
pub struct FormatFigures {
    pub format: String,
    pub files: usize,
    /// Files that gave a reason instead of text.
    pub unreadable: usize,
    pub pages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub pages_per_second: f64,
    pub mb_per_second: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReferenceFigures {
    pub tool: String,
    pub files: usize,
    pub pages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub pages_per_second: f64,
    /// Quarry's PDF time on the same files.
    pub quarry_seconds: f64,
    pub quarry_pages_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileFigure {
    pub path: String,
    pub format: Option<String>,
    pub pages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub reason: Option<String>,
    pub pdftotext_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub corpus: String,
    pub cpus: usize,
    /// Worker processes reading files in parallel.
    pub workers: usize,
    pub pdf_engine: String,
    pub formats: Vec<FormatFigures>,
    pub pdftotext: Option<ReferenceFigures>,
    /// Peak resident set of this process (the app), and of the worker processes.
    pub peak_rss_bytes: u64,
    pub worker_peak_rss_bytes: u64,
    pub seconds: f64,
    pub files: Vec<FileFigure>,
}

/// Every regular file under `corpus`, sorted.
fn files_under(corpus: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![corpus.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Peak RSS in bytes (`getrusage`: of this process, or of its waited-for children).
pub fn peak_rss(children: bool) -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let who = if children { libc::RUSAGE_CHILDREN } else { libc::RUSAGE_SELF };
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return 0;
    }
    usage.ru_maxrss as u64 * 1024
}

/// Runs the benchmark with `workers` worker processes (0: one per CPU, at most 4), the way a
/// folder is read; `progress` is told each file of the first pass as it starts.
///
/// Pass 1 reads every file once on one worker (its format, pages and time, and a warm page
/// cache). Pass 2 times each format on its own: its files spread over `workers` workers, the
/// wall clock from the first file to the last (workers are started before the clock). Then
/// `pdftotext` reads the same PDFs with as many processes at a time.
pub fn run(
    corpus: &Path,
    mut config: ExtractorConfig,
    workers: usize,
    progress: &mut dyn FnMut(usize, usize, &Path),
) -> Result<BenchReport> {
    let started = Instant::now();
    config.ocr = false;
    if config.readable.is_empty() {
        config.readable = vec![corpus.to_path_buf()];
    }
    let workers = match workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4),
        n => n,
    };
    let files = files_under(corpus);
    let mut extractor = Extractor::new(config.clone())?;
    let engine = extractor.info().pdfium.clone().unwrap_or_else(|| "pdf_oxide (PDFium missing)".into());
    let mut figures = Vec::new();
    let mut kinds: Vec<Option<Kind>> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        progress(i, files.len(), f);
        let bytes = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let t = Instant::now();
        let outcome = extractor.extract(f, &mut |_| {});
        let seconds = t.elapsed().as_secs_f64();
        let path = f.strip_prefix(corpus).unwrap_or(f).to_string_lossy().into_owned();
        let (format, pages, reason) = match outcome {
            Ok(ex) => {
                kinds.push(Some(ex.kind));
                (Some(ex.kind.name().to_string()), ex.pages.len() as u64, None)
            }
            Err(Error::Unreadable { reason, .. }) => {
                kinds.push(None);
                (None, 0, Some(reason))
            }
            Err(e) => return Err(e),
        };
        figures.push(FileFigure { path, format, pages, bytes, seconds, reason, pdftotext_seconds: None });
    }
    drop(extractor);

    // Pass 2: each format on `workers` workers.
    let mut formats = Vec::new();
    for kind in Kind::ALL {
        let picked: Vec<usize> = (0..files.len()).filter(|&i| kinds[i] == Some(kind)).collect();
        if picked.is_empty() {
            continue;
        }
        let paths: Vec<&Path> = picked.iter().map(|&i| files[i].as_path()).collect();
        let seconds = timed_parallel(&config, workers, &paths)?;
        let pages: u64 = picked.iter().map(|&i| figures[i].pages).sum();
        let bytes: u64 = picked.iter().map(|&i| figures[i].bytes).sum();
        formats.push(FormatFigures {
            format: kind.name().into(),
            files: picked.len(),
            unreadable: 0,
            pages,
            bytes,
            seconds,
            pages_per_second: rate(pages as f64, seconds),
            mb_per_second: rate(bytes as f64 / 1e6, seconds),
        });
    }
    let unreadable: Vec<&FileFigure> = figures.iter().filter(|f| f.reason.is_some()).collect();
    if !unreadable.is_empty() {
        formats.push(FormatFigures {
            format: "(reasons)".into(),
            files: unreadable.len(),
            unreadable: unreadable.len(),
            seconds: unreadable.iter().map(|f| f.seconds).sum(),
            bytes: unreadable.iter().map(|f| f.bytes).sum(),
            ..Default::default()
        });
    }
    let worker_peak = peak_rss(true);

    // pdftotext on the PDFs Quarry read, as many at a time as Quarry's workers.
    let mut reference = None;
    if let Some(tool) = pdftotext_version() {
        let pdfs: Vec<usize> = (0..files.len()).filter(|&i| kinds[i] == Some(Kind::Pdf)).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<std::sync::Mutex<Option<(bool, f64)>>> = pdfs.iter().map(|_| Default::default()).collect();
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(&i) = pdfs.get(k) else { return };
                    let one = Instant::now();
                    let ok = Command::new("pdftotext")
                        .arg("-q")
                        .arg(&files[i])
                        .arg("-")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|st| st.success());
                    *results[k].lock().unwrap_or_else(|p| p.into_inner()) = Some((ok, one.elapsed().as_secs_f64()));
                });
            }
        });
        let wall = t.elapsed().as_secs_f64();
        let mut r = ReferenceFigures { tool, seconds: wall, ..Default::default() };
        let mut same: Vec<&Path> = Vec::new();
        for (k, &i) in pdfs.iter().enumerate() {
            if let Some((true, secs)) = *results[k].lock().unwrap_or_else(|p| p.into_inner()) {
                figures[i].pdftotext_seconds = Some(secs);
                r.files += 1;
                r.pages += figures[i].pages;
                r.bytes += figures[i].bytes;
                same.push(files[i].as_path());
            }
        }
        // Quarry on exactly the files pdftotext read (it fails on some damaged ones).
        r.quarry_seconds = timed_parallel(&config, workers, &same)?;
        r.pages_per_second = rate(r.pages as f64, r.seconds);
        r.quarry_pages_per_second = rate(r.pages as f64, r.quarry_seconds);
        reference = Some(r);
    }
    Ok(BenchReport {
        corpus: corpus.display().to_string(),
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        workers,
        pdf_engine: engine,
        formats,
        pdftotext: reference,
        peak_rss_bytes: peak_rss(false),
        worker_peak_rss_bytes: worker_peak,
        seconds: started.elapsed().as_secs_f64(),
        files: figures,
    })
}

/// Wall-clock seconds for `workers` extractors to read `paths` (started before the clock).
fn timed_parallel(config: &ExtractorConfig, workers: usize, paths: &[&Path]) -> Result<f64> {
    let n = workers.min(paths.len()).max(1);
    let barrier = std::sync::Barrier::new(n + 1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    let mut seconds = 0.0;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    let ex = Extractor::new(config.clone());
                    barrier.wait();
                    let mut ex = match ex {
                        Ok(e) => e,
                        Err(e) => {
                            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            return;
                        }
                    };
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(p) = paths.get(k) else { return };
                        let _ = ex.extract(p, &mut |_| {});
                    }
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        for h in handles {
            let _ = h.join();
        }
        seconds = t.elapsed().as_secs_f64();
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(seconds),
    }
}

fn rate(n: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n / seconds
    } else {
        0.0
    }
}

/// "pdftotext 22.12.0", or `None` when poppler-utils is not installed.
pub fn pdftotext_version() -> Option<String> {
    let out = Command::new("pdftotext").arg("-v").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    text.lines().find(|l| l.starts_with("pdftotext")).map(|l| l.trim().to_string())
}

impl BenchReport {
    /// The report as the table `quarry bench extract` prints.
    pub fn table(&self) -> String {
        let mut s = format!(
            "corpus {} ({} CPUs), PDF engine {}, {:.1} s in all\n\n{:<14} {:>6} {:>8} {:>10} {:>9} {:>10} {:>8}\n",
            self.corpus,
            self.cpus,
            self.pdf_engine,
            self.seconds,
            "format",
            "files",
            "pages",
            "MB",
            "seconds",
            "pages/s",
            "MB/s"
        );
        for f in &self.formats {
            s.push_str(&format!(
                "{:<14} {:>6} {:>8} {:>10.2} {:>9.2} {:>10.1} {:>8.1}\n",
                f.format,
                f.files,
                f.pages,
                f.bytes as f64 / 1e6,
                f.seconds,
                f.pages_per_second,
                f.mb_per_second
            ));
        }
        if let Some(r) = &self.pdftotext {
            s.push_str(&format!(
                "\nsame {} PDFs ({} pages): Quarry {:.2} s = {:.0} pages/s; {} {:.2} s = {:.0} pages/s\n",
                r.files, r.pages, r.quarry_seconds, r.quarry_pages_per_second, r.tool, r.seconds, r.pages_per_second
            ));
        }
        s.push_str(&format!(
            "peak RSS: this process {:.0} MB, workers {:.0} MB\n",
            self.peak_rss_bytes as f64 / 1e6,
            self.worker_peak_rss_bytes as f64 / 1e6
        ));
        s
    }
}
