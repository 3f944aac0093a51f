//! Which matrix kernels small batches get: the switch in front of llamafile's tinyBLAS
//! (`csrc/small_batch.c` says why it exists). `GET /health` and `quarry bench llm` report it, so
//! a figure always says which kernels produced it.

use serde::Serialize;

extern "C" {
    fn quarry_sgemm_init(fallback: std::ffi::c_longlong);
    fn quarry_sgemm_min_batch() -> std::ffi::c_longlong;
    fn quarry_sgemm_small_batches() -> std::ffi::c_longlong;
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct KernelStats {
    /// The narrowest batch, in tokens, that tinyBLAS computes when the switch is linked in.
    pub tinyblas_min_batch: i64,
    /// Calls kept from tinyBLAS so far in this process (one per product and compute thread): 0
    /// after batched decoding means the binary was linked without `--wrap=llamafile_sgemm` and
    /// runs the stock kernels.
    pub small_batches: i64,
}

/// The narrowest batch tinyBLAS gets when the engine runs on one thread. Measured with `quarry
/// bench llm --reps 5` on the reference machine (0.5B model, README "The local engine"), in-process
/// batched decoding of 2 / 4 / 8 sequences: 37.8 / 44.1 / 48.0 tokens/s with batches narrower than
/// 32 on ggml's kernels, 24.4 / 34.8 / 53.1 with every batch on tinyBLAS
/// (`QUARRY_SGEMM_MIN_BATCH=0`). So ggml's kernels win up to four tokens and tinyBLAS from eight;
/// the switch hands tinyBLAS everything from 8 up (5–7 were not measured). At two threads
/// (single-round runs, llama.cpp built with GGML_AVX512 before `target-cpu=native`) tinyBLAS did
/// as well or better (four streams 48.4 against 42.4), so more threads keep the stock kernels.
pub const ONE_THREAD_MIN_BATCH: i64 = 8;

/// Chooses the small-batch threshold for an engine whose batches run on `threads` threads: every
/// product the switch sees has two or more tokens, so llama.cpp runs it on `n_threads_batch`.
/// The environment variable `QUARRY_SGEMM_MIN_BATCH` overrides it. Called before the first decode.
pub fn configure(threads: usize) {
    let fallback = if threads <= 1 { ONE_THREAD_MIN_BATCH } else { 0 };
    // SAFETY: stores one atomic; reads an environment variable no other thread writes.
    unsafe { quarry_sgemm_init(fallback as std::ffi::c_longlong) }
}

/// What the switch is doing in this process.
pub fn stats() -> KernelStats {
    // SAFETY: both functions only read atomics; they take no arguments and cannot fail.
    unsafe {
        KernelStats {
            tinyblas_min_batch: quarry_sgemm_min_batch() as i64,
            small_batches: quarry_sgemm_small_batches() as i64,
        }
    }
}
