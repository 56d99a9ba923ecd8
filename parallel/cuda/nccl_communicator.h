// Collectives over NCCL for device buffers, behind the same Communicator interface as MPI.
//
// All work runs in issue order on one CUDA stream owned by the communicator. The stream is a
// blocking stream, so it waits for work queued earlier on the legacy default stream; a producer
// on another stream must make stream() wait on it (cudaStreamWaitEvent). An async collective
// records a CUDA event; wait() polls it against the deadline, and a rank that waits past it
// prints which rank, collective and group, aborts the NCCL communicator and the MPI job.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace tessera::parallel {

class NcclCommunicator final : public Communicator {
 public:
  // Joins the NCCL communicator of the group that `bootstrap` spans (e.g. grid.tp()): group rank
  // 0 creates the ncclUniqueId and broadcasts it over bootstrap (MPI_Bcast on the group's
  // MPI communicator), then every rank calls ncclCommInitRank on the current CUDA device.
  // timeout_s is the deadline of every collective (the --collective-timeout option).
  NcclCommunicator(Communicator& bootstrap, double timeout_s);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& group_name() const override { return group_name_; }
  cudaStream_t stream() const { return stream_; }

  using Communicator::all_gather;
  using Communicator::all_reduce;
  using Communicator::all_reduce_async;
  using Communicator::broadcast;
  using Communicator::reduce_scatter;

  // Buffers are device pointers; f32, f64, bf16 and i32 are supported.
  void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) override;
  std::unique_ptr<CollectiveHandle> all_reduce_async(void* buf, size_t count, DType dtype,
                                                     ReduceOp op) override;
  void all_gather(const void* send, void* recv, size_t send_count, DType dtype) override;
  void reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype,
                      ReduceOp op) override;
  void broadcast(void* buf, size_t count, DType dtype, int root) override;
  void barrier() override;

 private:
  class Handle;

  // Records an event after the work just queued on stream_ and returns a handle waiting on it.
  std::unique_ptr<CollectiveHandle> record(std::string what);
  // Polls event until it completes; past the deadline prints the diagnostic and aborts the job.
  void wait_event(cudaEvent_t event, const std::string& what);
  [[noreturn]] void abort_on_timeout(const std::string& what);

  std::string group_name_;
  double timeout_s_;
  int rank_ = 0, size_ = 1, world_rank_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int* scratch_ = nullptr;  // one device int that barrier() all-reduces
};

}  // namespace tessera::parallel
