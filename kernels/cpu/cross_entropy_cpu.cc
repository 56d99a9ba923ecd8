// Label-smoothed cross-entropy over a vocabulary split across ranks. Each step reads this rank's
// logits once; the all-reduces between the steps (in the model) combine the ranks' statistics.
#include <cmath>
#include <limits>

#include "kernels/cpu/cpu_ops.h"

namespace tessera::kernels::cpu {

template <typename T>
void cross_entropy_row_max(const T* logits, int64_t rows, int64_t cols, int64_t real_cols, T* row_max) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* z = logits + r * cols;
    T mx = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < real_cols; ++j) mx = std::max(mx, z[j]);
    row_max[r] = mx;
  }
}

template <typename T>
TESSERA_CPU_WIDE_VECTORS void cross_entropy_row_sums(const T* logits, int64_t rows, int64_t cols, int64_t real_cols,
                            const int32_t* targets, int64_t vocab_start, const T* row_max, T* sums) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* z = logits + r * cols;
    const T mx = row_max[r];
    T sum_exp = 0, sum_z = 0;
#pragma omp simd reduction(+ : sum_exp, sum_z)
    for (int64_t j = 0; j < real_cols; ++j) {
      sum_exp += cross_entropy_exp(z[j], mx);
      sum_z += z[j];
    }
    const int64_t t = static_cast<int64_t>(targets[r]) - vocab_start;
    sums[3 * r + 0] = sum_exp;
    sums[3 * r + 1] = (t >= 0 && t < real_cols) ? z[t] : T(0);
    sums[3 * r + 2] = sum_z;
  }
}

template <typename T>
TESSERA_CPU_WIDE_VECTORS void cross_entropy_loss_backward(const T* logits, int64_t rows, int64_t cols, int64_t real_cols,
                                 const int32_t* targets, int64_t vocab_start, const T* row_max,
                                 const T* sums, double smoothing, int64_t vocab_size, int32_t pad_id,
                                 double grad_scale, T* row_loss, T* dlogits) {
  const T eps = static_cast<T>(smoothing);
  const T uniform = eps / static_cast<T>(vocab_size);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* z = logits + r * cols;
    T* dz = dlogits + r * cols;
    if (targets[r] == pad_id) {
      row_loss[r] = 0;
      for (int64_t j = 0; j < cols; ++j) dz[j] = 0;
      continue;
    }
    const T log_z = cross_entropy_log_z(row_max[r], sums[3 * r + 0]);
    row_loss[r] = cross_entropy_row_loss(log_z, sums[3 * r + 1], sums[3 * r + 2], eps, vocab_size);
    const T g = static_cast<T>(grad_scale);
    const int64_t t = static_cast<int64_t>(targets[r]) - vocab_start;
#pragma omp simd
    for (int64_t j = 0; j < real_cols; ++j) dz[j] = cross_entropy_dlogit(z[j], log_z, g, uniform);
    for (int64_t j = real_cols; j < cols; ++j) dz[j] = 0;
    if (t >= 0 && t < real_cols) dz[t] = cross_entropy_target_dlogit(dz[t], g, eps);
  }
}

template <typename T>
void row_argmax(const T* logits, int64_t rows, int64_t cols, int64_t real_cols, int64_t vocab_start,
                T* max_value, int32_t* max_index) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* z = logits + r * cols;
    int64_t best = 0;
    for (int64_t j = 1; j < real_cols; ++j)
      if (ranks_before(z[j], j, z[best], best)) best = j;
    max_value[r] = real_cols > 0 ? z[best] : -std::numeric_limits<T>::infinity();
    max_index[r] = static_cast<int32_t>(vocab_start + best);
  }
}

#define INSTANTIATE(T)                                                                           \
  template void cross_entropy_row_max<T>(const T*, int64_t, int64_t, int64_t, T*);               \
  template void cross_entropy_row_sums<T>(const T*, int64_t, int64_t, int64_t, const int32_t*,   \
                                          int64_t, const T*, T*);                                \
  template void cross_entropy_loss_backward<T>(const T*, int64_t, int64_t, int64_t,              \
                                               const int32_t*, int64_t, const T*, const T*,      \
                                               double, int64_t, int32_t, double, T*, T*);        \
  template void row_argmax<T>(const T*, int64_t, int64_t, int64_t, int64_t, T*, int32_t*);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
