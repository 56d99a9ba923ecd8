#include "parallel/self_communicator.h"

#include <cstring>

#include "core/error.h"

namespace tessera::parallel {
namespace {

// The collective finished when it was issued, so waiting has nothing to do.
class DoneHandle final : public CollectiveHandle {
 public:
  void wait() override {}
};

void copy_if_distinct(const void* src, void* dst, size_t count, DType dtype) {
  if (src != dst) std::memmove(dst, src, count * dtype_size(dtype));
}

}  // namespace

SelfCommunicator::SelfCommunicator(std::string group_name) : group_name_(std::move(group_name)) {}

void SelfCommunicator::all_reduce(void*, size_t, DType, ReduceOp) {}

std::unique_ptr<CollectiveHandle> SelfCommunicator::all_reduce_async(void*, size_t, DType,
                                                                     ReduceOp, StreamOrder) {
  return std::make_unique<DoneHandle>();
}

void SelfCommunicator::all_gather(const void* send, void* recv, size_t send_count, DType dtype) {
  copy_if_distinct(send, recv, send_count, dtype);
}

std::unique_ptr<CollectiveHandle> SelfCommunicator::all_gather_async(const void* send, void* recv,
                                                                     size_t send_count, DType dtype,
                                                                     StreamOrder) {
  all_gather(send, recv, send_count, dtype);
  return std::make_unique<DoneHandle>();
}

void SelfCommunicator::reduce_scatter(const void* send, void* recv, size_t recv_count,
                                      DType dtype, ReduceOp) {
  copy_if_distinct(send, recv, recv_count, dtype);
}

std::unique_ptr<CollectiveHandle> SelfCommunicator::reduce_scatter_async(const void* send, void* recv,
                                                                         size_t recv_count, DType dtype,
                                                                         ReduceOp op, StreamOrder) {
  reduce_scatter(send, recv, recv_count, dtype, op);
  return std::make_unique<DoneHandle>();
}

void SelfCommunicator::broadcast(void*, size_t, DType, int root) {
  TESSERA_CHECK(root == 0, "broadcast on group \"", group_name_, "\" of 1 rank from root ", root,
                ": the only rank is 0");
}

}  // namespace tessera::parallel
