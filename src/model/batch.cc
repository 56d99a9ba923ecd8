#include "model/batch.h"

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

}  // namespace tessera::model
