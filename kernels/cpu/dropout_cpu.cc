// Dropout with a counter-based mask: element (row, col) is kept iff its Philox draw >= p, so the
// backward pass recomputes the mask instead of storing it.
//
// The mask is the one dropout_keep (kernels/math.h) defines, computed a row at a time: the row's
// coordinates (sentence, head, position) are worked out once, and each Philox block is drawn once
// for the four adjacent columns it serves, in a loop over blocks the compiler vectorises.
#include <vector>

#include "kernels/cpu/cpu_ops.h"

namespace tessera::kernels::cpu {
namespace {

// scale_row[c] = keep_scale where element (row, c) is kept, else 0; `words` is scratch space.
template <typename T>
void row_mask(const DropoutSite& s, int64_t row, int64_t cols, T keep_scale, std::vector<uint32_t>& words,
              T* scale_row) {
  const PhiloxCounter row_ctr = dropout_row_counter(s, row);
  const uint32_t c1 = row_ctr.c1, c2 = row_ctr.c2, c3 = row_ctr.c3;
  const PhiloxKey key = philox_key(s.seed, s.step);
  const int64_t blocks = (cols + 3) / 4;
  words.resize(4 * blocks);
  uint32_t* w = words.data();
#pragma omp simd
  for (int64_t g = 0; g < blocks; ++g) {
    const PhiloxBlock b = philox4x32(PhiloxCounter{static_cast<uint32_t>(g), c1, c2, c3}, key);
    w[4 * g] = b.x[0];
    w[4 * g + 1] = b.x[1];
    w[4 * g + 2] = b.x[2];
    w[4 * g + 3] = b.x[3];
  }
  const float p = s.p;
#pragma omp simd
  for (int64_t c = 0; c < cols; ++c) scale_row[c] = dropout_keep_word(w[c], p) ? keep_scale : T(0);
}

}  // namespace

template <typename T>
void dropout_forward(const DropoutSite& site, const T* x, const T* residual, T* y, int64_t rows,
                     int64_t cols) {
  const T keep_scale = dropout_keep_scale<T>(site.p);
#pragma omp parallel
  {
    std::vector<uint32_t> words;
    std::vector<T> mask(cols);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      row_mask(site, r, cols, keep_scale, words, mask.data());
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
