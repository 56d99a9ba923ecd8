// Built-in synthetic tasks for smoke runs and tests: copy or reverse a random token sequence.
// Sentence i of a split is a pure function of (seed, split, i) through Philox, so every rank and
// every layout sees the same data without sharing it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/batch.h"

namespace tessera::data {

struct SyntheticTask {
  enum class Kind { copy, reverse };
  Kind kind = Kind::reverse;
  int64_t vocab_size = 32;  // tokens are drawn from [4, vocab_size): 0-3 are pad/unk/bos/eos
  int64_t min_len = 4, max_len = 12;
  uint64_t seed = 1;

  // "copy" or "reverse"; throws naming --task otherwise.
  static Kind parse_kind(const std::string& name);

  model::TokenPair pair(uint32_t split, int64_t index) const;
  std::vector<model::TokenPair> pairs(uint32_t split, int64_t first, int64_t count) const;
};

inline constexpr uint32_t kTrainSplit = 0, kHeldOutSplit = 1;

}  // namespace tessera::data
