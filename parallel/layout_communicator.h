// A tensor-parallel group on paper: it answers "rank r of k" and nothing else. A model declared
// over it names and shapes exactly the parameters rank r of a k-way layout holds, without k
// processes, which is what offline tools that reshape checkpoints need (tessera-ckpt convert,
// average, export). Every collective throws: reaching one means the code ran a layer, not just
// declared it.
#pragma once

#include <string>

#include "parallel/communicator.h"

namespace tessera::parallel {

class LayoutCommunicator final : public Communicator {
 public:
  // Throws unless 0 <= rank < size.
  LayoutCommunicator(int rank, int size, std::string group_name = "tp");

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& group_name() const override { return group_name_; }

  using Communicator::all_gather;
  using Communicator::all_reduce;
  using Communicator::all_reduce_async;
  using Communicator::broadcast;
  using Communicator::reduce_scatter;

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
  void barrier() override;

 private:
  [[noreturn]] void refuse(const std::string& collective) const;

  int rank_, size_;
  std::string group_name_;
};

}  // namespace tessera::parallel
