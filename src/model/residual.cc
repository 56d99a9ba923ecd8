#include "model/residual.h"

#include "kernels/ops.h"

namespace tessera::model {

ResidualConnection::ResidualConnection(ParameterStore& store, const std::string& name, int64_t d_model, bool pre_ln,
                                       float dropout, uint32_t dropout_site)
    : norm_(store, name, d_model), pre_ln_(pre_ln), dropout_(dropout), site_id_(dropout_site) {}

Tensor ResidualConnection::sublayer_input(const Tensor& x) { return pre_ln_ ? norm_.forward(x) : x; }

Tensor ResidualConnection::output(const StepContext& ctx, int64_t seq_len, const Tensor& x, const Tensor& fx) {
  site_ = ctx.activation_site(dropout_, RngPurpose::dropout_residual, site_id_, seq_len);
  Tensor sum = Tensor::empty(x.shape(), x.dtype(), x.device());
  kernels::dropout_forward(site_, fx, x, sum);  // x + Dropout(f)
  return pre_ln_ ? sum : norm_.forward(sum);
}

Tensor ResidualConnection::backward_output(const Tensor& dy) {
  dresidual_ = pre_ln_ ? dy : norm_.backward(dy);
  Tensor dfx = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
  kernels::dropout_backward(site_, dresidual_, dfx);
  return dfx;
}

Tensor ResidualConnection::backward_input(const Tensor& dsublayer_input) {
  Tensor dx = pre_ln_ ? norm_.backward(dsublayer_input) : dsublayer_input;
  kernels::axpy(1.0, dresidual_, dx);
  dresidual_ = Tensor();
  return dx;
}

}  // namespace tessera::model
