#include "train/optimizer.h"

#include <algorithm>
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
  return global_grad_norm(store, {{0, store.grads().numel(), false}}, tp, nullptr);
}

double global_grad_norm(const model::ParameterStore& store, const std::vector<parallel::GradientBuckets::Segment>& owned,
                        parallel::Communicator& tp, parallel::Communicator* dp) {
  // The pieces where an owned segment meets a parameter, each counted or not: a replicated
  // parameter once per tp group, a shared segment once per dp group. One pass over the buffer.
  std::vector<int64_t> bounds;
  std::vector<bool> counted;
  for (const parallel::GradientBuckets::Segment& s : owned) {
    const int64_t end = s.offset + s.count;
    for (size_t p = 0; p < store.size(); ++p) {
      const model::ParamInfo& info = store.info(static_cast<int>(p));
      const int64_t from = std::max(s.offset, info.offset), to = std::min(end, info.offset + info.numel());
      if (from >= to) continue;
      bounds.push_back(from);
      bounds.push_back(to);
      counted.push_back((!info.partition.is_replicated() || tp.rank() == 0) && (!s.shared || !dp || dp->rank() == 0));
    }
  }
  const std::vector<double> squares = kernels::sum_squares_segments(store.grads(), bounds);
  double sum = 0;
  for (size_t i = 0; i < squares.size(); ++i)
    if (counted[i]) sum += squares[i];
  if (dp && dp->size() > 1) dp->all_reduce(&sum, 1, DType::f64, parallel::ReduceOp::sum);
  if (tp.size() > 1) tp.all_reduce(&sum, 1, DType::f64, parallel::ReduceOp::sum);
  return std::sqrt(sum);
}

Adam::Adam(const model::ParameterStore& store, AdamConfig config)
    : config_(config),
      m_(Tensor::zeros(store.values().shape(), store.dtype(), store.device())),
      v_(Tensor::zeros(store.values().shape(), store.dtype(), store.device())) {}

Adam::Adam(const model::ParameterStore& store, AdamConfig config, parallel::GradientBuckets& shards)
    : config_(config),
      shards_(&shards),
      m_(Tensor::zeros({shards.owned_elements()}, store.dtype(), store.device())),
      v_(Tensor::zeros({shards.owned_elements()}, store.dtype(), store.device())) {}

void Adam::update(model::ParameterStore& store, double lr, double grad_scale) {
  ++step_;
  if (!shards_) {
    Tensor values = store.values();
    kernels::adam_step(values, store.grads(), m_, v_, lr, config_.beta1, config_.beta2, config_.eps, step_, grad_scale);
    return;
  }
  int64_t at = 0;  // into the packed moments
  for (const parallel::GradientBuckets::Segment& s : shards_->owned()) {
    Tensor values = store.values().view(s.offset, {s.count});
    Tensor m = m_.view(at, {s.count}), v = v_.view(at, {s.count});
    kernels::adam_step(values, store.grads().view(s.offset, {s.count}), m, v, lr, config_.beta1, config_.beta2,
                       config_.eps, step_, grad_scale);
    at += s.count;
  }
}

Adam::Moments Adam::store_layout_moments() const {
  if (!shards_) return {m_, v_};
  return {shards_->gather_to_store_layout(m_), shards_->gather_to_store_layout(v_)};
}

void Adam::load_store_layout_moments(const Moments& moments) {
  if (!shards_) {
    if (moments.m.raw() != m_.raw()) m_.copy_from(moments.m);
    if (moments.v.raw() != v_.raw()) v_.copy_from(moments.v);
    return;
  }
  m_ = shards_->pack_owned(moments.m);
  v_ = shards_->pack_owned(moments.v);
}

}  // namespace tessera::train
