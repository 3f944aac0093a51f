// ggml's calls to llamafile_sgemm, when the binary is linked with `--wrap=llamafile_sgemm`: see
// small_batch.c for why. Kept in its own object because it refers to `__real_llamafile_sgemm`,
// which only exists under that flag.

#include <stdbool.h>
#include <stdint.h>

struct ggml_compute_params;

bool quarry_sgemm_skip(int64_t n);
bool __real_llamafile_sgemm(const struct ggml_compute_params *params, int64_t m, int64_t n, int64_t k,
                            const void *A, int64_t lda, const void *B, int64_t ldb, void *C,
                            int64_t ldc, int Atype, int Btype, int Ctype);

bool __wrap_llamafile_sgemm(const struct ggml_compute_params *params, int64_t m, int64_t n, int64_t k,
                            const void *A, int64_t lda, const void *B, int64_t ldb, void *C,
                            int64_t ldc, int Atype, int Btype, int Ctype) {
    // "Not handled": ggml falls back to its own kernels, as for a single token.
    if (quarry_sgemm_skip(n))
        return false;
    return __real_llamafile_sgemm(params, m, n, k, A, lda, B, ldb, C, ldc, Atype, Btype, Ctype);
}
