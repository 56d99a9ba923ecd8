// Layer normalisation (Ba et al. 2016) over the last dimension.
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"

namespace tessera::kernels::cpu {

template <typename T>
void layer_norm_forward(const T* x, const T* gamma, const T* beta, T eps, T* y, T* mean, T* rstd,
                        int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < cols; ++c) sum += xr[c];
    const T mu = sum / cols;
    T sq = 0;
#pragma omp simd reduction(+ : sq)
    for (int64_t c = 0; c < cols; ++c) sq += (xr[c] - mu) * (xr[c] - mu);
    const T rs = layer_norm_rstd(sq, cols, eps);
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) yr[c] = layer_norm_y(xr[c], mu, rs, gamma[c], beta[c]);
    mean[r] = mu;
    rstd[r] = rs;
  }
}

// Row-parallel for dx; dgamma and dbeta are column sums, accumulated per thread in row blocks of
// fixed size and added in block order, so the result does not depend on the thread count.
template <typename T>
void layer_norm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy,
                         T* dx, T* dgamma, T* dbeta, int64_t rows, int64_t cols) {
  constexpr int64_t kRowsPerBlock = 64;
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<T> partial(static_cast<size_t>(blocks) * 2 * cols, T(0));
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    T* pg = partial.data() + blk * 2 * cols;
    T* pb = pg + cols;
    for (int64_t r = blk * kRowsPerBlock; r < std::min(rows, (blk + 1) * kRowsPerBlock); ++r) {
      const T* xr = x + r * cols;
      const T* dyr = dy + r * cols;
      T* dxr = dx + r * cols;
      const T mu = mean[r], rs = rstd[r];
      T sum_g = 0, sum_gx = 0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
      for (int64_t c = 0; c < cols; ++c) {
        const T xhat = layer_norm_xhat(xr[c], mu, rs);
        const T g = dyr[c] * gamma[c];
        sum_g += g;
        sum_gx += g * xhat;
        pg[c] += dyr[c] * xhat;
        pb[c] += dyr[c];
      }
      const T mean_g = sum_g / cols, mean_gx = sum_gx / cols;
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) {
        dxr[c] = layer_norm_dx(dyr[c], gamma[c], layer_norm_xhat(xr[c], mu, rs), rs, mean_g, mean_gx);
      }
    }
  }
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const T* pg = partial.data() + blk * 2 * cols;
    for (int64_t c = 0; c < cols; ++c) {
      dgamma[c] += pg[c];
      dbeta[c] += pg[cols + c];
    }
  }
}

#define INSTANTIATE(T)                                                                        \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T, T*, T*, T*, int64_t,   \
                                      int64_t);                                               \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*,  \
                                       T*, T*, int64_t, int64_t);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
