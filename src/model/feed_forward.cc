#include "model/feed_forward.h"

namespace tessera::model {

kernels::Activation activation_of(const ModelConfig& cfg) {
  return cfg.activation == "gelu" ? kernels::Activation::gelu : kernels::Activation::relu;
}

FeedForward::FeedForward(ParameterStore& store, const std::string& name, int64_t d_model, int64_t d_ff,
                         kernels::Activation activation, parallel::Communicator& tp)
    : d_model_(d_model),
      activation_(activation),
      w1_(store, name + ".w1", d_model, d_ff, tp),
      w2_(store, name + ".w2", d_ff, d_model, tp) {}

Tensor FeedForward::forward(const Tensor& x, bool keep_for_backward) {
  const Tensor x2 = x.reshape({x.numel() / d_model_, d_model_});
  Tensor pre = Tensor::empty({x2.dim(0), w1_.local_out()}, x.dtype(), x.device());
  w1_.forward(x2, pre, /*add_bias=*/false);
  Tensor hidden = Tensor::empty(pre.shape(), x.dtype(), x.device());
  kernels::bias_activation_forward(activation_, pre, w1_.bias(), hidden);
  pre_ = keep_for_backward ? pre : Tensor();
  Tensor y = Tensor::empty(x2.shape(), x.dtype(), x.device());
  w2_.forward(hidden, y);
  return y.reshape(x.shape());
}

Tensor FeedForward::backward(const Tensor& dy) {
  const Tensor dy2 = dy.reshape({dy.numel() / d_model_, d_model_});
  Tensor dhidden = Tensor::empty(pre_.shape(), dy.dtype(), dy.device());
  w2_.backward(dy2, dhidden);
  kernels::activation_backward(activation_, pre_, dhidden, dhidden);
  Tensor dx = Tensor::empty(dy2.shape(), dy.dtype(), dy.device());
  w1_.backward(dhidden, dx, false);
  pre_ = Tensor();
  return dx.reshape(dy.shape());
}

}  // namespace tessera::model
