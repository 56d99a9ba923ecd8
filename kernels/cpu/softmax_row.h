// One row of the masked attention softmax, shared by the softmax kernel and the fused attention of
// decoding, so that both compute exactly the same probabilities.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/math.h"

namespace tessera::kernels::cpu {

// p[j] = exp(scale (s[j] - max)) over the row's `visible` leading scores (masked_softmax_exp, max
// over those scores); returns their sum, which normalises them. p may be s.
template <typename T>
inline T masked_softmax_exp_row(const T* s, T* p, int64_t visible, T scale) {
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < visible; ++j) mx = std::max(mx, s[j]);
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < visible; ++j) {
    p[j] = masked_softmax_exp(s[j], mx, scale);
    sum += p[j];
  }
  return sum;
}

}  // namespace tessera::kernels::cpu
