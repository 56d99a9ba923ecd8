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
  return y;
}

Tensor LayerNorm::backward(const Tensor& dy) {
  Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device()), dg = store_.grad(gamma_), db = store_.grad(beta_);
  kernels::layer_norm_backward(x_, store_.value(gamma_), mean_, rstd_, dy, dx, dg, db);
  x_ = mean_ = rstd_ = Tensor();
  return dx;
}

}  // namespace tessera::model
