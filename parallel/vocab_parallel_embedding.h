// The shared source/target embedding, split by vocabulary rows across the tensor-parallel group,
// and tied to the output projection (Vaswani et al. 3.4).
//
// The vocabulary is padded to a multiple of tp; rank r owns rows [r*V/tp, (r+1)*V/tp). Lookup:
// each rank writes sqrt(d) * E[id] for the ids it owns and zeros elsewhere, and one all-reduce
// completes the rows. Output projection: logits_r = h E_r^T gives each rank its vocabulary slice
// of the logits, which stay sharded (see vocab_parallel_cross_entropy.h); the input gradient
// dh = dlogits_r E_r is a partial sum and is all-reduced.
//
// For int8 decoding (parallel/int8_quantization.h) the output projection enrols under its parameter
// store: once quantised, project multiplies by E_r in int8, one scale per vocabulary row (padding
// rows are zeros, scale 0, logit 0 as in f32), and project_backward refuses. The lookup keeps
// reading the f32 table.
#pragma once

#include <optional>
#include <string>

#include "core/tensor.h"
#include "kernels/int8_matmul.h"
#include "model/parameters.h"
#include "parallel/communicator.h"
#include "parallel/int8_quantization.h"

namespace tessera::parallel {

// The vocabulary size padded up to a multiple of the tensor-parallel size.
int64_t padded_vocab_size(int64_t vocab_size, int tp);

class VocabParallelEmbedding {
 public:
  VocabParallelEmbedding(model::ParameterStore& store, const std::string& name, int64_t vocab_size,
                         int64_t d_model, Communicator& tp);
  int param() const { return table_; }
  int64_t vocab_size() const { return vocab_size_; }
  int64_t vocab_start() const { return vocab_start_; }
  int64_t local_rows() const { return local_rows_; }
  // Rows of this slice that are real tokens (the rest is padding).
  int64_t real_local_rows() const;
  double scale() const { return scale_; }

  // out [N, d] = sqrt(d) * E[ids]; complete on every rank.
  void lookup(const Tensor& ids, Tensor& out);
  // dE_r += sqrt(d) * dout for the ids this rank owns (dout is replicated: no communication).
  void lookup_backward(const Tensor& ids, const Tensor& dout);
  // logits_r [N, V/tp] = h E_r^T.
  void project(const Tensor& h, Tensor& logits_r);
  // dE_r += dlogits_r^T h; dh = all_reduce(dlogits_r E_r).
  void project_backward(const Tensor& h, const Tensor& dlogits_r, Tensor& dh);
  // Quantises E_r per vocabulary row for project; the lookup stays f32.
  const kernels::Int8Weight& quantize_int8();
  bool quantized() const { return int8_.has_value(); }

 private:
  model::ParameterStore& store_;
  Communicator& tp_;
  int table_;
  int64_t vocab_size_, local_rows_, vocab_start_;
  double scale_;
  std::optional<kernels::Int8Weight> int8_;
  Int8Enrolment enrolment_{store_, [this]() -> const kernels::Int8Weight& { return quantize_int8(); }};
};

}  // namespace tessera::parallel
