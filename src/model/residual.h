// The residual wrapper around every sublayer f:
//   post-LN (the paper):  y = LayerNorm(x + Dropout(f(x)))
//   pre-LN:               y = x + Dropout(f(LayerNorm(x)))
// Usage: in = sublayer_input(x); fx = f(in); y = output(x, fx). Backward mirrors it:
// dfx = backward_output(dy); din = f'(dfx); dx = backward_input(din).
//
// The residual sum and the layer norm that reads it run as one pass (kernels/ops.h, "residual +
// dropout + layer norm, fused"): inside output() and backward_output() post-LN, inside
// backward_input() pre-LN. Pre-LN, the norm that reads this residual's output is the *next*
// sublayer's; a layer that owns both residuals chains them with the two-residual overloads:
//   y = output(ctx, seq, x, fx, next, next_in)   is  y = output(ctx, seq, x, fx); next_in = next.sublayer_input(y)
//   dfx = backward_input(din, previous)           is  dfx = previous.backward_output(backward_input(din))
// with the same results, in one pass where the two meet at a layer norm.
#pragma once

#include <string>

#include "core/tensor.h"
#include "model/context.h"
#include "model/layer_norm.h"

namespace tessera::model {

class ResidualConnection {
 public:
  ResidualConnection(ParameterStore& store, const std::string& name, int64_t d_model, bool pre_ln,
                     float dropout, uint32_t dropout_site);
  int first_param() const { return norm_.first_param(); }
  int last_param() const { return norm_.last_param(); }

  Tensor sublayer_input(const Tensor& x);
  Tensor output(const StepContext& ctx, int64_t seq_len, const Tensor& x, const Tensor& fx);
  Tensor output(const StepContext& ctx, int64_t seq_len, const Tensor& x, const Tensor& fx, ResidualConnection& next,
                Tensor& next_input);
  Tensor backward_output(const Tensor& dy);
  Tensor backward_input(const Tensor& dsublayer_input);
  Tensor backward_input(const Tensor& dsublayer_input, ResidualConnection& previous);

 private:
  LayerNorm norm_;
  bool pre_ln_;
  float dropout_;
  uint32_t site_id_;
  kernels::DropoutSite site_;
  Tensor dresidual_;  // gradient reaching x through the skip connection
};

}  // namespace tessera::model
