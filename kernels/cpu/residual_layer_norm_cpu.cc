// The sublayer output path fused, one row at a time while the row is in cache:
//   forward:  sum = residual + mask * x / (1 - p), y = LN(sum);
//   backward: dx = LN'(dy) (+ dresidual), dx_dropped = mask * dx / (1 - p).
// The mask comes from dropout_row_mask and the normalisation from layer_norm_rows.h, in the order
// the unfused kernels (dropout_cpu.cc, layer_norm_cpu.cc, elementwise_cpu.cc's axpy) apply them,
// so the results are theirs bit for bit; only the memory passes between them are gone.
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/dropout_mask.h"
#include "kernels/cpu/layer_norm_rows.h"

namespace tessera::kernels::cpu {
namespace {
template <typename T>
struct MaskScratch {
  std::vector<uint32_t> words;
  std::vector<T> mask;
};
}  // namespace

template <typename T>
void dropout_add_layer_norm_forward(const DropoutSite& site, const T* x, const T* residual, const T* gamma,
                                    const T* beta, T eps, T* sum, T* y, T* mean, T* rstd, int64_t rows,
                                    int64_t cols) {
  const T keep_scale = dropout_keep_scale<T>(site.p);
#pragma omp parallel
  {
    std::vector<uint32_t> words;
    std::vector<T> mask(cols);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      dropout_row_mask(site, r, cols, keep_scale, words, mask.data());
      const T* xr = x + r * cols;
      const T* rr = residual + r * cols;
      T* sr = sum + r * cols;
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) sr[c] = rr[c] + xr[c] * mask[c];
      layer_norm_row_forward(sr, gamma, beta, eps, y + r * cols, mean[r], rstd[r], cols);
    }
  }
}

template <typename T>
void layer_norm_add_dropout_backward(const DropoutSite& site, const T* x, const T* gamma, const T* mean,
                                     const T* rstd, const T* dy, const T* dresidual, T* dx, T* dx_dropped,
                                     T* dgamma, T* dbeta, int64_t rows, int64_t cols) {
  const T keep_scale = dropout_keep_scale<T>(site.p);
  layer_norm_backward_blocks<T>(
      rows, cols, dgamma, dbeta, [&] { return MaskScratch<T>{{}, std::vector<T>(dx_dropped ? cols : 0)}; },
      [&](int64_t r, T* pg, T* pb, MaskScratch<T>& s) {
        T* dxr = dx + r * cols;
        layer_norm_row_backward(x + r * cols, gamma, mean[r], rstd[r], dy + r * cols, dxr, pg, pb, cols);
        if (dresidual) {
          const T* dr = dresidual + r * cols;
#pragma omp simd
          for (int64_t c = 0; c < cols; ++c) dxr[c] += dr[c];
        }
        if (dx_dropped) {
          dropout_row_mask(site, r, cols, keep_scale, s.words, s.mask.data());
          T* out = dx_dropped + r * cols;
#pragma omp simd
          for (int64_t c = 0; c < cols; ++c) out[c] = dxr[c] * s.mask[c];
        }
      });
}

#define INSTANTIATE(T)                                                                                           \
  template void dropout_add_layer_norm_forward<T>(const DropoutSite&, const T*, const T*, const T*, const T*, T, \
                                                  T*, T*, T*, T*, int64_t, int64_t);                           \
  template void layer_norm_add_dropout_backward<T>(const DropoutSite&, const T*, const T*, const T*, const T*,  \
                                                   const T*, const T*, T*, T*, T*, T*, int64_t, int64_t);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
