#include "model/layer_norm.h"

#include "kernels/ops.h"

namespace tessera::model {

LayerNorm::LayerNorm(ParameterStore& store, const std::string& name, int64_t d_model)
    : store_(store),
      gamma_(store.add(name + ".gamma", {d_model}, Partition::replicated(), Init::ones)),
      beta_(store.add(name + ".beta", {d_model}, Partition::replicated(), Init::zeros)) {}

Tensor LayerNorm::forward(const Tensor& x) {
  const int64_t rows = x.numel() / x.dim(-1);
  x_ = x;
  mean_ = Tensor::empty({rows}, x.dtype(), x.device());
  rstd_ = Tensor::empty({rows}, x.dtype(), x.device());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  kernels::layer_norm_forward(x, store_.value(gamma_), store_.value(beta_), kEps, y, mean_, rstd_);
  if (!store_.trainable()) x_ = mean_ = rstd_ = Tensor();  // no backward will read them
  return y;
}

Tensor LayerNorm::backward(const Tensor& dy) {
  Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device()), dg = store_.grad(gamma_), db = store_.grad(beta_);
  kernels::layer_norm_backward(x_, store_.value(gamma_), mean_, rstd_, dy, dx, dg, db);
  x_ = mean_ = rstd_ = Tensor();
  return dx;
}

Tensor LayerNorm::forward_dropout_add(const kernels::DropoutSite& site, const Tensor& fx, const Tensor& residual,
                                     Tensor& sum) {
  const int64_t rows = fx.numel() / fx.dim(-1);
  sum = Tensor::empty(fx.shape(), fx.dtype(), fx.device());
  x_ = sum;
  mean_ = Tensor::empty({rows}, fx.dtype(), fx.device());
  rstd_ = Tensor::empty({rows}, fx.dtype(), fx.device());
  Tensor y = Tensor::empty(fx.shape(), fx.dtype(), fx.device());
  kernels::dropout_add_layer_norm_forward(site, fx, residual, store_.value(gamma_), store_.value(beta_), kEps, sum, y,
                                          mean_, rstd_);
  if (!store_.trainable()) x_ = mean_ = rstd_ = Tensor();  // no backward will read them
  return y;
}

Tensor LayerNorm::backward_add_dropout(const Tensor& dy, const Tensor& dresidual, const kernels::DropoutSite& site,
                                       Tensor& dx_dropped) {
  Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device()), dg = store_.grad(gamma_), db = store_.grad(beta_);
  kernels::layer_norm_add_dropout_backward(site, x_, store_.value(gamma_), mean_, rstd_, dy, dresidual, dx, dx_dropped,
                                           dg, db);
  x_ = mean_ = rstd_ = Tensor();
  return dx;
}

}  // namespace tessera::model
