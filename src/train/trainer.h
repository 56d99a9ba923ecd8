// One training step across the process grid, top to bottom:
//   1. every rank holds the same global batch; it is cut into data-parallel slices (contiguous
//      sentence ranges) and each slice into --accumulate micro-batches;
//   2. forward + backward on each micro-batch, gradients scaled by 1 / (target tokens of the
//      global batch); on the last micro-batch, gradient buckets start their data-parallel
//      all-reduce as backward completes each layer;
//   3. wait for the buckets, take the global gradient norm, stop (throw, nothing applied) if it or
//      the loss is not finite, clip, and apply Adam with the paper's learning-rate schedule; with
//      --shard-optimizer (ZeRO-1) the buckets were reduce-scattered, each rank updates its shard
//      and the parameters are all-gathered.
// With --precision bf16 every matrix product rounds its operands to bf16 and sums in f32; the
// parameters, gradients and moments stay f32 (the master copy).
#pragma once

#include <memory>
#include <vector>

#include "model/transformer.h"
#include "parallel/gradient_buckets.h"
#include "parallel/process_grid.h"
#include "train/optimizer.h"
#include "train/options.h"

namespace tessera::train {

struct StepStats {
  int64_t step = 0;
  double loss = 0;        // mean label-smoothed loss per target token (global batch)
  double accuracy = 0;    // teacher-forced argmax accuracy
  double lr = 0;
  double grad_norm = 0;   // before clipping
  int64_t target_tokens = 0, source_tokens = 0;
  double seconds = 0;
};

struct EvalStats {
  double loss = 0;        // mean label-smoothed loss per target token
  double accuracy = 0;    // teacher-forced accuracy
  int64_t tokens = 0;
};

class Trainer {
 public:
  // Parameters, gradients, Adam moments and activations live on `device` (the host, or this
  // rank's GPU from parallel::select_compute_device).
  Trainer(const TrainOptions& options, parallel::ProcessGrid& grid, DType dtype = DType::f32,
          Device device = Device::cpu);

  StepStats train_step(const std::vector<model::TokenPair>& global_batch);
  // Loss over `pairs` (split across data-parallel ranks, summed), without dropout.
  EvalStats evaluate(const std::vector<model::TokenPair>& pairs, int64_t batch_sentences);
  // Fraction of target positions (reference length, eos included) that greedy decoding gets right.
  double greedy_token_accuracy(const std::vector<model::TokenPair>& pairs, int64_t batch_sentences);

  model::ParameterStore& store() { return store_; }
  model::Transformer& model() { return *model_; }
  Adam& optimizer() { return *adam_; }
  const parallel::ProcessGrid& grid() const { return grid_; }
  // The data-parallel gradient buckets (null with one replica).
  const parallel::GradientBuckets* buckets() const { return buckets_.get(); }

 private:
  TrainOptions options_;
  parallel::ProcessGrid& grid_;
  model::ParameterStore store_;
  std::unique_ptr<model::Transformer> model_;
  std::unique_ptr<Adam> adam_;
  std::unique_ptr<parallel::GradientBuckets> buckets_;

  // Names the first parameter (in store order) whose gradient on this rank holds inf or NaN.
  std::string first_non_finite_grad() const;
};

// The slice [begin, end) of n items that rank `rank` of `parts` owns: contiguous and balanced.
std::pair<size_t, size_t> slice_of(size_t n, int parts, int rank);

}  // namespace tessera::train
