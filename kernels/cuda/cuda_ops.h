// The CUDA backend's implementations of kernels/ops.h (f32 and f64, device memory), called by the
// dispatchers in kernels/*.cc after their shape, dtype and device checks. Every kernel runs on
// the rank's stream (runtime.h) and is followed by check_launch naming the op. Per-element and
// per-row math comes from kernels/math.h, the same functions the CPU kernels call; reductions use
// CUB, products cuBLAS. Compiled only when the build found nvcc (TESSERA_WITH_CUDA).
#pragma once

#include "kernels/cuda/runtime.h"
#include "kernels/ops.h"

namespace tessera::kernels::cuda {

void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double alpha,
            double beta);
// b's matrices: the first b_rows rows of each b.dim(1) x b.dim(2) block (b_rows == b.dim(1): packed).
void batched_matmul(const Tensor& a, bool trans_a, const Tensor& b, int64_t b_rows, bool trans_b, Tensor& c,
                    double alpha, double beta);

void add(const Tensor& a, const Tensor& b, Tensor& out);
void axpy(double alpha, const Tensor& x, Tensor& y);
void scale(Tensor& x, double alpha);
void add_bias(Tensor& x, const Tensor& bias);
void bias_backward(const Tensor& dy, Tensor& dbias);
std::vector<double> sum_squares_segments(const Tensor& x, const std::vector<int64_t>& bounds);
void convert(const Tensor& src, Tensor& dst);
void bias_activation_forward(Activation act, Tensor& pre, const Tensor& bias, Tensor& y);
void activation_backward(Activation act, const Tensor& pre, const Tensor& dy, Tensor& dpre);

void split_heads(const Tensor& x, int64_t heads, Tensor& y);
void merge_heads(const Tensor& y, Tensor& x);
void masked_softmax_forward(const Tensor& scores, const Tensor& key_lengths, bool causal, double scale,
                            Tensor& probs);
void masked_softmax_backward(const Tensor& probs, const Tensor& dprobs, double scale, Tensor& dscores);

void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y,
                        Tensor& mean, Tensor& rstd);
void layer_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, Tensor& dx, Tensor& dgamma, Tensor& dbeta);

void dropout_add_layer_norm_forward(const DropoutSite& site, const Tensor& x, const Tensor& residual,
                                    const Tensor& gamma, const Tensor& beta, double eps, Tensor& sum, Tensor& y,
                                    Tensor& mean, Tensor& rstd);
void layer_norm_add_dropout_backward(const DropoutSite& site, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                     const Tensor& rstd, const Tensor& dy, const Tensor& dresidual, Tensor& dx,
                                     Tensor& dx_dropped, Tensor& dgamma, Tensor& dbeta);

void dropout_forward(const DropoutSite& site, const Tensor& x, const Tensor& residual, Tensor& y);
void dropout_backward(const DropoutSite& site, const Tensor& dy, Tensor& dx);

void embedding_forward(const Tensor& ids, const Tensor& table, int64_t vocab_start, double scale, Tensor& out);
void embedding_backward(const Tensor& ids, const Tensor& dout, int64_t vocab_start, double scale, Tensor& dtable);
void add_positions(Tensor& x, int64_t seq_len, int64_t position_offset);

void cross_entropy_row_max(const Tensor& logits, int64_t real_cols, Tensor& row_max);
void cross_entropy_row_sums(const Tensor& logits, int64_t real_cols, const Tensor& targets, int64_t vocab_start,
                            const Tensor& row_max, Tensor& sums);
void cross_entropy_loss_backward(const Tensor& logits, int64_t real_cols, const Tensor& targets,
                                 int64_t vocab_start, const Tensor& row_max, const Tensor& sums,
                                 double smoothing, int64_t vocab_size, int32_t pad_id, double grad_scale,
                                 Tensor& row_loss, Tensor& dlogits);
void row_argmax(const Tensor& logits, int64_t real_cols, int64_t vocab_start, Tensor& max_value, Tensor& max_index);
TokenStats token_stats(const Tensor& row_loss, const Tensor& predicted, const Tensor& targets, int32_t pad_id);
void row_topk(const Tensor& logits, int64_t real_cols, int64_t vocab_start, int64_t k, Tensor& values,
              Tensor& ids);

void adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2,
               double eps, int64_t step, double grad_scale);

}  // namespace tessera::kernels::cuda
