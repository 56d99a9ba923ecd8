// Scaled, masked softmax over the last dimension of attention scores.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/softmax_row.h"

namespace tessera::kernels::cpu {

template <typename T>
TESSERA_CPU_WIDE_VECTORS void masked_softmax_forward(const T* scores, const int32_t* key_lengths, bool causal, T scale,
                            T* probs, int64_t batch, int64_t heads, int64_t sq, int64_t sk) {
  const int64_t rows = batch * heads * sq;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t b = r / (heads * sq), i = r % sq;
    const int64_t visible = masked_softmax_visible(sk, sq, i, key_lengths[b], causal);
    const T* s = scores + r * sk;
    T* p = probs + r * sk;
    const T sum = masked_softmax_exp_row(s, p, visible, scale);
    const T inv = visible > 0 ? T(1) / sum : T(0);
#pragma omp simd
    for (int64_t j = 0; j < visible; ++j) p[j] *= inv;
    for (int64_t j = visible; j < sk; ++j) p[j] = 0;
  }
}

template <typename T>
void masked_softmax_backward(const T* probs, const T* dprobs, T scale, T* dscores, int64_t rows,
                             int64_t cols) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = probs + r * cols;
    const T* dp = dprobs + r * cols;
    T* ds = dscores + r * cols;
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < cols; ++j) dot += p[j] * dp[j];
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) ds[j] = softmax_backward_element(p[j], dp[j], dot, scale);
  }
}

#define INSTANTIATE(T)                                                                          \
  template void masked_softmax_forward<T>(const T*, const int32_t*, bool, T, T*, int64_t,       \
                                          int64_t, int64_t, int64_t);                           \
  template void masked_softmax_backward<T>(const T*, const T*, T, T*, int64_t, int64_t);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
