// Data-parallel gradient reduction, overlapped with backward: the one bucket scheduler that drives
// the MPI communicator (host buffers) and the NCCL communicator (device buffers) alike.
//
// Buckets are contiguous ranges of the flat gradient buffer, cut in backward order (from the end
// of the buffer, where the last layers live) into pieces of at least --bucket-mb. As backward
// completes each layer it reports the parameters whose gradients are final; a bucket whose
// parameters are all final starts its reduction at once, so the reduction of late layers runs
// while early layers are still computing. Buckets start strictly in order, so every rank issues
// the same collectives in the same order (on NCCL, the dp stream then runs them in that order
// while the compute stream goes on; see docs/parallelism.md).
//
// Two modes:
// - all_reduce (plain data parallelism): each bucket is summed over the group in place; every rank
//   then holds the whole reduced gradient and updates every parameter.
// - shard (ZeRO-1, --shard-optimizer): each bucket of n elements is split into dp blocks of
//   q = n / dp elements; a reduce-scatter leaves block r summed on rank r, which alone updates
//   those parameters (and alone keeps their Adam moments). The last n - q*dp elements (fewer than
//   dp, a "tail") are all-reduced and updated identically by every rank, so a bucket never needs
//   padding. After the update, gather_parameters() all-gathers the blocks so every rank again
//   holds every parameter.
//
// And two wire formats: the gradient in its own dtype (f32), summed by the collective; or, with
// --grad-reduce bf16, each rank's bucket rounded to bf16 (half the bytes), all-gathered, and summed
// by every rank in f32 in rank order, so the sum accumulates in f32 and every rank gets the same
// bits. The all-gather moves the whole bucket to every rank, so in shard mode every rank sums the
// whole bucket too; the owned segments are a part of it.
#pragma once

#include <memory>
#include <vector>

#include "model/parameters.h"
#include "parallel/communicator.h"

namespace tessera::parallel {

class GradientBuckets {
 public:
  enum class Mode { all_reduce, shard };
  enum class Wire { native, bf16 };

  GradientBuckets(const model::ParameterStore& store, Communicator& dp, double bucket_mb,
                  Mode mode = Mode::all_reduce, Wire wire = Wire::native);

  struct Bucket {
    int first_param, last_param;  // inclusive, in the store's order
    int64_t offset, count;        // elements of the flat gradient buffer
    int64_t block;                // shard mode: count / dp, the elements each rank owns
    int64_t tail() const { return count - block * dp_size; }
    int dp_size;
  };
  // A range of the flat buffers. `shared` marks a tail: every rank of the group holds and updates
  // it, so sums over the group must count it once.
  struct Segment {
    int64_t offset, count;
    bool shared;
  };

  const std::vector<Bucket>& buckets() const { return buckets_; }
  Mode mode() const { return mode_; }
  Communicator& group() const { return dp_; }
  // The elements this rank's optimizer updates once finish() returns, in bucket order: all of the
  // buffer (all_reduce), or its block of every bucket and every tail (shard).
  const std::vector<Segment>& owned() const { return owned_; }
  int64_t owned_elements() const { return owned_elements_; }

  // Backward reports parameters [first, last] final; starts every bucket that became complete.
  void grads_ready(int first, int last);
  // Starts what has not started (all of it when backward reported nothing) and waits for every
  // reduction: afterwards the owned segments hold the group's summed gradient. On a GPU the wait
  // orders the compute stream after the reductions; the host goes on.
  void finish();

  // Shard mode, after the optimizer updated the owned segments of `values` (the flat parameter
  // buffer): every rank receives every other rank's blocks.
  void gather_parameters(const Tensor& values);
  // Shard mode: a tensor laid out like the store (the flat buffer) from one laid out like owned()
  // (packed, e.g. Adam's moments), gathered from the group; every rank of the group must call it.
  Tensor gather_to_store_layout(const Tensor& packed);
  // The owned segments of a store-layout tensor, packed in owned() order (no communication).
  Tensor pack_owned(const Tensor& store_layout) const;

 private:
  void launch_ready();
  void launch(const Bucket& b);
  // Wire::bf16: the bucket rounded to bf16 and all-gathered; sum_gathered() adds it up after.
  void launch_bf16(const Bucket& b);
  void sum_gathered(const Bucket& b, const Tensor& gathered);
  // The element at `offset` of the flat buffer `t`.
  static char* element(const Tensor& t, int64_t offset);

  const model::ParameterStore& store_;
  Communicator& dp_;
  Mode mode_;
  Wire wire_;
  std::vector<Bucket> buckets_;        // in launch (backward) order
  std::vector<Segment> owned_;
  int64_t owned_elements_ = 0;
  std::vector<int> bucket_of_param_;
  std::vector<int> pending_params_;    // per bucket: parameters not yet final this step
  size_t next_launch_ = 0;
  std::vector<std::unique_ptr<CollectiveHandle>> in_flight_;
  // Wire::bf16, per launched bucket: its index, the bf16 copy sent and the dp copies gathered.
  struct Gathering {
    size_t bucket;
    Tensor sent, gathered;
  };
  std::vector<Gathering> gathering_;
};

}  // namespace tessera::parallel
