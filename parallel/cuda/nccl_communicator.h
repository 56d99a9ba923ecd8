// Collectives over NCCL for device buffers, behind the same Communicator interface as MPI.
//
// Stream-ordered, never waiting on the host for the data: a blocking collective is enqueued on
// the rank's compute stream (kernels::cuda::stream()) and returns; an async one runs on this
// group's side stream after the point of the compute stream where it was issued, and its
// handle's wait() makes the compute stream wait for it (cudaStreamWaitEvent). Collectives of one
// group run in issue order whichever stream they are on. The watchdog of the session holds the
// deadline of every one. Host buffers (the trainer's small arrays of doubles, gathered host
// vectors) go to the group's MPI communicator instead, so callers need not care where a buffer
// lives, only that send and receive buffers live on the same side.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "parallel/communicator.h"

namespace tessera::parallel {

class NcclSession;
struct NcclWork;

class NcclCommunicator final : public Communicator {
 public:
  // `comm` belongs to `session` (which ends it); `host` is the MPI communicator of the same group,
  // with the same ranks in the same order, and carries the host buffers.
  NcclCommunicator(std::shared_ptr<NcclSession> session, ncclComm_t comm, std::unique_ptr<Communicator> host);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  const std::string& group_name() const override { return host_->group_name(); }

  using Communicator::all_gather;
  using Communicator::all_reduce;
  using Communicator::all_reduce_async;
  using Communicator::broadcast;
  using Communicator::reduce_scatter;

  // f32, f64, bf16 and i32 (on the host path, whatever the MPI communicator supports).
  void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) override;
  std::unique_ptr<CollectiveHandle> all_reduce_async(void* buf, size_t count, DType dtype, ReduceOp op,
                                                     StreamOrder order = {}) override;
  void all_gather(const void* send, void* recv, size_t send_count, DType dtype) override;
  std::unique_ptr<CollectiveHandle> all_gather_async(const void* send, void* recv, size_t send_count, DType dtype,
                                                     StreamOrder order = {}) override;
  void reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype, ReduceOp op) override;
  std::unique_ptr<CollectiveHandle> reduce_scatter_async(const void* send, void* recv, size_t recv_count,
                                                         DType dtype, ReduceOp op, StreamOrder order = {}) override;
  void broadcast(void* buf, size_t count, DType dtype, int root) override;
  // Blocks the host: this group's device collectives complete (under the deadline), then the
  // ranks meet over MPI.
  void barrier() override;
  void set_wait_deadline(double seconds, const std::string& reason) override {
    host_->set_wait_deadline(seconds, reason);
  }
  void clear_wait_deadline() override { host_->clear_wait_deadline(); }

 private:
  class Handle;
  // One NCCL collective call of this group on the given stream, e.g. ncclAllReduce(..., s).
  using Call = std::function<ncclResult_t(cudaStream_t stream)>;

  // True for device buffers, false for host buffers; throws naming `what` when they mix.
  bool on_device(std::string_view what, const void* send, const void* recv) const;
  // Enqueues `call` on `stream` after this group's previous collective and starts watching it.
  std::shared_ptr<const NcclWork> enqueue(std::string what, cudaStream_t stream, const Call& call);
  // The async form: the stream and what it waits for come from `order`; returns the handle.
  std::unique_ptr<CollectiveHandle> start_async(std::string what, StreamOrder order, const Call& call);

  std::shared_ptr<NcclSession> session_;
  ncclComm_t comm_;
  std::unique_ptr<Communicator> host_;
  cudaStream_t side_ = nullptr;      // async collectives (the compute stream without implicit order)
  cudaEvent_t issued_ = nullptr;     // marks the compute stream where an async collective was issued
  std::shared_ptr<const NcclWork> last_;  // this group's latest collective
  uint64_t issued_count_ = 0;
};

}  // namespace tessera::parallel
