// Data-parallel gradient reduction, overlapped with backward.
//
// Buckets are contiguous ranges of the flat gradient buffer, cut in backward order (from the end
// of the buffer, where the last layers live) into pieces of at least --bucket-mb. As backward
// completes each layer it reports the parameters whose gradients are final; a bucket whose
// parameters are all final starts its all-reduce at once, so the reduction of late layers runs
// while early layers are still computing. Buckets start strictly in order, so every rank issues
// the same collectives in the same order.
#pragma once

#include <memory>
#include <vector>

#include "model/parameters.h"
#include "parallel/communicator.h"

namespace tessera::parallel {

class GradientBuckets {
 public:
  GradientBuckets(const model::ParameterStore& store, Communicator& dp, double bucket_mb);

  struct Bucket {
    int first_param, last_param;  // inclusive, in the store's order
    int64_t offset, count;        // elements of the flat gradient buffer
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }

  // Backward reports parameters [first, last] final; starts every bucket that became complete.
  void grads_ready(int first, int last);
  // Starts what has not started (all of it when backward reported nothing) and waits for all.
  void finish();

 private:
  void launch_ready();

  const model::ParameterStore& store_;
  Communicator& dp_;
  std::vector<Bucket> buckets_;        // in launch (backward) order
  std::vector<int> bucket_of_param_;
  std::vector<int> pending_params_;    // per bucket: parameters not yet final this step
  size_t next_launch_ = 0;
  std::vector<std::unique_ptr<CollectiveHandle>> in_flight_;
};

}  // namespace tessera::parallel
