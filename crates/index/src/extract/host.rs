//! The host side of extraction: [`Extractor`] starts a confined worker, sends it one file at a
//! time under a wall-clock limit, and when the worker dies (SIGSEGV, an abort on a failed
//! allocation, a stack overflow) or runs out of time, gives that file a reason and starts a new
//! worker for the next one. Scanned pages are rendered by the worker and read by Tesseract here
//! ([`super::ocr`] says why here), one [`Event::OcrPage`] per page.
//!
//! Create and use an `Extractor` on a thread that outlives it: the worker sets
//! `PR_SET_PDEATHSIG`, which Linux ties to the *thread* that spawned it.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::protocol::{Limits, Reply, Request, WirePath, WorkerConfig, MAX_LINE_BYTES, PROTOCOL_VERSION};
use super::{human_bytes, ocr, pdfium, Extracted, Options};
use crate::{Error, Result};

/// How to start a worker: by default this very executable as `<exe> worker extract`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl WorkerCommand {
    pub fn current_exe() -> Self {
        WorkerCommand::quarry(std::env::current_exe().unwrap_or_else(|_| PathBuf::from("quarry")))
    }

    /// `<program> worker extract`: a `quarry` executable (the desktop app's neighbour).
    pub fn quarry(program: PathBuf) -> Self {
        WorkerCommand { program, args: vec!["worker".into(), "extract".into()] }
    }

    /// A program that is the worker itself (this crate's `quarry-extract-worker`).
    pub fn bare(program: PathBuf) -> Self {
        WorkerCommand { program, args: Vec::new() }
    }
}

/// Everything about an [`Extractor`].
#[derive(Debug, Clone)]
pub struct ExtractorConfig {
    pub worker: WorkerCommand,
    /// What the worker may read (Landlock): the folder, or the files, being read.
    pub readable: Vec<PathBuf>,
    /// Wall-clock limit of one file's extraction (OCR has its own, per page).
    pub timeout: Duration,
    pub startup_timeout: Duration,
    /// OCR pages without a text layer (on by default; it costs about a second a page).
    pub ocr: bool,
    pub ocr_dpi: u32,
    pub ocr_page_timeout: Duration,
    /// The Tesseract program ([`ocr::default_program`]).
    pub tesseract: PathBuf,
    pub options: Options,
    pub limits: Limits,
    /// The PDFium library; `None` looks it up ([`pdfium::find`]).
    pub pdfium: Option<PathBuf>,
    /// Run even without Landlock/seccomp/rlimits, reporting what is missing.
    pub allow_unconfined: bool,
    /// Mechanisms the worker treats as missing (tests of the refusal path).
    pub pretend_unavailable: Vec<String>,
}

impl Default for ExtractorConfig {
    fn default() -> Self {
        ExtractorConfig {
            worker: WorkerCommand::current_exe(),
            readable: Vec::new(),
            timeout: Duration::from_secs(60),
            startup_timeout: Duration::from_secs(30),
            ocr: true,
            ocr_dpi: 300,
            ocr_page_timeout: Duration::from_secs(120),
            tesseract: ocr::default_program(),
            options: Options::default(),
            limits: Limits::default(),
            pdfium: None,
            allow_unconfined: false,
            pretend_unavailable: Vec::new(),
        }
    }
}

impl ExtractorConfig {
    /// The default configuration, reading `paths`.
    pub fn readable<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> Self {
        ExtractorConfig { readable: paths.into_iter().map(Into::into).collect(), ..Default::default() }
    }
}

/// Progress of one file's extraction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// OCR of one page is starting: `done` of `of` pages are finished.
    OcrPage { page: u32, done: usize, of: usize },
    /// The worker died or stalled on this file and is being replaced.
    Restarted { reason: String },
}

/// Cancels an [`Extractor`]'s current and later extractions (from any thread).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// What the running worker reported.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WorkerInfo {
    pub pid: u32,
    pub active: Vec<String>,
    pub missing: Vec<String>,
    /// "pdfium 8149", or `None` with [`WorkerInfo::pdfium_missing`] saying why.
    pub pdfium: Option<String>,
    pub pdfium_missing: Option<String>,
}

enum Line {
    Reply(Box<Reply>),
    Malformed(String),
    TooLong,
    Closed,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Line>,
    stderr_tail: Arc<Mutex<String>>,
}

impl Worker {
    fn send(&mut self, req: &Request) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(req).expect("requests serialize");
        line.push(b'\n');
        self.stdin.write_all(&line)?;
        self.stdin.flush()
    }

    /// Kills it and says what it died of, if it had died.
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        let tail = self.stderr_tail.lock().map(|s| s.clone()).unwrap_or_default();
        death(status, &tail)
    }

    /// Waits for the exit of a worker whose stdout closed, and says what it died of.
    fn reap(mut self) -> String {
        let started = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if started.elapsed() < Duration::from_secs(2) => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait().ok();
                }
            }
        };
        // The stderr reader may still be draining.
        std::thread::sleep(Duration::from_millis(20));
        let tail = self.stderr_tail.lock().map(|s| s.clone()).unwrap_or_default();
        death(status, &tail)
    }
}

/// One sentence for how a worker ended, from its status and the end of its stderr.
fn death(status: Option<std::process::ExitStatus>, stderr: &str) -> String {
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") || stderr.contains("Out of memory") {
        return "the extractor ran out of memory on this file".into();
    }
    if stderr.contains("has overflowed its stack") {
        return "the extractor overflowed its stack on this file (nesting too deep)".into();
    }
    let last = stderr.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let last: String = last.chars().take(160).collect();
    match status {
        Some(s) if s.signal().is_some() => {
            let sig = signal_name(s.signal().unwrap_or(0));
            if last.is_empty() {
                format!("the extractor crashed on this file ({sig})")
            } else {
                format!("the extractor crashed on this file ({sig}: {last})")
            }
        }
        Some(s) => match s.code() {
            Some(0) => "the extractor stopped unexpectedly on this file".into(),
            Some(c) => {
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                if last.is_empty() {
                    format!("the extractor stopped on this file (exit code {c})")
                } else {
                    format!("the extractor stopped on this file (exit code {c}: {last})")
                }
            }
            None => "the extractor stopped on this file".into(),
        },
        None => "the extractor stopped on this file".into(),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGTRAP => "SIGTRAP".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGXCPU => "SIGXCPU, out of CPU time".into(),
        libc::SIGSYS => "SIGSYS".into(),
        n => format!("signal {n}"),
    }
}

/// One confined worker and the files it reads; see the module docs.
pub struct Extractor {
    config: ExtractorConfig,
    scratch: tempfile::TempDir,
    worker: Option<Worker>,
    info: WorkerInfo,
    pdfium: std::result::Result<PathBuf, String>,
    cancel: CancelToken,
    seq: u64,
    restarts: usize,
}

impl Extractor {
    /// Starts the worker; fails if it cannot be started or its sandbox cannot be built.
    pub fn new(config: ExtractorConfig) -> Result<Extractor> {
        let scratch = tempfile::Builder::new()
            .prefix("quarry-extract-")
            .tempdir()
            .map_err(|e| Error::Worker { message: format!("no scratch directory: {e}") })?;
        let pdfium = match &config.pdfium {
            Some(p) if p.is_file() => Ok(p.clone()),
            Some(p) => Err(format!("PDFium is not at {} ({} names it)", p.display(), pdfium::ENV)),
            None => pdfium::find(),
        };
        let mut ex = Extractor {
            config,
            scratch,
            worker: None,
            info: WorkerInfo::default(),
            pdfium,
            cancel: CancelToken::default(),
            seq: 0,
            restarts: 0,
        };
        ex.start()?;
        Ok(ex)
    }

    pub fn config(&self) -> &ExtractorConfig {
        &self.config
    }

    /// The running worker's pid, confinement and PDF engine.
    pub fn info(&self) -> &WorkerInfo {
        &self.info
    }

    /// How many times a worker was replaced after dying or stalling.
    pub fn restarts(&self) -> usize {
        self.restarts
    }

    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Uses `token` (shared with other extractors, a folder load, the UI) for cancellation.
    pub fn set_cancel_token(&mut self, token: CancelToken) {
        self.cancel = token;
    }

    fn start(&mut self) -> Result<()> {
        let cmd = &self.config.worker;
        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            // Scrubbed: the worker needs nothing from the environment.
            .env_clear()
            .env("LANG", "C.UTF-8")
            .env("HOME", self.scratch.path())
            .env("TMPDIR", self.scratch.path())
            .current_dir(self.scratch.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| Error::Worker { message: format!("{} could not be started: {e}", cmd.program.display()) })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("extract-reader".into())
            .spawn(move || read_lines(BufReader::with_capacity(1 << 16, stdout), tx))
            .map_err(|e| Error::Worker { message: e.to_string() })?;
        let stderr_tail = Arc::new(Mutex::new(String::new()));
        let tail = stderr_tail.clone();
        std::thread::Builder::new()
            .name("extract-stderr".into())
            .spawn(move || drain(stderr, tail))
            .map_err(|e| Error::Worker { message: e.to_string() })?;
        let mut worker = Worker { child, stdin, lines: rx, stderr_tail };
        let config = WorkerConfig {
            readable: self.config.readable.iter().map(WirePath::new).collect(),
            scratch: WirePath::new(self.scratch.path()),
            limits: self.config.limits,
            pdfium: self.pdfium.as_ref().ok().map(WirePath::new),
            pdfium_missing: self.pdfium.as_ref().err().cloned(),
            allow_unconfined: self.config.allow_unconfined,
            pretend_unavailable: self.config.pretend_unavailable.clone(),
        };
        let fail = |worker: Worker, what: String| Error::Worker { message: format!("{what} ({})", worker.kill()) };
        if worker.send(&Request::Start { protocol: PROTOCOL_VERSION, config }).is_err() {
            return Err(fail(worker, "it did not take its start message".into()));
        }
        match worker.lines.recv_timeout(self.config.startup_timeout) {
            Ok(Line::Reply(r)) => match *r {
                Reply::Ready { pid, active, missing, pdfium, .. } => {
                    let (pdfium, pdfium_missing) = match pdfium {
                        Ok(name) => (Some(name), None),
                        Err(why) => (None, Some(why)),
                    };
                    self.info = WorkerInfo { pid, active, missing, pdfium, pdfium_missing };
                    self.worker = Some(worker);
                    Ok(())
                }
                Reply::Refused { message } => {
                    worker.kill();
                    Err(Error::Worker { message })
                }
                other => Err(fail(worker, format!("it answered {other:?} instead of being ready"))),
            },
            Ok(Line::Closed) => {
                let why = worker.reap();
                Err(Error::Worker { message: format!("it exited at start-up: {why}") })
            }
            Ok(_) => Err(fail(worker, "it did not speak the protocol".into())),
            Err(_) => Err(fail(worker, format!("it was not ready within {} s", self.config.startup_timeout.as_secs()))),
        }
    }

    fn ensure_started(&mut self) -> Result<()> {
        if self.worker.is_none() {
            self.start()?;
        }
        Ok(())
    }

    /// Sends one request and waits for its reply under `timeout`. A worker that dies, stalls or
    /// misbehaves is removed (the next request starts a new one) and the sentence why is the
    /// `Err`.
    fn ask(&mut self, req: &Request, timeout: Duration, id: u64) -> std::result::Result<Reply, Failure> {
        self.ensure_started().map_err(Failure::Fatal)?;
        let worker = self.worker.as_mut().expect("started");
        if worker.send(req).is_err() {
            let w = self.worker.take().expect("present");
            return Err(Failure::File(w.reap()));
        }
        let started = Instant::now();
        loop {
            if self.cancel.is_cancelled() {
                if let Some(w) = self.worker.take() {
                    w.kill();
                }
                return Err(Failure::Cancelled);
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                let w = self.worker.take().expect("present");
                w.kill();
                return Err(Failure::File(format!(
                    "took longer than {} s; the extractor was stopped",
                    timeout.as_secs()
                )));
            }
            let worker = self.worker.as_mut().expect("present");
            match worker.lines.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(Line::Reply(r)) => {
                    let reply_id = match &*r {
                        Reply::Extracted { id, .. } | Reply::Unreadable { id, .. } | Reply::Rendered { id, .. } => *id,
                        _ => 0,
                    };
                    if reply_id == id {
                        return Ok(*r);
                    }
                    // A reply to an earlier request that was abandoned: skip it.
                }
                Ok(Line::TooLong) => {
                    let w = self.worker.take().expect("present");
                    w.kill();
                    return Err(Failure::File(format!(
                        "its text is larger than Quarry reads ({} of JSON)",
                        human_bytes(MAX_LINE_BYTES as u64)
                    )));
                }
                Ok(Line::Malformed(e)) => {
                    let w = self.worker.take().expect("present");
                    w.kill();
                    return Err(Failure::File(format!("the extractor answered something unreadable ({e})")));
                }
                Ok(Line::Closed) | Err(RecvTimeoutError::Disconnected) => {
                    let w = self.worker.take().expect("present");
                    return Err(Failure::File(w.reap()));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Extracts one file; OCR of scanned pages included (with `on_event` per page). `Err` is
    /// [`Error::Unreadable`] (the file's reason), [`Error::Cancelled`], or [`Error::Worker`]
    /// when no worker can be started at all.
    pub fn extract(&mut self, path: &Path, on_event: &mut dyn FnMut(Event)) -> Result<Extracted> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled { path: path.into() });
        }
        let mut options = self.config.options.clone();
        options.ocr = true; // pages are marked either way; whether OCR runs is decided here
        let id = self.next_id();
        let req = Request::Extract { id, path: WirePath::new(path), options: Box::new(options) };
        let mut ex = match self.ask(&req, self.config.timeout, id) {
            Ok(Reply::Extracted { result, .. }) => *result,
            Ok(Reply::Unreadable { reason, .. }) => return Err(Error::Unreadable { path: path.into(), reason }),
            Ok(other) => {
                return Err(Error::Unreadable { path: path.into(), reason: format!("unexpected answer {other:?}") })
            }
            Err(f) => return Err(self.failed(path, f, on_event)),
        };
        self.ocr(path, &mut ex, on_event)?;
        Ok(ex)
    }

    fn failed(&mut self, path: &Path, f: Failure, on_event: &mut dyn FnMut(Event)) -> Error {
        match f {
            Failure::File(reason) => {
                self.restarts += 1;
                on_event(Event::Restarted { reason: reason.clone() });
                Error::Unreadable { path: path.into(), reason }
            }
            Failure::Cancelled => Error::Cancelled { path: path.into() },
            Failure::Fatal(e) => e,
        }
    }

    /// OCR of the pages the worker marked, or the note saying why not.
    fn ocr(&mut self, path: &Path, ex: &mut Extracted, on_event: &mut dyn FnMut(Event)) -> Result<()> {
        let wanted: Vec<u32> = ex.pages.iter().filter(|p| p.needs_ocr).map(|p| p.number).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let tesseract = if self.config.ocr { ocr::tesseract(&self.config.tesseract) } else { None };
        if tesseract.is_none() {
            let note = if self.config.ocr { ocr::NOT_INSTALLED } else { ocr::TURNED_OFF };
            for p in ex.pages.iter_mut().filter(|p| p.needs_ocr) {
                p.needs_ocr = false;
                if p.text.trim().is_empty() {
                    p.note = Some(note.into());
                }
            }
            return Ok(());
        }
        let image = self.scratch.path().join("page.pgm");
        let mut read = 0usize;
        for (done, number) in wanted.iter().enumerate() {
            on_event(Event::OcrPage { page: *number, done, of: wanted.len() });
            let id = self.next_id();
            let req = Request::Render {
                id,
                path: WirePath::new(path),
                page: *number,
                dpi: self.config.ocr_dpi,
                out: WirePath::new(&image),
            };
            let outcome = match self.ask(&req, self.config.ocr_page_timeout, id) {
                Ok(Reply::Rendered { .. }) => ocr::run(&self.config.tesseract, &image, self.config.ocr_page_timeout),
                Ok(Reply::Unreadable { reason, .. }) => Err(reason),
                Ok(other) => Err(format!("unexpected answer {other:?}")),
                Err(Failure::Cancelled) => return Err(Error::Cancelled { path: path.into() }),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::File(reason)) => {
                    self.restarts += 1;
                    on_event(Event::Restarted { reason: reason.clone() });
                    Err(reason)
                }
            };
            let _ = std::fs::remove_file(&image);
            let page = ex.pages.iter_mut().find(|p| p.number == *number).expect("wanted pages exist");
            page.needs_ocr = false;
            match outcome {
                Ok(text) if !text.trim().is_empty() => {
                    // Keep what little text layer there was (a page number) before the OCR text.
                    page.text = if page.text.trim().is_empty() { text } else { format!("{}\n{text}", page.text) };
                    page.ocr = true;
                    page.note = None;
                    read += 1;
                }
                Ok(_) => page.note = Some("no text layer, and OCR found no text on this page".into()),
                Err(reason) => {
                    page.note = Some(format!("no text layer, and OCR failed: {reason}"));
                    ex.warnings.push(format!("page {number}: OCR failed: {reason}"));
                }
            }
        }
        if read > 0 {
            ex.extractor = format!("{} + {}", ex.extractor, tesseract.as_deref().unwrap_or("tesseract"));
        }
        ex.finish(self.config.options.max_output_bytes);
        Ok(())
    }
}

impl Drop for Extractor {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            // Closing stdin ends it; kill in case it is stuck in a file.
            drop(w.stdin);
            let mut child = w.child;
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(200) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

enum Failure {
    /// The worker died or stalled on this file: the reason.
    File(String),
    Cancelled,
    /// No worker can be started.
    Fatal(Error),
}

fn read_lines(mut reader: BufReader<std::process::ChildStdout>, tx: mpsc::Sender<Line>) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.by_ref().take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf).unwrap_or_default();
        if n == 0 {
            let _ = tx.send(Line::Closed);
            return;
        }
        if !buf.ends_with(b"\n") && buf.len() > MAX_LINE_BYTES {
            let _ = tx.send(Line::TooLong);
            return;
        }
        let line = match serde_json::from_slice::<Reply>(&buf) {
            Ok(r) => Line::Reply(Box::new(r)),
            Err(e) => Line::Malformed(e.to_string()),
        };
        if tx.send(line).is_err() {
            return;
        }
    }
}

fn drain(mut stderr: std::process::ChildStderr, tail: Arc<Mutex<String>>) {
    let mut buf = [0u8; 8192];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                t.push_str(&String::from_utf8_lossy(&buf[..n]));
                if t.len() > 16_384 {
                    let cut = t.len() - 8192;
                    let cut = (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(t.len());
                    t.drain(..cut);
                }
            }
        }
    }
}
