// Collectives on GPU buffers over MPI, through host memory: each call copies its device buffers
// to the host, runs the wrapped (MPI) communicator there and copies the result back. This is how
// ranks with --device cuda communicate until the NCCL communicator (device to device, on the
// rank's stream) takes over; buffers already on the host pass straight through. The copies
// synchronise the rank's stream, so a staged gradient all-reduce does not overlap backward.
#pragma once

#include <memory>

#include "core/dtype.h"
#include "parallel/communicator.h"

namespace tessera::parallel {

class HostStagedCommunicator final : public Communicator {
 public:
  HostStagedCommunicator(std::unique_ptr<Communicator> inner, Device device);

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  const std::string& group_name() const override { return inner_->group_name(); }

  void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) override;
  std::unique_ptr<CollectiveHandle> all_reduce_async(void* buf, size_t count, DType dtype, ReduceOp op,
                                                     StreamOrder order = {}) override;
  void all_gather(const void* send, void* recv, size_t send_count, DType dtype) override;
  // The staged async gather and scatter run synchronously and return a finished handle.
  std::unique_ptr<CollectiveHandle> all_gather_async(const void* send, void* recv, size_t send_count, DType dtype,
                                                     StreamOrder order = {}) override;
  void reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype, ReduceOp op) override;
  std::unique_ptr<CollectiveHandle> reduce_scatter_async(const void* send, void* recv, size_t recv_count,
                                                         DType dtype, ReduceOp op, StreamOrder order = {}) override;
  void broadcast(void* buf, size_t count, DType dtype, int root) override;
  void barrier() override { inner_->barrier(); }
  void set_wait_deadline(double seconds, const std::string& reason) override {
    inner_->set_wait_deadline(seconds, reason);
  }
  void clear_wait_deadline() override { inner_->clear_wait_deadline(); }

 private:
  std::unique_ptr<Communicator> inner_;
  Device device_;
};

}  // namespace tessera::parallel
