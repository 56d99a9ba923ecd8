#include "model/batch.h"

#include <algorithm>

#include "core/error.h"

namespace tessera::model {
namespace {
int64_t sum_i32(const Tensor& t) {
  int64_t s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += t.data<int32_t>()[i];
  return s;
}
}  // namespace

int64_t Batch::target_tokens() const { return tgt_lengths.defined() ? sum_i32(tgt_lengths) : 0; }
int64_t Batch::source_tokens() const { return src_lengths.defined() ? sum_i32(src_lengths) : 0; }

Batch Batch::to(Device device) const {
  Batch b = *this;
  for (Tensor* t : {&b.src, &b.src_lengths, &b.tgt_in, &b.tgt_out, &b.tgt_lengths})
    if (t->defined()) *t = on_device(*t, device);
  return b;
}

Batch Batch::from_pairs(const std::vector<TokenPair>& pairs, size_t begin, size_t end, int64_t sentence_offset,
                        int32_t pad_id, int32_t bos_id, int32_t eos_id) {
  TESSERA_CHECK(begin < end && end <= pairs.size(), "batch of sentences [", begin, ", ", end, ") out of ",
                pairs.size());
  const int64_t b = static_cast<int64_t>(end - begin);
  int64_t max_src = 1, max_tgt = 1;
  for (size_t i = begin; i < end; ++i) {
    max_src = std::max<int64_t>(max_src, pairs[i].src.size() + 1);
    max_tgt = std::max<int64_t>(max_tgt, pairs[i].tgt.size() + 1);
  }
  Batch batch;
  batch.sentence_offset = sentence_offset;
  batch.src = Tensor::empty({b, max_src}, DType::i32);
  batch.tgt_in = Tensor::empty({b, max_tgt}, DType::i32);
  batch.tgt_out = Tensor::empty({b, max_tgt}, DType::i32);
  batch.src_lengths = Tensor::empty({b}, DType::i32);
  batch.tgt_lengths = Tensor::empty({b}, DType::i32);
  int32_t* src = batch.src.data<int32_t>();
  int32_t* tin = batch.tgt_in.data<int32_t>();
  int32_t* tout = batch.tgt_out.data<int32_t>();
  std::fill(src, src + b * max_src, pad_id);
  std::fill(tin, tin + b * max_tgt, pad_id);
  std::fill(tout, tout + b * max_tgt, pad_id);
  for (int64_t i = 0; i < b; ++i) {
    const TokenPair& p = pairs[begin + i];
    const int64_t ls = static_cast<int64_t>(p.src.size()), lt = static_cast<int64_t>(p.tgt.size());
    std::copy(p.src.begin(), p.src.end(), src + i * max_src);
    src[i * max_src + ls] = eos_id;
    tin[i * max_tgt] = bos_id;
    std::copy(p.tgt.begin(), p.tgt.end(), tin + i * max_tgt + 1);
    std::copy(p.tgt.begin(), p.tgt.end(), tout + i * max_tgt);
    tout[i * max_tgt + lt] = eos_id;
    batch.src_lengths.data<int32_t>()[i] = static_cast<int32_t>(ls + 1);
    batch.tgt_lengths.data<int32_t>()[i] = static_cast<int32_t>(lt + 1);
  }
  return batch;
}

}  // namespace tessera::model
