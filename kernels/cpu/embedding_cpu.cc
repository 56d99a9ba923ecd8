// Vocabulary-parallel embedding lookup, its gradient, and sinusoidal positions.
#include <vector>

#include "kernels/cpu/cpu_ops.h"

namespace tessera::kernels::cpu {

template <typename T>
void embedding_forward(const int32_t* ids, const T* table, int64_t vocab_start, int64_t vocab_rows,
                       T scale, T* out, int64_t n, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = embedding_row(ids[i], vocab_start, vocab_rows);
    T* o = out + i * d;
    if (row >= 0) {
      const T* e = table + row * d;
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) o[c] = scale * e[c];
    } else {
      for (int64_t c = 0; c < d; ++c) o[c] = T(0);
    }
  }
}

// Scatter-add in token order; parallel over column blocks so no two threads touch one element.
template <typename T>
void embedding_backward(const int32_t* ids, const T* dout, int64_t vocab_start, int64_t vocab_rows,
                        T scale, T* dtable, int64_t n, int64_t d) {
  constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < d; c0 += kBlock) {
    const int64_t c1 = std::min(d, c0 + kBlock);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row = embedding_row(ids[i], vocab_start, vocab_rows);
      if (row < 0) continue;
      T* g = dtable + row * d;
      const T* dy = dout + i * d;
      for (int64_t c = c0; c < c1; ++c) g[c] += scale * dy[c];
    }
  }
}

template <typename T>
void add_positions(T* x, int64_t rows, int64_t d, int64_t seq_len, int64_t position_offset) {
  // One table of the positions used, shared by every sentence of the batch.
  std::vector<T> table(static_cast<size_t>(seq_len * d));
  for (int64_t s = 0; s < seq_len; ++s)
    for (int64_t c = 0; c < d; ++c) table[s * d + c] = sinusoid<T>(s + position_offset, c, d);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* pe = table.data() + (r % seq_len) * d;
    T* xr = x + r * d;
#pragma omp simd
    for (int64_t c = 0; c < d; ++c) xr[c] += pe[c];
  }
}

#define INSTANTIATE(T)                                                                          \
  template void embedding_forward<T>(const int32_t*, const T*, int64_t, int64_t, T, T*, int64_t, \
                                     int64_t);                                                  \
  template void embedding_backward<T>(const int32_t*, const T*, int64_t, int64_t, T, T*, int64_t,\
                                      int64_t);                                                 \
  template void add_positions<T>(T*, int64_t, int64_t, int64_t, int64_t);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
