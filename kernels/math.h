// Scalar math shared by the CPU and CUDA backends, so both compute the same function.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/philox.h"

namespace tessera::kernels {

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <typename T>
TESSERA_HD T gelu(T x) {
  const T k = T(0.7978845608028654), c = T(0.044715);
  return T(0.5) * x * (T(1) + tanh(k * (x + c * x * x * x)));
}
template <typename T>
TESSERA_HD T gelu_grad(T x) {
  const T k = T(0.7978845608028654), c = T(0.044715);
  const T t = tanh(k * (x + c * x * x * x));
  return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3) * c * x * x);
}
template <typename T>
TESSERA_HD T relu(T x) { return x > T(0) ? x : T(0); }
template <typename T>
TESSERA_HD T relu_grad(T x) { return x > T(0) ? T(1) : T(0); }

// Sinusoidal position encoding (Vaswani et al. 3.5): PE(pos, 2i) = sin(pos / 10000^(2i/d)),
// PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).
template <typename T>
TESSERA_HD T sinusoid(int64_t pos, int64_t col, int64_t d_model) {
  const double inv_freq = exp(-log(10000.0) * static_cast<double>(col - (col & 1)) / static_cast<double>(d_model));
  const double angle = static_cast<double>(pos) * inv_freq;
  return static_cast<T>((col & 1) ? cos(angle) : sin(angle));
}

// Where a dropout mask lives in global coordinates. A tensor's row r belongs to sentence
// sentence_offset + r / rows_per_sentence; within the sentence, row w = r % rows_per_sentence is
// (head w / inner_rows + head_offset, position w % inner_rows). Keying by these global
// coordinates (never by rank or local index) makes the mask independent of the parallel layout.
struct DropoutSite {
  float p = 0;                 // probability of dropping an element
  uint64_t seed = 0;
  uint32_t step = 0;           // optimizer step
  uint32_t stream = 0;         // (purpose << 24) | site index: one stream per dropout site
  int64_t sentence_offset = 0; // global index of this tensor's first sentence in the global batch
  int64_t rows_per_sentence = 1;
  int64_t inner_rows = 1;      // positions per head (= rows_per_sentence for activations)
  int64_t head_offset = 0;     // global index of this rank's first head
};

inline uint32_t dropout_stream(RngPurpose purpose, uint32_t site) {
  return (static_cast<uint32_t>(purpose) << 24) | (site & 0xFFFFFFu);
}

// Keep element (row, col) of the site's tensor? Each Philox block serves four adjacent columns.
TESSERA_HD bool dropout_keep(const DropoutSite& s, int64_t row, int64_t col) {
  const int64_t within = row % s.rows_per_sentence;
  const uint32_t sentence = static_cast<uint32_t>(s.sentence_offset + row / s.rows_per_sentence);
  const uint32_t head = static_cast<uint32_t>(within / s.inner_rows + s.head_offset);
  const uint32_t pos = static_cast<uint32_t>(within % s.inner_rows);
  const PhiloxBlock b = philox4x32(
      PhiloxCounter{static_cast<uint32_t>(col >> 2), (head << 16) | pos, sentence, s.stream},
      philox_key(s.seed, s.step));
  return philox_uniform(b.x[col & 3]) >= s.p;
}

}  // namespace tessera::kernels
