// Layout invariance: for every (tp, dp) whose product is the world size, with dropout and label
// smoothing on and a vocabulary that tp does not divide, one step's loss and every parameter's
// gradient match the single-process run, and 30 steps follow its loss curve. Each rank compares
// the slice of every parameter it holds against the same slice of the single-process gradient,
// so together the ranks check every element of every gathered global gradient.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <vector>

#include "data/synthetic_task.h"
#include "kernels/ops.h"
#include "parallel/process_grid.h"
#include "train/trainer.h"

namespace tessera {
namespace {

train::TrainOptions layout_options(int tp, int dp) {
  train::TrainOptions o;
  o.model.vocab_size = 29;  // padded to 30 at tp=2, 32 at tp=4
  o.model.d_model = 32;
  o.model.d_ff = 48;
  o.model.heads = 4;
  o.model.encoder_layers = 2;
  o.model.decoder_layers = 2;
  o.model.dropout = 0.1f;
  o.model.attention_dropout = 0.1f;
  o.model.label_smoothing = 0.1;
  o.warmup = 10;
  o.batch_sentences = 16;
  o.bucket_mb = 0.01;  // many buckets, so overlap and ordering are exercised
  o.seed = 1234;
  o.tensor_parallel = tp;
  o.data_parallel = dp;
  return o;
}

std::vector<model::TokenPair> batch_for_step(const train::TrainOptions& o, int64_t step) {
  data::SyntheticTask task;
  task.vocab_size = o.model.vocab_size;
  task.min_len = 3;
  task.max_len = 11;
  task.seed = o.seed;
  return task.pairs(data::kTrainSplit, step * o.batch_sentences, o.batch_sentences);
}

// Element i of a local slice -> flat index in a global tensor of `global_shape`.
int64_t global_flat_index(const model::ParamInfo& p, const Shape& global_shape, int64_t i) {
  std::vector<int64_t> idx(p.local_shape.size());
  for (size_t d = idx.size(); d-- > 0;) {
    idx[d] = i % p.local_shape[d];
    i /= p.local_shape[d];
  }
  if (!p.partition.is_replicated()) idx[p.partition.dim] += p.partition.index * p.local_shape[p.partition.dim];
  int64_t flat = 0;
  for (size_t d = 0; d < idx.size(); ++d) {
    if (idx[d] >= global_shape[d]) return -1;  // a padded vocabulary row
    flat = flat * global_shape[d] + idx[d];
  }
  return flat;
}

// Compares one step's loss and every gradient element this rank holds with the reference.
void check_one_step(int tp, int dp, DType dtype, double rtol) {
  SCOPED_TRACE("tp=" + std::to_string(tp) + " dp=" + std::to_string(dp) + " " + std::string(dtype_name(dtype)));
  parallel::ProcessGrid single = parallel::ProcessGrid::single();
  train::Trainer reference(layout_options(1, 1), single, dtype);
  parallel::ProcessGrid grid(tp, dp, 60.0);
  train::Trainer trainer(layout_options(tp, dp), grid, dtype);

  const auto batch = batch_for_step(layout_options(1, 1), 0);
  const train::StepStats want = reference.train_step(batch);
  const train::StepStats got = trainer.train_step(batch);
  EXPECT_NEAR(got.loss, want.loss, rtol * std::abs(want.loss));
  EXPECT_NEAR(got.grad_norm, want.grad_norm, rtol * want.grad_norm);

  const model::ParameterStore& rs = reference.store();
  const model::ParameterStore& ds = trainer.store();
  ASSERT_EQ(rs.size(), ds.size());
  // Tolerance atol + rtol * |ref| with atol = rtol * the model's largest reference gradient, so
  // gradients that are zero in exact arithmetic (key biases: softmax ignores a constant shift)
  // are compared at the model's scale, not at the scale of their rounding noise.
  const Tensor all_ref = rs.grads().to(DType::f64);
  double scale = 0;
  for (int64_t i = 0; i < all_ref.numel(); ++i) scale = std::max(scale, std::abs(all_ref.data<double>()[i]));
  for (size_t id = 0; id < ds.size(); ++id) {
    const model::ParamInfo& p = ds.info(static_cast<int>(id));
    const model::ParamInfo& r = rs.info(static_cast<int>(id));
    ASSERT_EQ(p.name, r.name);
    const Tensor want_grad = rs.grad(static_cast<int>(id)).to(DType::f64);
    const Tensor got_grad = ds.grad(static_cast<int>(id)).to(DType::f64);
    int bad = 0;
    for (int64_t i = 0; i < got_grad.numel() && bad < 3; ++i) {
      const int64_t g = global_flat_index(p, r.global_shape, i);
      const double v = got_grad.data<double>()[i];
      if (g < 0) {  // padded vocabulary rows never receive gradient
        if (v != 0) ++bad, ADD_FAILURE() << p.name << " padded row element " << i << " has gradient " << v;
        continue;
      }
      const double w = want_grad.data<double>()[g];
      if (std::abs(v - w) > rtol * scale + rtol * std::abs(w))
        ++bad, ADD_FAILURE() << p.name << " global element " << g << ": " << v << " vs single-process " << w;
    }
  }
}

// 30 steps follow the single-process loss curve.
void check_loss_curve(int tp, int dp, double rtol) {
  SCOPED_TRACE("tp=" + std::to_string(tp) + " dp=" + std::to_string(dp));
  parallel::ProcessGrid single = parallel::ProcessGrid::single();
  train::Trainer reference(layout_options(1, 1), single);
  parallel::ProcessGrid grid(tp, dp, 60.0);
  train::Trainer trainer(layout_options(tp, dp), grid);
  double max_rel = 0;
  for (int64_t step = 0; step < 30; ++step) {
    const auto batch = batch_for_step(layout_options(1, 1), step);
    const double want = reference.train_step(batch).loss, got = trainer.train_step(batch).loss;
    max_rel = std::max(max_rel, std::abs(got - want) / std::abs(want));
    ASSERT_NEAR(got, want, rtol * std::abs(want)) << "step " << step + 1;
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) std::printf("tp=%d dp=%d: 30-step loss curve max relative difference %.3g\n", tp, dp, max_rel);
}

std::vector<std::pair<int, int>> layouts_for_world() {
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  std::vector<std::pair<int, int>> out;
  for (int tp = 1; tp <= world; ++tp)
    if (world % tp == 0 && 4 % tp == 0) out.push_back({tp, world / tp});
  return out;
}

TEST(Layout, OneStepGradientsMatchSingleProcessInDouble) {
  kernels::set_num_threads(1);
  for (auto [tp, dp] : layouts_for_world()) check_one_step(tp, dp, DType::f64, 1e-9);
}

TEST(Layout, OneStepGradientsMatchSingleProcessInFloat) {
  kernels::set_num_threads(1);
  for (auto [tp, dp] : layouts_for_world()) check_one_step(tp, dp, DType::f32, 1e-5);
}

TEST(Layout, ThirtyStepsFollowTheSingleProcessLossCurve) {
  kernels::set_num_threads(1);
  for (auto [tp, dp] : layouts_for_world()) check_loss_curve(tp, dp, 1e-4);
}

}  // namespace
}  // namespace tessera
