//! The local engine: one thread owns llama.cpp — the backend, every loaded model and one context
//! per model — and serves requests with **continuous batching** and **prompt caching**.
//!
//! Each model has N slots (llama.cpp sequences in one context). Every step builds one batch per
//! model holding the next token of every generating slot plus chunks of pending prompts, and
//! decodes it once: four streams cost little more than one, because a CPU decode step is bound by
//! reading the weights, not by the number of tokens. A slot keeps the tokens in its KV cache
//! after a request ends; a new request goes to the free slot sharing the longest prefix with its
//! prompt, and only the rest is evaluated, so a root model's next turn costs only the new turn.
//!
//! A slot can also **score** instead of generate ([`Engine::score`]): the prompt is evaluated once,
//! each candidate continuation after it, and the log-probability of every candidate token is
//! read off the logits; `llm_classify` labels items this way, one prompt per item, so items are
//! scored four at a time in one batch and share the slot's cached instruction prefix.
//!
//! Callers talk to the thread through [`Engine`], a cheap handle: requests go in over a channel,
//! deltas come back over a per-request channel, and dropping that receiver cancels the request
//! (its slot is freed at the next step).

mod runner;

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::{Error, Result, Threads};
use quarry_llm::ChatMessage;
use quarry_llm::{Completion, Constraint, Sampling, Scores};

/// A model to load: the id requests name it by, and its file.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub id: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub models: Vec<ModelSpec>,
    /// Concurrent sequences per model.
    pub slots: usize,
    /// Context window of each slot, in tokens.
    pub ctx_per_slot: u32,
    /// Tokens per decode step (prompt chunks and generating slots together).
    pub n_batch: u32,
    pub threads: Threads,
    pub gpu_layers: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            models: Vec::new(),
            slots: 4,
            ctx_per_slot: 8192,
            n_batch: 512,
            threads: Threads::default(),
            gpu_layers: 0,
        }
    }
}

/// What to continue.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Rendered through the model's own chat template, ending with the assistant's turn opened.
    Chat(Vec<ChatMessage>),
    /// Raw text (special tokens parsed; BOS added if the model wants one).
    Text(String),
    /// Token ids, as OpenAI's completions API allows.
    Tokens(Vec<i32>),
}

#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The model id; `None` is fine when one model is loaded.
    pub model: Option<String>,
    pub prompt: Prompt,
    pub max_tokens: Option<usize>,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    pub constraint: Constraint,
    /// Keep generating past end-of-turn tokens (benchmarks need exact lengths).
    pub ignore_eos: bool,
    /// Reuse a slot's cached prefix (on by default; benchmarks of cold prompts turn it off).
    pub cache_prompt: bool,
}

impl GenerateRequest {
    pub fn new(prompt: Prompt) -> Self {
        GenerateRequest {
            model: None,
            prompt,
            max_tokens: None,
            sampling: Sampling::default(),
            stop: Vec::new(),
            constraint: Constraint::default(),
            ignore_eos: false,
            cache_prompt: true,
        }
    }
}

/// What a request's channel carries: `Accepted` once the request is valid (or an `Error` saying
/// why not), text as it is generated, then exactly one `Done` or `Error`.
#[derive(Debug)]
pub enum GenerationEvent {
    /// The prompt fits and the sampling (grammar included) is valid; the request waits for a slot
    /// or holds one. The HTTP layer starts its stream here, so keep-alives flow while a long
    /// prompt is evaluated: a 32K-token prompt takes longer than a client's idle timeout.
    Accepted,
    Text(String),
    Done(Completion),
    Error(Error),
}

/// One loaded model, as `/v1/models` and `/health` show it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadedModel {
    pub id: String,
    pub path: PathBuf,
    pub slots: usize,
    pub ctx_per_slot: u32,
    pub n_ctx_train: u32,
}

/// What [`Engine::score`] scores: `candidates`, each as the continuation of `prompt`.
#[derive(Debug, Clone)]
pub struct ScoreRequest {
    pub model: Option<String>,
    pub prompt: Prompt,
    pub candidates: Vec<String>,
}

pub(crate) enum Command {
    Generate(GenerateRequest, mpsc::UnboundedSender<GenerationEvent>),
    Score(ScoreRequest, oneshot::Sender<Result<Scores>>),
    Tokenize { model: Option<String>, text: String, reply: oneshot::Sender<Result<Vec<i32>>> },
    Render { model: Option<String>, messages: Vec<ChatMessage>, reply: oneshot::Sender<Result<String>> },
}

/// A handle to the engine thread. Clones share the thread; it stops when the last handle drops.
#[derive(Clone)]
pub struct Engine {
    tx: std_mpsc::Sender<Command>,
    models: std::sync::Arc<Vec<LoadedModel>>,
    threads: Threads,
    system: std::sync::Arc<crate::system::SystemInfo>,
}

impl Engine {
    /// Loads every model (checking each GGUF header first) and starts the engine thread. Returns
    /// once the models are ready, or with the first load error.
    pub fn start(config: EngineConfig) -> Result<Engine> {
        if config.models.is_empty() {
            return Err(Error::Generation("the engine needs at least one model".into()));
        }
        for spec in &config.models {
            quarry_models::gguf::inspect(&spec.path)?;
        }
        let threads = config.threads;
        let (tx, rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("quarry-engine".into())
            .spawn(move || runner::run(config, rx, ready_tx))
            .map_err(|e| Error::Generation(format!("could not start the engine thread: {e}")))?;
        let models = ready_rx.recv().map_err(|_| Error::Stopped)??;
        // The backends are all registered once the models are loaded.
        let system = std::sync::Arc::new(crate::system::SystemInfo::collect());
        Ok(Engine { tx, models: std::sync::Arc::new(models), threads, system })
    }

    pub fn models(&self) -> &[LoadedModel] {
        &self.models
    }

    pub fn threads(&self) -> Threads {
        self.threads
    }

    /// The CPU and the kernels this engine runs on.
    pub fn system(&self) -> &crate::system::SystemInfo {
        &self.system
    }

    /// Queues a request. Events arrive on the returned channel; dropping it cancels the request.
    pub fn generate(&self, request: GenerateRequest) -> mpsc::UnboundedReceiver<GenerationEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Err(std_mpsc::SendError(Command::Generate(_, tx))) = self.tx.send(Command::Generate(request, tx)) {
            let _ = tx.send(GenerationEvent::Error(Error::Stopped));
        }
        rx
    }

    /// The log-probability of each candidate after the prompt (see [`ScoreRequest`]). Dropping
    /// the future cancels the request.
    pub async fn score(&self, request: ScoreRequest) -> Result<Scores> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Score(request, reply))?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    pub async fn tokenize(&self, model: Option<String>, text: String) -> Result<Vec<i32>> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Tokenize { model, text, reply })?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// The prompt text a chat becomes through the model's template.
    pub async fn render(&self, model: Option<String>, messages: Vec<ChatMessage>) -> Result<String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Render { model, messages, reply })?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    fn send(&self, command: Command) -> Result<()> {
        self.tx.send(command).map_err(|_| Error::Stopped)
    }
}
