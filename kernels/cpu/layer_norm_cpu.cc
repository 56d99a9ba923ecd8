// Layer normalisation (Ba et al. 2016) over the last dimension: the row formulas of
// layer_norm_rows.h, parallel over rows.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/layer_norm_rows.h"

namespace tessera::kernels::cpu {

template <typename T>
void layer_norm_forward(const T* x, const T* gamma, const T* beta, T eps, T* y, T* mean, T* rstd,
                        int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    layer_norm_row_forward(x + r * cols, gamma, beta, eps, y + r * cols, mean[r], rstd[r], cols);
}

// Row-parallel for dx; dgamma and dbeta are column sums, accumulated per thread in row blocks of
// fixed size and added in block order, so the result does not depend on the thread count.
template <typename T>
void layer_norm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy,
                         T* dx, T* dgamma, T* dbeta, int64_t rows, int64_t cols) {
  layer_norm_backward_blocks<T>(
      rows, cols, dgamma, dbeta, [] { return 0; },
      [&](int64_t r, T* pg, T* pb, int) {
        layer_norm_row_backward(x + r * cols, gamma, mean[r], rstd[r], dy + r * cols, dx + r * cols, pg, pb, cols);
      });
}

#define INSTANTIATE(T)                                                                        \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T, T*, T*, T*, int64_t,   \
                                      int64_t);                                               \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*,  \
                                       T*, T*, int64_t, int64_t);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
