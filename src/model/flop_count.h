// The model FLOPs of a training step: the multiply-adds of every matrix product that forward and
// backward need on the batch's real (unpadded) tokens, 2 FLOPs each. This is the numerator of
// "model FLOP/s" and of the share of the machine's peak that a run reports (its MFU): padding,
// recomputation and element-wise passes do not count, so layouts and batchings compare fairly.
#pragma once

#include <vector>

#include "model/batch.h"
#include "model/config.h"

namespace tessera::model {

// Forward FLOPs of one sentence pair of `source_len` and `target_len` positions (eos/bos included).
double forward_flops(const ModelConfig& config, double source_len, double target_len);

// Forward + backward of a batch: backward computes two products per forward product (the
// gradients of both operands), so a step is 3x the forward.
double training_flops(const ModelConfig& config, const std::vector<TokenPair>& batch);

}  // namespace tessera::model
