// Adam over the flat parameter buffer (one fused pass over the parameters this rank updates: all of
// them, or with ZeRO-1 its shard of every gradient bucket), and the global gradient norm of a
// tensor- and data-parallel model.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "model/parameters.h"
#include "parallel/communicator.h"
#include "parallel/gradient_buckets.h"

namespace tessera::train {

struct AdamConfig {
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-9;  // Vaswani et al. 5.3
};

// Sum of squares of each parameter's gradient on this rank, in store order (one pass, read back once).
std::vector<double> grad_sum_squares(const model::ParameterStore& store);
// The L2 norm of the whole model's gradient: sharded parameters contribute their slice on every
// tensor-parallel rank (summed over the group), replicated ones are counted once.
double global_grad_norm(const model::ParameterStore& store, parallel::Communicator& tp);
// The same over the segments `owned` of the flat gradient buffer when the data-parallel group
// `dp` splits the reduced gradient among its ranks (ZeRO-1): squares over each rank's segments (a
// shared tail counted on dp rank 0 only), summed over dp and tp. dp null: every rank holds all.
double global_grad_norm(const model::ParameterStore& store, const std::vector<parallel::GradientBuckets::Segment>& owned,
                        parallel::Communicator& tp, parallel::Communicator* dp);

class Adam {
 public:
  // Moments for every parameter.
  Adam(const model::ParameterStore& store, AdamConfig config);
  // ZeRO-1: moments only for the segments `shards` assigns this rank, packed in its order.
  Adam(const model::ParameterStore& store, AdamConfig config, parallel::GradientBuckets& shards);
  int64_t step() const { return step_; }
  bool sharded() const { return shards_ != nullptr; }
  // One update with learning rate lr on the store's gradients scaled by grad_scale (the clipping
  // factor), of every parameter or of this rank's segments (the caller then gathers the rest).
  void update(model::ParameterStore& store, double lr, double grad_scale);

  // The moments as this rank keeps them: in the store's layout, or packed segments when sharded.
  Tensor& first_moment() { return m_; }
  Tensor& second_moment() { return v_; }
  const Tensor& first_moment() const { return m_; }
  const Tensor& second_moment() const { return v_; }

  // The moments in the store's layout, whatever the sharding (checkpoints are layout-free): the
  // moments themselves, or, sharded, gathered from the data-parallel group (every rank of the
  // group must call it).
  struct Moments {
    Tensor m, v;
  };
  Moments store_layout_moments() const;
  // Takes moments in the store's layout (read from a checkpoint) and keeps this rank's part.
  void load_store_layout_moments(const Moments& moments);
  void set_step(int64_t step) { step_ = step; }

 private:
  AdamConfig config_;
  parallel::GradientBuckets* shards_ = nullptr;
  Tensor m_, v_;
  int64_t step_ = 0;
};

}  // namespace tessera::train
