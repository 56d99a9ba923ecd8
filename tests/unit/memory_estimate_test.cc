// The memory estimate behind tessera-train's start-up check and `tessera-bench --memory`: each
// part of the breakdown reacts to exactly the options that change it (tp, dp, ZeRO-1, precision,
// tokens), and the total is the sum of the parts. Model sizes are drawn at random per test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "test_seed.h"
#include "train/memory_estimate.h"

namespace tessera {
namespace {

// A random model and corpus layout that the options' validation would accept.
train::TrainOptions random_options(int tp) {
  auto& gen = testing::rng();
  auto draw = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen); };
  train::TrainOptions o;
  o.model.heads = tp * draw(1, 4);
  o.model.d_model = o.model.heads * draw(2, 16);
  o.model.d_ff = tp * draw(4, 64);
  o.model.vocab_size = draw(50, 9000);
  o.model.encoder_layers = draw(1, 4);
  o.model.decoder_layers = draw(1, 4);
  o.model.pre_ln = draw(0, 1) == 1;
  o.task = "corpus";
  o.tensor_parallel = tp;
  o.data_parallel = static_cast<int>(draw(1, 8));
  o.max_len = draw(8, 100);
  o.max_tokens = o.data_parallel * draw(4 * (o.max_len + 1), 8000);  // room for a few of the longest sentences
  return o;
}

// Parameters kept whole on every tensor-parallel rank: the bias after each row-parallel product
// (attention output, FFN W2) and the layer norms (gain and bias).
double replicated_parameters(const model::ModelConfig& m) {
  const double d = double(m.d_model);
  return double(m.encoder_layers) * (2 * d + 2 * 2 * d) + double(m.decoder_layers) * (3 * d + 3 * 2 * d) +
         (m.pre_ln ? 2 * 2 * d : 0);
}

TEST(MemoryEstimate, TotalIsTheSumOfTheParts) {
  for (const int tp : {1, 2, 4}) {
    train::TrainOptions o = random_options(tp);
    o.precision = "bf16";
    o.shard_optimizer = true;
    const train::MemoryEstimate e = train::estimate_rank_memory(o);
    EXPECT_GT(e.parameters, 0);
    EXPECT_GT(e.bf16_operands, 0);
    EXPECT_GT(e.activations, 0);
    EXPECT_DOUBLE_EQ(e.total(), e.parameters + e.gradients + e.moments + e.bf16_operands + e.activations);
  }
}

TEST(MemoryEstimate, TensorParallelDividesTheSplitParameters) {
  train::TrainOptions o = random_options(4);
  const model::ModelConfig& m = o.model;
  // One rank of one: the whole model, as the model's own count has it.
  EXPECT_DOUBLE_EQ(train::rank_parameter_count(m, 1), double(m.parameter_count(1)));
  for (const int tp : {2, 4}) {
    // The vocabulary padded to a multiple of tp; everything but the replicated parameters split.
    const double whole = double(m.parameter_count(tp)), replicated = replicated_parameters(m);
    EXPECT_DOUBLE_EQ(train::rank_parameter_count(m, tp), (whole - replicated) / tp + replicated) << "tp " << tp;
    o.tensor_parallel = tp;
    const train::MemoryEstimate e = train::estimate_rank_memory(o);
    EXPECT_DOUBLE_EQ(e.parameters, 4 * train::rank_parameter_count(m, tp));  // fp32 master copy
    EXPECT_DOUBLE_EQ(e.gradients, e.parameters);
    EXPECT_DOUBLE_EQ(e.moments, 2 * e.parameters);
  }
}

TEST(MemoryEstimate, ZeroOneDividesOnlyTheMomentsByDataParallel) {
  train::TrainOptions o = random_options(2);
  o.data_parallel = 8;
  o.max_tokens = 8 * 4096;
  const train::MemoryEstimate full = train::estimate_rank_memory(o);
  o.shard_optimizer = true;
  const train::MemoryEstimate sharded = train::estimate_rank_memory(o);
  const double params = train::rank_parameter_count(o.model, o.tensor_parallel);
  EXPECT_DOUBLE_EQ(full.moments, 8 * params);
  EXPECT_DOUBLE_EQ(sharded.moments, 8 * std::ceil(params / 8));
  EXPECT_LT(sharded.moments, full.moments / 8 + 8);
  EXPECT_DOUBLE_EQ(sharded.parameters, full.parameters);
  EXPECT_DOUBLE_EQ(sharded.gradients, full.gradients);
  EXPECT_DOUBLE_EQ(sharded.activations, full.activations);
  // With one data-parallel rank there is nothing to shard across.
  o.data_parallel = 1;
  o.max_tokens = 4096;
  EXPECT_DOUBLE_EQ(train::estimate_rank_memory(o).moments, 8 * params);
}

TEST(MemoryEstimate, Bf16AddsOperandCopiesAndKeepsActivations) {
  train::TrainOptions o = random_options(2);
  o.device = "cuda";
  const train::MemoryEstimate fp32 = train::estimate_rank_memory(o);
  EXPECT_EQ(fp32.bf16_operands, 0);
  o.precision = "bf16";
  const train::MemoryEstimate gpu = train::estimate_rank_memory(o);
  // Activations are stored in fp32 at both precisions; the master weights, gradients and moments too.
  EXPECT_DOUBLE_EQ(gpu.activations, fp32.activations);
  EXPECT_DOUBLE_EQ(gpu.parameters, fp32.parameters);
  EXPECT_DOUBLE_EQ(gpu.gradients, fp32.gradients);
  EXPECT_DOUBLE_EQ(gpu.moments, fp32.moments);
  EXPECT_DOUBLE_EQ(gpu.total(), fp32.total() + gpu.bf16_operands);
  // The operands of the largest product, 2 B each on a GPU, a rounded f32 copy (4 B) on the CPU.
  // With a large vocabulary slice and short sentences that is one of the output projection's
  // backward products: dlogits [target tokens, V/tp] with h [target tokens, d] (the embedding's
  // gradient) or with the embedding slice [V/tp, d] (the gradient of h).
  o.model.vocab_size = 64000;
  o.max_len = 10;
  const train::MicroBatchShape b = train::largest_micro_batch(o);
  const double target_tokens = b.sentences * b.target_len, slice = 64000 / 2, d = double(o.model.d_model);
  const double largest = target_tokens * slice + std::max(target_tokens, slice) * d;
  EXPECT_DOUBLE_EQ(train::estimate_rank_memory(o).bf16_operands, 2 * largest);
  o.device = "cpu";
  EXPECT_DOUBLE_EQ(train::estimate_rank_memory(o).bf16_operands, 4 * largest);
}

TEST(MemoryEstimate, ActivationsGrowLinearlyWithTokens) {
  train::TrainOptions o = random_options(2);
  std::vector<double> activations;
  for (const int64_t k : {1, 2, 3, 5}) {
    train::TrainOptions ok = o;
    ok.max_tokens = k * o.max_tokens;
    activations.push_back(train::estimate_rank_memory(ok).activations);
  }
  EXPECT_NEAR(activations[1], 2 * activations[0], 1e-9 * activations[1]);
  EXPECT_NEAR(activations[2], 3 * activations[0], 1e-9 * activations[2]);
  EXPECT_NEAR(activations[3], 5 * activations[0], 1e-9 * activations[3]);
  // What a rank holds depends on its own share: dp ranks with dp times the global budget hold
  // what one rank holds with the budget alone; --accumulate splits it in micro-batches.
  train::TrainOptions wide = o;
  wide.data_parallel = o.data_parallel * 3;
  wide.max_tokens = o.max_tokens * 3;
  EXPECT_NEAR(train::estimate_rank_memory(wide).activations, activations[0], 1e-9 * activations[0]);
  train::TrainOptions accumulated = o;
  accumulated.max_tokens = o.max_tokens * 2;
  accumulated.accumulate = 2;
  EXPECT_NEAR(train::estimate_rank_memory(accumulated).activations, activations[0], 1e-9 * activations[0]);
  // At a fixed number of sentences, longer sentences cost more than linearly (attention probabilities).
  train::TrainOptions synthetic = o;
  synthetic.task = "reverse";
  synthetic.batch_sentences = 8 * o.data_parallel;
  synthetic.max_len = 19;
  const double short_sentences = train::estimate_rank_memory(synthetic).activations;
  synthetic.max_len = 39;
  EXPECT_GT(train::estimate_rank_memory(synthetic).activations, 2 * short_sentences);
}

TEST(MemoryEstimate, TensorParallelDividesTheWidestActivations) {
  // The FFN's hidden units, the heads and the vocabulary are split; layer inputs and norms are not.
  train::TrainOptions o = random_options(4);
  o.tensor_parallel = 1;
  const double one = train::estimate_rank_memory(o).activations;
  o.tensor_parallel = 4;
  const double four = train::estimate_rank_memory(o).activations;
  EXPECT_LT(four, one);
  EXPECT_GT(four, one / 4);
}

}  // namespace
}  // namespace tessera
