#include "data/token_batcher.h"

#include <algorithm>
#include <numeric>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/philox.h"

namespace tessera::data {
namespace {

// Counter word c2 separates the two data-order streams: the tie-break hash (fixed for the run)
// and the per-epoch batch shuffle.
constexpr uint32_t kTieBreakStream = 0, kShuffleStream = 1;

// A 64-bit draw for item `i` of one stream.
uint64_t draw64(PhiloxKey key, uint64_t i, uint32_t stream) {
  const PhiloxBlock b = philox4x32(
      {static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), stream, static_cast<uint32_t>(RngPurpose::data_order)},
      key);
  return (static_cast<uint64_t>(b.x[0]) << 32) | b.x[1];
}

// Indices where `order` is cut: batch k is order[cuts[k], cuts[k + 1]).
std::vector<std::size_t> cut_points(const SentenceLengths& lengths, std::span<const int64_t> order,
                                    int64_t max_tokens, int64_t max_sentences) {
  std::vector<std::size_t> cuts{0};
  int64_t longest_src = 0, longest_tgt = 0, count = 0;
  for (std::size_t k = 0; k < order.size(); ++k) {
    const int64_t s = lengths.src[order[k]], t = lengths.tgt[order[k]];
    const int64_t src = std::max(longest_src, s), tgt = std::max(longest_tgt, t);
    const bool over_budget = (count + 1) * (src + tgt) > max_tokens;
    const bool over_count = max_sentences > 0 && count + 1 > max_sentences;
    if (count > 0 && (over_budget || over_count)) {
      cuts.push_back(k);
      longest_src = s, longest_tgt = t, count = 1;
    } else {
      longest_src = src, longest_tgt = tgt, ++count;
    }
  }
  if (count > 0) cuts.push_back(order.size());
  return cuts;
}

}  // namespace

SentenceLengths SentenceLengths::of(const ParallelDataset& data) {
  SentenceLengths lengths;
  lengths.src.resize(data.size());
  lengths.tgt.resize(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    lengths.src[i] = static_cast<int32_t>(data.source.length(i) + 1);  // + eos
    lengths.tgt[i] = static_cast<int32_t>(data.target.length(i) + 1);  // + bos (decoder input) or eos (output)
  }
  return lengths;
}

int64_t padded_tokens(const SentenceLengths& lengths, std::span<const int64_t> batch) {
  int64_t src = 0, tgt = 0;
  for (const int64_t i : batch) {
    src = std::max<int64_t>(src, lengths.src[i]);
    tgt = std::max<int64_t>(tgt, lengths.tgt[i]);
  }
  return static_cast<int64_t>(batch.size()) * (src + tgt);
}

std::vector<std::vector<int64_t>> cut_batches(const SentenceLengths& lengths, std::span<const int64_t> order,
                                              int64_t max_tokens, int64_t max_sentences) {
  const std::vector<std::size_t> cuts = cut_points(lengths, order, max_tokens, max_sentences);
  std::vector<std::vector<int64_t>> batches;
  for (std::size_t k = 0; k + 1 < cuts.size(); ++k)
    batches.emplace_back(order.begin() + cuts[k], order.begin() + cuts[k + 1]);
  return batches;
}

double BatchStats::padding_rate() const {
  return computed_tokens > 0 ? static_cast<double>(computed_tokens - real_tokens) / computed_tokens : 0.0;
}

double BatchStats::mean_sentences() const {
  return batches > 0 ? static_cast<double>(sentences) / batches : 0.0;
}

std::string BatchStats::summary() const {
  std::ostringstream os;
  os << batches << " batches/epoch, " << sentences << " sentences (mean " << mean_sentences() << "/batch), padding "
     << 100 * padding_rate() << "%, skipped " << skipped_too_long << " too long + " << skipped_undersized
     << " in undersized batches";
  return os.str();
}

BatchStats measure_batches(const SentenceLengths& lengths, const std::vector<std::vector<int64_t>>& batches) {
  BatchStats stats;
  stats.batches = static_cast<int64_t>(batches.size());
  for (const auto& batch : batches) {
    stats.sentences += static_cast<int64_t>(batch.size());
    stats.computed_tokens += padded_tokens(lengths, batch);
    for (const int64_t i : batch) stats.real_tokens += lengths.src[i] + lengths.tgt[i];
  }
  return stats;
}

TokenBatcher::TokenBatcher(SentenceLengths lengths, const TokenBatcherOptions& options)
    : lengths_(std::move(lengths)), options_(options) {
  TESSERA_CHECK(lengths_.src.size() == lengths_.tgt.size(), "token batcher: ", lengths_.src.size(),
                " source lengths but ", lengths_.tgt.size(), " target lengths");
  TESSERA_CHECK(options_.max_tokens > 0, "--max-tokens must be positive, got ", options_.max_tokens);
  TESSERA_CHECK(options_.max_len >= 0, "--max-len must be >= 0, got ", options_.max_len);
  TESSERA_CHECK(options_.min_sentences >= 1, "token batcher: min_sentences must be >= 1, got ",
                options_.min_sentences);

  // Keep the sentences that fit: each side within max_len (ids, so length - 1), and min_sentences
  // copies within the budget.
  std::vector<int64_t> kept;
  int64_t too_long = 0;
  for (std::size_t i = 0; i < lengths_.size(); ++i) {
    const int64_t s = lengths_.src[i], t = lengths_.tgt[i];
    const bool over_len = options_.max_len > 0 && (s - 1 > options_.max_len || t - 1 > options_.max_len);
    const bool over_budget = options_.min_sentences * (s + t) > options_.max_tokens;
    if (over_len || over_budget)
      ++too_long;
    else
      kept.push_back(static_cast<int64_t>(i));
  }

  // Length bucketing: sort by (src, tgt), equal lengths in a seeded random order (the index makes
  // the order total, so every standard library sorts alike).
  const PhiloxKey key = philox_key(options_.seed, 0);
  std::vector<uint64_t> tie_break(lengths_.size());
  for (const int64_t i : kept) tie_break[i] = draw64(key, static_cast<uint64_t>(i), kTieBreakStream);
  std::sort(kept.begin(), kept.end(), [&](int64_t a, int64_t b) {
    return std::tie(lengths_.src[a], lengths_.tgt[a], tie_break[a], a) <
           std::tie(lengths_.src[b], lengths_.tgt[b], tie_break[b], b);
  });

  int64_t undersized = 0;
  for (auto& batch : cut_batches(lengths_, kept, options_.max_tokens)) {
    if (static_cast<int64_t>(batch.size()) < options_.min_sentences)
      undersized += static_cast<int64_t>(batch.size());
    else
      batches_.push_back(std::move(batch));
  }
  stats_ = measure_batches(lengths_, batches_);
  stats_.skipped_too_long = too_long;
  stats_.skipped_undersized = undersized;
}

std::vector<int64_t> TokenBatcher::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(batches_.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  const PhiloxKey key = philox_key(options_.seed, static_cast<uint32_t>(epoch));
  // Fisher-Yates: swap position i with a uniform j in [0, i] (64-bit multiply-shift, bias < 2^-32).
  for (std::size_t i = order.size(); i-- > 1;) {
    const unsigned __int128 scaled = static_cast<unsigned __int128>(draw64(key, i, kShuffleStream)) * (i + 1);
    std::swap(order[i], order[static_cast<std::size_t>(scaled >> 64)]);
  }
  return order;
}

void to_json(nlohmann::json& j, const SamplerState& state) {
  j = nlohmann::json{{"seed", state.seed}, {"epoch", state.epoch}, {"cursor", state.cursor}};
}

void from_json(const nlohmann::json& j, SamplerState& state) {
  j.at("seed").get_to(state.seed);
  j.at("epoch").get_to(state.epoch);
  j.at("cursor").get_to(state.cursor);
}

std::string to_json_string(const SamplerState& state) { return nlohmann::json(state).dump(); }

SamplerState sampler_state_from_json(const std::string& text) {
  try {
    return nlohmann::json::parse(text).get<SamplerState>();
  } catch (const nlohmann::json::exception& e) {
    TESSERA_FAIL("sampler state: cannot read '", text, "': ", e.what());
  }
}

std::vector<model::TokenPair> read_pairs(const ParallelDataset& data, std::span<const int64_t> indices) {
  std::vector<model::TokenPair> pairs(indices.size());
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const auto src = data.source[static_cast<std::size_t>(indices[k])];
    const auto tgt = data.target[static_cast<std::size_t>(indices[k])];
    pairs[k].src.assign(src.begin(), src.end());
    pairs[k].tgt.assign(tgt.begin(), tgt.end());
  }
  return pairs;
}

Sampler::Sampler(const ParallelDataset& data, const TokenBatcherOptions& options)
    : data_(data), batcher_(SentenceLengths::of(data), options) {
  TESSERA_CHECK(batcher_.batches_per_epoch() > 0, "sampler: no batch of ", options.min_sentences,
                "+ sentences fits --max-tokens ", options.max_tokens, " in ", data.size(), " sentences (",
                batcher_.stats().summary(), ")");
}

GlobalBatch Sampler::next_batch() {
  if (order_epoch_ != epoch_) {
    order_ = batcher_.epoch_order(epoch_);
    order_epoch_ = epoch_;
  }
  GlobalBatch batch;
  batch.epoch = epoch_;
  batch.indices = batcher_.batches()[static_cast<std::size_t>(order_[static_cast<std::size_t>(cursor_)])];
  batch.pairs = read_pairs(data_, batch.indices);
  // Advance; after an epoch's last batch the state already names the next epoch.
  if (++cursor_ == batcher_.batches_per_epoch()) {
    ++epoch_;
    cursor_ = 0;
  }
  return batch;
}

void Sampler::restore(const SamplerState& state) {
  TESSERA_CHECK(state.seed == batcher_.options().seed, "sampler state was saved with seed ", state.seed,
                " but this run uses --seed ", batcher_.options().seed);
  TESSERA_CHECK(state.epoch >= 0 && state.cursor >= 0 && state.cursor < batcher_.batches_per_epoch(),
                "sampler state epoch ", state.epoch, " cursor ", state.cursor, " does not fit ",
                batcher_.batches_per_epoch(), " batches per epoch (was the data or --max-tokens changed?)");
  epoch_ = state.epoch;
  cursor_ = state.cursor;
}

std::vector<std::pair<std::size_t, std::size_t>> evaluation_batches(const SentenceLengths& lengths,
                                                                    int64_t max_sentences, int64_t max_tokens) {
  TESSERA_CHECK(max_tokens > 0, "evaluation batches: max_tokens must be positive, got ", max_tokens);
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  const std::vector<std::size_t> cuts = cut_points(lengths, order, max_tokens, max_sentences);
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  for (std::size_t k = 0; k + 1 < cuts.size(); ++k) ranges.emplace_back(cuts[k], cuts[k + 1]);
  return ranges;
}

}  // namespace tessera::data
