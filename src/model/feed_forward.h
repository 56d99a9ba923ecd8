// Position-wise feed-forward network, act(x W1 + b1) W2 + b2, with W1 column-parallel and W2
// row-parallel: the d_ff hidden units are split across the tensor-parallel group and one
// all-reduce (inside W2) completes the output.
#pragma once

#include <string>

#include "core/tensor.h"
#include "kernels/ops.h"
#include "model/config.h"
#include "model/parameters.h"
#include "parallel/tensor_parallel_linear.h"

namespace tessera::model {

kernels::Activation activation_of(const ModelConfig& cfg);

class FeedForward {
 public:
  FeedForward(ParameterStore& store, const std::string& name, int64_t d_model, int64_t d_ff,
              kernels::Activation activation, parallel::Communicator& tp);
  int first_param() const { return w1_.first_param(); }
  int last_param() const { return w2_.last_param(); }
  // x [N, d] -> [N, d]; without keep_for_backward (evaluation) the hidden layer is not kept.
  Tensor forward(const Tensor& x, bool keep_for_backward = true);
  Tensor backward(const Tensor& dy);            // returns the partial dx; caller all-reduces

 private:
  int64_t d_model_;
  kernels::Activation activation_;
  parallel::ColumnParallelLinear w1_;
  parallel::RowParallelLinear w2_;
  Tensor pre_;  // x W1 + b1 before the activation
};

}  // namespace tessera::model
