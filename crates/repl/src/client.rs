//! The host side: [`Repl`] spawns the worker, runs executions under a wall-clock limit, serves
//! host calls, and kills and respawns the worker whenever it stops answering or dies.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::context::{self, Context};
use crate::host::{serve, HostFunctions, NoHost};
use crate::protocol::{
    CallOutcome, ContextFile, ContextInfo, ContextOutcome, HostMessage, Limits, ReplResult, WorkerConfig,
    WorkerMessage, MAX_LINE_BYTES, PROTOCOL_VERSION,
};
use crate::{Error, Result};

/// A Python REPL the RLM loop can drive: load the documents, run code, read the result.
pub trait Environment {
    /// Binds `context` in the namespace (replacing any previous one).
    fn load_context(&mut self, context: &Context) -> Result<ContextInfo>;
    /// Runs one block of code. Errors in the code, timeouts and worker crashes are *results*
    /// (see [`ReplResult::error`] and [`ReplResult::restarted`]); `Err` means the REPL itself is
    /// unusable (the worker cannot be started again).
    fn execute(&mut self, code: &str) -> Result<ReplResult>;
}

/// How to start a worker: by default this very executable as `<exe> worker repl`.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl WorkerCommand {
    pub fn current_exe() -> Self {
        WorkerCommand::quarry(std::env::current_exe().unwrap_or_else(|_| PathBuf::from("quarry")))
    }

    /// `<program> worker repl`: a `quarry` executable other than this one (the desktop app's).
    pub fn quarry(program: PathBuf) -> Self {
        WorkerCommand { program, args: vec!["worker".into(), "repl".into()] }
    }
}

/// Everything about one REPL: the worker to run, its sandbox and its limits.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub worker: WorkerCommand,
    pub limits: Limits,
    /// Wall-clock limit of one execution, not counting time the host spends in host calls.
    pub timeout: Duration,
    /// How long an interrupted execution gets to stop before the worker is killed.
    pub grace: Duration,
    pub startup_timeout: Duration,
    /// Characters kept of each of stdout, stderr, error and value (head + tail).
    pub output_budget: usize,
    /// Extra read-only paths, typically the folder being analysed.
    pub readable: Vec<PathBuf>,
    /// Where the per-run directory (scratch + context) is created; the system temp dir if unset.
    pub run_dir_parent: Option<PathBuf>,
    /// **Unconfined mode.** Run even if the kernel lacks Landlock, seccomp or rlimits, instead
    /// of refusing. Model-written code then runs with the user's full rights.
    pub allow_unconfined: bool,
    /// Mechanisms the worker treats as missing (tests of the refusal path).
    pub pretend_unavailable: Vec<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            worker: WorkerCommand::current_exe(),
            limits: Limits::default(),
            timeout: Duration::from_secs(60),
            grace: Duration::from_secs(2),
            startup_timeout: Duration::from_secs(30),
            output_budget: 8000,
            readable: Vec::new(),
            run_dir_parent: None,
            allow_unconfined: false,
            pretend_unavailable: Vec::new(),
        }
    }
}

/// What the worker reported when it became ready.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WorkerInfo {
    pub python: String,
    pub pid: u32,
    pub active: Vec<String>,
    pub missing: Vec<String>,
}

enum Event {
    Message(WorkerMessage),
    Malformed(String),
    Closed,
    CallDone { id: u64, outcome: CallOutcome },
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    events: Receiver<Event>,
    /// Cloned into host-call threads; a worker's channel dies with it, so a late answer for a
    /// killed worker goes nowhere.
    events_tx: Sender<Event>,
    stderr_tail: Arc<Mutex<String>>,
}

impl Worker {
    fn send(&mut self, msg: &HostMessage) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(msg).expect("messages serialize");
        line.push(b'\n');
        self.stdin.write_all(&line)?;
        self.stdin.flush()
    }

    fn kill(mut self) -> (Option<ExitStatus>, String) {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        let tail = self.stderr_tail.lock().map(|s| s.clone()).unwrap_or_default();
        (status, tail)
    }
}

/// The sandboxed REPL: one worker process at a time, respawned as needed.
pub struct Repl {
    config: SandboxConfig,
    host: Arc<dyn HostFunctions>,
    run_dir: tempfile::TempDir,
    scratch: PathBuf,
    context_dir: PathBuf,
    worker: Option<Worker>,
    info: WorkerInfo,
    /// The loaded context, reloaded into every new worker.
    context: Option<ContextFile>,
    seq: u64,
}

impl Repl {
    /// Creates the run directory and starts the worker; fails if the sandbox cannot be built.
    ///
    /// Create (and use) a `Repl` on a thread that lives as long as it does: the worker sets
    /// `PR_SET_PDEATHSIG`, which Linux ties to the *thread* that spawned it, so a worker started
    /// from a short-lived thread (a tokio `spawn_blocking` thread exits after 10 s idle) is killed
    /// with that thread. The RLM loop owns its REPL on a dedicated thread for this reason.
    pub fn new(config: SandboxConfig, host: Arc<dyn HostFunctions>) -> Result<Repl> {
        let run_dir = match &config.run_dir_parent {
            Some(parent) => tempfile::Builder::new().prefix("quarry-repl-").tempdir_in(parent)?,
            None => tempfile::Builder::new().prefix("quarry-repl-").tempdir()?,
        };
        let scratch = run_dir.path().join("scratch");
        let context_dir = run_dir.path().join("context");
        std::fs::create_dir(&scratch)?;
        std::fs::create_dir(&context_dir)?;
        let mut repl = Repl {
            config,
            host,
            run_dir,
            scratch,
            context_dir,
            worker: None,
            info: WorkerInfo::default(),
            context: None,
            seq: 0,
        };
        repl.start_worker()?;
        Ok(repl)
    }

    /// A REPL with no host functions.
    pub fn without_host(config: SandboxConfig) -> Result<Repl> {
        Repl::new(config, Arc::new(NoHost))
    }

    /// The worker's read-write directory.
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// The running worker: interpreter version, pid, confinement in force.
    pub fn info(&self) -> &WorkerInfo {
        &self.info
    }

    /// Kills the worker and starts a fresh one (variables lost, context reloaded).
    pub fn restart(&mut self) -> Result<()> {
        if let Some(w) = self.worker.take() {
            w.kill();
        }
        self.start_worker()
    }

    fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn start_worker(&mut self) -> Result<()> {
        let cmd = &self.config.worker;
        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            // Scrubbed: API keys and tokens in the host's environment never reach model code.
            .env_clear()
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env("HOME", &self.scratch)
            .env("TMPDIR", &self.scratch)
            .current_dir(&self.scratch)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: the terminal's Ctrl-C is the host's to handle.
            .process_group(0);
        if let Some(filter) = std::env::var_os("QUARRY_LOG") {
            command.env("QUARRY_LOG", filter);
        }
        let mut child = command.spawn().map_err(|source| Error::Spawn { program: cmd.program.clone(), source })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let reader_tx = tx.clone();
        std::thread::Builder::new()
            .name("repl-reader".into())
            .spawn(move || read_worker(BufReader::with_capacity(1 << 16, stdout), reader_tx))?;
        let stderr_tail = Arc::new(Mutex::new(String::new()));
        let tail = stderr_tail.clone();
        std::thread::Builder::new().name("repl-stderr".into()).spawn(move || drain_stderr(stderr, tail))?;
        let mut worker = Worker { child, stdin, events: rx, events_tx: tx, stderr_tail };

        let start = HostMessage::Start {
            protocol: PROTOCOL_VERSION,
            config: WorkerConfig {
                scratch: self.scratch.clone(),
                readable: std::iter::once(self.context_dir.clone())
                    .chain(self.config.readable.iter().cloned())
                    .collect(),
                limits: self.config.limits,
                output_budget: self.config.output_budget,
                allow_unconfined: self.config.allow_unconfined,
                pretend_unavailable: self.config.pretend_unavailable.clone(),
            },
        };
        let startup = |worker: Worker, why: String| -> Error {
            let (status, tail) = worker.kill();
            let mut msg = why;
            if let Some(s) = status.filter(|s| !s.success()) {
                msg.push_str(&format!(" ({})", describe_exit(s)));
            }
            if !tail.trim().is_empty() {
                msg.push_str(&format!(": {}", tail.trim()));
            }
            Error::Startup(msg)
        };
        if worker.send(&start).is_err() {
            return Err(startup(worker, "it closed its input".into()));
        }
        let deadline = Instant::now() + self.config.startup_timeout;
        loop {
            match worker.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Event::Message(WorkerMessage::Ready { protocol, python, pid, active, missing })) => {
                    if protocol != PROTOCOL_VERSION {
                        return Err(startup(worker, format!("it speaks protocol {protocol}, not {PROTOCOL_VERSION}")));
                    }
                    if !missing.is_empty() {
                        tracing::warn!("the REPL runs UNCONFINED: {}", missing.join("; "));
                    }
                    self.info = WorkerInfo { python, pid, active, missing };
                    break;
                }
                Ok(Event::Message(WorkerMessage::Refused { message })) => {
                    worker.kill();
                    return Err(Error::Refused(message));
                }
                Ok(Event::Message(other)) => {
                    return Err(startup(worker, format!("unexpected first message {other:?}")));
                }
                Ok(Event::Malformed(e)) => return Err(startup(worker, e)),
                Ok(Event::Closed) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(startup(worker, "it exited before it was ready".into()));
                }
                Ok(Event::CallDone { .. }) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(startup(worker, format!("not ready after {:?}", self.config.startup_timeout)));
                }
            }
        }
        self.worker = Some(worker);
        if let Some(file) = self.context.clone() {
            self.send_context(&file)?;
        }
        Ok(())
    }

    /// Kills the worker after a failure and starts a new one; returns the result that tells the
    /// model what happened.
    fn restart_after(&mut self, why: String, started: Instant) -> Result<ReplResult> {
        let mut message = why;
        if let Some(w) = self.worker.take() {
            let (status, tail) = w.kill();
            if let Some(s) = status.filter(|s| !s.success() && s.signal() != Some(libc::SIGKILL)) {
                message.push_str(&format!(" ({})", describe_exit(s)));
            }
            let tail = tail.trim();
            if !tail.is_empty() {
                let tail: String = tail.chars().rev().take(1000).collect::<Vec<_>>().into_iter().rev().collect();
                message.push_str(&format!("\nworker stderr: {tail}"));
            }
        }
        tracing::info!("restarting the REPL worker: {message}");
        self.start_worker()?;
        Ok(ReplResult {
            error: Some(format!("{message}\nThe REPL was restarted; variables were lost.")),
            duration: started.elapsed(),
            restarted: true,
            ..Default::default()
        })
    }

    fn send_context(&mut self, file: &ContextFile) -> Result<ContextInfo> {
        let id = self.next_id();
        let timeout = self.config.timeout;
        let worker = self.worker.as_mut().expect("a worker is running");
        worker
            .send(&HostMessage::LoadContext { id, context: file.clone() })
            .map_err(|e| Error::Context(format!("the worker is gone: {e}")))?;
        let deadline = Instant::now() + timeout;
        loop {
            match worker.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Event::Message(WorkerMessage::ContextLoaded { id: rid, outcome })) if rid == id => {
                    return match outcome {
                        ContextOutcome::Info(info) => Ok(info),
                        ContextOutcome::Error(e) => Err(Error::Context(e)),
                    };
                }
                Ok(Event::Message(_)) | Ok(Event::CallDone { .. }) => {}
                Ok(Event::Malformed(e)) => return Err(Error::Protocol(e)),
                Ok(Event::Closed) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Context("the worker died while loading the context".into()))
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::Context(format!("not loaded after {timeout:?}")));
                }
            }
        }
    }

    fn ensure_worker(&mut self) -> Result<()> {
        if self.worker.is_none() {
            self.start_worker()?;
        }
        Ok(())
    }
}

impl Environment for Repl {
    fn load_context(&mut self, context: &Context) -> Result<ContextInfo> {
        self.ensure_worker()?;
        self.seq += 1;
        let file = context.write(&self.context_dir, self.seq)?;
        let result = self.send_context(&file);
        match result {
            Ok(info) => {
                if let Some(old) = self.context.replace(file) {
                    context::remove(&old);
                }
                Ok(info)
            }
            Err(e) => {
                context::remove(&file);
                // A worker that died or broke the protocol while loading is replaced, with the
                // previous context.
                if matches!(e, Error::Protocol(_))
                    || self.worker.as_mut().is_some_and(|w| w.child.try_wait().ok().flatten().is_some())
                {
                    if let Some(w) = self.worker.take() {
                        w.kill();
                    }
                    self.start_worker()?;
                }
                Err(e)
            }
        }
    }

    fn execute(&mut self, code: &str) -> Result<ReplResult> {
        self.ensure_worker()?;
        let started = Instant::now();
        let id = self.next_id();
        let timeout = self.config.timeout;
        let grace = self.config.grace;
        let host = self.host.clone();
        let worker = self.worker.as_mut().expect("a worker is running");
        if let Err(e) = worker.send(&HostMessage::Execute { id, code: code.to_string() }) {
            return self.restart_after(format!("The REPL process had stopped ({e})."), started);
        }

        // The clock runs only while no host call is outstanding: a batch of model calls may take
        // minutes and is the RLM's budget to police, not the sandbox's.
        let mut remaining = timeout;
        let mut running_since = Some(Instant::now());
        let mut outstanding = 0usize;
        let mut interrupted_at: Option<Instant> = None;
        loop {
            let wait = match (interrupted_at, running_since) {
                (Some(t), _) => (t + grace).saturating_duration_since(Instant::now()),
                (None, Some(since)) => remaining.saturating_sub(since.elapsed()),
                (None, None) => Duration::from_secs(3600),
            };
            let worker = self.worker.as_mut().expect("a worker is running");
            match worker.events.recv_timeout(wait) {
                Ok(Event::Message(WorkerMessage::Result { id: rid, mut result })) if rid == id => {
                    if interrupted_at.is_some() {
                        if let Some(tb) = result.error.as_deref().filter(|e| e.contains("ExecutionTimeout")) {
                            result.error = Some(format!(
                                "TimeoutError: the execution exceeded its {} s time limit and was interrupted; \
                                 variables are kept.\n{tb}",
                                timeout.as_secs_f64()
                            ));
                        }
                    }
                    return Ok(result);
                }
                Ok(Event::Message(WorkerMessage::Call { id: cid, call })) => {
                    if interrupted_at.is_some() {
                        let outcome = CallOutcome::Error("the execution was interrupted".into());
                        let _ = worker.send(&HostMessage::Reply { id: cid, outcome });
                        continue;
                    }
                    outstanding += 1;
                    if let Some(since) = running_since.take() {
                        remaining = remaining.saturating_sub(since.elapsed());
                    }
                    let host = host.clone();
                    let tx = worker.events_tx.clone();
                    let spawned = std::thread::Builder::new().name("repl-host-call".into()).spawn(move || {
                        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(&*host, &call)))
                            .unwrap_or_else(|_| CallOutcome::Error("the host function panicked".into()));
                        let _ = tx.send(Event::CallDone { id: cid, outcome });
                    });
                    if spawned.is_err() {
                        outstanding -= 1;
                        let outcome = CallOutcome::Error("the host could not start a thread for this call".into());
                        let _ = worker.send(&HostMessage::Reply { id: cid, outcome });
                        if outstanding == 0 {
                            running_since = Some(Instant::now());
                        }
                    }
                }
                Ok(Event::CallDone { id: cid, outcome }) => {
                    outstanding = outstanding.saturating_sub(1);
                    if outstanding == 0 && interrupted_at.is_none() {
                        running_since = Some(Instant::now());
                    }
                    // A failed write means the worker died; its Closed event follows.
                    let _ = worker.send(&HostMessage::Reply { id: cid, outcome });
                }
                Ok(Event::Message(other)) => {
                    tracing::warn!("ignoring an unexpected message from the REPL worker: {other:?}");
                }
                Ok(Event::Malformed(e)) => {
                    return self.restart_after(format!("The REPL process broke the protocol ({e})."), started);
                }
                Ok(Event::Closed) | Err(RecvTimeoutError::Disconnected) => {
                    return self.restart_after("The REPL process died.".into(), started);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if interrupted_at.is_none() {
                        interrupted_at = Some(Instant::now());
                        if worker.send(&HostMessage::Interrupt { id }).is_err() {
                            return self.restart_after("The REPL process died.".into(), started);
                        }
                    } else {
                        return self.restart_after(
                            format!(
                                "TimeoutError: the execution exceeded its {} s time limit and did not stop when \
                                 interrupted (a long call in C code cannot be interrupted), so the REPL process was \
                                 killed.",
                                timeout.as_secs_f64()
                            ),
                            started,
                        );
                    }
                }
            }
        }
    }
}

impl Drop for Repl {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            w.kill();
        }
    }
}

/// "killed by signal 11 (SIGSEGV, ...)" / "exited with status 3".
fn describe_exit(status: ExitStatus) -> String {
    if let Some(sig) = status.signal() {
        let what = match sig {
            libc::SIGSEGV => "SIGSEGV: a segmentation fault",
            libc::SIGBUS => "SIGBUS",
            libc::SIGABRT => "SIGABRT: the interpreter aborted",
            libc::SIGKILL => "SIGKILL",
            libc::SIGXCPU => "SIGXCPU: the CPU time limit was reached",
            libc::SIGXFSZ => "SIGXFSZ: the file size limit was reached",
            libc::SIGSYS => "SIGSYS: a forbidden system call",
            _ => "",
        };
        if what.is_empty() {
            format!("killed by signal {sig}")
        } else {
            format!("killed by signal {sig}, {what}")
        }
    } else {
        format!("exited with status {}", status.code().unwrap_or(-1))
    }
}

fn read_worker(mut reader: BufReader<std::process::ChildStdout>, tx: Sender<Event>) {
    let mut line = Vec::with_capacity(1 << 12);
    loop {
        line.clear();
        // Bounded: a worker must not be able to make the host buffer gigabytes.
        match (&mut reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            let why = if line.len() > MAX_LINE_BYTES {
                format!("a line longer than {MAX_LINE_BYTES} bytes")
            } else {
                "a truncated last line".to_string()
            };
            let _ = tx.send(Event::Malformed(why));
            break;
        }
        let event = match serde_json::from_slice::<WorkerMessage>(&line) {
            Ok(msg) => Event::Message(msg),
            Err(e) => {
                let shown: String = String::from_utf8_lossy(&line).chars().take(200).collect();
                Event::Malformed(format!("{e} in {shown:?}"))
            }
        };
        let stop = matches!(event, Event::Malformed(_));
        if tx.send(event).is_err() || stop {
            return;
        }
    }
    let _ = tx.send(Event::Closed);
}

/// Keeps the last few KiB of the worker's stderr (interpreter fatal errors, our own startup
/// messages) for error reports; model code can write there too, so it is only ever a tail.
fn drain_stderr(mut stderr: std::process::ChildStderr, tail: Arc<Mutex<String>>) {
    const KEEP: usize = 4096;
    let mut buf = [0u8; 8192];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let chunk = String::from_utf8_lossy(&buf[..n]);
                tracing::debug!(target: "quarry_repl::worker", "{}", chunk.trim_end());
                if let Ok(mut t) = tail.lock() {
                    t.push_str(&chunk);
                    if t.len() > 2 * KEEP {
                        let mut cut = t.len() - KEEP;
                        while !t.is_char_boundary(cut) {
                            cut += 1;
                        }
                        t.drain(..cut);
                    }
                }
            }
        }
    }
}
