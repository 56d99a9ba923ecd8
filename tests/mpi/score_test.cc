// Scoring (src/eval/score.h), the numbers behind tessera-translate --score:
//   - on one process, in f64, every pair's label-smoothed loss, cross-entropy and log-probability
//     equal a log-softmax of the model's full logits written out here (bos and eos placed by hand,
//     one sentence at a time), and the batched totals of all pairs equal their sums;
//   - in every (tp, dp) layout of the world size, the score equals the single-process one within
//     atol + rtol |value| (rounding only: tp sums the vocabulary and the row-parallel products in
//     another order, dp sums the sentences in another order), for the initial and trained weights.
// The vocabulary (29) is one that tp does not divide, and the sentence count (13) one that dp does
// not divide, so padded vocabulary rows and uneven data-parallel slices are both exercised.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "data/synthetic_task.h"
#include "eval/score.h"
#include "kernels/ops.h"
#include "parallel/process_grid.h"
#include "sharded_weights.h"
#include "test_seed.h"
#include "train/trainer.h"

namespace tessera {
namespace {

train::TrainOptions score_options(int tp, int dp) {
  train::TrainOptions o;
  o.model.vocab_size = 29;  // padded to 30 at tp=2, 32 at tp=4
  o.model.d_model = 32;
  o.model.d_ff = 48;
  o.model.heads = 4;
  o.model.encoder_layers = 2;
  o.model.decoder_layers = 2;
  o.model.dropout = 0.1f;  // scoring must not apply it
  o.model.label_smoothing = 0.1;
  o.warmup = 20;
  o.batch_sentences = 16;
  o.seed = 2468;
  o.tensor_parallel = tp;
  o.data_parallel = dp;
  return o;
}

// Batches of at most 4 sentences and 40 padded tokens: several batches, with padding.
constexpr eval::ScoreOptions kBatching{40, 4};

// 13 random pairs: sources of 1-9 tokens, targets of 0-9 (an empty target scores eos alone).
std::vector<model::TokenPair> random_pairs(const model::ModelConfig& cfg) {
  std::mt19937_64 gen(::tessera::testing::test_seed());
  std::uniform_int_distribution<int32_t> token(4, static_cast<int32_t>(cfg.vocab_size) - 1);
  std::vector<model::TokenPair> pairs(13);
  for (auto& p : pairs) {
    p.src.resize(std::uniform_int_distribution<size_t>(1, 9)(gen));
    p.tgt.resize(std::uniform_int_distribution<size_t>(0, 9)(gen));
    for (auto& x : p.src) x = token(gen);
    for (auto& y : p.tgt) y = token(gen);
  }
  pairs[4].tgt.clear();
  return pairs;
}

// Sums over target tokens, computed without the cross-entropy kernels.
struct Direct {
  double smoothed = 0, nll = 0;
  int64_t tokens = 0;
};

// One pair's losses from the one-process model's full logits: the encoder reads x1..xm eos, the
// decoder reads bos y1..yn and must predict y1..yn eos. Per position, with logZ = log sum_j
// exp(z_j) over the V real logits: -log p(y) = logZ - z_y, and the smoothed loss is
// (1 - eps) (logZ - z_y) + eps (logZ - mean_j z_j).
Direct direct_losses(model::Transformer& single, const model::TokenPair& pair) {
  const auto& cfg = single.config();
  const int64_t m = static_cast<int64_t>(pair.src.size()) + 1, n = static_cast<int64_t>(pair.tgt.size()) + 1;
  Tensor src = Tensor::empty({1, m}, DType::i32), src_len = Tensor::empty({1}, DType::i32);
  Tensor tgt_in = Tensor::empty({1, n}, DType::i32), tgt_len = Tensor::empty({1}, DType::i32);
  std::vector<int32_t> want(n);  // the token predicted at each decoder position
  for (int64_t i = 0; i < m; ++i) src.data<int32_t>()[i] = i + 1 < m ? pair.src[i] : cfg.eos_id;
  for (int64_t i = 0; i < n; ++i) {
    tgt_in.data<int32_t>()[i] = i == 0 ? cfg.bos_id : pair.tgt[i - 1];
    want[i] = i + 1 < n ? pair.tgt[i] : cfg.eos_id;
  }
  src_len.data<int32_t>()[0] = static_cast<int32_t>(m);
  tgt_len.data<int32_t>()[0] = static_cast<int32_t>(n);
  EXPECT_EQ(single.embedding().real_local_rows(), cfg.vocab_size) << "one process holds the whole vocabulary";
  const Tensor logits = single.teacher_forced_logits(src, src_len, tgt_in, tgt_len).to(DType::f64);
  const double eps = cfg.label_smoothing;
  Direct d;
  for (int64_t i = 0; i < n; ++i) {
    const double* z = logits.data<double>() + i * logits.dim(1);
    const double max = *std::max_element(z, z + cfg.vocab_size);
    double sum_exp = 0, sum_z = 0;
    for (int64_t j = 0; j < cfg.vocab_size; ++j) {
      sum_exp += std::exp(z[j] - max);
      sum_z += z[j];
    }
    const double log_z = max + std::log(sum_exp), nll = log_z - z[want[i]];
    d.nll += nll;
    d.smoothed += (1 - eps) * nll + eps * (log_z - sum_z / static_cast<double>(cfg.vocab_size));
    ++d.tokens;
  }
  return d;
}

void expect_near_scaled(double got, double want, double rtol, const std::string& what) {
  EXPECT_NEAR(got, want, rtol * (1 + std::abs(want))) << what;
}

void expect_same_score(const eval::Score& got, const eval::Score& want, double rtol, const std::string& what) {
  EXPECT_EQ(got.sentences, want.sentences) << what;
  EXPECT_EQ(got.target_tokens, want.target_tokens) << what;
  EXPECT_EQ(got.label_smoothing, want.label_smoothing) << what;
  expect_near_scaled(got.label_smoothed_ce(), want.label_smoothed_ce(), rtol, what + ": label-smoothed CE");
  expect_near_scaled(got.ce(), want.ce(), rtol, what + ": CE");
  expect_near_scaled(got.logprob(), want.logprob(), rtol, what + ": log-probability");
}

// Trains the one-process model a little, so its distributions are no longer near uniform.
void train_a_little(train::Trainer& single, const train::TrainOptions& o) {
  data::SyntheticTask task;
  task.vocab_size = o.model.vocab_size;
  task.min_len = 2;
  task.max_len = 9;
  task.seed = o.seed;
  for (int64_t step = 0; step < 60; ++step)
    single.train_step(task.pairs(data::kTrainSplit, step * o.batch_sentences, o.batch_sentences));
}

std::vector<std::pair<int, int>> layouts_for_world() {
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  std::vector<std::pair<int, int>> out;
  for (int tp = 1; tp <= world; ++tp)
    if (world % tp == 0) out.push_back({tp, world / tp});
  return out;
}

std::string seed_note() { return "seed " + std::to_string(::tessera::testing::test_seed()); }

TEST(Score, MatchesALogSoftmaxOfTheFullLogits) {
  kernels::set_num_threads(1);
  SCOPED_TRACE(seed_note());
  parallel::ProcessGrid grid = parallel::ProcessGrid::single();
  const train::TrainOptions o = score_options(1, 1);
  train::Trainer single(o, grid, DType::f64);
  const auto pairs = random_pairs(o.model);
  for (const bool trained : {false, true}) {
    if (trained) train_a_little(single, o);
    const std::string weights = trained ? "trained weights" : "initial weights";
    Direct total;
    for (size_t s = 0; s < pairs.size(); ++s) {
      const Direct d = direct_losses(single.model(), pairs[s]);
      const eval::Score one = eval::score_pairs(single.model(), grid, {pairs[s]}, kBatching);
      const std::string what = weights + ", sentence " + std::to_string(s);
      EXPECT_EQ(one.sentences, 1) << what;
      EXPECT_EQ(one.target_tokens, d.tokens) << what << ": target pieces + eos";
      expect_near_scaled(one.logprob(), -d.nll, 1e-12, what + ": log-probability");
      expect_near_scaled(one.label_smoothed_ce(), d.smoothed / d.tokens, 1e-12, what + ": label-smoothed CE");
      total.smoothed += d.smoothed;
      total.nll += d.nll;
      total.tokens += d.tokens;
    }
    const eval::Score all = eval::score_pairs(single.model(), grid, pairs, kBatching);
    EXPECT_EQ(all.sentences, static_cast<int64_t>(pairs.size())) << weights;
    EXPECT_EQ(all.target_tokens, total.tokens) << weights;
    EXPECT_EQ(all.label_smoothing, o.model.label_smoothing) << weights;
    expect_near_scaled(all.logprob(), -total.nll, 1e-12, weights + ": batched log-probability");
    expect_near_scaled(all.ce(), total.nll / total.tokens, 1e-12, weights + ": batched CE");
    expect_near_scaled(all.label_smoothed_ce(), total.smoothed / total.tokens, 1e-12,
                       weights + ": batched label-smoothed CE");
    expect_near_scaled(all.ce(), -all.logprob() / all.target_tokens, 1e-15, weights + ": CE = -logprob / tokens");
    // eps = 0.1 is applied: the smoothed loss is not the plain one.
    EXPECT_GT(std::abs(all.label_smoothed_ce() - all.ce()), 1e-3) << weights;
  }
}

// Every layout of the world size against one process, in `dtype`, for the initial weights (equal
// by construction: they are drawn by global coordinates) and trained ones (copied slice by slice).
template <typename T>
void check_layouts(DType dtype, double rtol) {
  kernels::set_num_threads(1);
  SCOPED_TRACE(seed_note());
  parallel::ProcessGrid single_grid = parallel::ProcessGrid::single();
  const train::TrainOptions o1 = score_options(1, 1);
  const auto pairs = random_pairs(o1.model);
  for (auto [tp, dp] : layouts_for_world()) {
    parallel::ProcessGrid grid(tp, dp, 60.0);
    train::Trainer sharded(score_options(tp, dp), grid, dtype);
    train::Trainer reference(o1, single_grid, dtype);
    for (const bool trained : {false, true}) {
      if (trained) {
        train_a_little(reference, o1);
        testing::copy_weights<T>(reference.store(), sharded.store());
      }
      const std::string what = "tp=" + std::to_string(tp) + " dp=" + std::to_string(dp) +
                               (trained ? ", trained weights" : ", initial weights");
      const eval::Score want = eval::score_pairs(reference.model(), single_grid, pairs, kBatching);
      const eval::Score got = eval::score_pairs(sharded.model(), grid, pairs, kBatching);
      expect_same_score(got, want, rtol, what);
      if (grid.world_rank() == 0)
        std::printf("%s: %s | one process: %s\n", what.c_str(), eval::score_line(got).c_str(),
                    eval::score_line(want).c_str());
    }
  }
}

TEST(Score, EveryLayoutMatchesOneProcessInDouble) { check_layouts<double>(DType::f64, 1e-10); }
TEST(Score, EveryLayoutMatchesOneProcessInFloat) { check_layouts<float>(DType::f32, 1e-5); }

}  // namespace
}  // namespace tessera
