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
