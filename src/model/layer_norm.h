// LayerNorm over d_model with learned gain and bias, replicated across the tensor-parallel group.
#pragma once

#include <string>

#include "core/tensor.h"
#include "model/parameters.h"

namespace tessera::model {

class LayerNorm {
 public:
  static constexpr double kEps = 1e-6;  // added to the variance (exporters read it)

  LayerNorm(ParameterStore& store, const std::string& name, int64_t d_model);
  int first_param() const { return gamma_; }
  int last_param() const { return beta_; }
  Tensor forward(const Tensor& x);    // keeps x, mean and rstd for backward
  Tensor backward(const Tensor& dy);  // returns dx; accumulates dgamma, dbeta

 private:
  ParameterStore& store_;
  int gamma_, beta_;
  Tensor x_, mean_, rstd_;
};

}  // namespace tessera::model
