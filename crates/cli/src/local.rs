//! The local models behind `ask` and `eval`: a root and a sub model served by one supervised
//! `quarry serve` child (so a llama.cpp abort cannot take this process down), and the root's
//! tokenizer, loaded here alone, to fit prompts to the window exactly.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use quarry_llm::local::Tokenizer;
use quarry_llm::{LocalServer, ModelStore, Role, ServerOptions, SupervisedModel};
use quarry_rlm::{Analyst, AnalystConfig};

/// Which models to run, and how.
#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// The root model: catalog id or path of a GGUF file (default: the catalog's root model).
    #[arg(long)]
    pub model: Option<String>,
    /// The sub model for `--mode rlm` (default: the catalog's sub model).
    #[arg(long)]
    pub sub_model: Option<String>,
    /// Context window per request in tokens: direct and rag fill it, and a root turn may use it.
    #[arg(long, default_value_t = 8192)]
    pub ctx: usize,
    /// CPU threads (default: physical cores − 1).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Layers to offload to a GPU, on GPU builds.
    #[arg(long, default_value_t = 0)]
    pub gpu_layers: u32,
}

pub struct LocalModels {
    pub server: LocalServer,
    pub root: Arc<SupervisedModel>,
    pub sub: Arc<SupervisedModel>,
    pub tokenizer: Arc<Tokenizer>,
}

impl LocalModels {
    pub async fn start(args: &ModelArgs) -> Result<LocalModels> {
        let store = ModelStore::from_env();
        let catalog = store.catalog()?;
        let root_id = args.model.clone().unwrap_or_else(|| catalog.default_for(Role::Root).id.clone());
        let sub_id = args.sub_model.clone().unwrap_or_else(|| catalog.default_for(Role::Sub).id.clone());
        let root_path = store.resolve(&root_id)?;
        let sub_path = store.resolve(&sub_id)?;
        let threads = args.threads.unwrap_or_else(quarry_llm::local::default_threads);
        let tokenizer = Arc::new(Tokenizer::load(&root_path)?);

        eprintln!(
            "Starting the local engine with {root_id} (root){}, {threads} thread{}",
            if sub_path == root_path { String::new() } else { format!(" and {sub_id} (sub)") },
            if threads == 1 { "" } else { "s" }
        );
        let mut models = vec![root_path.display().to_string()];
        if sub_path != root_path {
            models.push(sub_path.display().to_string());
        }
        let mut options = ServerOptions::new(models);
        // Four slots: llm_query_batched's prompts decode together, and the root keeps its own
        // slot (and its cached conversation) while they run.
        options.slots = 4;
        options.ctx_per_slot = args.ctx as u32;
        options.threads = Some(threads);
        options.gpu_layers = args.gpu_layers;
        let server = LocalServer::start(options).await?;
        let root = Arc::new(server.model(&stem(&root_path)));
        let sub = Arc::new(server.model(&stem(&sub_path)));
        Ok(LocalModels { server, root, sub, tokenizer })
    }

    pub fn analyst(&self, config: AnalystConfig) -> Analyst {
        Analyst::new(self.root.clone(), self.sub.clone(), self.tokenizer.clone(), config)
    }
}

/// The engine names a model by its file stem.
fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}
