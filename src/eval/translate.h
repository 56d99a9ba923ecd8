// Translating a set of sentences with a (possibly sharded) model, and scoring the result with
// BLEU. Data-parallel replicas split the sentences and sum their BLEU statistics; the ranks of a
// tensor-parallel group decode the same sentences together.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/sentencepiece_model.h"
#include "eval/bleu.h"
#include "model/transformer.h"
#include "parallel/process_grid.h"

namespace tessera::eval {

struct DecodeOptions {
  int64_t beam = 1;              // 1: greedy
  double length_penalty = 0.6;   // beam search: ((5 + |Y|) / 6)^alpha
  int64_t max_len_extra = 50;    // hypotheses end by source length + this
  int64_t batch_sentences = 32;  // sentences decoded together
};

// Token ids of each source sentence's translation (without bos/eos), in input order, complete on
// every rank of `grid` (sentences are split over data-parallel ranks and gathered back).
std::vector<std::vector<int32_t>> translate_ids(model::Transformer& model, const parallel::ProcessGrid& grid,
                                                const std::vector<std::vector<int32_t>>& sources,
                                                const DecodeOptions& options);

// Detokenised translations of raw sentences.
std::vector<std::string> translate_text(model::Transformer& model, const parallel::ProcessGrid& grid,
                                        const data::SentencePieceModel& spm, const std::vector<std::string>& sentences,
                                        const DecodeOptions& options);

}  // namespace tessera::eval
