// Source sentences handed to a decoder a few at a time. The decoder keeps a batch of sentences in
// flight and, as sentences finish, takes new ones into the rows they leave, so its products keep
// their height to the end of the input instead of shrinking with every finished sentence until
// the slowest of a fixed batch is done (continuous batching).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/transformer.h"

namespace tessera::eval {

class SentenceFeed {
 public:
  virtual ~SentenceFeed() = default;
  // Sentences not yet taken.
  virtual int64_t remaining() const = 0;
  // The next min(n, remaining()) sentences, in order, as a padded batch on the host: src [m, S]
  // i32 (each source ends in eos) and src_lengths [m] i32 (eos included).
  virtual void take(int64_t n, Tensor& src, Tensor& src_lengths) = 0;
};

// The rows of an already padded batch, in order.
class BatchFeed : public SentenceFeed {
 public:
  BatchFeed(const Tensor& src, const Tensor& src_lengths);
  int64_t remaining() const override { return src_.dim(0) - next_; }
  void take(int64_t n, Tensor& src, Tensor& src_lengths) override;

 private:
  Tensor src_, src_lengths_;
  int64_t next_ = 0;
};

// Token sequences (without eos) in the order `order` lists them: sources[order[0]] first.
class TokenFeed : public SentenceFeed {
 public:
  TokenFeed(const std::vector<std::vector<int32_t>>& sources, std::vector<size_t> order, int32_t pad_id,
            int32_t bos_id, int32_t eos_id);
  int64_t remaining() const override { return static_cast<int64_t>(order_.size()) - next_; }
  void take(int64_t n, Tensor& src, Tensor& src_lengths) override;

 private:
  const std::vector<std::vector<int32_t>>& sources_;
  std::vector<size_t> order_;
  int32_t pad_id_, bos_id_, eos_id_;
  int64_t next_ = 0;
};

// The refill policy of both decoders: when the batch of `in_flight` sentences is empty, or at
// least a quarter of its batch_sentences places is free, takes sentences from `feed` into the free
// places and encodes them into `state` (Transformer::add_sentences). Returns the source lengths
// [taken] (i32, host; eos included) of the sentences taken, in order; [0] when none.
Tensor refill_batch(model::Transformer& model, model::DecoderState& state, SentenceFeed& feed, int64_t in_flight,
                    int64_t batch_sentences);

}  // namespace tessera::eval
