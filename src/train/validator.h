// Held-out evaluation during training: loss and perplexity on the dev set, and greedy BLEU on its
// first --valid-bleu-sentences sentences (greedy token accuracy on the synthetic tasks). World
// rank 0 appends a line per validation to <out-dir>/valid.tsv.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/sentencepiece_model.h"
#include "parallel/process_grid.h"
#include "train/batch_source.h"
#include "train/options.h"
#include "train/run_directory.h"
#include "train/trainer.h"

namespace tessera::train {

struct ValidationResult {
  double loss = 0;         // mean label-smoothed loss per target token
  double quality = 0;      // greedy BLEU (corpus) or greedy token accuracy (synthetic tasks)
  std::string quality_name;  // "bleu" or "greedy_accuracy"
  double seconds = 0;
};

class Validator {
 public:
  Validator(const TrainOptions& o, const parallel::ProcessGrid& grid);

  // Starts <out-dir>/valid.tsv on world rank 0, continuing it when resuming at `resume_step`.
  void open_curve(int64_t resume_step);
  ValidationResult run(Trainer& trainer, int64_t step, double minutes);
  // A few dev sentences with their translations, for the eye.
  void show_examples(Trainer& trainer, size_t count);

 private:
  const TrainOptions& o_;
  const parallel::ProcessGrid& grid_;
  std::unique_ptr<data::SentencePieceModel> spm_;
  HeldOutSet dev_;
  CurveFile tsv_;
};

}  // namespace tessera::train
