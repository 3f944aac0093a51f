//! The command-line options behind `ask` and `eval`: which models (each local or at an
//! OpenAI-compatible endpoint, `--root-url`, `--sub-url`) and how the RLM loop may run. Starting
//! the models is the library's job ([`quarry_rlm::Models`]), shared with the desktop app.

use anyhow::Result;
use quarry_rlm::{AnalystConfig, ModelChoice, Models};

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
    /// CPU threads for local models, every step (default: the engine's, chosen by measurement).
    #[arg(long)]
    pub threads: Option<usize>,
    /// CPU threads for the local engine's batches alone (prompt chunks, several streams).
    #[arg(long)]
    pub batch_threads: Option<usize>,
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
    /// Which model `llm_classify` labels with, where models score labels by likelihood: `root`
    /// (the larger; 75% of TREC questions right against the sub model's 34%), `sub`, or `auto`
    /// (the root unless its measured speed would take more than half the time left).
    #[arg(long, value_enum, default_value_t = LabellerArg::Auto)]
    pub labeller: LabellerArg,
    /// Take every FINAL as given: do not send back an answer that came before its evidence (no
    /// code run, unlabelled items never judged, the worked example's words). The check still
    /// runs and the trajectory records what it found.
    #[arg(long)]
    pub no_final_check: bool,
    /// Let the first turn's code be anything: by default, when the question says its items
    /// carry no label and must be judged, the first block starts with a judging call
    /// (`count_labels`, `label_records`, `llm_classify`, ...), its arguments the model's own.
    #[arg(long)]
    pub no_judge_first: bool,
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum LabellerArg {
    Auto,
    Root,
    Sub,
}

impl LoopArgs {
    pub fn apply(&self, config: &mut AnalystConfig) {
        let b = &mut config.rlm.budget;
        b.max_iterations = self.max_iterations;
        b.max_sub_calls = self.max_sub_calls;
        b.wall_clock = self.max_seconds.map(std::time::Duration::from_secs);
        config.rlm.max_depth = self.max_depth.max(1);
        config.rlm.root_grammar = self.root_grammar;
        config.rlm.check_final = !self.no_final_check;
        config.rlm.judge_first = !self.no_judge_first;
        config.rlm.labeller = match self.labeller {
            LabellerArg::Auto => quarry_rlm::Labeller::Auto,
            LabellerArg::Root => quarry_rlm::Labeller::Root,
            LabellerArg::Sub => quarry_rlm::Labeller::Sub,
        };
    }
}

impl ModelArgs {
    /// The library's model choice; the API key comes from the environment variable named.
    pub fn choice(&self) -> ModelChoice {
        ModelChoice {
            root: self.model.clone(),
            sub: self.sub_model.clone(),
            root_url: self.root_url.clone(),
            sub_url: self.sub_url.clone(),
            api_key: std::env::var(&self.api_key_env).ok().filter(|k| !k.is_empty()),
            sub_api_key: None,
            ctx: self.ctx,
            threads: self.threads,
            batch_threads: self.batch_threads,
            gpu_layers: self.gpu_layers,
            engine: None,
        }
    }

    /// Starts the models, telling the person on stderr what is happening.
    pub async fn start(&self) -> Result<Models> {
        Ok(Models::start(&self.choice(), |note| eprintln!("{note}")).await?)
    }
}
