// The k best real logits of each row, best first: each row is scanned once in column order and
// its candidates kept sorted by insertion (ranks_before, math.h: higher value first, lower id on
// ties), the way parallel/vocab_parallel_topk.cc picks a slice's candidates.
#include <limits>

#include "kernels/cpu/cpu_ops.h"

namespace tessera::kernels::cpu {

template <typename T>
void row_topk(const T* logits, int64_t rows, int64_t cols, int64_t real_cols, int64_t vocab_start, int64_t k,
              T* values, int32_t* ids) {
  if (k == 0) return;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* z = logits + r * cols;
    T* val = values + r * k;
    int32_t* id = ids + r * k;
    int64_t count = 0;  // candidates held, sorted best first in val/id[0, count)
    for (int64_t j = 0; j < real_cols; ++j) {
      const int32_t token = static_cast<int32_t>(vocab_start + j);
      if (count == k && !ranks_before<T>(z[j], token, val[k - 1], id[k - 1])) continue;
      // Slots after every candidate that ranks before (or equal to) the newcomer stay put.
      int64_t pos = count < k ? count : k - 1;
      while (pos > 0 && ranks_before<T>(z[j], token, val[pos - 1], id[pos - 1])) {
        val[pos] = val[pos - 1];
        id[pos] = id[pos - 1];
        --pos;
      }
      val[pos] = z[j];
      id[pos] = token;
      if (count < k) ++count;
    }
    for (int64_t s = count; s < k; ++s) {
      val[s] = -std::numeric_limits<T>::infinity();
      id[s] = -1;
    }
  }
}

#define INSTANTIATE(T) \
  template void row_topk<T>(const T*, int64_t, int64_t, int64_t, int64_t, int64_t, T*, int32_t*);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
