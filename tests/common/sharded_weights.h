// Relating a rank's slice of a parameter to the one-process (unpadded) global tensor: used by the
// multi-rank tests that give a sharded model exactly the single-process model's weights.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "model/parameters.h"

namespace tessera::testing {

// Element i of a parameter's local slice -> flat index in a global tensor of `global_shape`, or -1
// for a padded vocabulary row.
inline int64_t global_flat_index(const model::ParamInfo& p, const Shape& global_shape, int64_t i) {
  std::vector<int64_t> idx(p.local_shape.size());
  for (size_t d = idx.size(); d-- > 0;) {
    idx[d] = i % p.local_shape[d];
    i /= p.local_shape[d];
  }
  if (!p.partition.is_replicated()) idx[p.partition.dim] += p.partition.index * p.local_shape[p.partition.dim];
  int64_t flat = 0;
  for (size_t d = 0; d < idx.size(); ++d) {
    if (idx[d] >= global_shape[d]) return -1;
    flat = flat * global_shape[d] + idx[d];
  }
  return flat;
}

// Gives the sharded store `to` exactly the one-process store's weights: every rank copies its
// slice of each global parameter; padded vocabulary rows become zero. (Training both instead
// would compare two trajectories, which drift apart by rounding.)
template <typename T>
void copy_weights(const model::ParameterStore& from, model::ParameterStore& to) {
  ASSERT_EQ(from.size(), to.size());
  for (size_t id = 0; id < to.size(); ++id) {
    const model::ParamInfo& p = to.info(static_cast<int>(id));
    const Tensor want = from.value(static_cast<int>(id));
    Tensor got = to.value(static_cast<int>(id));
    for (int64_t i = 0; i < got.numel(); ++i) {
      const int64_t g = global_flat_index(p, from.info(static_cast<int>(id)).global_shape, i);
      got.data<T>()[i] = g < 0 ? T(0) : want.data<T>()[g];
    }
  }
}

}  // namespace tessera::testing
