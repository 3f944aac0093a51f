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

/// One line of what was read from `dir` (files, characters, formats, OCR, skipped, time), and
/// each skipped file with its reason.
pub fn print_read(dir: &std::path::Path, folder: &quarry_index::Folder, started: Instant) {
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
}
