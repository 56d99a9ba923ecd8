#include "parallel/gradient_buckets.h"

#include "core/error.h"

namespace tessera::parallel {

GradientBuckets::GradientBuckets(const model::ParameterStore& store, Communicator& dp, double bucket_mb)
    : store_(store), dp_(dp) {
  TESSERA_CHECK(bucket_mb > 0, "--bucket-mb: must be positive, got ", bucket_mb);
  TESSERA_CHECK(store.finalized(), "gradient buckets need the parameter buffer allocated first");
  const int64_t min_bytes = static_cast<int64_t>(bucket_mb * 1024 * 1024);
  const int64_t elem = static_cast<int64_t>(dtype_size(store.dtype()));
  bucket_of_param_.assign(store.size(), -1);
  int last = static_cast<int>(store.size()) - 1;
  int64_t bytes = 0;
  for (int p = last; p >= 0; --p) {
    bytes += store.info(p).numel() * elem;
    if (bytes >= min_bytes || p == 0) {
      const int64_t offset = store.info(p).offset;
      const int64_t end = store.info(last).offset + store.info(last).numel();
      for (int q = p; q <= last; ++q) bucket_of_param_[q] = static_cast<int>(buckets_.size());
      buckets_.push_back({p, last, offset, end - offset});
      last = p - 1;
      bytes = 0;
    }
  }
  pending_params_.resize(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) pending_params_[b] = buckets_[b].last_param - buckets_[b].first_param + 1;
}

void GradientBuckets::grads_ready(int first, int last) {
  for (int p = first; p <= last; ++p) --pending_params_[bucket_of_param_[p]];
  launch_ready();
}

void GradientBuckets::launch_ready() {
  while (next_launch_ < buckets_.size() && pending_params_[next_launch_] == 0) {
    const Bucket& b = buckets_[next_launch_++];
    char* base = static_cast<char*>(store_.grads().raw());
    in_flight_.push_back(dp_.all_reduce_async(base + b.offset * dtype_size(store_.dtype()), b.count, store_.dtype(),
                                              ReduceOp::sum));
  }
}

void GradientBuckets::finish() {
  for (size_t b = next_launch_; b < buckets_.size(); ++b) pending_params_[b] = 0;
  launch_ready();
  for (auto& h : in_flight_) h->wait();
  in_flight_.clear();
  next_launch_ = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) pending_params_[b] = buckets_[b].last_param - buckets_[b].first_param + 1;
}

}  // namespace tessera::parallel
