// A group of one process: rank 0 of size 1, and no MPI at all. Single-process runs and unit
// tests use it so that model code always talks to a Communicator, even when nothing moves.
#pragma once

#include <string>

#include "parallel/communicator.h"

namespace tessera::parallel {

class SelfCommunicator final : public Communicator {
 public:
  explicit SelfCommunicator(std::string group_name = "world");

  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& group_name() const override { return group_name_; }

  using Communicator::all_gather;
  using Communicator::all_reduce;
  using Communicator::all_reduce_async;
  using Communicator::broadcast;
  using Communicator::reduce_scatter;

  // Reducing over one rank is the identity (the average of one value is that value).
  void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) override;
  std::unique_ptr<CollectiveHandle> all_reduce_async(void* buf, size_t count, DType dtype,
                                                     ReduceOp op, StreamOrder order = {}) override;
  // Gathering or scattering over one rank is a copy (host buffers only).
  void all_gather(const void* send, void* recv, size_t send_count, DType dtype) override;
  std::unique_ptr<CollectiveHandle> all_gather_async(const void* send, void* recv, size_t send_count,
                                                     DType dtype, StreamOrder order = {}) override;
  void reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype,
                      ReduceOp op) override;
  std::unique_ptr<CollectiveHandle> reduce_scatter_async(const void* send, void* recv, size_t recv_count,
                                                         DType dtype, ReduceOp op,
                                                         StreamOrder order = {}) override;
  void broadcast(void* buf, size_t count, DType dtype, int root) override;
  void barrier() override {}

 private:
  std::string group_name_;
};

}  // namespace tessera::parallel
