#include "train/optimizer.h"

#include <cmath>

#include "kernels/ops.h"

namespace tessera::train {

double global_grad_norm(const model::ParameterStore& store, parallel::Communicator& tp) {
  double sum = 0;
  for (size_t i = 0; i < store.size(); ++i) {
    const model::ParamInfo& p = store.info(static_cast<int>(i));
    if (p.partition.is_replicated() && tp.rank() != 0) continue;
    sum += kernels::sum_squares(store.grad(static_cast<int>(i)));
  }
  if (tp.size() > 1) tp.all_reduce(&sum, 1, DType::f64, parallel::ReduceOp::sum);
  return std::sqrt(sum);
}

Adam::Adam(const model::ParameterStore& store, AdamConfig config)
    : config_(config),
      m_(Tensor::zeros(store.values().shape(), store.dtype())),
      v_(Tensor::zeros(store.values().shape(), store.dtype())) {}

void Adam::update(model::ParameterStore& store, double lr, double grad_scale) {
  ++step_;
  Tensor values = store.values();
  kernels::adam_step(values, store.grads(), m_, v_, lr, config_.beta1, config_.beta2, config_.eps, step_, grad_scale);
}

}  // namespace tessera::train
