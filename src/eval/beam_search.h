// Beam search over the incremental (key/value-cached) decoder, batched over sentences and working
// under tensor parallelism, with the settings of "Attention Is All You Need": beam 4, length
// penalty alpha = 0.6, at most source length + 50 tokens.
//
// Every sentence keeps `beam` live hypotheses, so the decoder runs on sentences * beam rows. At
// each step, every live hypothesis proposes its 2*beam most probable next tokens (log-probabilities
// over the whole, vocabulary-sharded output: see parallel/vocab_parallel_topk.h), and the
// sentence's candidates are ranked by log P(Y), the summed log-probability of their tokens.
// Candidates ending in eos among the best `beam` are finished (as in fairseq); the best `beam`
// others become the live hypotheses, and the key/value caches follow them (rows are gathered).
// Hypotheses are compared by the GNMT score log P(Y) / lp(Y) with lp(Y) = ((5 + |Y|) / 6)^alpha,
// where |Y| counts the generated tokens, eos included; the `beam` best finished ones are kept.
//
// Termination: a sentence stops once its best finished hypothesis scores at least as well as its
// best live one at the live one's current length (the best hypothesis so far is a finished one,
// OpenNMT's "top beam finished"), or when it reaches the maximum length (the live hypotheses then
// finish as they are, without eos). With beam 1 this is exactly greedy decoding. Unlike fairseq's
// "stop at `beam` finished", weak hypotheses that end early cannot end the search while a better
// one is still live; unlike t2t's bound (live log P / lp(maximum length)) it does not keep every
// sentence decoding towards the maximum length, though with alpha > 0 a live hypothesis that
// continues with near-certain tokens could in principle have overtaken a finished one.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "eval/sentence_feed.h"
#include "model/transformer.h"

namespace tessera::eval {

struct BeamOptions {
  int64_t beam = 4;
  double length_penalty = 0.6;  // alpha
  // A hypothesis holds at most max_len_a * (source length) + max_len_b generated tokens, eos
  // included; the source length is its entry in src_lengths (its eos included).
  double max_len_a = 1.0;
  int64_t max_len_b = 50;
};

struct Hypothesis {
  std::vector<int32_t> tokens;  // without bos/eos
  double log_prob = 0;          // sum of the log-probabilities of the generated tokens, eos included
  double score = 0;             // log_prob / lp(|Y|)
};

// lp(Y) = ((5 + length) / 6)^alpha (Wu et al. 2016).
double length_penalty(int64_t length, double alpha);

// For each sentence of `feed`, in the feed's order, its finished hypotheses, best score first (at
// most `beam` of them). At most batch_sentences sentences decode at a time; as they finish, the
// batch is refilled from the feed (once a quarter of it is free, so the new sentences are encoded
// a few at a time). A sentence's hypotheses do not depend on the others in its batch, up to the
// last bits of products of other heights. Every rank of the model's tensor-parallel group must
// call it with the same inputs; all of them return the same hypotheses.
std::vector<std::vector<Hypothesis>> beam_search_nbest(model::Transformer& model, SentenceFeed& feed,
                                                       const BeamOptions& options, int64_t batch_sentences);
// The same for the sentences of src [B, S] (lengths src_lengths [B]), decoded together.
std::vector<std::vector<Hypothesis>> beam_search_nbest(model::Transformer& model, const Tensor& src,
                                                       const Tensor& src_lengths, const BeamOptions& options);

// The tokens of each sentence's best hypothesis (empty where it has none).
std::vector<std::vector<int32_t>> best_tokens(const std::vector<std::vector<Hypothesis>>& nbest);

// The best hypothesis of each sentence: token ids without bos/eos.
std::vector<std::vector<int32_t>> beam_search(model::Transformer& model, const Tensor& src, const Tensor& src_lengths,
                                              const BeamOptions& options);

}  // namespace tessera::eval
