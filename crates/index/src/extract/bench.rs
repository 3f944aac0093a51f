//! `quarry bench extract`: pages per second and MB/s by format over a corpus folder, through
//! the confined worker exactly as a folder is read, with `pdftotext` (poppler) timed on the same
//! PDFs in the same run as the reference, and the peak RSS of this (the app's) process and of
//! the workers.
//!
//! Timings are wall-clock per file around [`Extractor::extract`] (so they include the worker
//! round trip and JSON), OCR off: scanned pages are a separate cost of about a second each
//! (notes §5). `pdftotext` runs as a process per file, writing to a pipe that is drained.

use std::collections::BTreeMap;
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
    pub chars: u64,
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

/// Runs the benchmark; `progress` is told each file as it starts.
pub fn run(
    corpus: &Path,
    mut config: ExtractorConfig,
    progress: &mut dyn FnMut(usize, usize, &Path),
) -> Result<BenchReport> {
    let started = Instant::now();
    config.ocr = false;
    if config.readable.is_empty() {
        config.readable = vec![corpus.to_path_buf()];
    }
    let files = files_under(corpus);
    let mut extractor = Extractor::new(config)?;
    let engine = extractor.info().pdfium.clone().unwrap_or_else(|| "pdf_oxide (PDFium missing)".into());
    let mut per: BTreeMap<Kind, FormatFigures> = BTreeMap::new();
    let mut figures = Vec::new();
    for (i, f) in files.iter().enumerate() {
        progress(i, files.len(), f);
        let bytes = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let t = Instant::now();
        let outcome = extractor.extract(f, &mut |_| {});
        let seconds = t.elapsed().as_secs_f64();
        let rel = f.strip_prefix(corpus).unwrap_or(f).to_string_lossy().into_owned();
        match outcome {
            Ok(ex) => {
                let e = per
                    .entry(ex.kind)
                    .or_insert_with(|| FormatFigures { format: ex.kind.name().into(), ..Default::default() });
                e.files += 1;
                e.pages += ex.pages.len() as u64;
                e.bytes += bytes;
                e.chars += ex.chars() as u64;
                e.seconds += seconds;
                figures.push(FileFigure {
                    path: rel,
                    format: Some(ex.kind.name().into()),
                    pages: ex.pages.len() as u64,
                    bytes,
                    seconds,
                    reason: None,
                    pdftotext_seconds: None,
                });
            }
            Err(Error::Unreadable { reason, .. }) => {
                figures.push(FileFigure {
                    path: rel,
                    format: None,
                    pages: 0,
                    bytes,
                    seconds,
                    reason: Some(reason),
                    pdftotext_seconds: None,
                });
            }
            Err(e) => return Err(e),
        }
    }
    drop(extractor); // the worker exits and is waited for: its peak RSS is counted below
    let worker_peak = peak_rss(true);

    // pdftotext on the PDFs Quarry read, in the same run.
    let mut reference = None;
    if pdftotext_version().is_some() {
        let mut r = ReferenceFigures { tool: pdftotext_version().unwrap_or_default(), ..Default::default() };
        for fig in figures.iter_mut().filter(|f| f.format.as_deref() == Some("pdf")) {
            let path = corpus.join(&fig.path);
            let t = Instant::now();
            let ok = Command::new("pdftotext")
                .arg("-q")
                .arg(&path)
                .arg("-")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let s = t.elapsed().as_secs_f64();
            if ok {
                fig.pdftotext_seconds = Some(s);
                r.files += 1;
                r.pages += fig.pages;
                r.bytes += fig.bytes;
                r.seconds += s;
                r.quarry_seconds += fig.seconds;
            }
        }
        r.pages_per_second = rate(r.pages as f64, r.seconds);
        r.quarry_pages_per_second = rate(r.pages as f64, r.quarry_seconds);
        reference = Some(r);
    }
    let mut formats: Vec<FormatFigures> = per
        .into_values()
        .map(|mut f| {
            f.pages_per_second = rate(f.pages as f64, f.seconds);
            f.mb_per_second = rate(f.bytes as f64 / 1e6, f.seconds);
            f
        })
        .filter(|f| f.files > 0)
        .collect();
    let unreadable = figures.iter().filter(|f| f.reason.is_some()).count();
    if unreadable > 0 {
        formats.push(FormatFigures {
            format: "(unreadable)".into(),
            files: unreadable,
            unreadable,
            seconds: figures.iter().filter(|f| f.reason.is_some()).map(|f| f.seconds).sum(),
            bytes: figures.iter().filter(|f| f.reason.is_some()).map(|f| f.bytes).sum(),
            ..Default::default()
        });
    }
    Ok(BenchReport {
        corpus: corpus.display().to_string(),
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        pdf_engine: engine,
        formats,
        pdftotext: reference,
        peak_rss_bytes: peak_rss(false),
        worker_peak_rss_bytes: worker_peak,
        seconds: started.elapsed().as_secs_f64(),
        files: figures,
    })
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
