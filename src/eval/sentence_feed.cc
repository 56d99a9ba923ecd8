#include "eval/sentence_feed.h"

#include <algorithm>

#include "core/error.h"
#include "model/batch.h"

namespace tessera::eval {

BatchFeed::BatchFeed(const Tensor& src, const Tensor& src_lengths)
    : src_(on_device(src, Device::cpu)), src_lengths_(on_device(src_lengths, Device::cpu)) {
  TESSERA_CHECK(src_.ndim() == 2 && src_lengths_.ndim() == 1 && src_lengths_.dim(0) == src_.dim(0),
                "BatchFeed: src ", shape_string(src_.shape()), " and src_lengths ", shape_string(src_lengths_.shape()),
                " do not describe one batch");
}

void BatchFeed::take(int64_t n, Tensor& src, Tensor& src_lengths) {
  const int64_t end = next_ + std::clamp<int64_t>(n, 0, remaining());
  src = src_.rows(next_, end);
  src_lengths = src_lengths_.rows(next_, end);
  next_ = end;
}

TokenFeed::TokenFeed(const std::vector<std::vector<int32_t>>& sources, std::vector<size_t> order, int32_t pad_id,
                     int32_t bos_id, int32_t eos_id)
    : sources_(sources), order_(std::move(order)), pad_id_(pad_id), bos_id_(bos_id), eos_id_(eos_id) {}

void TokenFeed::take(int64_t n, Tensor& src, Tensor& src_lengths) {
  const int64_t end = next_ + std::clamp<int64_t>(n, 0, remaining());
  std::vector<model::TokenPair> pairs;
  for (int64_t i = next_; i < end; ++i) pairs.push_back({sources_[order_[i]], {}});
  const model::Batch batch = model::Batch::from_pairs(pairs, 0, pairs.size(), 0, pad_id_, bos_id_, eos_id_);
  src = batch.src;
  src_lengths = batch.src_lengths;
  next_ = end;
}

Tensor refill_batch(model::Transformer& model, model::DecoderState& state, SentenceFeed& feed, int64_t in_flight,
                    int64_t batch_sentences) {
  const int64_t room = batch_sentences - in_flight;
  if (feed.remaining() == 0 || room <= 0 || (in_flight > 0 && 4 * room < batch_sentences))
    return Tensor::empty({0}, DType::i32);
  Tensor src, src_lengths;
  feed.take(room, src, src_lengths);
  model.add_sentences(state, src, src_lengths);
  return src_lengths;
}

}  // namespace tessera::eval
