//! llama.cpp's process-wide pieces: the backend (initialised once), the process settings every
//! binary applies first, the default thread count, and the sampler chain the engine builds per
//! request.

use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use quarry_llm::Sampling;

use crate::{Error, Result};

/// llama.cpp's two thread counts. `decode` runs one-token steps (one stream generating);
/// `batch` runs every batch of more than one token: prompt chunks, and the steps where several
/// streams generate together. They are set apart because the two kinds of work scale apart:
/// see [`Threads::default`] for the figures that chose them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Threads {
    pub decode: usize,
    pub batch: usize,
}

impl Default for Threads {
    /// The measured defaults (docs/benchmarks.md, `quarry bench llm --thread-settings`):
    /// decode on physical cores − 1, batches on every physical core.
    fn default() -> Self {
        let cores = num_cpus::get_physical().max(1);
        Threads { decode: cores.saturating_sub(1).max(1), batch: cores }
    }
}

impl Threads {
    /// The counts the flags ask for: `--threads N` sets both (today's behaviour one flag away),
    /// `--batch-threads M` then sets the batch count alone; unset counts keep the defaults.
    pub fn from_flags(threads: Option<usize>, batch_threads: Option<usize>) -> Threads {
        let mut t = Threads::default();
        if let Some(n) = threads {
            t = Threads { decode: n.max(1), batch: n.max(1) };
        }
        if let Some(n) = batch_threads {
            t.batch = n.max(1);
        }
        t
    }
}

impl std::fmt::Display for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |n: usize| if n == 1 { "" } else { "s" };
        if self.decode == self.batch {
            write!(f, "{} thread{}", self.decode, s(self.decode))
        } else {
            write!(f, "{} thread{} ({} for batches)", self.decode, s(self.decode), self.batch)
        }
    }
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
            // A portable build registers its CPU kernels first: without them llama.cpp has no
            // backend to load a model on.
            if cfg!(feature = "portable") && crate::system::load_cpu_variant().is_none() {
                let looked: Vec<String> = crate::system::variant_dirs().iter().map(|d| d.display().to_string()).collect();
                return Err(format!(
                    "this portable build found no CPU kernels (libggml-cpu-*.so) in {}; set QUARRY_BACKENDS_DIR to their folder",
                    looked.join(", ")
                ));
            }
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Generation(format!("llama.cpp did not start: {e}")))
}

/// The sampler chain for `sampling`, behind an optional GBNF grammar (which must come first: it
/// masks what may come next).
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
