// LayerNorm over d_model with learned gain and bias, replicated across the tensor-parallel group.
#pragma once

#include <string>

#include "core/tensor.h"
#include "kernels/math.h"
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

  // The residual stream's two passes in one (kernels::dropout_add_layer_norm_forward): sum =
  // residual + Dropout(fx) at `site`, returns LN(sum) and keeps sum, mean and rstd for backward.
  Tensor forward_dropout_add(const kernels::DropoutSite& site, const Tensor& fx, const Tensor& residual, Tensor& sum);
  // backward(dy) (+ dresidual when defined) in one pass; when dx_dropped is defined it also
  // receives Dropout's backward at `site` of the result (kernels::layer_norm_add_dropout_backward).
  Tensor backward_add_dropout(const Tensor& dy, const Tensor& dresidual, const kernels::DropoutSite& site,
                              Tensor& dx_dropped);

 private:
  ParameterStore& store_;
  int gamma_, beta_;
  Tensor x_, mean_, rstd_;
};

}  // namespace tessera::model
