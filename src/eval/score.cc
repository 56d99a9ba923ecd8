#include "eval/score.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "core/option_values.h"
#include "data/token_batcher.h"
#include "parallel/vocab_parallel_cross_entropy.h"
#include "train/trainer.h"

namespace tessera::eval {
namespace {

// The summed label-smoothed and plain losses of one batch: one forward, two passes of the
// training loss over the same vocabulary-sharded logits (eps, then 0).
std::pair<double, double> loss_sums(model::Transformer& model, const model::Batch& batch) {
  const auto& cfg = model.config();
  const auto& vocab = model.embedding();
  Tensor logits = model.teacher_forced_logits(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_lengths);
  const Tensor targets = on_device(batch.tgt_out, logits.device()).reshape({batch.tgt_out.numel()});
  double sums[2];
  for (const int k : {0, 1}) {
    const double eps = k == 0 ? cfg.label_smoothing : 0.0;
    sums[k] = parallel::vocab_parallel_cross_entropy(logits, vocab.real_local_rows(), vocab.vocab_start(),
                                                     cfg.vocab_size, targets, eps, cfg.pad_id, 0.0,
                                                     /*with_grad=*/false, model.tensor_parallel())
                  .loss_sum;
  }
  return {sums[0], sums[1]};
}

}  // namespace

Score score_pairs(model::Transformer& model, const parallel::ProcessGrid& grid,
                  const std::vector<model::TokenPair>& pairs, const ScoreOptions& options) {
  TESSERA_CHECK(options.max_tokens > 0 && options.batch_sentences > 0, "scoring: --max-tokens (", options.max_tokens,
                ") and --batch-sentences (", options.batch_sentences, ") must be positive");
  const auto& cfg = model.config();
  // This replica's contiguous share of the pairs, sorted by length and cut under the token budget
  // (as training batches are), so batches carry little padding.
  const auto [begin, end] = train::slice_of(pairs.size(), grid.dp_size(), grid.dp_rank());
  data::SentenceLengths lengths;
  for (const auto& p : pairs) {
    lengths.src.push_back(static_cast<int32_t>(p.src.size() + 1));  // + eos
    lengths.tgt.push_back(static_cast<int32_t>(p.tgt.size() + 1));  // + bos (input) or eos (output)
  }
  std::vector<int64_t> order(end - begin);
  std::iota(order.begin(), order.end(), static_cast<int64_t>(begin));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return std::tie(lengths.src[a], lengths.tgt[a]) < std::tie(lengths.src[b], lengths.tgt[b]);
  });

  double totals[3] = {0, 0, 0};  // label-smoothed sum, plain sum, target tokens
  for (const auto& batch_ids : data::cut_batches(lengths, order, options.max_tokens, options.batch_sentences)) {
    std::vector<model::TokenPair> batch_pairs;
    for (const int64_t i : batch_ids) batch_pairs.push_back(pairs[i]);
    const model::Batch batch =
        model::Batch::from_pairs(batch_pairs, 0, batch_pairs.size(), 0, cfg.pad_id, cfg.bos_id, cfg.eos_id);
    const auto [smoothed, plain] = loss_sums(model, batch);
    totals[0] += smoothed;
    totals[1] += plain;
    totals[2] += static_cast<double>(batch.target_tokens());
  }
  if (grid.dp_size() > 1) grid.dp().all_reduce(totals, 3, DType::f64, parallel::ReduceOp::sum);

  Score score;
  score.sentences = static_cast<int64_t>(pairs.size());
  score.target_tokens = static_cast<int64_t>(totals[2]);
  score.label_smoothing = cfg.label_smoothing;
  score.smoothed_sum = totals[0];
  score.nll_sum = totals[1];
  return score;
}

Score score_text(model::Transformer& model, const parallel::ProcessGrid& grid, const data::SentencePieceModel& spm,
                 const std::vector<std::string>& sources, const std::vector<std::string>& targets,
                 const ScoreOptions& options) {
  TESSERA_CHECK(sources.size() == targets.size(), "scoring: ", sources.size(), " source sentences but ",
                targets.size(), " target sentences");
  std::vector<model::TokenPair> pairs(sources.size());
  for (size_t i = 0; i < pairs.size(); ++i) pairs[i] = {spm.encode(sources[i]), spm.encode(targets[i])};
  return score_pairs(model, grid, pairs, options);
}

std::string score_line(const Score& s) {
  std::ostringstream os;
  os << std::setprecision(17) << "sentences=" << s.sentences << " target_tokens=" << s.target_tokens
     << " label_smoothing=" << exact_text(s.label_smoothing) << " label_smoothed_ce=" << s.label_smoothed_ce()
     << " ce=" << s.ce() << " logprob=" << s.logprob();
  return os.str();
}

std::string score_summary(const Score& s) {
  std::ostringstream os;
  os << "score: " << s.sentences << " sentence pairs, " << s.target_tokens
     << " target tokens (eos included): cross-entropy " << s.ce() << " nats/token (perplexity " << std::exp(s.ce())
     << "), label-smoothed (eps " << s.label_smoothing << ") " << s.label_smoothed_ce() << ", log-probability "
     << s.logprob();
  return os.str();
}

}  // namespace tessera::eval
