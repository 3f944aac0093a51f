//! The reference for `quarry bench llm`: prompt processing and generation speed through the
//! thinnest possible llama-cpp-2 loop, measured the way llama.cpp's `llama-bench` does (pp: one
//! batch of N tokens; tg: N single-token decodes; random tokens, no sampling, a warm-up first).

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::{Error, Result, Threads};

/// Tokens per second for a prompt of `pp` tokens and for generating `tg` tokens, each the mean
/// of `reps` runs.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RawSpeed {
    pub pp: f64,
    pub tg: f64,
}

/// Deterministic "random" token ids away from the special tokens at both ends of the vocabulary.
pub fn bench_tokens(n: usize, seed: u64) -> Vec<i32> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            1000 + ((x >> 33) % 29000) as i32
        })
        .collect()
}

/// The model at `path`, checked and loaded on the CPU, as the benchmarks use it.
fn load(path: &Path) -> Result<LlamaModel> {
    quarry_models::gguf::inspect(path)?;
    LlamaModel::load_from_file(crate::backend::backend()?, path, &LlamaModelParams::default())
        .map_err(|e| Error::Load { path: path.into(), message: e.to_string() })
}

fn failed(e: &dyn std::fmt::Display) -> Error {
    Error::Generation(e.to_string())
}

/// `between(r)` runs after rep `r`'s two figures: `quarry bench llm` measures the served figures
/// there, so raw and served reps alternate and a machine whose speed drifts over minutes (±5%
/// between a raw pass and a served pass a minute apart, measured here) drifts both alike.
pub fn raw_speed(
    path: &Path,
    threads: Threads,
    pp: usize,
    tg: usize,
    reps: usize,
    mut between: impl FnMut(usize),
) -> Result<RawSpeed> {
    let backend = crate::backend::backend()?;
    let model = load(path)?;
    // pp runs as one batch (batch threads), tg as one-token steps (decode threads), as in the
    // engine.
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new((pp + tg + 64) as u32))
        .with_n_batch(pp as u32)
        .with_n_ubatch(512.min(pp as u32))
        .with_n_threads(threads.decode.max(1) as i32)
        .with_n_threads_batch(threads.batch.max(1) as i32);
    let mut ctx = model.new_context(backend, params).map_err(|e| failed(&e))?;

    let run_pp = |ctx: &mut llama_cpp_2::context::LlamaContext, seed| -> Result<f64> {
        ctx.clear_kv_cache();
        let tokens = bench_tokens(pp, seed);
        let mut batch = LlamaBatch::new(pp, 1);
        for (i, &tok) in tokens.iter().enumerate() {
            batch.add(LlamaToken(tok), i as i32, &[0], i + 1 == pp).map_err(|e| failed(&e))?;
        }
        let start = Instant::now();
        ctx.decode(&mut batch).map_err(|e| failed(&e))?;
        Ok(pp as f64 / start.elapsed().as_secs_f64())
    };
    let run_tg = |ctx: &mut llama_cpp_2::context::LlamaContext, seed| -> Result<f64> {
        ctx.clear_kv_cache();
        let tokens = bench_tokens(tg, seed);
        let mut batch = LlamaBatch::new(1, 1);
        let start = Instant::now();
        for (i, &tok) in tokens.iter().enumerate() {
            batch.clear();
            batch.add(LlamaToken(tok), i as i32, &[0], true).map_err(|e| failed(&e))?;
            ctx.decode(&mut batch).map_err(|e| failed(&e))?;
        }
        Ok(tg as f64 / start.elapsed().as_secs_f64())
    };
    // Warm-up: page the weights in and let the CPU settle.
    run_pp(&mut ctx, 0)?;
    run_tg(&mut ctx, 0)?;
    let reps = reps.max(1);
    let mut pp_sum = 0.0;
    let mut tg_sum = 0.0;
    for r in 0..reps {
        pp_sum += run_pp(&mut ctx, r as u64 + 1)?;
        tg_sum += run_tg(&mut ctx, r as u64 + 1)?;
        between(r);
    }
    Ok(RawSpeed { pp: pp_sum / reps as f64, tg: tg_sum / reps as f64 })
}

/// Aggregate generation speed of `width` sequences decoded together, for each width: every
/// sequence gets a `prompt`-token prompt (all prompts in one batch), then `gen` steps of one
/// token per sequence, no sampling — llama.cpp's `llama-batched-bench` loop, timed from the
/// prompt batch to the last step as `quarry bench llm` times its concurrent requests. The KV
/// cache is one buffer shared by the sequences and the small-batch switch is set for `threads`'
/// batch count,
/// both as in the engine, so the figures are the engine's ceiling without HTTP, slots or
/// sampling. Returns, per width, generated tokens per second in each of `reps` interleaved
/// rounds.
pub fn raw_batched(
    path: &Path,
    threads: Threads,
    widths: &[usize],
    prompt: usize,
    gen: usize,
    reps: usize,
) -> Result<Vec<Vec<f64>>> {
    let backend = crate::backend::backend()?;
    crate::kernels::configure(threads.batch);
    let model = load(path)?;
    let most = widths.iter().copied().max().unwrap_or(1).max(1);
    let n_batch = (most * prompt).max(most).max(32) as u32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new((most * (prompt + gen + 8)).max(256) as u32))
        .with_n_seq_max(most as u32)
        .with_kv_unified(true)
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        .with_n_threads(threads.decode.max(1) as i32)
        .with_n_threads_batch(threads.batch.max(1) as i32);
    let mut ctx = model.new_context(backend, params).map_err(|e| failed(&e))?;

    let mut run = |width: usize, seed: u64| -> Result<f64> {
        ctx.clear_kv_cache();
        let mut batch = LlamaBatch::new(n_batch as usize, most as i32);
        let start = Instant::now();
        for s in 0..width {
            for (i, &tok) in bench_tokens(prompt, seed * 100 + s as u64).iter().enumerate() {
                batch.add(LlamaToken(tok), i as i32, &[s as i32], i + 1 == prompt).map_err(|e| failed(&e))?;
            }
        }
        ctx.decode(&mut batch).map_err(|e| failed(&e))?;
        let next = bench_tokens(gen, seed);
        for (step, &tok) in next.iter().enumerate() {
            batch.clear();
            for s in 0..width {
                batch.add(LlamaToken(tok), (prompt + step) as i32, &[s as i32], true).map_err(|e| failed(&e))?;
            }
            ctx.decode(&mut batch).map_err(|e| failed(&e))?;
        }
        Ok((width * gen) as f64 / start.elapsed().as_secs_f64())
    };
    run(most, 0)?; // warm-up
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); widths.len()];
    for r in 0..reps.max(1) {
        for (w, &width) in widths.iter().enumerate() {
            rates[w].push(run(width.max(1), 1 + r as u64 * 10 + w as u64)?);
        }
    }
    Ok(rates)
}
