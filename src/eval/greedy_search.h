// Greedy decoding of a stream of sentences with a refilled batch: at most batch_sentences decode
// at a time, and as they finish (eos, or max_len_extra tokens past their source's length), the
// batch takes new sentences from the feed (once a quarter of it is free). Per sentence this is
// Transformer::greedy_decode with the bound source pieces + max_len_extra, the result not
// depending on the other sentences of the batch (up to the last bits of products of other heights).
#pragma once

#include <cstdint>
#include <vector>

#include "eval/sentence_feed.h"
#include "model/transformer.h"

namespace tessera::eval {

// The token ids (without bos/eos) of each sentence of `feed`, in the feed's order. Every rank of
// the model's tensor-parallel group must call it with the same inputs.
std::vector<std::vector<int32_t>> greedy_search(model::Transformer& model, SentenceFeed& feed, int64_t max_len_extra,
                                                int64_t batch_sentences);

}  // namespace tessera::eval
