// The bucket scheduler that drives data-parallel gradient reduction on MPI and on NCCL: buckets
// tile the gradient buffer in backward order, each starts the moment its last gradient is final
// and never earlier, they start strictly in order whatever order backward reports in, and once
// finish() returns every reduction has completed, so the optimizer reads only reduced gradients.
// A fake group of replicas that reduces only when a handle is waited on makes a read before the
// wait visible.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/parameters.h"
#include "parallel/gradient_buckets.h"

namespace tessera {
namespace {

using parallel::CollectiveHandle;
using parallel::Communicator;
using parallel::GradientBuckets;
using parallel::ReduceOp;
using parallel::StreamOrder;

// A group of `size` replicas that all hold this rank's buffer, so a sum is `size` times the local
// value. Each collective is logged when issued and its reduction happens only when its handle is
// waited on: until then the buffer holds what this rank computed.
class LazyReplicaGroup final : public Communicator {
 public:
  struct Call {
    std::string what;
    int64_t offset, count;  // the elements the collective reduces, relative to base
    bool waited = false;
  };

  LazyReplicaGroup(int rank, int size, const float* base) : rank_(rank), size_(size), base_(base) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& group_name() const override { return name_; }
  std::vector<Call> calls;

  void all_reduce(void*, size_t, DType, ReduceOp) override { ADD_FAILURE() << "blocking all_reduce"; }
  std::unique_ptr<CollectiveHandle> all_reduce_async(void* buf, size_t count, DType, ReduceOp,
                                                     StreamOrder) override {
    return issue("all_reduce", static_cast<float*>(buf), static_cast<float*>(buf), count);
  }
  void all_gather(const void*, void*, size_t, DType) override { ADD_FAILURE() << "blocking all_gather"; }
  // Gathering over a group of one is the identity; larger groups are the MPI tests' business.
  std::unique_ptr<CollectiveHandle> all_gather_async(const void* send, void*, size_t count, DType,
                                                     StreamOrder) override {
    EXPECT_EQ(size_, 1) << "all_gather in a fake group of " << size_;
    return issue("all_gather", const_cast<float*>(static_cast<const float*>(send)), nullptr, 0 * count);
  }
  void reduce_scatter(const void*, void*, size_t, DType, ReduceOp) override { ADD_FAILURE() << "blocking"; }
  std::unique_ptr<CollectiveHandle> reduce_scatter_async(const void* send, void* recv, size_t recv_count, DType,
                                                         ReduceOp, StreamOrder) override {
    // In place (NCCL's convention): recv is this rank's block of send.
    EXPECT_EQ(static_cast<const float*>(send) + rank_ * recv_count, recv) << "reduce_scatter not in place";
    return issue("reduce_scatter", static_cast<float*>(recv), static_cast<float*>(recv), recv_count);
  }
  void broadcast(void*, size_t, DType, int) override {}
  void barrier() override {}

 private:
  class Handle final : public CollectiveHandle {
   public:
    Handle(LazyReplicaGroup& group, size_t call, float* reduced, size_t count)
        : group_(group), call_(call), reduced_(reduced), count_(count) {}
    void wait() override {
      if (group_.calls[call_].waited) return;
      for (size_t i = 0; i < count_; ++i) reduced_[i] *= static_cast<float>(group_.size_);
      group_.calls[call_].waited = true;
    }

   private:
    LazyReplicaGroup& group_;
    size_t call_;
    float* reduced_;
    size_t count_;
  };

  std::unique_ptr<CollectiveHandle> issue(const char* what, float* first, float* reduced, size_t count) {
    calls.push_back({what, first - base_, static_cast<int64_t>(count)});
    if (!reduced) count = 0;
    return std::make_unique<Handle>(*this, calls.size() - 1, reduced, count);
  }

  int rank_, size_;
  const float* base_;
  std::string name_ = "dp";
};

// Eight parameters of 1000 floats (4000 bytes); buckets of at least 0.01 MiB hold three of them.
model::ParameterStore make_store() {
  model::ParameterStore store;
  for (int p = 0; p < 8; ++p)
    store.add("p" + std::to_string(p), {10, 100}, model::Partition::replicated(), model::Init::zeros);
  store.finalize(DType::f32, 1);
  float* g = store.grads().data<float>();
  for (int64_t i = 0; i < store.grads().numel(); ++i) g[i] = 1.0f + static_cast<float>(i % 7);
  return store;
}
constexpr double kBucketMb = 0.01;  // 10485 bytes: 3 parameters

TEST(GradientBuckets, TileTheBufferInBackwardOrder) {
  model::ParameterStore store = make_store();
  LazyReplicaGroup group(0, 2, store.grads().data<float>());
  GradientBuckets buckets(store, group, kBucketMb);
  const auto& b = buckets.buckets();
  ASSERT_EQ(b.size(), 3u);  // {5,6,7}, {2,3,4}, {0,1}
  int64_t end = store.grads().numel();
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(b[i].offset + b[i].count, end) << "bucket " << i << " does not end where the previous one starts";
    EXPECT_EQ(b[i].offset, store.info(b[i].first_param).offset);
    if (i + 1 < b.size()) EXPECT_GE(b[i].count * 4, static_cast<int64_t>(kBucketMb * 1024 * 1024));
    end = b[i].offset;
  }
  EXPECT_EQ(end, 0);
}

TEST(GradientBuckets, EachBucketStartsWhenItsLastGradientIsFinalNotBefore) {
  model::ParameterStore store = make_store();
  LazyReplicaGroup group(0, 2, store.grads().data<float>());
  GradientBuckets buckets(store, group, kBucketMb);
  // Backward finishes the parameters from the last to the first.
  const std::vector<size_t> started_after_param = {0, 0, 1, 1, 1, 2, 2, 3};  // index = 7 - p
  for (int p = 7; p >= 0; --p) {
    buckets.grads_ready(p, p);
    EXPECT_EQ(group.calls.size(), started_after_param[7 - p]) << "after parameter " << p;
  }
  for (size_t i = 0; i < group.calls.size(); ++i) {
    EXPECT_EQ(group.calls[i].offset, buckets.buckets()[i].offset) << "bucket " << i << " issued out of order";
    EXPECT_EQ(group.calls[i].count, buckets.buckets()[i].count);
  }
  buckets.finish();
}

TEST(GradientBuckets, BucketsStartInBackwardOrderWhateverOrderGradientsArrive) {
  model::ParameterStore store = make_store();
  LazyReplicaGroup group(0, 2, store.grads().data<float>());
  GradientBuckets buckets(store, group, kBucketMb);
  buckets.grads_ready(0, 4);  // the first two buckets' parameters are final, the last bucket's not
  EXPECT_TRUE(group.calls.empty()) << "a bucket started before the bucket that must precede it";
  buckets.grads_ready(5, 7);
  ASSERT_EQ(group.calls.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(group.calls[i].offset, buckets.buckets()[i].offset);
  buckets.finish();
}

// What the optimizer reads after finish() is the group's sum, in every mode; before a bucket's
// wait the buffer still holds the local gradient (the fake is lazy), so a scheduler that let the
// optimizer in before waiting would fail here.
void expect_reduced_after_finish(GradientBuckets::Mode mode, int rank, int size) {
  model::ParameterStore store = make_store();
  const Tensor local = store.grads().to(DType::f64);
  LazyReplicaGroup group(rank, size, store.grads().data<float>());
  GradientBuckets buckets(store, group, kBucketMb, mode);
  for (int p = 7; p >= 0; --p) buckets.grads_ready(p, p);
  ASSERT_FALSE(group.calls.empty());
  EXPECT_EQ(store.grads().data<float>()[group.calls[0].offset], local.data<double>()[group.calls[0].offset])
      << "the fake reduced before its wait";
  buckets.finish();
  for (const auto& c : group.calls) EXPECT_TRUE(c.waited) << c.what << " at " << c.offset << " never waited on";
  int64_t checked = 0;
  for (const auto& s : buckets.owned())
    for (int64_t i = s.offset; i < s.offset + s.count; ++i, ++checked)
      ASSERT_EQ(store.grads().data<float>()[i], size * local.data<double>()[i]) << "element " << i;
  EXPECT_EQ(checked, buckets.owned_elements());
}

TEST(GradientBuckets, AfterFinishTheOptimizerReadsOnlyReducedGradients) {
  expect_reduced_after_finish(GradientBuckets::Mode::all_reduce, 0, 2);
}

TEST(GradientBuckets, ShardModeOwnsOneBlockOfEveryBucketAndEveryTail) {
  for (int rank = 0; rank < 3; ++rank) expect_reduced_after_finish(GradientBuckets::Mode::shard, rank, 3);

  model::ParameterStore store = make_store();
  LazyReplicaGroup group(1, 3, store.grads().data<float>());
  GradientBuckets buckets(store, group, kBucketMb, GradientBuckets::Mode::shard);
  buckets.finish();
  // Bucket sizes 3000, 3000, 2000 over 3 ranks: blocks of 1000, 1000, 666 and a tail of 2.
  std::vector<std::pair<std::string, int64_t>> want = {
      {"reduce_scatter", 1000}, {"reduce_scatter", 1000}, {"reduce_scatter", 666}, {"all_reduce", 2}};
  ASSERT_EQ(group.calls.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(group.calls[i].what, want[i].first);
    EXPECT_EQ(group.calls[i].count, want[i].second);
  }
  EXPECT_EQ(group.calls[3].offset, 1998);  // the tail: the last 2 of the first parameters' bucket [0, 2000)
  EXPECT_EQ(buckets.owned_elements(), 1000 + 1000 + 666 + 2);
  EXPECT_TRUE(buckets.owned().back().shared);
}

// A shard's moments pack and unpack through the store's layout without loss (one rank of one).
TEST(GradientBuckets, PackingTheOwnedSegmentsInvertsGatheringThem) {
  model::ParameterStore store = make_store();
  LazyReplicaGroup group(0, 1, store.grads().data<float>());
  GradientBuckets buckets(store, group, kBucketMb, GradientBuckets::Mode::shard);
  const Tensor packed = buckets.pack_owned(store.grads());
  ASSERT_EQ(packed.numel(), store.grads().numel());
  const Tensor full = buckets.gather_to_store_layout(packed);
  for (int64_t i = 0; i < full.numel(); ++i) ASSERT_EQ(full.data<float>()[i], store.grads().data<float>()[i]);
}

}  // namespace
}  // namespace tessera
