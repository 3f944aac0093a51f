//! The models behind `ask` and `eval`: a root and a sub model, each either local — served by
//! one supervised `quarry serve` child, so a llama.cpp abort cannot take this process down — or
//! any OpenAI-compatible endpoint (`--root-url`, `--sub-url`: a GPU server running vLLM,
//! llama-server, Ollama or `quarry serve`). The root's tokenizer is loaded here alone, to fit
//! prompts to the window exactly.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use quarry_llm::local::{ChatMessage, Tokenizer, Tokens};
use quarry_llm::{LanguageModel, LocalServer, ModelStore, OpenAiClient, Role, ServerOptions};
use quarry_rlm::{Analyst, AnalystConfig};

/// Which models to run, and how.
#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// The root model: catalog id or GGUF path (default: the catalog's root model); with
    /// `--root-url`, the model's name at that endpoint.
    #[arg(long)]
    pub model: Option<String>,
    /// The sub model, as `--model` (default: the catalog's sub model).
    #[arg(long)]
    pub sub_model: Option<String>,
    /// An OpenAI-compatible endpoint serving the root model, e.g. http://gpu-box:8000/v1.
    #[arg(long)]
    pub root_url: Option<String>,
    /// An OpenAI-compatible endpoint serving the sub model.
    #[arg(long)]
    pub sub_url: Option<String>,
    /// The environment variable holding the endpoints' API key (never a command-line argument,
    /// which other users of the machine can read).
    #[arg(long, default_value = "QUARRY_ENDPOINT_KEY")]
    pub api_key_env: String,
    /// Context window per request in tokens: direct and rag fill it, and a root turn may use it.
    #[arg(long, default_value_t = 8192)]
    pub ctx: usize,
    /// CPU threads for local models (default: physical cores − 1).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Layers to offload to a GPU, on GPU builds.
    #[arg(long, default_value_t = 0)]
    pub gpu_layers: u32,
}

/// How the RLM loop may run.
#[derive(clap::Args, Clone)]
pub struct LoopArgs {
    /// Root turns an RLM run may take.
    #[arg(long, default_value_t = 12)]
    pub max_iterations: usize,
    /// Sub-model prompts an RLM run may send.
    #[arg(long, default_value_t = 200)]
    pub max_sub_calls: usize,
    /// Levels of RLM runs: 1 makes `rlm_query` a plain sub-call; 2 lets the root start child runs.
    #[arg(long, default_value_t = 2)]
    pub max_depth: usize,
    /// Wall-clock limit for an RLM run in seconds (then it answers from what it has).
    #[arg(long)]
    pub max_seconds: Option<u64>,
    /// Constrain the root model's replies with a grammar: one line of plan and one code block,
    /// or one FINAL line (local models and llama.cpp servers only).
    #[arg(long)]
    pub root_grammar: bool,
}

impl LoopArgs {
    /// `root_is_local`: Quarry's own engine serves the root, so grammars can be sent.
    pub fn apply(&self, config: &mut AnalystConfig, root_is_local: bool) {
        let b = &mut config.rlm.budget;
        b.max_iterations = self.max_iterations;
        b.max_sub_calls = self.max_sub_calls;
        b.wall_clock = self.max_seconds.map(std::time::Duration::from_secs);
        config.rlm.max_depth = self.max_depth.max(1);
        config.rlm.root_grammar = self.root_grammar;
        // A remote root may be a hosted API that rejects llama.cpp's `grammar` field.
        config.rlm.accepts_grammar = root_is_local;
    }
}

pub struct Models {
    /// The local engine, when a model is local.
    pub server: Option<LocalServer>,
    pub root: Arc<dyn LanguageModel>,
    pub sub: Arc<dyn LanguageModel>,
    pub tokens: Arc<dyn Tokens + Send + Sync>,
}

impl Models {
    pub async fn start(args: &ModelArgs) -> Result<Models> {
        let store = ModelStore::from_env();
        let catalog = store.catalog()?;
        let root_id = args.model.clone().unwrap_or_else(|| catalog.default_for(Role::Root).id.clone());
        let sub_id = args.sub_model.clone().unwrap_or_else(|| catalog.default_for(Role::Sub).id.clone());
        let key = std::env::var(&args.api_key_env).ok().filter(|k| !k.is_empty());
        let remote = |url: &str, id: &str| -> Result<Arc<dyn LanguageModel>> {
            let client = OpenAiClient::new(url, id, key.clone()).with_context(|| format!("bad endpoint {url}"))?;
            Ok(Arc::new(client.with_concurrency(8)))
        };

        // Local models: resolved (and their files checked) before anything starts.
        let root_path = args.root_url.is_none().then(|| store.resolve(&root_id)).transpose()?;
        let sub_path = args.sub_url.is_none().then(|| store.resolve(&sub_id)).transpose()?;
        // The root's tokenizer: its GGUF when there is one locally (a remote root named by a
        // catalog id or path counts exactly too); otherwise an estimate with a safety margin.
        let tokens: Arc<dyn Tokens + Send + Sync> = match root_path.clone().or_else(|| store.resolve(&root_id).ok()) {
            Some(p) => Arc::new(Tokenizer::load(&p)?),
            None => {
                eprintln!(
                        "note: no local copy of {root_id}'s tokenizer; prompts are sized by an estimate of 3 characters a token"
                    );
                Arc::new(Estimate)
            }
        };

        let mut local: Vec<&Path> = Vec::new();
        for p in [root_path.as_deref(), sub_path.as_deref()].into_iter().flatten() {
            if !local.contains(&p) {
                local.push(p);
            }
        }
        let threads = args.threads.unwrap_or_else(quarry_llm::local::default_threads);
        let server = if local.is_empty() {
            None
        } else {
            eprintln!(
                "Starting the local engine with {}, {threads} thread{}",
                local.iter().map(|p| stem(p)).collect::<Vec<_>>().join(" and "),
                if threads == 1 { "" } else { "s" }
            );
            let mut options = ServerOptions::new(local.iter().map(|p| p.display().to_string()).collect());
            // Four slots: llm_query_batched's prompts decode together, and the root keeps its own
            // slot (and its cached conversation) while they run.
            options.slots = 4;
            options.ctx_per_slot = args.ctx as u32;
            options.threads = Some(threads);
            options.gpu_layers = args.gpu_layers;
            Some(LocalServer::start(options).await?)
        };
        let pick =
            |path: &Option<std::path::PathBuf>, url: &Option<String>, id: &str| -> Result<Arc<dyn LanguageModel>> {
                match (path, url) {
                    (Some(p), _) => {
                        let server = server.as_ref().expect("a local model starts the engine");
                        Ok(Arc::new(server.model(&stem(p))))
                    }
                    (None, Some(url)) => remote(url, id),
                    (None, None) => unreachable!("a model is local or remote"),
                }
            };
        let root = pick(&root_path, &args.root_url, &root_id)?;
        let sub = pick(&sub_path, &args.sub_url, &sub_id)?;
        if let Some(url) = &args.root_url {
            eprintln!("Root model: {root_id} at {url}");
        }
        if let Some(url) = &args.sub_url {
            eprintln!("Sub model: {sub_id} at {url}");
        }
        Ok(Models { server, root, sub, tokens })
    }

    pub fn analyst(&self, config: AnalystConfig) -> Analyst {
        Analyst::new(self.root.clone(), self.sub.clone(), self.tokens.clone(), config)
    }

    pub async fn shutdown(self) {
        if let Some(server) = self.server {
            server.shutdown().await;
        }
    }
}

/// The engine names a model by its file stem.
fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Token counts for a model whose tokenizer is not here: 3 characters a token over-counts
/// English and code for every tokenizer we ship, so prompts sized with it fit.
struct Estimate;

impl Tokens for Estimate {
    fn count_tokens(&self, text: &str) -> usize {
        text.chars().count().div_ceil(3)
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> quarry_llm::Result<String> {
        // Role markers cost a few tokens each in every template.
        Ok(messages.iter().map(|m| format!("<|{}|>\n{}\n", m.role, m.content)).collect())
    }
}
