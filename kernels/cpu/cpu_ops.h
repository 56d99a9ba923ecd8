// CPU implementations of kernels/ops.h on raw row-major buffers, for T = float and double.
// Loops are parallel over rows with OpenMP (static schedule, so results do not depend on timing)
// and written so the compiler vectorises the inner loop over columns.
#pragma once

#include <cstdint>

#include "kernels/math.h"
#include "kernels/ops.h"

namespace tessera::kernels::cpu {

template <typename T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b,
          T beta, T* c);

// gemm over `batch` matrices, parallel over the batch with single-threaded BLAS inside
// (attention's products are many and small). a's and c's matrices are packed back to back; b's
// start every b_stride elements (k * n when packed; more for the filled part of a cache).
template <typename T>
void batched_gemm(bool ta, bool tb, int64_t batch, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  const T* b, int64_t b_stride, T beta, T* c);

template <typename T> void add(const T* a, const T* b, T* out, int64_t n);
template <typename T> void axpy(T alpha, const T* x, T* y, int64_t n);
template <typename T> void scale(T* x, T alpha, int64_t n);
template <typename T> void add_bias(T* x, const T* bias, int64_t rows, int64_t cols);
template <typename T> void bias_backward(const T* dy, T* dbias, int64_t rows, int64_t cols);
// out[s] = sum of x[i]^2 over [bounds[2s], bounds[2s+1]), in double.
template <typename T>
void sum_squares_segments(const T* x, const int64_t* bounds, int64_t segments, double* out);
// bf16 is uint16_t (its bits) here.
template <typename To, typename From> void convert(const From* src, To* dst, int64_t n);
// dst = src rounded to the nearest bf16 (ties to even), kept as f32: a mixed-precision operand.
void round_to_bf16(const float* src, float* dst, int64_t n);
template <typename T>
void bias_activation_forward(Activation act, T* pre, const T* bias, T* y, int64_t rows, int64_t cols);
template <typename T>
void activation_backward(Activation act, const T* pre, const T* dy, T* dpre, int64_t n);

template <typename T>
void split_heads(const T* x, T* y, int64_t batch, int64_t seq, int64_t heads, int64_t dk);
template <typename T>
void merge_heads(const T* y, T* x, int64_t batch, int64_t seq, int64_t heads, int64_t dk);
template <typename T>
void masked_softmax_forward(const T* scores, const int32_t* key_lengths, bool causal, T scale,
                            T* probs, int64_t batch, int64_t heads, int64_t sq, int64_t sk);
template <typename T>
void masked_softmax_backward(const T* probs, const T* dprobs, T scale, T* dscores, int64_t rows,
                             int64_t cols);
// cached_attention_cpu.cc: q, ctx [batch, heads, sq, dk]; k, v [batch, heads, capacity, dk], the
// first sk positions read.
template <typename T>
void cached_attention(const T* q, const T* k, const T* v, int64_t capacity, int64_t sk, const int32_t* key_lengths,
                      bool causal, T scale, T* ctx, int64_t batch, int64_t heads, int64_t sq, int64_t dk);

template <typename T>
void layer_norm_forward(const T* x, const T* gamma, const T* beta, T eps, T* y, T* mean, T* rstd,
                        int64_t rows, int64_t cols);
template <typename T>
void layer_norm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy,
                         T* dx, T* dgamma, T* dbeta, int64_t rows, int64_t cols);

// residual_layer_norm_cpu.cc; dresidual and dx_dropped may be null.
template <typename T>
void dropout_add_layer_norm_forward(const DropoutSite& site, const T* x, const T* residual, const T* gamma,
                                    const T* beta, T eps, T* sum, T* y, T* mean, T* rstd, int64_t rows,
                                    int64_t cols);
template <typename T>
void layer_norm_add_dropout_backward(const DropoutSite& site, const T* x, const T* gamma, const T* mean,
                                     const T* rstd, const T* dy, const T* dresidual, T* dx, T* dx_dropped,
                                     T* dgamma, T* dbeta, int64_t rows, int64_t cols);

template <typename T>
void dropout_forward(const DropoutSite& site, const T* x, const T* residual, T* y, int64_t rows,
                     int64_t cols);
template <typename T>
void dropout_backward(const DropoutSite& site, const T* dy, T* dx, int64_t rows, int64_t cols);

template <typename T>
void embedding_forward(const int32_t* ids, const T* table, int64_t vocab_start, int64_t vocab_rows,
                       T scale, T* out, int64_t n, int64_t d);
template <typename T>
void embedding_backward(const int32_t* ids, const T* dout, int64_t vocab_start, int64_t vocab_rows,
                        T scale, T* dtable, int64_t n, int64_t d);
template <typename T>
void add_positions(T* x, int64_t rows, int64_t d, int64_t seq_len, int64_t position_offset);

template <typename T>
void cross_entropy_row_max(const T* logits, int64_t rows, int64_t cols, int64_t real_cols, T* row_max);
template <typename T>
void cross_entropy_row_sums(const T* logits, int64_t rows, int64_t cols, int64_t real_cols,
                            const int32_t* targets, int64_t vocab_start, const T* row_max, T* sums);
template <typename T>
void cross_entropy_loss_backward(const T* logits, int64_t rows, int64_t cols, int64_t real_cols,
                                 const int32_t* targets, int64_t vocab_start, const T* row_max,
                                 const T* sums, double smoothing, int64_t vocab_size, int32_t pad_id,
                                 double grad_scale, T* row_loss, T* dlogits);
template <typename T>
void row_argmax(const T* logits, int64_t rows, int64_t cols, int64_t real_cols, int64_t vocab_start,
                T* max_value, int32_t* max_index);
template <typename T>
TokenStats token_stats(const T* row_loss, const int32_t* predicted, const int32_t* targets, int32_t pad_id,
                       int64_t n);
template <typename T>
void row_topk(const T* logits, int64_t rows, int64_t cols, int64_t real_cols, int64_t vocab_start, int64_t k,
              T* values, int32_t* ids);

template <typename T>
void adam_step(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1,
               double beta2, double eps, int64_t step, double grad_scale);

}  // namespace tessera::kernels::cpu

// A kernel whose loops the build's portable x86-64 target (SSE2, 4 floats a vector) would leave
// at half the machine's width: g++ compiles it twice, for AVX2 (8 floats) and for the baseline,
// and the loader picks the AVX2 copy on CPUs that have it. Both copies round every operation
// alike (no FMA: -ffp-contract=off); only a vectorised sum's order of additions follows the width.
#define TESSERA_CPU_WIDE_VECTORS __attribute__((target_clones("avx2", "default")))

// Instantiates a CPU template for float and double.
#define TESSERA_CPU_INSTANTIATE(macro) macro(float) macro(double)
