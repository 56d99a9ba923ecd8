// Cross-entropy with label smoothing over logits split by vocabulary across the tensor-parallel
// group, without ever gathering the full logits.
//
// With z the logits of one target position, m = max_j z_j, S = sum_j exp(z_j - m) and
// logZ = m + log S, the smoothed loss is (1 - eps) (logZ - z_t) + eps (logZ - mean_j z_j), where
// j runs over the WHOLE vocabulary. Each rank computes its slice's max (all-reduce max), then its
// slice's S, z_t (zero unless it owns t) and sum_j z_j (one all-reduce sum of the three). Reducing
// sum_j z_j over every rank is what makes the smoothing term exact; summing only the local slice
// (a known bug elsewhere) silently changes the loss with tp.
#pragma once

#include "core/tensor.h"
#include "parallel/communicator.h"

namespace tessera::parallel {

struct CrossEntropyResult {
  double loss_sum = 0;     // sum of per-token losses over non-pad targets
  int64_t tokens = 0;      // non-pad targets
  int64_t correct = 0;     // targets that are the argmax of the logits
};

// Computes the loss of logits_r [N, V/tp] (its first real_cols columns are real tokens of the
// slice starting at vocab_start) against targets [N], and overwrites logits_r with the gradient
// of grad_scale * (total loss) when with_grad.
CrossEntropyResult vocab_parallel_cross_entropy(Tensor& logits_r, int64_t real_cols, int64_t vocab_start,
                                                int64_t vocab_size, const Tensor& targets, double smoothing,
                                                int32_t pad_id, double grad_scale, bool with_grad,
                                                Communicator& tp);

// The argmax over the whole vocabulary of each row of vocabulary-sharded logits (ties: lowest id).
Tensor vocab_parallel_argmax(const Tensor& logits_r, int64_t real_cols, int64_t vocab_start, Communicator& tp);

}  // namespace tessera::parallel
