#include "parallel/communicator.h"

#include <atomic>

#include "core/error.h"

namespace tessera::parallel {

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::avg: return "avg";
    case ReduceOp::max: return "max";
  }
  return "?";
}

CollectiveHandle::~CollectiveHandle() = default;
Communicator::~Communicator() = default;

void Communicator::check_span_sizes(const char* what, size_t big, size_t small) const {
  TESSERA_CHECK(big == small * static_cast<size_t>(size()), what, " on group \"", group_name(),
                "\" of ", size(), " ranks needs a buffer of size()*", small, " = ",
                small * static_cast<size_t>(size()), " elements, got ", big);
}

namespace {
// Nanoseconds, so that the sum is one lock-free atomic.
std::atomic<int64_t> g_host_wait_ns{0};
}  // namespace

double host_wait_seconds() { return static_cast<double>(g_host_wait_ns.load(std::memory_order_relaxed)) * 1e-9; }

void add_host_wait_seconds(double seconds) {
  g_host_wait_ns.fetch_add(static_cast<int64_t>(seconds * 1e9), std::memory_order_relaxed);
}

std::string describe_collective(std::string_view name, size_t count, DType dtype) {
  return detail::concat(name, "(count=", count, ", ", dtype_name(dtype), ")");
}

std::string describe_collective(std::string_view name, size_t count, DType dtype, ReduceOp op) {
  return detail::concat(name, "(count=", count, ", ", dtype_name(dtype), ", ",
                        reduce_op_name(op), ")");
}

}  // namespace tessera::parallel
