// A small encoder-decoder trained on one process on the synthetic reversal task (vocabulary 16,
// d_model 32, 2 + 2 layers, no dropout, batches of 32 sentences of 3 to 8 tokens), for tests that
// need a model that has learned something: decoding against greedy, int8 against f32.
#pragma once

#include <cstdint>
#include <memory>

#include "data/synthetic_task.h"
#include "parallel/process_grid.h"
#include "train/trainer.h"

namespace tessera::testing {

struct TrainedReversalModel {
  train::TrainOptions options;
  data::SyntheticTask task;
  parallel::ProcessGrid grid = parallel::ProcessGrid::single();
  std::unique_ptr<train::Trainer> trainer;

  TrainedReversalModel(uint64_t seed, DType dtype, int64_t steps) {
    options.model.vocab_size = 16;
    options.model.d_model = 32;
    options.model.d_ff = 64;
    options.model.heads = 4;
    options.model.encoder_layers = 2;
    options.model.decoder_layers = 2;
    options.model.dropout = 0.0f;
    options.model.attention_dropout = 0.0f;
    options.warmup = 100;
    options.batch_sentences = 32;
    options.seed = seed;
    trainer = std::make_unique<train::Trainer>(options, grid, dtype);
    task.vocab_size = options.model.vocab_size;
    task.min_len = 3;
    task.max_len = 8;
    task.seed = seed;
    for (int64_t step = 0; step < steps; ++step)
      trainer->train_step(task.pairs(data::kTrainSplit, step * options.batch_sentences, options.batch_sentences));
  }
};

}  // namespace tessera::testing
