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
    /// Every physical core for both, chosen by `quarry bench llm --thread-settings 1/1,1/2,2/2`
    /// on a quiet 2-core machine (AMD EPYC, AVX2; docs/benchmarks.md, 2026-12-02), the 0.5B
    /// model, decode/batch threads:
    ///
    /// | | pp512 t/s | tg128 t/s | 4 streams / 1 | burst of 8 × 600-token sub-calls |
    /// |---|---|---|---|---|
    /// | 1/1 (the old rule, physical cores − 1) | 47.6 | 13.5 | 1.40× | 130.0 s |
    /// | 1/2 | 86.4 | 14.1 | 1.99× | 76.0 s |
    /// | 2/2 | 82.1 | 19.6 | 1.48× | 79.4 s |
    ///
    /// Batches (prompt chunks, sub-call bursts) are compute-bound and run 1.6–1.8× faster on two
    /// threads; one-token steps ran 1.45× faster too, since OpenMP's workers wait passively
    /// (`prepare_process_env`), which is what prevented the collapse under load that the old
    /// rule was for. The root model's turns are one stream, so 2/2 beats 1/2 for a run.
    fn default() -> Self {
        let cores = num_cpus::get_physical().max(1);
        Threads { decode: cores, batch: cores }
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

#[cfg(test)]
mod tests {
    use super::Threads;

    #[test]
    fn threads_sets_both_counts_and_batch_threads_the_batch_count_alone() {
        let d = Threads::default();
        assert_eq!(Threads::from_flags(None, None), d);
        assert_eq!(Threads::from_flags(Some(1), None), Threads { decode: 1, batch: 1 });
        assert_eq!(Threads::from_flags(Some(1), Some(2)), Threads { decode: 1, batch: 2 });
        assert_eq!(Threads::from_flags(None, Some(3)), Threads { decode: d.decode, batch: 3 });
        assert_eq!(Threads::from_flags(Some(0), Some(0)), Threads { decode: 1, batch: 1 }, "at least one");
        assert_eq!(Threads { decode: 1, batch: 2 }.to_string(), "1 thread (2 for batches)");
        assert_eq!(Threads { decode: 2, batch: 2 }.to_string(), "2 threads");
    }
}
