// Scoring: how probable a trained model finds given translations, teacher-forced, with the loss
// code of training (parallel::vocab_parallel_cross_entropy) and no dropout.
//
// A pair is scored as training sees it: the encoder reads x1..xm eos, the decoder reads
// bos y1..yn and predicts y1..yn eos, so a target of n pieces has n + 1 target tokens. For one
// target token y with logits z over the whole vocabulary (V entries) and logZ = log sum_j exp(z_j):
//   plain cross-entropy    -log p(y) = logZ - z_y
//   label-smoothed (eps)   (1 - eps) (logZ - z_y) + eps (logZ - mean_j z_j)   (the training loss)
// Per-token losses come from the kernels in the model's dtype and are summed in double.
// Data-parallel ranks split the pairs and all-reduce their sums; the ranks of a tensor-parallel
// group score the same batches on their vocabulary slices. The result is the same in every
// (tp, dp) layout up to float rounding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/sentencepiece_model.h"
#include "model/batch.h"
#include "model/transformer.h"
#include "parallel/process_grid.h"

namespace tessera::eval {

struct ScoreOptions {
  int64_t max_tokens = 4096;     // padded tokens per batch: sentences * (longest source + longest target)
  int64_t batch_sentences = 64;  // sentences per batch
};

struct Score {
  int64_t sentences = 0;
  int64_t target_tokens = 0;     // pieces + eos of every target
  double label_smoothing = 0;    // the model's eps, from its training configuration
  double smoothed_sum = 0;       // sum over target tokens of the label-smoothed loss
  double nll_sum = 0;            // sum over target tokens of -log p(token), natural log

  double label_smoothed_ce() const { return smoothed_sum / static_cast<double>(target_tokens); }
  double ce() const { return nll_sum / static_cast<double>(target_tokens); }
  double logprob() const { return -nll_sum; }
};

// Scores pairs of token ids (pieces only, without bos/eos). Every rank of `grid` passes the same
// pairs and gets the same Score.
Score score_pairs(model::Transformer& model, const parallel::ProcessGrid& grid,
                  const std::vector<model::TokenPair>& pairs, const ScoreOptions& options);

// Scores pair i = (sources[i], targets[i]) of raw sentences, each encoded with `spm` as
// tessera-prep encodes training text.
Score score_text(model::Transformer& model, const parallel::ProcessGrid& grid, const data::SentencePieceModel& spm,
                 const std::vector<std::string>& sources, const std::vector<std::string>& targets,
                 const ScoreOptions& options);

// The machine-readable line, the measured numbers at 17 significant digits (they read back
// exactly) and eps as configured (0.1):
//   sentences=N target_tokens=T label_smoothing=E label_smoothed_ce=X ce=Y logprob=Z
std::string score_line(const Score& score);
// The same for a reader: per-token losses, perplexity and the total log-probability.
std::string score_summary(const Score& score);

}  // namespace tessera::eval
