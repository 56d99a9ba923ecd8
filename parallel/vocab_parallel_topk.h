// The most probable next tokens over a vocabulary split across the tensor-parallel group (for beam
// search), without gathering the full logits.
//
// log p_j = z_j - logZ with logZ = m + log sum_j exp(z_j - m), where j runs over the WHOLE
// vocabulary: each rank reduces its slice's max (all-reduce max) and then its slice's sum of
// exp(z_j - m) (all-reduce sum). For the top k, each rank picks the k best tokens of its slice,
// all ranks gather everyone's candidates, and each keeps the best k of the union: the global top k
// is always inside it. Ties go to the lowest token id, and since every rank merges the same
// gathered candidates, all ranks choose identically. Padded vocabulary columns are never chosen.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "parallel/communicator.h"

namespace tessera::parallel {

struct VocabTopK {
  int64_t k = 0;
  std::vector<double> log_probs;  // [N, k] row-major, best first
  std::vector<int32_t> ids;       // [N, k] global token ids; -1 past the end of a vocabulary smaller than k
};

// logZ of each row of logits_r [N, V/tp] (its first real_cols columns are real tokens).
std::vector<double> vocab_parallel_log_normalizer(const Tensor& logits_r, int64_t real_cols, Communicator& tp);

// The k most probable tokens of each row and their log-probabilities over the whole vocabulary;
// logits_r's slice of the vocabulary starts at token vocab_start.
VocabTopK vocab_parallel_topk_log_probs(const Tensor& logits_r, int64_t real_cols, int64_t vocab_start, int64_t k,
                                        Communicator& tp);

}  // namespace tessera::parallel
