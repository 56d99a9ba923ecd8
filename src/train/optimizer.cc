#include "train/optimizer.h"

#include <cmath>

#include "kernels/ops.h"

namespace tessera::train {

std::vector<double> grad_sum_squares(const model::ParameterStore& store) {
  std::vector<int64_t> bounds;
  for (size_t i = 0; i < store.size(); ++i) {
    const model::ParamInfo& p = store.info(static_cast<int>(i));
    bounds.push_back(p.offset);
    bounds.push_back(p.offset + p.numel());
  }
  return kernels::sum_squares_segments(store.grads(), bounds);
}

double global_grad_norm(const model::ParameterStore& store, parallel::Communicator& tp) {
  // One pass over the flat gradient buffer; a replicated parameter counts once per tp group.
  const std::vector<double> squares = grad_sum_squares(store);
  double sum = 0;
  for (size_t i = 0; i < store.size(); ++i)
    if (!store.info(static_cast<int>(i)).partition.is_replicated() || tp.rank() == 0) sum += squares[i];
  if (tp.size() > 1) tp.all_reduce(&sum, 1, DType::f64, parallel::ReduceOp::sum);
  return std::sqrt(sum);
}

Adam::Adam(const model::ParameterStore& store, AdamConfig config)
    : config_(config),
      m_(Tensor::zeros(store.values().shape(), store.dtype(), store.device())),
      v_(Tensor::zeros(store.values().shape(), store.dtype(), store.device())) {}

void Adam::update(model::ParameterStore& store, double lr, double grad_scale) {
  ++step_;
  Tensor values = store.values();
  kernels::adam_step(values, store.grads(), m_, v_, lr, config_.beta1, config_.beta2, config_.eps, step_, grad_scale);
}

}  // namespace tessera::train
