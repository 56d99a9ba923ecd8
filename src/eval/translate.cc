#include "eval/translate.h"

#include <algorithm>

#include "eval/beam_search.h"
#include "train/trainer.h"

namespace tessera::eval {
namespace {

// Concatenates every dp rank's token sequences in rank order (sizes first, then padded payloads).
std::vector<std::vector<int32_t>> gather_over_dp(const std::vector<std::vector<int32_t>>& mine,
                                                 parallel::Communicator& dp) {
  if (dp.size() == 1) return mine;
  // Layout per rank: [count, len_1 .. len_count, tokens...], padded to the longest rank's length.
  std::vector<int32_t> packed = {static_cast<int32_t>(mine.size())};
  for (const auto& s : mine) packed.push_back(static_cast<int32_t>(s.size()));
  for (const auto& s : mine) packed.insert(packed.end(), s.begin(), s.end());
  int32_t length = static_cast<int32_t>(packed.size());
  dp.all_reduce(&length, 1, DType::i32, parallel::ReduceOp::max);
  packed.resize(length, 0);
  std::vector<int32_t> all(static_cast<size_t>(length) * dp.size());
  dp.all_gather(packed.data(), all.data(), packed.size(), DType::i32);
  std::vector<std::vector<int32_t>> out;
  for (int r = 0; r < dp.size(); ++r) {
    const int32_t* p = all.data() + static_cast<size_t>(r) * length;
    const int32_t count = p[0];
    const int32_t* tokens = p + 1 + count;
    for (int32_t i = 0; i < count; ++i) {
      out.emplace_back(tokens, tokens + p[1 + i]);
      tokens += p[1 + i];
    }
  }
  return out;
}

}  // namespace

std::vector<std::vector<int32_t>> translate_ids(model::Transformer& model, const parallel::ProcessGrid& grid,
                                                const std::vector<std::vector<int32_t>>& sources,
                                                const DecodeOptions& options) {
  const auto& cfg = model.config();
  const auto [begin, end] = train::slice_of(sources.size(), grid.dp_size(), grid.dp_rank());
  // Decode in order of length so batches carry little padding, then restore the input order.
  std::vector<size_t> order(end - begin);
  for (size_t i = 0; i < order.size(); ++i) order[i] = begin + i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sources[a].size() < sources[b].size(); });
  std::vector<std::vector<int32_t>> mine(order.size());
  for (size_t b = 0; b < order.size(); b += options.batch_sentences) {
    const size_t e = std::min(order.size(), b + static_cast<size_t>(options.batch_sentences));
    std::vector<model::TokenPair> pairs;
    int64_t longest = 0;
    for (size_t i = b; i < e; ++i) {
      pairs.push_back({sources[order[i]], {}});
      longest = std::max<int64_t>(longest, sources[order[i]].size());
    }
    const model::Batch batch = model::Batch::from_pairs(pairs, 0, pairs.size(), 0, cfg.pad_id, cfg.bos_id, cfg.eos_id);
    const auto hyps =
        options.beam > 1
            ? beam_search(model, batch.src, batch.src_lengths,
                          BeamOptions{options.beam, options.length_penalty, 1.0, options.max_len_extra})
            : model.greedy_decode(batch.src, batch.src_lengths, longest + options.max_len_extra);
    for (size_t i = b; i < e; ++i) mine[order[i] - begin] = hyps[i - b];
  }
  return gather_over_dp(mine, grid.dp());
}

std::vector<std::string> translate_text(model::Transformer& model, const parallel::ProcessGrid& grid,
                                        const data::SentencePieceModel& spm, const std::vector<std::string>& sentences,
                                        const DecodeOptions& options) {
  std::vector<std::vector<int32_t>> sources;
  sources.reserve(sentences.size());
  for (const auto& s : sentences) sources.push_back(spm.encode(s));
  const auto ids = translate_ids(model, grid, sources, options);
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const auto& t : ids) out.push_back(spm.decode(t));
  return out;
}

}  // namespace tessera::eval
