// Reductions read back to the host: sums of squares over segments of a flat buffer (the gradient
// norm), and the logged token statistics of a batch.
//
// A segment's sum of squares is a sum of fixed 2^14-element chunks, each summed by one thread and
// the chunks then added in order, so the result does not depend on the thread count. All chunks
// of all segments form one parallel loop: many small parameters cost one parallel region.
#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_ops.h"

namespace tessera::kernels::cpu {

template <typename T>
void sum_squares_segments(const T* x, const int64_t* bounds, int64_t segments, double* out) {
  constexpr int64_t kChunk = 1 << 14;
  // first_chunk[s]: index of segment s's first chunk in the flat list of chunks.
  std::vector<int64_t> first_chunk(segments + 1, 0), chunk_segment;
  for (int64_t s = 0; s < segments; ++s) {
    const int64_t n = bounds[2 * s + 1] - bounds[2 * s];
    first_chunk[s + 1] = first_chunk[s] + (n + kChunk - 1) / kChunk;
    chunk_segment.insert(chunk_segment.end(), first_chunk[s + 1] - first_chunk[s], s);
  }
  std::vector<double> partial(first_chunk[segments]);
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < first_chunk[segments]; ++task) {
    const int64_t seg = chunk_segment[task], ch = task - first_chunk[seg];
    const T* xs = x + bounds[2 * seg];
    const int64_t n = bounds[2 * seg + 1] - bounds[2 * seg];
    double s = 0;
    const int64_t end = std::min(n, (ch + 1) * kChunk);
#pragma omp simd reduction(+ : s)
    for (int64_t i = ch * kChunk; i < end; ++i) s += square_in_double(xs[i]);
    partial[task] = s;
  }
  for (int64_t s = 0; s < segments; ++s) {
    double total = 0;
    for (int64_t task = first_chunk[s]; task < first_chunk[s + 1]; ++task) total += partial[task];
    out[s] = total;
  }
}

// In row order, so the loss sum is the same on every run.
template <typename T>
TokenStats token_stats(const T* row_loss, const int32_t* predicted, const int32_t* targets, int32_t pad_id,
                       int64_t n) {
  TokenStats stats;
  for (int64_t i = 0; i < n; ++i) {
    if (targets[i] == pad_id) continue;
    stats.loss_sum += static_cast<double>(row_loss[i]);
    ++stats.tokens;
    stats.correct += predicted[i] == targets[i];
  }
  return stats;
}

#define INSTANTIATE(T)                                                                            \
  template void sum_squares_segments<T>(const T*, const int64_t*, int64_t, double*);             \
  template TokenStats token_stats<T>(const T*, const int32_t*, const int32_t*, int32_t, int64_t);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
