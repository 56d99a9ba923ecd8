// Dropout with a counter-based mask: element (row, col) is kept iff its Philox draw >= p, so the
// backward pass recomputes the mask instead of storing it.
//
// The mask is the one dropout_keep (kernels/math.h) defines, computed a row at a time by
// dropout_row_mask (dropout_mask.h).
#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/dropout_mask.h"

namespace tessera::kernels::cpu {

template <typename T>
void dropout_forward(const DropoutSite& site, const T* x, const T* residual, T* y, int64_t rows,
                     int64_t cols) {
  const T keep_scale = dropout_keep_scale<T>(site.p);
  // p = 0 (evaluation) keeps every element with scale 1: the plain sum, the same bits as the masked
  // path, without its per-thread mask rows (their allocation on the worker threads alone added
  // 3.5 MB to the peak memory of decoding).
  if (site.p == 0) {
#pragma omp parallel for schedule(static) if (rows * cols >= 1 << 14)
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      if (residual) {
        const T* rr = residual + r * cols;
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) yr[c] = rr[c] + xr[c];
      } else if (yr != xr) {
        std::copy(xr, xr + cols, yr);
      }
    }
    return;
  }
#pragma omp parallel
  {
    std::vector<uint32_t> words;
    std::vector<T> mask(cols);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      dropout_row_mask(site, r, cols, keep_scale, words, mask.data());
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      if (residual) {
        const T* rr = residual + r * cols;
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) yr[c] = rr[c] + xr[c] * mask[c];
      } else {
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) yr[c] = xr[c] * mask[c];
      }
    }
  }
}

// The mask is linear and its own transpose: dx = mask * dy / (1 - p) is the forward pass on dy.
template <typename T>
void dropout_backward(const DropoutSite& site, const T* dy, T* dx, int64_t rows, int64_t cols) {
  dropout_forward<T>(site, dy, nullptr, dx, rows, cols);
}

#define INSTANTIATE(T)                                                                           \
  template void dropout_forward<T>(const DropoutSite&, const T*, const T*, T*, int64_t, int64_t); \
  template void dropout_backward<T>(const DropoutSite&, const T*, T*, int64_t, int64_t);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
