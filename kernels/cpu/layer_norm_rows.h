// Layer normalisation (Ba et al. 2016) of one row, forward and backward, as every CPU kernel that
// normalises computes it (cpu/layer_norm_cpu.cc alone, cpu/residual_layer_norm_cpu.cc fused with
// the residual sum and dropout): one definition, so the fused and unfused kernels agree bit for bit.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/math.h"

namespace tessera::kernels::cpu {

// y = (x - mean) / sqrt(var + eps) * gamma + beta over the row; the mean comes first and the
// variance from the squared deviations (two passes over the row, never E[x^2] - E[x]^2).
template <typename T>
void layer_norm_row_forward(const T* xr, const T* gamma, const T* beta, T eps, T* yr, T& mean, T& rstd,
                            int64_t cols) {
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
  mean = mu;
  rstd = rs;
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma, for one row; adds the row's
// dgamma terms dy * xhat to pg and dbeta terms dy to pb. dx may be dy.
template <typename T>
void layer_norm_row_backward(const T* xr, const T* gamma, T mu, T rs, const T* dyr, T* dxr, T* pg, T* pb,
                             int64_t cols) {
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

// Runs row(r, pg, pb) for every row, parallel over blocks of rows, and adds the per-block column
// sums pg, pb into dgamma, dbeta in block order: the parameter gradients do not depend on the
// thread count. `row` may also carry per-thread scratch (it is called from one thread at a time
// per block); make_scratch() builds that thread's scratch once.
template <typename T, typename MakeScratch, typename Row>
void layer_norm_backward_blocks(int64_t rows, int64_t cols, T* dgamma, T* dbeta, MakeScratch make_scratch, Row row) {
  constexpr int64_t kRowsPerBlock = 64;
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<T> partial(static_cast<size_t>(blocks) * 2 * cols, T(0));
#pragma omp parallel
  {
    auto scratch = make_scratch();
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      T* pg = partial.data() + blk * 2 * cols;
      T* pb = pg + cols;
      for (int64_t r = blk * kRowsPerBlock; r < std::min(rows, (blk + 1) * kRowsPerBlock); ++r) row(r, pg, pb, scratch);
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

}  // namespace tessera::kernels::cpu
