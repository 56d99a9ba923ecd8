// Adam over the flat parameter buffer (one fused pass over all parameters), global-norm gradient
// clipping, and the global gradient norm of a tensor-parallel model.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "model/parameters.h"
#include "parallel/communicator.h"

namespace tessera::train {

struct AdamConfig {
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-9;  // Vaswani et al. 5.3
};

// The L2 norm of the whole model's gradient: sharded parameters contribute their slice on every
// tensor-parallel rank (summed over the group), replicated ones are counted once.
// Sum of squares of each parameter's gradient on this rank, in store order (one pass, read back once).
std::vector<double> grad_sum_squares(const model::ParameterStore& store);
double global_grad_norm(const model::ParameterStore& store, parallel::Communicator& tp);

class Adam {
 public:
  Adam(const model::ParameterStore& store, AdamConfig config);
  int64_t step() const { return step_; }
  // One update with learning rate lr on the store's gradients scaled by grad_scale (the clipping
  // factor).
  void update(model::ParameterStore& store, double lr, double grad_scale);
  // The moments, in the store's layout (checkpoints save and restore them).
  Tensor& first_moment() { return m_; }
  Tensor& second_moment() { return v_; }
  const Tensor& first_moment() const { return m_; }
  const Tensor& second_moment() const { return v_; }
  void set_step(int64_t step) { step_ = step; }

 private:
  AdamConfig config_;
  Tensor m_, v_;
  int64_t step_ = 0;
};

}  // namespace tessera::train
