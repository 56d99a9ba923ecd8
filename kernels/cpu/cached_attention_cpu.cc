// Attention of a few queries against a key/value cache, fused: per (row, head), the scores q.k_j,
// the masked softmax and the weighted sum of v_j in one pass over the cached positions, instead of
// two batched products and a softmax that each go over all (row, head) pairs. A decoding step
// attends 1 (greedy) or k (beam search, cross-attention) queries to tens of positions per pair:
// products of that size cost the BLAS more to set up than to compute.
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/softmax_row.h"

namespace tessera::kernels::cpu {
namespace {
// Below this many multiply-adds the whole attention runs on the calling thread.
constexpr int64_t kParallelMinMacs = int64_t{1} << 15;
}  // namespace

template <typename T>
TESSERA_CPU_WIDE_VECTORS void cached_attention(const T* q, const T* k, const T* v, int64_t capacity, int64_t sk,
                                               const int32_t* key_lengths, bool causal, T scale, T* ctx,
                                               int64_t batch, int64_t heads, int64_t sq, int64_t dk) {
  const int64_t pairs = batch * heads;
#pragma omp parallel if (pairs * sq * sk * dk * 2 >= kParallelMinMacs)
  {
    std::vector<T> p(static_cast<size_t>(sk));  // one query's scores, then its probabilities
#pragma omp for schedule(static)
    for (int64_t pair = 0; pair < pairs; ++pair) {
      const T* keys = k + pair * capacity * dk;
      const T* values = v + pair * capacity * dk;
      for (int64_t i = 0; i < sq; ++i) {
        const T* qi = q + (pair * sq + i) * dk;
        T* out = ctx + (pair * sq + i) * dk;
        const int64_t visible = masked_softmax_visible(sk, sq, i, key_lengths[pair / heads], causal);
        for (int64_t j = 0; j < visible; ++j) {  // the scores
          const T* kj = keys + j * dk;
          T s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t d = 0; d < dk; ++d) s += qi[d] * kj[d];
          p[j] = s;
        }
        // the softmax over the visible keys, masked_softmax_forward's row
        const T sum = masked_softmax_exp_row(p.data(), p.data(), visible, scale);
        const T inv = visible > 0 ? T(1) / sum : T(0);
        // ctx = sum_j p_j v_j; a query that sees no key gets zeros
#pragma omp simd
        for (int64_t d = 0; d < dk; ++d) out[d] = 0;
        for (int64_t j = 0; j < visible; ++j) {
          const T w = p[j] * inv;
          const T* vj = values + j * dk;
#pragma omp simd
          for (int64_t d = 0; d < dk; ++d) out[d] += w * vj[d];
        }
      }
    }
  }
}

#define INSTANTIATE(T)                                                                                          \
  template void cached_attention<T>(const T*, const T*, const T*, int64_t, int64_t, const int32_t*, bool, T, T*, \
                                    int64_t, int64_t, int64_t, int64_t);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
