#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "kernels/ops.h"
#include "train/schedule.h"

namespace tessera::train {

std::pair<size_t, size_t> slice_of(size_t n, int parts, int rank) {
  return {n * rank / parts, n * (rank + 1) / parts};
}

Trainer::Trainer(const TrainOptions& options, parallel::ProcessGrid& grid, DType dtype, Device device)
    : options_(options), grid_(grid) {
  options_.validate();
  TESSERA_CHECK(grid.tp_size() == options.tensor_parallel && grid.dp_size() == options.data_parallel,
                "process grid is ", grid.tp_size(), "x", grid.dp_size(), " but --tensor-parallel ",
                options.tensor_parallel, " --data-parallel ", options.data_parallel);
  model_ = std::make_unique<model::Transformer>(options.model, store_, grid.tp());
  store_.finalize(dtype, options.seed, device);
  store_.set_precision(options.precision == "bf16" ? kernels::Precision::bf16 : kernels::Precision::fp32);
  const AdamConfig adam{options.adam_beta1, options.adam_beta2, options.adam_eps};
  const bool shard = options.shard_optimizer && grid.dp_size() > 1;  // one replica: nothing to shard
  if (grid.dp_size() > 1) {
    buckets_ = std::make_unique<parallel::GradientBuckets>(
        store_, grid.dp(), options.bucket_mb,
        shard ? parallel::GradientBuckets::Mode::shard : parallel::GradientBuckets::Mode::all_reduce,
        options.grad_reduce == "bf16" ? parallel::GradientBuckets::Wire::bf16 : parallel::GradientBuckets::Wire::native);
    store_.set_grads_ready_hook([this](int first, int last) { buckets_->grads_ready(first, last); });
  }
  adam_ = shard ? std::make_unique<Adam>(store_, adam, *buckets_) : std::make_unique<Adam>(store_, adam);
}

StepStats Trainer::train_step(const std::vector<model::TokenPair>& global_batch) {
  const auto start = std::chrono::steady_clock::now();
  const auto& cfg = options_.model;
  StepStats stats;
  stats.step = adam_->step() + 1;
  for (const auto& p : global_batch) {
    stats.target_tokens += static_cast<int64_t>(p.tgt.size()) + 1;
    stats.source_tokens += static_cast<int64_t>(p.src.size()) + 1;
  }
  const double grad_scale = 1.0 / static_cast<double>(stats.target_tokens);

  model::StepContext ctx;
  ctx.seed = options_.seed;
  ctx.step = static_cast<uint32_t>(stats.step);
  store_.zero_grads();
  const auto [begin, end] = slice_of(global_batch.size(), grid_.dp_size(), grid_.dp_rank());
  TESSERA_CHECK(end - begin >= static_cast<size_t>(options_.accumulate), "data-parallel rank ", grid_.dp_rank(),
                " got ", end - begin, " sentences, fewer than --accumulate ", options_.accumulate);
  double totals[3] = {0, 0, 0};  // loss sum, tokens, correct
  for (int64_t mb = 0; mb < options_.accumulate; ++mb) {
    const auto [mb_begin, mb_end] = slice_of(end - begin, static_cast<int>(options_.accumulate), static_cast<int>(mb));
    const model::Batch batch = model::Batch::from_pairs(global_batch, begin + mb_begin, begin + mb_end,
                                                        static_cast<int64_t>(begin + mb_begin), cfg.pad_id, cfg.bos_id,
                                                        cfg.eos_id);
    const bool last = mb + 1 == options_.accumulate;  // only the last micro-batch reduces
    const model::LossStats ls = model_->forward_backward(batch, ctx, grad_scale, last && buckets_ != nullptr);
    totals[0] += ls.loss_sum;
    totals[1] += static_cast<double>(ls.tokens);
    totals[2] += static_cast<double>(ls.correct);
  }
  if (buckets_) buckets_->finish();
  if (grid_.dp_size() > 1) grid_.dp().all_reduce(totals, 3, DType::f64, parallel::ReduceOp::sum);

  // With ZeRO-1 each rank holds the reduced gradient of its own segments only.
  stats.grad_norm = adam_->sharded() ? global_grad_norm(store_, buckets_->owned(), grid_.tp(), &grid_.dp())
                                     : global_grad_norm(store_, grid_.tp());
  stats.loss = totals[0] / totals[1];
  const double clip = options_.clip_norm > 0 && stats.grad_norm > options_.clip_norm
                          ? options_.clip_norm / stats.grad_norm
                          : 1.0;
  // Stop before a poisoned update reaches the parameters or Adam's moments: on a non-finite loss
  // or norm, or a norm whose square would overflow the store's type (no element of the clipped
  // gradient exceeds the norm, so below sqrt(max) Adam's g^2 stays finite). The norm and the loss
  // are reduced over the whole grid, so every rank stops together.
  const bool finite = std::isfinite(stats.grad_norm) && std::isfinite(stats.loss);
  const double largest = store_.dtype() == DType::f32 ? std::numeric_limits<float>::max()
                                                      : std::numeric_limits<double>::max();
  if (!finite || stats.grad_norm * clip >= std::sqrt(largest))
    TESSERA_FAIL("step ", stats.step, ": loss ", stats.loss, ", gradient norm ", stats.grad_norm, " (",
                 finite ? "its square would overflow Adam's second moment in " + std::string(dtype_name(store_.dtype()))
                        : first_non_finite_grad(),
                 "); the update was not applied. Lower --lr-factor, set --clip-norm or resume from an earlier "
                 "checkpoint");
  stats.lr = noam_learning_rate(stats.step, cfg.d_model, options_.warmup, options_.lr_factor);
  adam_->update(store_, stats.lr, clip);
  if (adam_->sharded()) buckets_->gather_parameters(store_.values());

  stats.accuracy = totals[2] / totals[1];
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

std::string Trainer::first_non_finite_grad() const {
  const std::vector<double> squares = grad_sum_squares(store_);
  for (size_t i = 0; i < store_.size(); ++i) {
    if (!std::isfinite(squares[i]))
      return detail::concat("the first non-finite gradient on world rank ", grid_.world_rank(), " is in ",
                            store_.info(static_cast<int>(i)).name);
  }
  return detail::concat("every gradient on world rank ", grid_.world_rank(),
                        " is finite: the sum of squares overflowed, or another rank's shard holds the bad values");
}

EvalStats Trainer::evaluate(const std::vector<model::TokenPair>& pairs, int64_t batch_sentences) {
  const auto& cfg = options_.model;
  const auto [begin, end] = slice_of(pairs.size(), grid_.dp_size(), grid_.dp_rank());
  double totals[3] = {0, 0, 0};
  for (size_t b = begin; b < end; b += batch_sentences) {
    const size_t e = std::min(end, b + static_cast<size_t>(batch_sentences));
    const model::LossStats ls =
        model_->evaluate(model::Batch::from_pairs(pairs, b, e, static_cast<int64_t>(b), cfg.pad_id, cfg.bos_id, cfg.eos_id));
    totals[0] += ls.loss_sum;
    totals[1] += static_cast<double>(ls.tokens);
    totals[2] += static_cast<double>(ls.correct);
  }
  if (grid_.dp_size() > 1) grid_.dp().all_reduce(totals, 3, DType::f64, parallel::ReduceOp::sum);
  return {totals[0] / std::max(1.0, totals[1]), totals[2] / std::max(1.0, totals[1]), static_cast<int64_t>(totals[1])};
}

double Trainer::greedy_token_accuracy(const std::vector<model::TokenPair>& pairs, int64_t batch_sentences) {
  const auto& cfg = options_.model;
  const auto [begin, end] = slice_of(pairs.size(), grid_.dp_size(), grid_.dp_rank());
  double counts[2] = {0, 0};  // correct, total
  for (size_t b = begin; b < end; b += batch_sentences) {
    const size_t e = std::min(end, b + static_cast<size_t>(batch_sentences));
    const model::Batch batch = model::Batch::from_pairs(pairs, b, e, 0, cfg.pad_id, cfg.bos_id, cfg.eos_id);
    int64_t longest = 0;
    for (size_t i = b; i < e; ++i) longest = std::max<int64_t>(longest, pairs[i].tgt.size());
    const auto hyps = model_->greedy_decode(batch.src, batch.src_lengths, longest + 2);
    for (size_t i = b; i < e; ++i) {
      const auto& ref = pairs[i].tgt;
      const auto& hyp = hyps[i - b];
      // Compare position by position; the eos position counts as right iff the lengths agree.
      for (size_t j = 0; j < ref.size(); ++j) counts[0] += j < hyp.size() && hyp[j] == ref[j];
      counts[0] += hyp.size() == ref.size();
      counts[1] += static_cast<double>(ref.size() + 1);
    }
  }
  if (grid_.dp_size() > 1) grid_.dp().all_reduce(counts, 2, DType::f64, parallel::ReduceOp::sum);
  return counts[0] / std::max(1.0, counts[1]);
}

}  // namespace tessera::train
