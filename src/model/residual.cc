#include "model/residual.h"

#include "kernels/ops.h"

namespace tessera::model {

ResidualConnection::ResidualConnection(ParameterStore& store, const std::string& name, int64_t d_model, bool pre_ln,
                                       float dropout, uint32_t dropout_site)
    : norm_(store, name, d_model), pre_ln_(pre_ln), dropout_(dropout), site_id_(dropout_site) {}

Tensor ResidualConnection::sublayer_input(const Tensor& x) { return pre_ln_ ? norm_.forward(x) : x; }

Tensor ResidualConnection::output(const StepContext& ctx, int64_t seq_len, const Tensor& x, const Tensor& fx) {
  site_ = ctx.activation_site(dropout_, RngPurpose::dropout_residual, site_id_, seq_len);
  Tensor sum;
  if (!pre_ln_) return norm_.forward_dropout_add(site_, fx, x, sum);  // LN(x + Dropout(f)); the norm keeps the sum
  sum = Tensor::empty(x.shape(), x.dtype(), x.device());
  kernels::dropout_forward(site_, fx, x, sum);  // x + Dropout(f)
  return sum;
}

Tensor ResidualConnection::output(const StepContext& ctx, int64_t seq_len, const Tensor& x, const Tensor& fx,
                                  ResidualConnection& next, Tensor& next_input) {
  if (!pre_ln_ || !next.pre_ln_) {
    Tensor y = output(ctx, seq_len, x, fx);
    next_input = next.sublayer_input(y);
    return y;
  }
  // Pre-LN: the next sublayer normalises this output, x + Dropout(f), while the row is in cache.
  site_ = ctx.activation_site(dropout_, RngPurpose::dropout_residual, site_id_, seq_len);
  Tensor sum;
  next_input = next.norm_.forward_dropout_add(site_, fx, x, sum);
  return sum;
}

Tensor ResidualConnection::backward_output(const Tensor& dy) {
  Tensor dfx = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
  if (!pre_ln_) {
    // dsum = LN'(dy) reaches x through the skip connection and, masked, f.
    dresidual_ = norm_.backward_add_dropout(dy, Tensor(), site_, dfx);
    return dfx;
  }
  dresidual_ = dy;
  kernels::dropout_backward(site_, dy, dfx);
  return dfx;
}

Tensor ResidualConnection::backward_input(const Tensor& dsublayer_input) {
  Tensor dx;
  if (pre_ln_) {
    Tensor no_dropout;
    dx = norm_.backward_add_dropout(dsublayer_input, dresidual_, site_, no_dropout);  // LN'(din) + dresidual
  } else {
    dx = dsublayer_input;
    kernels::axpy(1.0, dresidual_, dx);
  }
  dresidual_ = Tensor();
  return dx;
}

Tensor ResidualConnection::backward_input(const Tensor& dsublayer_input, ResidualConnection& previous) {
  if (!pre_ln_ || !previous.pre_ln_) return previous.backward_output(backward_input(dsublayer_input));
  // Pre-LN: dx = LN'(din) + dresidual is the gradient of previous's output x + Dropout(f); the
  // previous residual keeps it for its skip connection and masks it for its f, in the same pass.
  Tensor dfx = Tensor::empty(dsublayer_input.shape(), dsublayer_input.dtype(), dsublayer_input.device());
  previous.dresidual_ = norm_.backward_add_dropout(dsublayer_input, dresidual_, previous.site_, dfx);
  dresidual_ = Tensor();
  return dfx;
}

}  // namespace tessera::model
