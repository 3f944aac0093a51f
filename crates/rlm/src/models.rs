//! The two models a question needs — a root and a sub model — each either local, served by one
//! supervised `quarry serve` child (a llama.cpp abort cannot take the caller down), or any
//! OpenAI-compatible endpoint (a GPU server running vLLM, llama-server, Ollama or `quarry
//! serve`). The CLI and the desktop app both start their models here. Prompts are sized with the
//! root's own tokenizer through the engine that serves it (`/tokenize`, `/apply-template`), so
//! no process but the engine loads llama.cpp.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quarry_llm::{Estimate, LanguageModel, LocalServer, OpenAiClient, ServedTokenizer, ServerOptions, Tokens};
use quarry_models::{ModelStore, Role};
use quarry_repl::WorkerCommand;

use crate::{Analyst, AnalystConfig, Result};

/// Which models to run, and how. Its `Debug` shows whether a key is set, never the key: a
/// choice logged with `{:?}` must not put a user's API key in a log or a bug report.
#[derive(Clone, PartialEq)]
pub struct ModelChoice {
    /// The root model: catalog id or GGUF path (default: the catalog's root model); with
    /// `root_url`, the model's name at that endpoint.
    pub root: Option<String>,
    /// The sub model, as `root` (default: the catalog's sub model).
    pub sub: Option<String>,
    /// An OpenAI-compatible endpoint serving the root model, e.g. http://gpu-box:8000/v1.
    pub root_url: Option<String>,
    pub sub_url: Option<String>,
    /// The endpoints' API key.
    pub api_key: Option<String>,
    /// The sub endpoint's own key, when it differs from the root's (the desktop app keeps one
    /// per role); `None` is `api_key`.
    pub sub_api_key: Option<String>,
    /// Context window per request in tokens.
    pub ctx: usize,
    /// CPU threads for one-token decode steps (default: the engine's, chosen by measurement).
    pub threads: Option<usize>,
    /// CPU threads for prompt chunks and multi-sequence steps (default: the engine's).
    pub batch_threads: Option<usize>,
    pub gpu_layers: u32,
    /// The `quarry` executable that serves local models (`quarry serve`) and runs the REPL
    /// worker (`quarry worker repl`); `None` is this very executable, which is right for the
    /// CLI. The desktop app names the `quarry` beside it.
    pub engine: Option<PathBuf>,
}

impl std::fmt::Debug for ModelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = |k: &Option<String>| k.as_ref().map(|_| "<set>");
        f.debug_struct("ModelChoice")
            .field("root", &self.root)
            .field("sub", &self.sub)
            .field("root_url", &self.root_url)
            .field("sub_url", &self.sub_url)
            .field("api_key", &key(&self.api_key))
            .field("sub_api_key", &key(&self.sub_api_key))
            .field("ctx", &self.ctx)
            .field("threads", &self.threads)
            .field("batch_threads", &self.batch_threads)
            .field("gpu_layers", &self.gpu_layers)
            .field("engine", &self.engine)
            .finish()
    }
}

impl Default for ModelChoice {
    fn default() -> Self {
        ModelChoice {
            root: None,
            sub: None,
            root_url: None,
            sub_url: None,
            api_key: None,
            sub_api_key: None,
            ctx: 8192,
            threads: None,
            batch_threads: None,
            gpu_layers: 0,
            engine: None,
        }
    }
}

/// Started models, ready to answer.
pub struct Models {
    /// The local engine, when a model is local.
    pub server: Option<LocalServer>,
    pub root: Arc<dyn LanguageModel>,
    pub sub: Arc<dyn LanguageModel>,
    pub tokens: Arc<dyn Tokens>,
    /// The root is Quarry's own engine, so it takes grammars.
    pub root_is_local: bool,
    /// The sub model is Quarry's own engine, so it takes grammars.
    pub sub_is_local: bool,
    /// [`ModelChoice::engine`]: also the REPL worker's executable.
    engine: Option<PathBuf>,
    /// What was chosen, resolved (catalog ids or paths, endpoints): what the history records.
    chosen: serde_json::Value,
    /// The context a local root was trained for: the engine gives no slot more, so no prompt may
    /// be sized for more (a direct pass at `--ctx 34816` was refused 33,800 tokens by a
    /// 32,768-token window).
    root_trained_ctx: Option<usize>,
}

/// The window prompts are sized for: the requested one, or what the model was trained for when
/// that is less.
fn window_for(requested: usize, trained: Option<usize>) -> usize {
    trained.map_or(requested, |t| requested.min(t))
}

impl Models {
    /// Resolves and starts the chosen models; `note` hears what is worth telling a person
    /// ("Starting the local engine with ...").
    pub async fn start(choice: &ModelChoice, mut note: impl FnMut(&str)) -> Result<Models> {
        let store = ModelStore::from_env();
        let catalog = store.catalog()?;
        let root_id = choice.root.clone().unwrap_or_else(|| catalog.default_for(Role::Root).id.clone());
        let sub_id = choice.sub.clone().unwrap_or_else(|| catalog.default_for(Role::Sub).id.clone());
        let remote = |url: &str, id: &str, key: &Option<String>| -> Result<Arc<dyn LanguageModel>> {
            let client = OpenAiClient::new(url, id, key.clone())?;
            Ok(Arc::new(client.with_concurrency(8)))
        };

        // Local models: resolved (and their files checked) before anything starts.
        let root_path = choice.root_url.is_none().then(|| store.resolve(&root_id)).transpose()?;
        let sub_path = choice.sub_url.is_none().then(|| store.resolve(&sub_id)).transpose()?;
        // The context a local root was trained for, from its GGUF header.
        let root_trained_ctx = match &root_path {
            Some(p) => quarry_models::gguf::inspect(p)?.context_length().map(|n| n as usize),
            None => None,
        };
        let window = window_for(choice.ctx, root_trained_ctx);
        if window < choice.ctx {
            note(&format!(
                "note: {root_id} was trained for {window} tokens of context, so its window is that, not {}",
                choice.ctx
            ));
        }

        let mut local: Vec<&Path> = Vec::new();
        for p in [root_path.as_deref(), sub_path.as_deref()].into_iter().flatten() {
            if !local.contains(&p) {
                local.push(p);
            }
        }
        let server = if local.is_empty() {
            None
        } else {
            note(&format!(
                "Starting the local engine with {}{}",
                local.iter().map(|p| stem(p)).collect::<Vec<_>>().join(" and "),
                match choice.threads {
                    Some(t) => format!(", {t} thread{}", if t == 1 { "" } else { "s" }),
                    None => String::new(),
                }
            ));
            let mut options = ServerOptions::new(local.iter().map(|p| p.display().to_string()).collect());
            if let Some(engine) = &choice.engine {
                options.program = engine.clone();
            }
            // Four slots: llm_query_batched's prompts decode together, and the root keeps its own
            // slot (and its cached conversation) while they run.
            options.slots = 4;
            options.ctx_per_slot = choice.ctx as u32;
            options.threads = choice.threads;
            options.batch_threads = choice.batch_threads;
            options.gpu_layers = choice.gpu_layers;
            Some(LocalServer::start(options).await?)
        };
        let pick =
            |path: &Option<PathBuf>, url: &Option<String>, id: &str, key: &Option<String>| match (path, url, &server) {
                (Some(p), _, Some(server)) => Ok(Arc::new(server.model(&stem(p))) as Arc<dyn LanguageModel>),
                (_, Some(url), _) => remote(url, id, key),
                _ => unreachable!("a model is local (and the engine started) or remote"),
            };
        let sub_key = choice.sub_api_key.clone().or_else(|| choice.api_key.clone());
        let root = pick(&root_path, &choice.root_url, &root_id, &choice.api_key)?;
        let sub = pick(&sub_path, &choice.sub_url, &sub_id, &sub_key)?;
        if let Some(url) = &choice.root_url {
            note(&format!("Root model: {root_id} at {url}"));
        }
        if let Some(url) = &choice.sub_url {
            note(&format!("Sub model: {sub_id} at {url}"));
        }
        // The root's tokenizer, from the engine serving it; an endpoint without llama-server's
        // `/tokenize` and `/apply-template` (vLLM, hosted APIs) gets an estimate with a margin.
        let tokens: Arc<dyn Tokens> = match (&root_path, &server, &choice.root_url) {
            (Some(p), Some(server), _) => Arc::new(ServedTokenizer::new(server.client(&stem(p)).await?)),
            (_, _, Some(url)) => {
                let served = ServedTokenizer::new(OpenAiClient::new(url, &root_id, choice.api_key.clone())?);
                if served.works().await {
                    Arc::new(served)
                } else {
                    note(&format!(
                        "note: {url} does not tokenize for its clients; prompts are sized by an estimate of 3 characters a token"
                    ));
                    Arc::new(Estimate)
                }
            }
            _ => unreachable!("a model is local (and the engine started) or remote"),
        };
        Ok(Models {
            server,
            root,
            sub,
            tokens,
            root_is_local: choice.root_url.is_none(),
            sub_is_local: choice.sub_url.is_none(),
            engine: choice.engine.clone(),
            root_trained_ctx,
            chosen: serde_json::json!({
                "root": root_id,
                "sub": sub_id,
                "root_url": choice.root_url,
                "sub_url": choice.sub_url,
                "ctx": choice.ctx,
            }),
        })
    }

    /// An analyst over these models. What follows from the models is set here: a remote root may
    /// be a hosted API that rejects llama.cpp's `grammar` field, and the `quarry` that serves
    /// local models also runs the REPL worker.
    pub fn analyst(&self, mut config: AnalystConfig) -> Analyst {
        config.rlm.accepts_grammar = self.root_is_local;
        config.rlm.sub_accepts_grammar = self.sub_is_local;
        config.window = window_for(config.window, self.root_trained_ctx);
        if let Some(engine) = &self.engine {
            config.rlm.sandbox.worker = WorkerCommand::quarry(engine.clone());
        }
        Analyst::new(self.root.clone(), self.sub.clone(), self.tokens.clone(), config)
    }

    /// The models as chosen and resolved (`root`, `sub`, `root_url`, `sub_url`, `ctx`), for the
    /// history: a re-run asks the same models again. Never holds the API key.
    pub fn described(&self) -> serde_json::Value {
        self.chosen.clone()
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

#[cfg(test)]
mod tests {
    use super::{window_for, ModelChoice};

    #[test]
    fn a_logged_model_choice_says_a_key_is_set_without_showing_it() {
        let choice = ModelChoice {
            api_key: Some("sk-secret-1".into()),
            sub_api_key: Some("sk-secret-2".into()),
            root_url: Some("http://gpu-box:8000/v1".into()),
            ..ModelChoice::default()
        };
        let shown = format!("{choice:?}");
        assert!(!shown.contains("sk-secret"), "{shown}");
        assert!(shown.contains("api_key: Some(\"<set>\")") && shown.contains("gpu-box"), "{shown}");
    }

    #[test]
    fn the_window_is_no_more_than_the_root_was_trained_for() {
        assert_eq!(window_for(34_816, Some(32_768)), 32_768);
        assert_eq!(window_for(10_240, Some(32_768)), 10_240);
        assert_eq!(window_for(34_816, None), 34_816, "a remote root's window is what the user said");
    }
}
