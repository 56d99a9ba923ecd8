// Where global batches come from: a synthetic task (copy/reverse) or a corpus prepared by
// tessera-prep. Every rank builds the same source and draws the same global batches; the trainer
// cuts them into data-parallel slices. A source's position is a small JSON state that a
// checkpoint saves and restores exactly.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"
#include "data/synthetic_task.h"
#include "data/token_batcher.h"
#include "model/batch.h"
#include "train/options.h"

namespace tessera::train {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual std::vector<model::TokenPair> next() = 0;
  virtual std::string state() const = 0;
  virtual void restore(const std::string& state) = 0;
  virtual std::string describe() const = 0;
};

class SyntheticBatchSource final : public BatchSource {
 public:
  explicit SyntheticBatchSource(const TrainOptions& options);
  std::vector<model::TokenPair> next() override;
  std::string state() const override;
  void restore(const std::string& state) override;
  std::string describe() const override;
  const data::SyntheticTask& task() const { return task_; }

 private:
  data::SyntheticTask task_;
  int64_t batch_sentences_;
  int64_t next_index_ = 0;
};

class CorpusBatchSource final : public BatchSource {
 public:
  // Reads <data_dir>/train.{src,tgt}; batches of at most --max-tokens padded tokens, each with at
  // least min_sentences sentences.
  CorpusBatchSource(const TrainOptions& options, int64_t min_sentences);
  std::vector<model::TokenPair> next() override;
  std::string state() const override;
  void restore(const std::string& state) override;
  std::string describe() const override;

 private:
  data::ParallelDataset train_;
  data::Sampler sampler_;
};

std::unique_ptr<BatchSource> make_batch_source(const TrainOptions& options, int64_t min_sentences);

// A held-out split of a prepared corpus: token pairs and the raw reference sentences.
struct HeldOutSet {
  std::vector<model::TokenPair> pairs;
  std::vector<std::string> sources, references;
};
// Reads <data_dir>/<split>.{src,tgt} and the raw <split>.de / <split>.en, checking they agree.
HeldOutSet read_held_out(const std::filesystem::path& data_dir, const std::string& split, int64_t vocab_size);

}  // namespace tessera::train
