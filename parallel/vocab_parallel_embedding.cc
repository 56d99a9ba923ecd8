#include "parallel/vocab_parallel_embedding.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "parallel/tensor_parallel_linear.h"

namespace tessera::parallel {

int64_t padded_vocab_size(int64_t vocab_size, int tp) { return (vocab_size + tp - 1) / tp * tp; }

VocabParallelEmbedding::VocabParallelEmbedding(model::ParameterStore& store, const std::string& name,
                                               int64_t vocab_size, int64_t d_model, Communicator& tp)
    : store_(store),
      tp_(tp),
      table_(store.add(name, {padded_vocab_size(vocab_size, tp.size()), d_model},
                       model::Partition::split(0, tp.size(), tp.rank()), model::Init::embedding_normal, vocab_size)),
      vocab_size_(vocab_size),
      local_rows_(padded_vocab_size(vocab_size, tp.size()) / tp.size()),
      vocab_start_(local_rows_ * tp.rank()),
      scale_(std::sqrt(static_cast<double>(d_model))) {}

int64_t VocabParallelEmbedding::real_local_rows() const {
  return std::clamp<int64_t>(vocab_size_ - vocab_start_, 0, local_rows_);
}

void VocabParallelEmbedding::lookup(const Tensor& ids, Tensor& out) {
  kernels::embedding_forward(ids, store_.value(table_), vocab_start_, scale_, out);
  all_reduce_sum(tp_, out);
}

void VocabParallelEmbedding::lookup_backward(const Tensor& ids, const Tensor& dout) {
  Tensor grad = store_.grad(table_);
  kernels::embedding_backward(ids, dout, vocab_start_, scale_, grad);
}

void VocabParallelEmbedding::project(const Tensor& h, Tensor& logits_r) {
  if (int8_) {
    kernels::int8_matmul(h, *int8_, Tensor(), logits_r);
    return;
  }
  kernels::matmul(h, false, store_.value(table_), true, logits_r, 1.0, 0.0, store_.precision());
}

void VocabParallelEmbedding::project_backward(const Tensor& h, const Tensor& dlogits_r, Tensor& dh) {
  TESSERA_CHECK(!int8_, "backward through the output projection onto '", store_.info(table_).name,
                "': it is quantised to int8 for decoding (quantize_int8), which has no gradient");
  Tensor grad = store_.grad(table_);
  kernels::matmul(dlogits_r, true, h, false, grad, 1.0, 1.0, store_.precision());
  kernels::matmul(dlogits_r, false, store_.value(table_), false, dh, 1.0, 0.0, store_.precision());
  all_reduce_sum(tp_, dh);
}

const kernels::Int8Weight& VocabParallelEmbedding::quantize_int8() {
  if (!int8_) int8_.emplace(store_.value(table_), kernels::Int8Weight::Layout::out_in, store_.info(table_).name);
  return *int8_;
}

}  // namespace tessera::parallel
