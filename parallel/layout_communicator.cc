#include "parallel/layout_communicator.h"

#include "core/error.h"

namespace tessera::parallel {

LayoutCommunicator::LayoutCommunicator(int rank, int size, std::string group_name)
    : rank_(rank), size_(size), group_name_(std::move(group_name)) {
  TESSERA_CHECK(size >= 1 && rank >= 0 && rank < size, "layout communicator \"", group_name_, "\": rank ", rank,
                " of ", size, " is not a rank of the group");
}

void LayoutCommunicator::refuse(const std::string& collective) const {
  TESSERA_FAIL(collective, " on group \"", group_name_, "\" (rank ", rank_, " of ", size_,
               "): a layout communicator only lays out parameters; it has no other ranks to talk to");
}

void LayoutCommunicator::all_reduce(void*, size_t count, DType dtype, ReduceOp op) {
  refuse(describe_collective("all_reduce", count, dtype, op));
}

std::unique_ptr<CollectiveHandle> LayoutCommunicator::all_reduce_async(void*, size_t count, DType dtype, ReduceOp op,
                                                                       StreamOrder) {
  refuse(describe_collective("all_reduce_async", count, dtype, op));
}

void LayoutCommunicator::all_gather(const void*, void*, size_t send_count, DType dtype) {
  refuse(describe_collective("all_gather", send_count, dtype));
}

std::unique_ptr<CollectiveHandle> LayoutCommunicator::all_gather_async(const void*, void*, size_t send_count,
                                                                       DType dtype, StreamOrder) {
  refuse(describe_collective("all_gather_async", send_count, dtype));
}

void LayoutCommunicator::reduce_scatter(const void*, void*, size_t recv_count, DType dtype, ReduceOp op) {
  refuse(describe_collective("reduce_scatter", recv_count, dtype, op));
}

std::unique_ptr<CollectiveHandle> LayoutCommunicator::reduce_scatter_async(const void*, void*, size_t recv_count,
                                                                           DType dtype, ReduceOp op, StreamOrder) {
  refuse(describe_collective("reduce_scatter_async", recv_count, dtype, op));
}

void LayoutCommunicator::broadcast(void*, size_t count, DType dtype, int root) {
  refuse(describe_collective("broadcast", count, dtype) + " from root " + std::to_string(root));
}

void LayoutCommunicator::barrier() { refuse("barrier"); }

}  // namespace tessera::parallel
