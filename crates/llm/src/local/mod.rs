//! Local inference on llama.cpp (through `llama-cpp-2`), in process.
//!
//! This is the single-sequence engine `quarry ask` uses today. The served engine with continuous
//! batching and prompt caching (`quarry serve`) builds on the same pieces.

pub mod kernels;
pub mod raw_bench;
mod template;
mod text;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

pub use template::{ChatMessage, ChatTemplate};
pub(crate) use text::Utf8Stream;

pub use crate::api::FinishReason;
use crate::api::Sampling;

use crate::{gguf, Error, Result};

/// Threads for generation: physical cores − 1 (at least 1). On a loaded 2-core machine, using
/// every core makes OpenMP's workers fight the rest of the system and throughput collapses.
pub fn default_threads() -> usize {
    num_cpus::get_physical().saturating_sub(1).max(1)
}

/// Settings every binary applies before any thread starts: OpenMP workers that sleep instead of
/// spinning when idle (spinning workers starve everything else on a small machine).
pub fn prepare_process_env() {
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists.
        unsafe { std::env::set_var("OMP_WAIT_POLICY", "passive") };
    }
}

pub(crate) fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Generation(format!("llama.cpp did not start: {e}")))
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Layers to offload to a GPU (0 on CPU-only builds).
    pub gpu_layers: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { gpu_layers: 0 }
    }
}

/// How to generate. Temperature 0 means greedy (deterministic) decoding.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    /// Context window for this request; defaults to prompt + max_tokens, capped at training length.
    pub n_ctx: Option<u32>,
    pub threads: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 512,
            sampling: Sampling::default(),
            stop: Vec::new(),
            n_ctx: None,
            threads: default_threads(),
        }
    }
}

/// Receives a generation as it happens; returning `false` stops it (the ripgrep sink shape).
pub trait TokenSink {
    /// `done` of `total` prompt tokens have been evaluated.
    fn prompt_progress(&mut self, _done: usize, _total: usize) -> bool {
        true
    }
    /// New text (whole UTF-8 characters, never part of a stop string).
    fn text(&mut self, text: &str) -> bool;
}

/// A sink that only collects.
impl TokenSink for String {
    fn text(&mut self, text: &str) -> bool {
        self.push_str(text);
        true
    }
}

/// A finished generation with its counts and timings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generation {
    pub text: String,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub prompt_ms: f64,
    pub generation_ms: f64,
}

/// Counting tokens and rendering chats the way a model does: what fitting a prompt to a window
/// needs, without the weights.
pub trait Tokens {
    fn count_tokens(&self, text: &str) -> usize;
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String>;
}

/// A model's tokenizer and chat template only (loaded with `vocab_only`: milliseconds, a few MB),
/// for processes that talk to the weights through `quarry serve`.
pub struct Tokenizer {
    model: LlamaModel,
    template: Option<ChatTemplate>,
    name: String,
    /// From the GGUF header: a vocabulary-only load leaves llama.cpp's `n_ctx_train` at 0.
    trained_context: Option<usize>,
}

impl Tokenizer {
    pub fn load(path: &Path) -> Result<Tokenizer> {
        let info = gguf::inspect(path)?;
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend()?, path, &params).map_err(|e| Error::Load {
            path: path.into(),
            message: format!("llama.cpp refused its vocabulary ({e})"),
        })?;
        let name = model_name(&info, path);
        let template = template_of(&info, &model, &name);
        let trained_context = info.context_length().map(|n| n as usize);
        Ok(Tokenizer { model, template, name, trained_context })
    }

    /// The context length, in tokens, the model was trained for, when its GGUF header says.
    pub fn trained_context(&self) -> Option<usize> {
        self.trained_context
    }
}

impl Tokens for Tokenizer {
    fn count_tokens(&self, text: &str) -> usize {
        self.model.vocab().tokenize(text.as_bytes(), false, true).len()
    }
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        render(self.template.as_ref(), &self.name, messages)
    }
}

impl Tokens for LocalModel {
    fn count_tokens(&self, text: &str) -> usize {
        LocalModel::count_tokens(self, text)
    }
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        LocalModel::render_chat(self, messages)
    }
}

fn model_name(info: &gguf::GgufInfo, path: &Path) -> String {
    info.get_str("general.name")
        .map(str::to_string)
        .unwrap_or_else(|| path.file_stem().unwrap_or_default().to_string_lossy().into_owned())
}

fn template_of(info: &gguf::GgufInfo, model: &LlamaModel, name: &str) -> Option<ChatTemplate> {
    let piece = |t: LlamaToken| String::from_utf8_lossy(&model.vocab().token_to_piece(t, true, None)).into_owned();
    info.chat_template().map(|src| ChatTemplate::new(name, src, piece(model.vocab().bos()), piece(model.vocab().eos())))
}

fn render(template: Option<&ChatTemplate>, name: &str, messages: &[ChatMessage]) -> Result<String> {
    let template = template.ok_or_else(|| Error::Template {
        model: name.to_string(),
        message: "the GGUF file has no tokenizer.chat_template".into(),
    })?;
    template.render(messages, true)
}

/// A GGUF model loaded into memory.
pub struct LocalModel {
    model: LlamaModel,
    path: PathBuf,
    name: String,
    template: Option<ChatTemplate>,
    n_ctx_train: u32,
}

impl LocalModel {
    /// Checks the file's header (for a clear error instead of a null pointer), then loads it.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<LocalModel> {
        let info = gguf::inspect(path)?;
        let backend = backend()?;
        let params = LlamaModelParams::default().with_n_gpu_layers(options.gpu_layers);
        let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| Error::Load {
            path: path.into(),
            message: format!("llama.cpp refused it ({e}); the architecture may be newer than this build supports"),
        })?;
        let name = model_name(&info, path);
        let template = template_of(&info, &model, &name);
        let n_ctx_train = model.n_ctx_train();
        Ok(LocalModel { model, path: path.into(), name, template, n_ctx_train })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn n_ctx_train(&self) -> u32 {
        self.n_ctx_train
    }

    pub fn count_tokens(&self, text: &str) -> usize {
        self.model.vocab().tokenize(text.as_bytes(), false, true).len()
    }

    /// The prompt a chat turns into, through the model's own template.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        render(self.template.as_ref(), &self.name, messages)
    }

    pub fn chat(
        &self,
        messages: &[ChatMessage],
        options: &GenerateOptions,
        sink: &mut dyn TokenSink,
    ) -> Result<Generation> {
        let prompt = self.render_chat(messages)?;
        self.complete(&prompt, options, sink)
    }

    /// Continues `prompt` (special tokens in it are parsed, as chat templates need).
    pub fn complete(&self, prompt: &str, options: &GenerateOptions, sink: &mut dyn TokenSink) -> Result<Generation> {
        let backend = backend()?;
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(prompt.as_bytes(), false, true);
        if tokens.is_empty() {
            return Err(Error::InvalidRequest("the prompt is empty".into()));
        }
        let wanted = options.n_ctx.unwrap_or((tokens.len() + options.max_tokens) as u32);
        let n_ctx = wanted.clamp(64, self.n_ctx_train.max(64));
        if tokens.len() + 1 > n_ctx as usize {
            return Err(Error::PromptTooLong { prompt: tokens.len(), ctx: n_ctx as usize });
        }
        let n_batch = 512u32.min(n_ctx);
        let threads = options.threads.max(1) as i32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx = self
            .model
            .new_context(backend, params)
            .map_err(|e| Error::Generation(format!("could not create a {n_ctx}-token context ({e})")))?;

        let started = Instant::now();
        let mut batch = LlamaBatch::new(n_batch as usize, 1);
        let mut done = 0usize;
        for chunk in tokens.chunks(n_batch as usize) {
            batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                let pos = done + i;
                batch
                    .add(t, pos as i32, &[0], pos + 1 == tokens.len())
                    .map_err(|e| Error::Generation(e.to_string()))?;
            }
            ctx.decode(&mut batch).map_err(|e| Error::Generation(format!("prompt evaluation failed ({e})")))?;
            done += chunk.len();
            if !sink.prompt_progress(done, tokens.len()) {
                return Ok(Generation::cancelled(tokens.len(), started));
            }
        }
        let prompt_ms = started.elapsed().as_secs_f64() * 1e3;

        let mut sampler = sampler_chain(&self.model, &options.sampling, None)?;
        let mut out = Utf8Stream::new(options.stop.clone());
        let mut finish = FinishReason::Length;
        let mut n_gen = 0usize;
        let gen_started = Instant::now();
        let mut pos = tokens.len();
        let budget = options.max_tokens.min(n_ctx as usize - tokens.len());
        while n_gen < budget {
            let token = sampler.sample(&ctx, batch.n_tokens() - 1);
            n_gen += 1;
            if vocab.is_eog(token) {
                finish = FinishReason::Stop;
                break;
            }
            let (fresh, stopped) = out.push(&vocab.token_to_piece(token, false, None));
            if !fresh.is_empty() && !sink.text(&fresh) {
                finish = FinishReason::Cancelled;
                break;
            }
            if stopped {
                finish = FinishReason::Stop;
                break;
            }
            batch.clear();
            batch.add(token, pos as i32, &[0], true).map_err(|e| Error::Generation(e.to_string()))?;
            pos += 1;
            ctx.decode(&mut batch).map_err(|e| Error::Generation(format!("decoding failed ({e})")))?;
        }
        if finish != FinishReason::Stop {
            let rest = out.flush();
            if !rest.is_empty() && finish == FinishReason::Length {
                sink.text(&rest);
            }
        }
        Ok(Generation {
            text: out.text,
            finish_reason: finish,
            prompt_tokens: tokens.len(),
            completion_tokens: n_gen,
            prompt_ms,
            generation_ms: gen_started.elapsed().as_secs_f64() * 1e3,
        })
    }
}

impl Generation {
    fn cancelled(prompt_tokens: usize, started: Instant) -> Generation {
        Generation {
            text: String::new(),
            finish_reason: FinishReason::Cancelled,
            prompt_tokens,
            completion_tokens: 0,
            prompt_ms: started.elapsed().as_secs_f64() * 1e3,
            generation_ms: 0.0,
        }
    }
}

/// The sampler chain for `sampling`, behind an optional GBNF grammar (which must come first: it
/// masks what may come next). Shared by this in-process path and the engine.
pub(crate) fn sampler_chain(model: &LlamaModel, s: &Sampling, grammar: Option<&str>) -> Result<LlamaSampler> {
    let mut chain = Vec::new();
    if let Some(g) = grammar {
        chain.push(
            LlamaSampler::grammar(model, g, "root").map_err(|e| {
                Error::InvalidRequest(format!("the grammar is not valid GBNF with a `root` rule ({e})"))
            })?,
        );
    }
    if s.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(model.n_vocab(), 64, s.repeat_penalty, 0.0, 0.0));
    }
    if s.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        chain.push(LlamaSampler::top_k(s.top_k));
        chain.push(LlamaSampler::top_p(s.top_p, 1));
        chain.push(LlamaSampler::min_p(s.min_p, 1));
        chain.push(LlamaSampler::temp(s.temperature));
        chain.push(LlamaSampler::dist(s.seed));
    }
    Ok(LlamaSampler::chain_simple(chain))
}
