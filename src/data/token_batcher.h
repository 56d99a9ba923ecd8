// Batching by token count with length bucketing, and the sampler that walks the batches epoch
// after epoch in an order drawn from one global seed.
//
// The plan is made once: sentences are sorted by (source length, target length), ties broken by
// a seeded hash, and the sorted order is cut into consecutive batches under the token budget, so
// the sentences of a batch have nearly equal lengths and carry little padding. Each epoch then
// shuffles the ORDER of those batches with a Philox stream keyed by (seed, epoch). Nothing here
// knows about ranks: every rank builds the same global batch, and the trainer cuts it into
// data-parallel slices (train::slice_of), so the data order does not depend on dp.
//
// The token budget counts what is computed, padding included: a batch of B sentences costs
// B * (longest source + longest target), lengths counting eos (source) and bos/eos (target), so
// the budget bounds activation memory. The paper's "about 25k source + 25k target tokens" is
// about --max-tokens 50000 in these units (a few percent less real text: what bucketing still pads).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/indexed_dataset.h"
#include "model/batch.h"

namespace tessera::data {

// Per-sentence lengths as the model sees them: src = ids + eos, tgt = ids + bos (or eos).
struct SentenceLengths {
  std::vector<int32_t> src, tgt;

  std::size_t size() const { return src.size(); }
  // Lengths of every pair of `data` (index length + 1), read from the index without touching tokens.
  static SentenceLengths of(const ParallelDataset& data);
};

// Padded cost of a batch: size * (longest source + longest target).
int64_t padded_tokens(const SentenceLengths& lengths, std::span<const int64_t> batch);

// Cuts `order` into consecutive batches, each as long as it can be while its padded cost stays
// within `max_tokens` and (when max_sentences > 0) it holds at most `max_sentences` sentences.
// A sentence over the budget on its own gets a batch of its own.
std::vector<std::vector<int64_t>> cut_batches(const SentenceLengths& lengths, std::span<const int64_t> order,
                                              int64_t max_tokens, int64_t max_sentences = 0);

// What a set of batches costs: real tokens against computed (padded) tokens.
struct BatchStats {
  int64_t batches = 0;
  int64_t sentences = 0;        // in the batches
  int64_t real_tokens = 0;      // sum of src + tgt lengths
  int64_t computed_tokens = 0;  // sum of padded_tokens
  int64_t skipped_too_long = 0;     // over max_len, or over the budget for min_sentences copies
  int64_t skipped_undersized = 0;   // in batches dropped for holding fewer than min_sentences

  // Fraction of computed tokens that are padding.
  double padding_rate() const;
  double mean_sentences() const;
  std::string summary() const;  // one line for the training log
};

BatchStats measure_batches(const SentenceLengths& lengths, const std::vector<std::vector<int64_t>>& batches);

struct TokenBatcherOptions {
  int64_t max_tokens = 4096;   // padded tokens per global batch (see the top of this file)
  int64_t max_len = 0;         // longest source or target in ids, without eos/bos; 0: no limit
  // Fewest sentences per batch: at least dp * accumulate, so every rank's every micro-batch gets
  // one. It shapes the plan (which sentences and batches are dropped), so runs that must see the
  // same data on different layouts pass the same value, e.g. the largest dp * accumulate of them.
  int64_t min_sentences = 1;
  uint64_t seed = 1;
};

// The fixed, length-bucketed batches of one dataset and the per-epoch order in which to visit them.
//
// Sentences are skipped (and counted) when either side is longer than max_len, or when even
// min_sentences copies of the pair would not fit in the budget. A batch that still ends up with
// fewer than min_sentences sentences (possible only at the long end of the sorted order, e.g. the
// last, leftover batch) is DROPPED and its sentences counted as skipped_undersized: merging it
// into a neighbour would break the token budget.
class TokenBatcher {
 public:
  TokenBatcher(SentenceLengths lengths, const TokenBatcherOptions& options);

  const TokenBatcherOptions& options() const { return options_; }
  const SentenceLengths& lengths() const { return lengths_; }
  // Batches in length order; each holds sentence indices sorted by (src, tgt) length, so the
  // contiguous slices cut from it for data-parallel ranks and micro-batches stay bucketed too.
  const std::vector<std::vector<int64_t>>& batches() const { return batches_; }
  int64_t batches_per_epoch() const { return static_cast<int64_t>(batches_.size()); }
  const BatchStats& stats() const { return stats_; }

  // The permutation of batch ids visited in `epoch`: a Fisher-Yates shuffle driven by
  // philox4x32 under philox_key(seed, epoch), purpose data_order.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  SentenceLengths lengths_;
  TokenBatcherOptions options_;
  std::vector<std::vector<int64_t>> batches_;
  BatchStats stats_;
};

// Where a sampler stands: the next batch is epoch_order(epoch)[cursor]. Epochs count from 0.
struct SamplerState {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t cursor = 0;

  bool operator==(const SamplerState&) const = default;
};

void to_json(nlohmann::json& j, const SamplerState& state);
void from_json(const nlohmann::json& j, SamplerState& state);
std::string to_json_string(const SamplerState& state);            // {"seed":..,"epoch":..,"cursor":..}
SamplerState sampler_state_from_json(const std::string& text);  // throws tessera::Error on bad input

// One global batch: the pairs (ids without bos/eos, as Trainer::train_step takes them) and the
// dataset indices they came from.
struct GlobalBatch {
  std::vector<model::TokenPair> pairs;
  std::vector<int64_t> indices;
  int64_t epoch = 0;  // the epoch this batch belongs to
};

// Reads the pairs at `indices` out of the memory-mapped dataset.
std::vector<model::TokenPair> read_pairs(const ParallelDataset& data, std::span<const int64_t> indices);

// Walks a TokenBatcher's batches epoch after epoch. Its whole position is a SamplerState, so a
// checkpoint that saves state() and a later restore() continue with exactly the same batches.
class Sampler {
 public:
  // `data` must outlive the sampler.
  Sampler(const ParallelDataset& data, const TokenBatcherOptions& options);

  GlobalBatch next_batch();
  SamplerState state() const { return {batcher_.options().seed, epoch_, cursor_}; }
  // Throws tessera::Error when the state was saved under another seed or points past the epoch.
  void restore(const SamplerState& state);

  const TokenBatcher& batcher() const { return batcher_; }

 private:
  const ParallelDataset& data_;
  TokenBatcher batcher_;
  int64_t epoch_ = 0, cursor_ = 0;
  std::vector<int64_t> order_;  // epoch_order(order_epoch_), cached
  int64_t order_epoch_ = -1;
};

// Evaluation batches: `data` cut in order (no shuffle, nothing skipped) into ranges [begin, end)
// of at most max_sentences sentences (0: no cap) and, where a sentence allows, at most
// max_tokens padded tokens.
std::vector<std::pair<std::size_t, std::size_t>> evaluation_batches(const SentenceLengths& lengths,
                                                                    int64_t max_sentences, int64_t max_tokens);

}  // namespace tessera::data
