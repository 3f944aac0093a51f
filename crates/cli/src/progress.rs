//! Progress bars on the terminal (byte counts: downloads, hashing) for the library's [`Progress`] reports. When stderr is not a
//! terminal (CI logs, pipes) bars are hidden and each phase prints one line when it ends, so
//! logs stay readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use quarry_models::{human_bytes, Progress};

pub struct Bars {
    current: Mutex<Option<(ProgressBar, String, Instant)>>,
    tty: bool,
}

impl Bars {
    pub fn new() -> Bars {
        Bars { current: Mutex::new(None), tty: std::io::stderr().is_terminal() }
    }

    fn style(&self, known_total: bool) -> ProgressStyle {
        let template = if known_total {
            "{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg:40!} {spinner} {bytes} {bytes_per_sec}"
        };
        ProgressStyle::with_template(template).expect("valid template").progress_chars("=> ")
    }
}

impl Progress for Bars {
    fn begin(&self, label: &str, total: Option<u64>) {
        self.end();
        let bar = if self.tty { ProgressBar::new(total.unwrap_or(0)) } else { ProgressBar::hidden() };
        if total.is_none() {
            bar.set_length(0);
        }
        bar.set_style(self.style(total.is_some()));
        bar.set_message(label.to_string());
        *self.current.lock().unwrap() = Some((bar, label.to_string(), Instant::now()));
    }

    fn advance(&self, n: u64) {
        if let Some((bar, ..)) = self.current.lock().unwrap().as_ref() {
            bar.inc(n);
        }
    }

    fn note(&self, message: &str) {
        match self.current.lock().unwrap().as_ref() {
            Some((bar, ..)) if self.tty => bar.println(message),
            _ => eprintln!("{message}"),
        }
    }

    fn end(&self) {
        if let Some((bar, label, started)) = self.current.lock().unwrap().take() {
            let done = bar.position();
            bar.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
            eprintln!("{label}: {} in {secs:.1} s", human_bytes(done));
        }
    }
}

/// A cancel token that Ctrl-C trips, and the task watching for it (abort it when the work is
/// done, so a later Ctrl-C gets the default behaviour again).
pub fn cancel_on_ctrl_c() -> (quarry_index::CancelToken, tokio::task::JoinHandle<()>) {
    let cancel = quarry_index::CancelToken::default();
    let on_ctrl_c = cancel.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    (cancel, watcher)
}

/// Reads `dir` through the confined extraction workers with a bar of files (and the page being
/// OCR'd), then prints one line of what it holds: files and pages by format, and each skipped
/// file with its reason. Ctrl-C stops the reading. `ocr` reads scanned pages with Tesseract.
pub async fn read_folder(dir: &std::path::Path, ocr: bool) -> anyhow::Result<quarry_index::Folder> {
    use quarry_index::{Folder, LoadEvent, LoadOptions};
    let (cancel, watcher) = cancel_on_ctrl_c();
    let tty = std::io::stderr().is_terminal();
    let root = dir.to_path_buf();
    let started = Instant::now();
    let loaded = tokio::task::spawn_blocking(move || {
        let bar = if tty { ProgressBar::new(0) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("reading {bar:30} {pos}/{len} files, eta {eta} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let mut options = LoadOptions::default();
        if let Some(config) = options.extractor.as_mut() {
            config.ocr = ocr;
        }
        let folder = Folder::load_with(
            &root,
            &options,
            &|e| match e {
                LoadEvent::Walked { files } => bar.set_length(*files as u64),
                LoadEvent::File { path, .. } => bar.set_message(path.clone()),
                LoadEvent::Ocr { path, page, done, of } => {
                    bar.set_message(format!("OCR {path} p. {page} ({done}/{of})"))
                }
                LoadEvent::Read { .. } => bar.inc(1),
            },
            Some(&cancel),
        );
        bar.finish_and_clear();
        folder
    })
    .await;
    watcher.abort();
    let folder = loaded??;
    let summary = folder.summary();
    let formats = match summary.formats.iter().all(|(f, ..)| f == "text") {
        true => String::new(),
        false => format!(": {}", summary.formats_line()),
    };
    eprintln!(
        "Read {}: {} files, {} characters{formats}{}{} in {:.1} s",
        dir.display(),
        folder.documents().len(),
        folder.total_chars(),
        if summary.ocr_pages > 0 { format!("; {} pages by OCR", summary.ocr_pages) } else { String::new() },
        if folder.skipped().is_empty() { String::new() } else { format!("; {} skipped", folder.skipped().len()) },
        started.elapsed().as_secs_f64()
    );
    for s in folder.skipped() {
        eprintln!("  skipped {}: {}", s.path, s.reason);
    }
    Ok(folder)
}
