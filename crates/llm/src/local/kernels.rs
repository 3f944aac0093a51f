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
/// bench llm --reps 5` on the reference machine (0.5B model, README "The local engine"): four
/// streams generated 37.6 tokens/s with narrow batches on ggml's kernels against 32.1 with
/// `QUARRY_SGEMM_MIN_BATCH=0`, two streams 28.0 against 21.0. At two threads (single-round runs,
/// llama.cpp built with GGML_AVX512 before `target-cpu=native`) tinyBLAS did as well or better
/// (four streams 48.4 against 42.4), so more threads keep the stock kernels. 32 covers every decode step of up to 8 slots plus a short prompt tail; prompt
/// chunks are hundreds of tokens and stay on tinyBLAS.
pub const ONE_THREAD_MIN_BATCH: i64 = 32;

/// Chooses the small-batch threshold for an engine on `threads` threads (the environment
/// variable `QUARRY_SGEMM_MIN_BATCH` overrides it). Called before the first decode.
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
