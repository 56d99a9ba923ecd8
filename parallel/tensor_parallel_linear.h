// Megatron-style linear layers over a tensor-parallel group (y = x W + b, W stored [in, out]).
//
// ColumnParallelLinear splits W's columns (the output features) across the group: rank r computes
// its slice of y from the full, replicated x with no communication. In backward each rank's
// dx = dy_r W_r^T is only a partial sum over the group; the caller all-reduces it (once for all
// column-parallel layers that read the same x: "identity forward, all-reduce backward").
//
// RowParallelLinear splits W's rows (the input features): rank r holds x's slice r (the output of
// a column-parallel layer), computes x_r W_r, and one all-reduce sums the partial products
// before the replicated bias is added. In backward dx_r = dy W_r^T needs no communication.
//
// For int8 decoding (parallel/int8_quantization.h) both layers enrol under their parameter store;
// once quantised, forward multiplies by their shard of W in int8 (per output channel) and backward
// refuses.
#pragma once

#include <optional>
#include <string>

#include "core/tensor.h"
#include "kernels/int8_matmul.h"
#include "model/parameters.h"
#include "parallel/communicator.h"
#include "parallel/int8_quantization.h"

namespace tessera::parallel {

// Sums a tensor in place over a group; free when the group has one rank.
void all_reduce_sum(Communicator& comm, Tensor& t);

class ColumnParallelLinear {
 public:
  ColumnParallelLinear(model::ParameterStore& store, const std::string& name, int64_t in, int64_t out,
                       Communicator& tp);
  int64_t local_out() const { return local_out_; }
  int first_param() const { return weight_; }
  int last_param() const { return bias_; }

  // y [N, out/tp] = x [N, in] W_r (+ b_r when add_bias). Keeps x for backward.
  void forward(const Tensor& x, Tensor& y, bool add_bias = true);
  // dW_r += x^T dy, db_r += sum dy; dx (+)= dy W_r^T, a partial sum over the group.
  void backward(const Tensor& dy, Tensor& dx, bool accumulate_dx);
  // The bias slice, for callers that fuse the bias into the next op.
  Tensor bias() const { return store_.value(bias_); }
  // The precision of this layer's products (the store's: fp32, or bf16 mixed precision).
  kernels::Precision precision() const { return store_.precision(); }
  // Quantises W_r per output channel; forward runs in int8 from now on, backward refuses.
  const kernels::Int8Weight& quantize_int8();
  bool quantized() const { return int8_.has_value(); }

 private:
  model::ParameterStore& store_;
  int weight_, bias_;
  int64_t local_out_;
  Tensor x_;
  std::optional<kernels::Int8Weight> int8_;
  Int8Enrolment enrolment_{store_, [this]() -> const kernels::Int8Weight& { return quantize_int8(); }};
};

class RowParallelLinear {
 public:
  RowParallelLinear(model::ParameterStore& store, const std::string& name, int64_t in, int64_t out,
                    Communicator& tp);
  int first_param() const { return weight_; }
  int last_param() const { return bias_; }

  // y [N, out] = all_reduce(x_r [N, in/tp] W_r) + b. Keeps x_r for backward.
  void forward(const Tensor& x, Tensor& y);
  // dW_r += x_r^T dy, db += sum dy (identical on every rank); dx_r = dy W_r^T.
  void backward(const Tensor& dy, Tensor& dx);
  // Quantises W_r per output channel of the local rows; forward runs in int8 from now on (each
  // rank's partial product is dequantised before the all-reduce), backward refuses.
  const kernels::Int8Weight& quantize_int8();
  bool quantized() const { return int8_.has_value(); }

 private:
  model::ParameterStore& store_;
  Communicator& tp_;
  int weight_, bias_;
  Tensor x_;
  std::optional<kernels::Int8Weight> int8_;
  Int8Enrolment enrolment_{store_, [this]() -> const kernels::Int8Weight& { return quantize_int8(); }};
};

}  // namespace tessera::parallel
