// The dropout mask of one row, as the CPU kernels draw it: the row's coordinates (sentence, head,
// position) are worked out once, and each Philox block is drawn once for the four adjacent columns
// it serves, in a loop over blocks the compiler vectorises. Element (row, c) is kept iff
// dropout_keep (kernels/math.h) keeps it, so every kernel that reads a mask through here agrees
// with the CUDA kernels bit for bit.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/math.h"

namespace tessera::kernels::cpu {

// scale_row[c] = keep_scale where element (row, c) is kept, else 0; `words` is scratch space.
template <typename T>
void dropout_row_mask(const DropoutSite& s, int64_t row, int64_t cols, T keep_scale, std::vector<uint32_t>& words,
                      T* scale_row) {
  if (s.p == 0) {  // every draw keeps its element (evaluation): no draws needed
    std::fill(scale_row, scale_row + cols, keep_scale);
    return;
  }
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

}  // namespace tessera::kernels::cpu
