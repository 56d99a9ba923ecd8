// Every op Tessera computes, declared once. Each op has shape checks and a dispatch in
// kernels/<op>.cc, a CPU implementation in kernels/cpu/ and a CUDA implementation in kernels/cuda/
// (both f32 and f64), chosen by the device of the first operand. Tensors are row-major and contiguous.
// Ops that write parameter gradients *add* into them, so micro-batches accumulate.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/math.h"

namespace tessera::kernels {

// Threads for BLAS and the loops of this process.
void set_num_threads(int threads);
int num_threads();

// ---- matrix products -------------------------------------------------------------------------
// The precision of a product's inputs. bf16 (mixed precision, f32 tensors only): both operands
// are rounded to bf16 (round to nearest even) and the products are summed in f32 into an f32 c,
// which is what a GPU's tensor cores do with bf16 inputs; the CPU rounds copies of the operands
// and runs the f32 BLAS, so the CPU and the GPU round at the same points.
enum class Precision : uint8_t { fp32, bf16 };

// c = alpha * op(a) * op(b) + beta * c, where op(m) is m or its transpose. 2-D operands.
void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c,
            double alpha = 1.0, double beta = 0.0, Precision precision = Precision::fp32);
// The same over dimension 0 of 3-D operands: c[i] = alpha * op(a[i]) op(b[i]) + beta * c[i].
void batched_matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c,
                    double alpha = 1.0, double beta = 0.0, Precision precision = Precision::fp32);
// The same with only the first b_rows rows of each b[i] taking part (b is [batch, capacity, w],
// b_rows <= capacity): a key/value cache preallocated to its length limit and filled up to b_rows,
// read in place (b[i] starts every capacity * w elements).
void batched_matmul_leading_rows(const Tensor& a, bool trans_a, const Tensor& b, int64_t b_rows, bool trans_b,
                                 Tensor& c, double alpha = 1.0, double beta = 0.0,
                                 Precision precision = Precision::fp32);

// ---- elementwise -----------------------------------------------------------------------------
void add(const Tensor& a, const Tensor& b, Tensor& out);          // out = a + b
void axpy(double alpha, const Tensor& x, Tensor& y);              // y += alpha * x
void scale(Tensor& x, double alpha);                              // x *= alpha
void add_bias(Tensor& x, const Tensor& bias);                     // x[r, :] += bias
void bias_backward(const Tensor& dy, Tensor& dbias);              // dbias += sum_r dy[r, :]
double sum_squares(const Tensor& x);                              // sum of x^2, in double
// Sum of x^2 over each segment [bounds[2i], bounds[2i+1]) of the flat tensor x, in double: the
// per-parameter squares of a gradient buffer in one pass (one kernel on CUDA), read back at once.
std::vector<double> sum_squares_segments(const Tensor& x, const std::vector<int64_t>& bounds);
// dst = src converted between f32, f64 and bf16 (same shape and device; bf16 rounds to nearest even).
void convert(const Tensor& src, Tensor& dst);

enum class Activation { relu, gelu };
// pre = pre + bias (in place, kept for backward); y = act(pre). One pass over memory.
void bias_activation_forward(Activation act, Tensor& pre, const Tensor& bias, Tensor& y);
// dpre = dy * act'(pre); dpre may be dy itself.
void activation_backward(Activation act, const Tensor& pre, const Tensor& dy, Tensor& dpre);

// ---- attention -------------------------------------------------------------------------------
// [B, S, H*dk] -> [B, H, S, dk] and back.
void split_heads(const Tensor& x, int64_t heads, Tensor& y);
void merge_heads(const Tensor& y, Tensor& x);
// probs = softmax(scale * scores + mask) over the last dimension of scores [B, H, Sq, Sk]. Key j
// of batch row b is masked when j >= key_lengths[b] (padding) or, if causal, when
// j > i + (Sk - Sq) for query i (a query sees itself and the keys before it). Masked
// probabilities are exactly zero; a row with no visible key is all zero.
void masked_softmax_forward(const Tensor& scores, const Tensor& key_lengths, bool causal,
                            double scale, Tensor& probs);
// dscores = scale * probs * (dprobs - sum_j dprobs * probs); dscores may be dprobs itself.
void masked_softmax_backward(const Tensor& probs, const Tensor& dprobs, double scale, Tensor& dscores);
// ctx = softmax(scale * Q K^T + mask) V for queries q [B, H, Sq, dk] against the first sk positions
// of the caches k, v [B, H, C, dk] (C >= sk, read in place), masked as masked_softmax_forward masks
// (key_lengths [B], causal). Attention without its backward: the decoder's step. On the CPU in f32
// precision one fused pass per (row, head); otherwise (GPU, bf16 products) the two leading-rows
// products around the softmax.
void cached_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t sk, const Tensor& key_lengths,
                      bool causal, double scale, Tensor& ctx, Precision precision = Precision::fp32);

// ---- layer norm ------------------------------------------------------------------------------
// y = (x - mean) / sqrt(var + eps) * gamma + beta over the last dimension; mean and rstd [rows]
// are kept for backward.
void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps,
                        Tensor& y, Tensor& mean, Tensor& rstd);
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma; dgamma, dbeta accumulate.
void layer_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, Tensor& dx, Tensor& dgamma, Tensor& dbeta);

// ---- residual + dropout + layer norm, fused (the sublayer output path, model/residual.h) -----
// One pass per row instead of two: sum = residual + mask * x / (1 - p) (dropout_forward's mask
// and arithmetic), then y = layer_norm(sum) from the row while it is in cache. sum, mean and rstd
// are kept for backward. Post-LN: y = LN(x + Dropout(f(x))); pre-LN: the next sublayer's LN of
// the residual stream x + Dropout(f(LN(x))).
void dropout_add_layer_norm_forward(const DropoutSite& site, const Tensor& x, const Tensor& residual,
                                    const Tensor& gamma, const Tensor& beta, double eps, Tensor& sum, Tensor& y,
                                    Tensor& mean, Tensor& rstd);
// The backward of both: dx = layer_norm_backward(dy) (dgamma, dbeta accumulate), plus dresidual
// when it is defined (the gradient that reached LN's input x through a skip connection, pre-LN:
// x -> x + f(LN(x))); then, when dx_dropped is defined, dx_dropped = mask * dx / (1 - p): the
// gradient of the sublayer output f that sum = r + Dropout(f) dropped. One pass per row.
void layer_norm_add_dropout_backward(const DropoutSite& site, const Tensor& x, const Tensor& gamma,
                                     const Tensor& mean, const Tensor& rstd, const Tensor& dy,
                                     const Tensor& dresidual, Tensor& dx, Tensor& dx_dropped, Tensor& dgamma,
                                     Tensor& dbeta);

// ---- dropout (Philox, keyed by global coordinates; the mask is recomputed in backward) -------
// y = residual + mask * x / (1 - p); residual may be undefined (then y = mask * x / (1 - p)).
void dropout_forward(const DropoutSite& site, const Tensor& x, const Tensor& residual, Tensor& y);
// dx = mask * dy / (1 - p); dx may be dy itself.
void dropout_backward(const DropoutSite& site, const Tensor& dy, Tensor& dx);

// ---- embeddings ------------------------------------------------------------------------------
// Vocabulary-parallel lookup: out[n] = scale * table[ids[n] - vocab_start] when this rank's slice
// of rows holds ids[n], else zero (the tensor-parallel all-reduce fills in the rest).
void embedding_forward(const Tensor& ids, const Tensor& table, int64_t vocab_start, double scale,
                       Tensor& out);
// dtable[ids[n] - vocab_start] += scale * dout[n] for the ids this slice holds.
void embedding_backward(const Tensor& ids, const Tensor& dout, int64_t vocab_start, double scale,
                        Tensor& dtable);
// x [B*S, d] += PE(s + position_offset) for row b*S + s. Its backward is the identity.
void add_positions(Tensor& x, int64_t seq_len, int64_t position_offset);

// ---- vocabulary-parallel cross-entropy with label smoothing ---------------------------------
// The logits [N, Vl] are this rank's slice of the vocabulary, starting at vocab_start; its first
// real_cols columns are real tokens, the rest padding that never wins. The three steps are
// separated by all-reduces over the tensor-parallel group (max, then sums).
void cross_entropy_row_max(const Tensor& logits, int64_t real_cols, Tensor& row_max);
// sums[n] = {sum_j exp(z_j - max), z_target (0 when another rank owns it), sum_j z_j}.
void cross_entropy_row_sums(const Tensor& logits, int64_t real_cols, const Tensor& targets,
                            int64_t vocab_start, const Tensor& row_max, Tensor& sums);
// Per-row loss (1 - eps) * (logZ - z_t) + eps * (logZ - mean_j z_j), logZ = max + log sum exp,
// over the whole vocabulary of vocab_size tokens; rows whose target is pad_id have loss 0. Writes
// dlogits = grad_scale * (softmax - (1 - eps) * onehot - eps / vocab_size) for non-pad rows
// (zero for pad rows and padded columns); dlogits may be logits itself.
void cross_entropy_loss_backward(const Tensor& logits, int64_t real_cols, const Tensor& targets,
                                 int64_t vocab_start, const Tensor& row_max, const Tensor& sums,
                                 double smoothing, int64_t vocab_size, int32_t pad_id,
                                 double grad_scale, Tensor& row_loss, Tensor& dlogits);
// Largest real logit of each row and its global token id (for greedy decoding and accuracy).
void row_argmax(const Tensor& logits, int64_t real_cols, int64_t vocab_start, Tensor& max_value,
                Tensor& max_index);

// Over the rows whose target is not pad_id: the sum of row_loss (in double), how many there are,
// and how many have predicted == target. Read back to the host (these are the logged scalars).
struct TokenStats {
  double loss_sum = 0;
  int64_t tokens = 0;
  int64_t correct = 0;
};
TokenStats token_stats(const Tensor& row_loss, const Tensor& predicted, const Tensor& targets, int32_t pad_id);
// The k largest real logits of each row, best first (the lower token id first on ties), as values
// [N, k] and global token ids [N, k] (i32). Slots past the row's real columns hold -inf and id -1.
void row_topk(const Tensor& logits, int64_t real_cols, int64_t vocab_start, int64_t k, Tensor& values,
              Tensor& ids);

// ---- optimizer -------------------------------------------------------------------------------
// Adam (Kingma & Ba) with bias correction, on g = grad_scale * grad:
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
void adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1,
               double beta2, double eps, int64_t step, double grad_scale);

}  // namespace tessera::kernels
