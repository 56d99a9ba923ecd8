#include "parallel/gradient_buckets.h"

#include "core/error.h"
#include "kernels/ops.h"

namespace tessera::parallel {

GradientBuckets::GradientBuckets(const model::ParameterStore& store, Communicator& dp, double bucket_mb, Mode mode,
                                 Wire wire)
    : store_(store), dp_(dp), mode_(mode), wire_(wire) {
  TESSERA_CHECK(bucket_mb > 0, "--bucket-mb: must be positive, got ", bucket_mb);
  TESSERA_CHECK(store.finalized(), "gradient buckets need the parameter buffer allocated first");
  TESSERA_CHECK(wire == Wire::native || store.dtype() == DType::f32, "--grad-reduce bf16: needs f32 gradients, got ",
                dtype_name(store.dtype()));
  const int64_t min_bytes = static_cast<int64_t>(bucket_mb * 1024 * 1024);
  const int64_t elem = static_cast<int64_t>(dtype_size(store.dtype()));
  const int dp_size = dp.size();
  bucket_of_param_.assign(store.size(), -1);
  int last = static_cast<int>(store.size()) - 1;
  int64_t bytes = 0;
  for (int p = last; p >= 0; --p) {
    bytes += store.info(p).numel() * elem;
    if (bytes >= min_bytes || p == 0) {
      const int64_t offset = store.info(p).offset;
      const int64_t end = store.info(last).offset + store.info(last).numel();
      for (int q = p; q <= last; ++q) bucket_of_param_[q] = static_cast<int>(buckets_.size());
      const int64_t count = end - offset;
      buckets_.push_back({p, last, offset, count, mode == Mode::shard ? count / dp_size : 0, dp_size});
      last = p - 1;
      bytes = 0;
    }
  }
  pending_params_.resize(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) pending_params_[b] = buckets_[b].last_param - buckets_[b].first_param + 1;

  if (mode == Mode::all_reduce) {
    owned_.push_back({0, store.values().numel(), false});
  } else {
    for (const Bucket& b : buckets_) {
      if (b.block > 0) owned_.push_back({b.offset + dp.rank() * b.block, b.block, false});
      if (b.tail() > 0) owned_.push_back({b.offset + b.block * dp_size, b.tail(), true});
    }
  }
  for (const Segment& s : owned_) owned_elements_ += s.count;
}

char* GradientBuckets::element(const Tensor& t, int64_t offset) {
  return static_cast<char*>(t.raw()) + offset * static_cast<int64_t>(dtype_size(t.dtype()));
}

void GradientBuckets::grads_ready(int first, int last) {
  for (int p = first; p <= last; ++p) --pending_params_[bucket_of_param_[p]];
  launch_ready();
}

void GradientBuckets::launch_ready() {
  while (next_launch_ < buckets_.size() && pending_params_[next_launch_] == 0) launch(buckets_[next_launch_++]);
}

void GradientBuckets::launch(const Bucket& b) {
  if (wire_ == Wire::bf16) return launch_bf16(b);
  const Tensor& grads = store_.grads();
  const DType dtype = store_.dtype();
  if (mode_ == Mode::all_reduce) {
    in_flight_.push_back(dp_.all_reduce_async(element(grads, b.offset), b.count, dtype, ReduceOp::sum));
    return;
  }
  // In place: this rank's block of the bucket receives the sum of everyone's block.
  if (b.block > 0)
    in_flight_.push_back(dp_.reduce_scatter_async(element(grads, b.offset),
                                                  element(grads, b.offset + dp_.rank() * b.block), b.block, dtype,
                                                  ReduceOp::sum));
  if (b.tail() > 0)
    in_flight_.push_back(
        dp_.all_reduce_async(element(grads, b.offset + b.block * b.dp_size), b.tail(), dtype, ReduceOp::sum));
}

void GradientBuckets::launch_bf16(const Bucket& b) {
  Tensor sent = Tensor::empty({b.count}, DType::bf16, store_.device());
  kernels::convert(store_.grads().view(b.offset, {b.count}), sent);
  Tensor gathered = Tensor::empty({dp_.size(), b.count}, DType::bf16, store_.device());
  in_flight_.push_back(dp_.all_gather_async(sent.raw(), gathered.raw(), b.count, DType::bf16));
  gathering_.push_back({static_cast<size_t>(&b - buckets_.data()), std::move(sent), std::move(gathered)});
}

void GradientBuckets::sum_gathered(const Bucket& b, const Tensor& gathered) {
  // grad = g_0 + g_1 + ... in rank order, in f32: the same sum, bit for bit, on every rank.
  Tensor sum = store_.grads().view(b.offset, {b.count});
  kernels::convert(gathered.view(0, {b.count}), sum);
  Tensor part = Tensor::empty({b.count}, DType::f32, sum.device());
  for (int r = 1; r < dp_.size(); ++r) {
    kernels::convert(gathered.view(r * b.count, {b.count}), part);
    kernels::axpy(1.0, part, sum);
  }
}

void GradientBuckets::finish() {
  for (size_t b = next_launch_; b < buckets_.size(); ++b) pending_params_[b] = 0;
  launch_ready();
  for (auto& h : in_flight_) h->wait();
  in_flight_.clear();
  for (const Gathering& g : gathering_) sum_gathered(buckets_[g.bucket], g.gathered);
  gathering_.clear();
  next_launch_ = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) pending_params_[b] = buckets_[b].last_param - buckets_[b].first_param + 1;
}

void GradientBuckets::gather_parameters(const Tensor& values) {
  TESSERA_CHECK(mode_ == Mode::shard, "gather_parameters: the gradient buckets are not sharded (--shard-optimizer)");
  std::vector<std::unique_ptr<CollectiveHandle>> gathers;
  for (const Bucket& b : buckets_) {
    if (b.block == 0) continue;
    // In place: this rank's block is already where the gathered bucket wants it.
    gathers.push_back(dp_.all_gather_async(element(values, b.offset + dp_.rank() * b.block),
                                           element(values, b.offset), b.block, values.dtype()));
  }
  for (auto& h : gathers) h->wait();
}

Tensor GradientBuckets::gather_to_store_layout(const Tensor& packed) {
  TESSERA_CHECK(packed.numel() == owned_elements_, "gather_to_store_layout: the packed tensor has ", packed.numel(),
                " elements, this rank owns ", owned_elements_);
  Tensor full = Tensor::zeros(store_.values().shape(), packed.dtype(), packed.device());
  int64_t at = 0;
  for (const Segment& s : owned_) {
    full.view(s.offset, {s.count}).copy_from(packed.view(at, {s.count}));
    at += s.count;
  }
  if (mode_ == Mode::shard) gather_parameters(full);
  return full;
}

Tensor GradientBuckets::pack_owned(const Tensor& store_layout) const {
  Tensor packed = Tensor::empty({owned_elements_}, store_layout.dtype(), store_layout.device());
  int64_t at = 0;
  for (const Segment& s : owned_) {
    packed.view(at, {s.count}).copy_from(store_layout.view(s.offset, {s.count}));
    at += s.count;
  }
  return packed;
}

}  // namespace tessera::parallel
