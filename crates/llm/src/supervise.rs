//! Running the local engine as a supervised child process.
//!
//! llama.cpp reports some internal errors with `GGML_ASSERT`, which calls `abort()`: no Rust code
//! can catch it, so the engine runs in its own process (`quarry serve`) and the app survives it.
//! [`LocalServer::start`] spawns the child on a free loopback port (the child binds port 0 and
//! reports the port in its ready line) with a random API key passed through the environment,
//! never argv (argv is readable by every user of the machine). If the child dies, requests in
//! flight get [`Error::EngineCrashed`] and the child is restarted with backoff; the next request
//! waits for it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::api::{ChatRequest, Completion, DeltaSink, LanguageModel, ScoreRequest, Scores};
use crate::openai::OpenAiClient;
use crate::{Error, Result};

/// The environment variable carrying the engine's API key: the supervisor passes it this way,
/// never in argv, and `quarry serve` reads it.
pub const API_KEY_ENV: &str = "QUARRY_API_KEY";

/// How to start the engine child.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The executable; `quarry` itself by default (the desktop app passes its own path).
    pub program: PathBuf,
    /// Arguments before the options, `["serve"]` for `quarry serve`.
    pub subcommand: Vec<String>,
    /// Catalog ids or GGUF paths.
    pub models: Vec<String>,
    pub slots: usize,
    pub ctx_per_slot: u32,
    /// CPU threads for one-token decode steps (`--threads`; the engine's default when `None`).
    pub threads: Option<usize>,
    /// CPU threads for prompt chunks and multi-sequence steps (`--batch-threads`).
    pub batch_threads: Option<usize>,
    pub gpu_layers: u32,
    /// How long a start (model loading included) may take.
    pub ready_timeout: Duration,
}

impl ServerOptions {
    pub fn new(models: Vec<String>) -> ServerOptions {
        ServerOptions {
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("quarry")),
            subcommand: vec!["serve".into()],
            models,
            slots: 4,
            ctx_per_slot: 8192,
            threads: None,
            batch_threads: None,
            gpu_layers: 0,
            ready_timeout: Duration::from_secs(180),
        }
    }
}

#[derive(Debug, Clone)]
enum State {
    Ready {
        port: u16,
        pid: u32,
    },
    /// Starting, or coming back after a crash (the reason is logged when it happens).
    Restarting,
    Failed {
        reason: String,
    },
    Stopped,
}

struct Inner {
    options: ServerOptions,
    api_key: String,
    state: watch::Sender<State>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// The child's start-up line naming its CPU and kernels (`cpu: ...`), kept for crash reports.
    system_line: Arc<Mutex<Option<String>>>,
    restarts: Mutex<u32>,
}

/// A supervised `quarry serve` child. Dropping the last handle stops it.
#[derive(Clone)]
pub struct LocalServer {
    inner: Arc<Inner>,
    _guard: Arc<StopOnDrop>,
}

struct StopOnDrop(watch::Sender<State>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(State::Stopped);
    }
}

impl LocalServer {
    /// Starts the child and waits for its ready line. A child that cannot start (a bad model
    /// file, say) is an error here, with the child's own last words.
    pub async fn start(options: ServerOptions) -> Result<LocalServer> {
        let api_key = random_key()?;
        let (state, _) = watch::channel(State::Restarting);
        let inner = Arc::new(Inner {
            options,
            api_key,
            state,
            stderr_tail: Arc::new(Mutex::new(VecDeque::new())),
            system_line: Arc::new(Mutex::new(None)),
            restarts: Mutex::new(0),
        });
        let (child, port) = spawn(&inner).await?;
        inner.state.send_replace(State::Ready { port, pid: child.id().unwrap_or(0) });
        tokio::spawn(supervise(inner.clone(), child));
        let guard = Arc::new(StopOnDrop(inner.state.clone()));
        Ok(LocalServer { inner, _guard: guard })
    }

    /// The child's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        match &*self.inner.state.borrow() {
            State::Ready { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    /// How many times the child has been restarted.
    pub fn restarts(&self) -> u32 {
        *self.inner.restarts.lock().unwrap()
    }

    /// The server's base URL, waiting for a restart in progress to finish.
    pub async fn base_url(&self) -> Result<String> {
        let mut rx = self.inner.state.subscribe();
        let deadline = tokio::time::Instant::now() + self.inner.options.ready_timeout;
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                State::Ready { port, .. } => return Ok(format!("http://127.0.0.1:{port}")),
                State::Failed { reason } => return Err(Error::EngineStart { reason }),
                State::Stopped => return Err(Error::EngineStart { reason: "it was stopped".into() }),
                State::Restarting => {}
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return Err(Error::EngineStart { reason: "it did not come back in time".into() });
            }
        }
    }

    /// A [`LanguageModel`] for one of the loaded models, surviving restarts of the child.
    pub fn model(&self, id: &str) -> SupervisedModel {
        SupervisedModel { server: self.clone(), id: id.to_string() }
    }

    /// A plain client for the current child (tests and benchmarks that want the raw endpoint).
    pub async fn client(&self, model: &str) -> Result<OpenAiClient> {
        Ok(OpenAiClient::new(&self.base_url().await?, model, Some(self.inner.api_key.clone()))?.with_concurrency(64))
    }

    /// Stops the child and waits until it has exited.
    pub async fn shutdown(self) {
        let mut rx = self.inner.state.subscribe();
        self.inner.state.send_replace(State::Stopped);
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
    }

    fn last_words(&self) -> String {
        last_words(&self.inner)
    }
}

/// A model served by a [`LocalServer`].
#[derive(Clone)]
pub struct SupervisedModel {
    server: LocalServer,
    id: String,
}

#[async_trait::async_trait]
impl LanguageModel for SupervisedModel {
    fn name(&self) -> &str {
        &self.id
    }

    async fn chat_stream(&self, request: &ChatRequest, sink: &mut dyn DeltaSink) -> Result<Completion> {
        let pid = self.server.pid();
        let client = self.server.client(&self.id).await?;
        let result = client.chat_stream(request, sink).await;
        self.crash_or(pid, &client, result).await
    }

    async fn score(&self, request: &ScoreRequest) -> Result<Scores> {
        let pid = self.server.pid();
        let client = self.server.client(&self.id).await?;
        let result = client.score(request).await;
        self.crash_or(pid, &client, result).await
    }
}

impl SupervisedModel {
    /// A network error from the child the request went to is a crash if that child died: tells
    /// the two apart, so the user reads "the local model server stopped" and not a socket error.
    async fn crash_or<T>(&self, pid: Option<u32>, client: &OpenAiClient, result: Result<T>) -> Result<T> {
        match result {
            Err(Error::Network { message, .. }) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if self.server.pid() != pid || pid.is_none() {
                    let words = self.server.last_words();
                    let reason = if words.is_empty() { message } else { words };
                    Err(Error::EngineCrashed { reason })
                } else {
                    Err(Error::Network { url: client.base_url().into(), message })
                }
            }
            other => other,
        }
    }
}

/// Resolves once the server is told to stop (or its handle is gone).
async fn stopped(stop: &mut watch::Receiver<State>) {
    loop {
        if matches!(*stop.borrow_and_update(), State::Stopped) {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

fn last_words(inner: &Inner) -> String {
    let tail = inner.stderr_tail.lock().unwrap();
    tail.iter().rev().find(|l| !l.trim().is_empty()).cloned().unwrap_or_default()
}

async fn spawn(inner: &Arc<Inner>) -> Result<(Child, u16)> {
    let o = &inner.options;
    let mut cmd = Command::new(&o.program);
    cmd.args(&o.subcommand).args([
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--slots",
        &o.slots.to_string(),
        "--ctx",
        &o.ctx_per_slot.to_string(),
    ]);
    for m in &o.models {
        cmd.args(["--model", m]);
    }
    if let Some(t) = o.threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    if let Some(t) = o.batch_threads {
        cmd.args(["--batch-threads", &t.to_string()]);
    }
    if o.gpu_layers > 0 {
        cmd.args(["--gpu-layers", &o.gpu_layers.to_string()]);
    }
    cmd.env(API_KEY_ENV, &inner.api_key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(target_os = "linux")]
    unsafe {
        // If the app itself dies (even by SIGKILL), take the engine with it. Linux ties this to
        // the spawning *thread*: spawns happen on runtime worker threads or the thread driving
        // `block_on`, which live as long as the runtime; never start a server from a
        // `spawn_blocking` thread, which exits after 10 s idle and would take the child along.
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::EngineStart { reason: format!("{}: {e}", o.program.display()) })?;
    let stderr = child.stderr.take().expect("piped");
    let tail = inner.stderr_tail.clone();
    tail.lock().unwrap().clear();
    let system_line = inner.system_line.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(target: "quarry::serve", "{line}");
            if line.starts_with("cpu: ") {
                *system_line.lock().unwrap() = Some(line.clone());
            }
            let mut t = tail.lock().unwrap();
            if t.len() == 20 {
                t.pop_front();
            }
            t.push_back(line);
        }
    });
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let ready = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["event"] == "ready" {
                    if let Some(port) = v["port"].as_u64() {
                        return Some(port as u16);
                    }
                }
            }
        }
        None
    };
    match tokio::time::timeout(o.ready_timeout, ready).await {
        Ok(Some(port)) => {
            // Keep draining stdout so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            Ok((child, port))
        }
        Ok(None) => {
            let status = child.wait().await.ok();
            tokio::time::sleep(Duration::from_millis(50)).await; // let the stderr reader catch up
            let words = last_words(inner);
            let words = words.strip_prefix("error: ").unwrap_or(&words).to_string();
            Err(Error::EngineStart {
                reason: if words.is_empty() {
                    format!("it exited ({})", status.map(|s| s.to_string()).unwrap_or_default())
                } else {
                    words
                },
            })
        }
        Err(_) => {
            let _ = child.kill().await;
            Err(Error::EngineStart { reason: format!("it was not ready within {} s", o.ready_timeout.as_secs()) })
        }
    }
}

/// Watches the child: on an unexpected exit, restarts it with growing pauses (reset once it has
/// stayed up a minute); gives up after five failed starts in a row.
async fn supervise(inner: Arc<Inner>, mut child: Child) {
    let mut stop = inner.state.subscribe();
    let mut failures = 0u32;
    loop {
        let up_since = Instant::now();
        let status = tokio::select! {
            s = child.wait() => s,
            _ = stopped(&mut stop) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                inner.state.send_replace(State::Stopped);
                return;
            }
        };
        if matches!(*inner.state.borrow(), State::Stopped) {
            return;
        }
        let reason = match &status {
            Ok(s) => describe_exit(s),
            Err(e) => e.to_string(),
        };
        match inner.system_line.lock().unwrap().as_deref() {
            Some(ran) => tracing::warn!("the local model server stopped ({reason}); restarting (it ran on {ran})"),
            None => tracing::warn!("the local model server stopped ({reason}); restarting"),
        }
        inner.state.send_replace(State::Restarting);
        if up_since.elapsed() > Duration::from_secs(60) {
            failures = 0;
        }
        loop {
            let pause = Duration::from_millis(250u64 << failures.min(6));
            tokio::time::sleep(pause).await;
            if matches!(*inner.state.borrow(), State::Stopped) {
                return;
            }
            match spawn(&inner).await {
                Ok((c, port)) => {
                    *inner.restarts.lock().unwrap() += 1;
                    inner.state.send_replace(State::Ready { port, pid: c.id().unwrap_or(0) });
                    child = c;
                    break;
                }
                Err(e) => {
                    failures += 1;
                    if failures >= 5 {
                        inner.state.send_replace(State::Failed { reason: format!("{e} (after {failures} attempts)") });
                        return;
                    }
                }
            }
        }
    }
}

fn describe_exit(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                libc::SIGKILL => "SIGKILL",
                libc::SIGABRT => "SIGABRT, an internal llama.cpp assertion",
                libc::SIGSEGV => "SIGSEGV",
                libc::SIGTERM => "SIGTERM",
                _ => "a signal",
            };
            return format!("killed by {name} ({sig})");
        }
    }
    format!("exited with {status}")
}

fn random_key() -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::EngineStart { reason: format!("no randomness for an API key ({e})") })?;
    Ok(hex::encode(bytes))
}
