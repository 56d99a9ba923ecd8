// Scalar math shared by the CPU and CUDA backends, so both compute the same function: every
// per-element and per-row formula of kernels/ops.h is written once here, as a TESSERA_HD function
// (host and device under nvcc, plain inline otherwise) that the CPU loops and the CUDA kernels
// both call. The CPU tests therefore cover the formulas the GPU runs; each function keeps the
// CPU's order of operations, so CPU results are bit for bit those of the loops it replaced.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/philox.h"

namespace tessera::kernels {

// tanh evaluated in double on both backends. (An unqualified tanh(float) is ::tanh(double) under
// g++ but tanhf under nvcc, so the two backends would compute different functions.)
template <typename T>
TESSERA_HD double tanh_in_double(T x) { return tanh(static_cast<double>(x)); }

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <typename T>
TESSERA_HD T gelu(T x) {
  const T k = T(0.7978845608028654), c = T(0.044715);
  return T(0.5) * x * (T(1) + tanh_in_double(k * (x + c * x * x * x)));
}
template <typename T>
TESSERA_HD T gelu_grad(T x) {
  const T k = T(0.7978845608028654), c = T(0.044715);
  const T t = static_cast<T>(tanh_in_double(k * (x + c * x * x * x)));
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

// The Philox counter of the site's row `row`, with word 0 (the block of four columns) left 0:
// (column block, (head << 16) | position, sentence, stream).
TESSERA_HD PhiloxCounter dropout_row_counter(const DropoutSite& s, int64_t row) {
  const int64_t within = row % s.rows_per_sentence;
  const uint32_t sentence = static_cast<uint32_t>(s.sentence_offset + row / s.rows_per_sentence);
  const uint32_t head = static_cast<uint32_t>(within / s.inner_rows + s.head_offset);
  const uint32_t pos = static_cast<uint32_t>(within % s.inner_rows);
  return PhiloxCounter{0u, (head << 16) | pos, sentence, s.stream};
}
// Keep an element whose Philox word is `word`: its uniform draw is at least p.
TESSERA_HD bool dropout_keep_word(uint32_t word, float p) { return philox_uniform(word) >= p; }

// Keep element (row, col) of the site's tensor? Each Philox block serves four adjacent columns.
TESSERA_HD bool dropout_keep(const DropoutSite& s, int64_t row, int64_t col) {
  PhiloxCounter ctr = dropout_row_counter(s, row);
  ctr.c0 = static_cast<uint32_t>(col >> 2);
  const PhiloxBlock b = philox4x32(ctr, philox_key(s.seed, s.step));
  return dropout_keep_word(b.x[col & 3], s.p);
}
// A kept element is scaled by 1 / (1 - p), so the expected value is unchanged.
template <typename T>
TESSERA_HD T dropout_keep_scale(float p) { return T(1) / (T(1) - static_cast<T>(p)); }

// ---- exp ----------------------------------------------------------------------------------------
// exp(x) of an f32 within 2 ulp (1.3 measured), written so that the CPU's loops vectorise it (no
// calls, no branches; selects only). x = k ln2 + r with k = round(x / ln2) and |r| <= ln2 / 2, so
// exp(x) = 2^k exp(r), with exp(r) by Cephes' expf polynomial. ln2 is split into C1 + C2 with C1
// exact in 9 bits, so k C1 is exact and r keeps its low bits; adding 1.5 * 2^23 rounds x / ln2 to
// the integer k, which then sits in the sum's low mantissa bits. Below -87.34 (exp(x) under the
// smallest normal f32) the result is 0; above 88.37 (where 2^k would overflow) it is +inf, which
// exp reaches at 88.72; NaN stays NaN. The softmax and cross-entropy callers pass x <= 0.
TESSERA_HD float exp_f32(float x) {
  const float magic = 12582912.0f;  // 1.5 * 2^23
  float xc = x < -87.5f ? -87.5f : x;
  xc = xc > 88.37f ? 88.37f : xc;
  const float shifted = xc * 1.44269504088896341f + magic;
  const float k = shifted - magic;
#if defined(__CUDA_ARCH__)
  const int32_t k_int = __float_as_int(shifted) - __float_as_int(magic);
  const float two_to_k = __int_as_float((k_int + 127) << 23);
#else
  int32_t shifted_bits, magic_bits;
  std::memcpy(&shifted_bits, &shifted, 4);
  std::memcpy(&magic_bits, &magic, 4);
  const int32_t exponent_bits = (shifted_bits - magic_bits + 127) << 23;
  float two_to_k;
  std::memcpy(&two_to_k, &exponent_bits, 4);
#endif
  const float r = (xc - k * 0.693359375f) - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float exp_r = p * (r * r) + r + 1.0f;
  const float y = exp_r * two_to_k;
  return x < -87.33654f ? 0.0f : (x > 88.37f ? INFINITY : y);
}
// exp in the element type: exp_f32 for f32, the library's exp for f64 (finite-difference checks).
template <typename T>
TESSERA_HD T exp_of(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return exp_f32(x);
  } else {
    return exp(x);
  }
}

// ---- elementwise and reductions ---------------------------------------------------------------
// One term of a sum of squares, in double.
template <typename T>
TESSERA_HD double square_in_double(T x) { return static_cast<double>(x) * x; }

// bf16 is the top half of an f32, rounded to nearest even; a NaN stays a (quiet) NaN.
TESSERA_HD uint16_t bf16_from_float(float x) {
#if defined(__CUDA_ARCH__)
  uint32_t bits = __float_as_uint(x);
#else
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
#endif
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
TESSERA_HD float float_from_bf16(uint16_t x) {
  const uint32_t bits = static_cast<uint32_t>(x) << 16;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}
// One element converted among f32 (float), f64 (double) and bf16 (its bits, uint16_t), as
// Tensor::to converts: a double becomes bf16 through float.
template <typename To, typename From>
TESSERA_HD To convert_element(From x) {
  if constexpr (std::is_same_v<From, uint16_t>) {
    return convert_element<To>(float_from_bf16(x));
  } else if constexpr (std::is_same_v<To, uint16_t>) {
    return bf16_from_float(static_cast<float>(x));
  } else {
    return static_cast<To>(x);
  }
}

// ---- attention softmax ------------------------------------------------------------------------
// How many leading keys query i of a [.., sq, sk] score row sees: those before the batch row's
// key length and, if causal, those at or before i + (sk - sq). Never negative.
TESSERA_HD int64_t masked_softmax_visible(int64_t sk, int64_t sq, int64_t i, int32_t key_length, bool causal) {
  int64_t visible = key_length < sk ? static_cast<int64_t>(key_length) : sk;
  if (causal && i + (sk - sq) + 1 < visible) visible = i + (sk - sq) + 1;
  return visible > 0 ? visible : 0;
}
// The unnormalised probability of a visible score s in a row whose largest visible score is mx.
template <typename T>
TESSERA_HD T masked_softmax_exp(T s, T mx, T scale) { return exp_of(scale * (s - mx)); }
// dscore = scale * p * (dp - sum_j dp_j p_j).
template <typename T>
TESSERA_HD T softmax_backward_element(T p, T dp, T dot, T scale) { return scale * p * (dp - dot); }

// ---- layer norm -------------------------------------------------------------------------------
// 1 / sqrt(var + eps) from the row's sum of squared deviations.
template <typename T>
TESSERA_HD T layer_norm_rstd(T sum_sq_dev, int64_t cols, T eps) { return T(1) / std::sqrt(sum_sq_dev / cols + eps); }
template <typename T>
TESSERA_HD T layer_norm_xhat(T x, T mean, T rstd) { return (x - mean) * rstd; }
template <typename T>
TESSERA_HD T layer_norm_y(T x, T mean, T rstd, T gamma, T beta) {
  return layer_norm_xhat(x, mean, rstd) * gamma + beta;
}
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma.
template <typename T>
TESSERA_HD T layer_norm_dx(T dy, T gamma, T xhat, T rstd, T mean_g, T mean_gx) {
  return rstd * (dy * gamma - mean_g - xhat * mean_gx);
}

// ---- embeddings -------------------------------------------------------------------------------
// The row of this rank's slice [vocab_start, vocab_start + vocab_rows) holding token `id`, or -1.
TESSERA_HD int64_t embedding_row(int32_t id, int64_t vocab_start, int64_t vocab_rows) {
  const int64_t row = static_cast<int64_t>(id) - vocab_start;
  return (row >= 0 && row < vocab_rows) ? row : -1;
}

// ---- cross-entropy and decoding ---------------------------------------------------------------
// One term of sum_j exp(z_j - max).
template <typename T>
TESSERA_HD T cross_entropy_exp(T z, T row_max) { return exp_of(z - row_max); }
// logZ = max + log sum_j exp(z_j - max).
template <typename T>
TESSERA_HD T cross_entropy_log_z(T row_max, T sum_exp) { return row_max + std::log(sum_exp); }
// (1 - eps) * (logZ - z_t) + eps * (logZ - mean_j z_j), the mean over the whole vocabulary.
template <typename T>
TESSERA_HD T cross_entropy_row_loss(T log_z, T z_target, T sum_z, T eps, int64_t vocab_size) {
  const T nll = log_z - z_target;
  const T smooth = log_z - sum_z / static_cast<T>(vocab_size);
  return (T(1) - eps) * nll + eps * smooth;
}
// g * (softmax_j - eps / V) for a real column; the target column then takes cross_entropy_target_dlogit.
template <typename T>
TESSERA_HD T cross_entropy_dlogit(T z, T log_z, T g, T uniform) { return g * (exp_of(z - log_z) - uniform); }
template <typename T>
TESSERA_HD T cross_entropy_target_dlogit(T dlogit, T g, T eps) { return dlogit - g * (T(1) - eps); }

// Does candidate (va, ia) rank before (vb, ib)? The higher value first, the lower id on ties.
template <typename T>
TESSERA_HD bool ranks_before(T va, int64_t ia, T vb, int64_t ib) { return va > vb || (va == vb && ia < ib); }

// ---- optimizer --------------------------------------------------------------------------------
// Adam's bias correction 1 / (1 - beta^step), computed once per step on the host.
inline double adam_bias_correction(double beta, int64_t step) {
  return 1.0 / (1.0 - std::pow(beta, static_cast<double>(step)));
}
// One element of Adam on g = grad_scale * grad with bias corrections c1, c2 (updates p, m, v).
template <typename T>
TESSERA_HD void adam_update(T& p, T& m, T& v, T grad, T grad_scale, T beta1, T beta2, T c1, T c2, T lr, T eps) {
  const T g = grad_scale * grad;
  m = beta1 * m + (T(1) - beta1) * g;
  v = beta2 * v + (T(1) - beta2) * g * g;
  p -= lr * (m * c1) / (std::sqrt(v * c2) + eps);
}

}  // namespace tessera::kernels
