// Dropout with a counter-based mask: element (row, col) is kept iff its Philox draw >= p, so the
// backward pass recomputes the mask instead of storing it.
#include "kernels/cpu/cpu_ops.h"

namespace tessera::kernels::cpu {

template <typename T>
void dropout_forward(const DropoutSite& site, const T* x, const T* residual, T* y, int64_t rows,
                     int64_t cols) {
  const T keep_scale = T(1) / (T(1) - static_cast<T>(site.p));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const T v = dropout_keep(site, r, c) ? xr[c] * keep_scale : T(0);
      yr[c] = residual ? residual[r * cols + c] + v : v;
    }
  }
}

template <typename T>
void dropout_backward(const DropoutSite& site, const T* dy, T* dx, int64_t rows, int64_t cols) {
  const T keep_scale = T(1) / (T(1) - static_cast<T>(site.p));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      dx[r * cols + c] = dropout_keep(site, r, c) ? dy[r * cols + c] * keep_scale : T(0);
}

#define INSTANTIATE(T)                                                                           \
  template void dropout_forward<T>(const DropoutSite&, const T*, const T*, T*, int64_t, int64_t); \
  template void dropout_backward<T>(const DropoutSite&, const T*, T*, int64_t, int64_t);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
