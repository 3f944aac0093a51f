// Small batches skip llamafile's tinyBLAS.
//
// ggml hands every matrix product with two or more columns (tokens) to llamafile's tinyBLAS when
// it was built with GGML_LLAMAFILE (the default), and tinyBLAS is slow for the 2-8 token batches
// a continuous-batching decode step makes: on the reference machine (1 thread, AVX2 build) a step
// of two sequences of the 0.5B model took 88 ms against 23 ms for one, 84% of it in
// tinyBLAS_Q0_AVX::gemm4xN<2> (the Q5_0 and Q8_0 tensors), so four streams generated less than
// one. For prompt chunks (hundreds of tokens) tinyBLAS is the fast path and must stay.
//
// The `quarry` binary links with `--wrap=llamafile_sgemm` (crates/cli/build.rs), so ggml's calls
// land here: a batch narrower than the engine's threshold answers "not handled" and ggml
// computes it with its own vec_dot kernels, as it does for one token; wider batches go on to the
// real tinyBLAS (`__real_llamafile_sgemm`, in small_batch_wrap.c). Binaries linked without the flag
// never pull that object in and behave exactly like stock llama.cpp; this one, which only holds
// the threshold and a count, is always linked so the engine can report what was in force.

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

// 0 until `quarry_sgemm_init`: every batch goes on to tinyBLAS, as in stock llama.cpp.
static atomic_llong min_batch = 0;
static atomic_llong small_batches = 0;

// Sets the narrowest batch tinyBLAS gets, unless QUARRY_SGEMM_MIN_BATCH names one. The engine
// calls this once, before its first decode, with a figure for its thread count.
void quarry_sgemm_init(long long fallback) {
    const char *env = getenv("QUARRY_SGEMM_MIN_BATCH");
    char *end = NULL;
    long long v = env ? strtoll(env, &end, 10) : -1;
    long long t = (env && end != env && *end == '\0' && v >= 0) ? v : fallback;
    atomic_store_explicit(&min_batch, t < 0 ? 0 : t, memory_order_relaxed);
}

// The narrowest batch, in tokens, tinyBLAS gets.
long long quarry_sgemm_min_batch(void) {
    return atomic_load_explicit(&min_batch, memory_order_relaxed);
}

// How many calls were kept from tinyBLAS (one per product and compute thread): 0 means the wrap
// is not linked in, or no batch was narrow enough.
long long quarry_sgemm_small_batches(void) {
    return atomic_load_explicit(&small_batches, memory_order_relaxed);
}

bool quarry_sgemm_skip(int64_t n) {
    if (n < quarry_sgemm_min_batch()) {
        atomic_fetch_add_explicit(&small_batches, 1, memory_order_relaxed);
        return true;
    }
    return false;
}
