// The one collective-communication interface. Tensor- and data-parallel code talks to a
// Communicator and never to MPI or NCCL directly: MpiCommunicator moves host buffers,
// NcclCommunicator moves device buffers, SelfCommunicator stands in for a group of one.
//
// Rules every implementation keeps:
// - Collectives on one communicator are issued in the same order on every rank of the group,
//   and run in issue order: a blocking call issued while async ones are pending runs after them.
// - Counts are in elements of the given DType, never in bytes.
// - Every collective carries a deadline: a rank that waits past it prints which rank, which
//   collective and which group, and aborts the whole job instead of hanging.
// - In place follows NCCL's convention: all_gather is in place when send is this rank's block
//   of recv (send == recv + rank * send_count), reduce_scatter when recv is this rank's block of
//   send (recv == send + rank * recv_count).
// - On device buffers (NCCL) collectives are stream-ordered and never block the host: a blocking
//   call is enqueued on the rank's compute stream and returns; an async one runs on the
//   communicator's side stream after the point of the compute stream where it was issued, and
//   its wait() makes the compute stream wait for it. On host buffers (MPI) wait() blocks the host.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/dtype.h"

namespace tessera::parallel {

// avg is sum divided by the group size (for i32 the division truncates toward zero).
enum class ReduceOp { sum, avg, max };

std::string_view reduce_op_name(ReduceOp op);

// Where a collective on device buffers runs and what it waits for first; host buffers ignore it.
// The members are a cudaStream_t and a cudaEvent_t, kept opaque so that this header needs no
// CUDA. The defaults are the rules above: `stream` null means the compute stream for a blocking
// call and the communicator's side stream for an async one; `after` null means an event the
// communicator records on the compute stream when the call is issued.
struct StreamOrder {
  void* stream = nullptr;
  void* after = nullptr;
};

// A collective in flight. wait() returns once this rank's part is complete and the buffers may
// be read; it enforces the communicator's deadline. Destroying a handle without waiting is
// allowed: the collective still runs, in order. A handle must not outlive its communicator.
class CollectiveHandle {
 public:
  virtual ~CollectiveHandle();
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator();

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The group this communicator spans: "tp", "dp" or "world"; used in diagnostics.
  virtual const std::string& group_name() const = 0;

  // In place: afterwards every rank holds op(buf of rank 0, ..., buf of rank size-1).
  virtual void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) = 0;
  // Starts the same all-reduce and returns at once; buf must stay alive until wait() returns.
  virtual std::unique_ptr<CollectiveHandle> all_reduce_async(void* buf, size_t count,
                                                             DType dtype, ReduceOp op,
                                                             StreamOrder order = {}) = 0;
  // recv holds size()*send_count elements, rank-major: rank r's send lands at r*send_count.
  virtual void all_gather(const void* send, void* recv, size_t send_count, DType dtype) = 0;
  virtual std::unique_ptr<CollectiveHandle> all_gather_async(const void* send, void* recv,
                                                             size_t send_count, DType dtype,
                                                             StreamOrder order = {}) = 0;
  // send holds size()*recv_count elements; rank r receives the reduction of block r.
  virtual void reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype,
                              ReduceOp op) = 0;
  virtual std::unique_ptr<CollectiveHandle> reduce_scatter_async(const void* send, void* recv,
                                                                 size_t recv_count, DType dtype,
                                                                 ReduceOp op,
                                                                 StreamOrder order = {}) = 0;
  // Copies root's buf into every other rank's buf.
  virtual void broadcast(void* buf, size_t count, DType dtype, int root) = 0;
  virtual void barrier() = 0;

  // Gives the collectives waited on from now until clear_wait_deadline() another deadline and a
  // reason for the timeout message. A wait that covers slow work on other ranks (a checkpoint
  // being written, --io-timeout) then gets that work's budget and names it, instead of failing as
  // a stuck collective. Communicators without a deadline ignore it; NCCL passes it to the MPI
  // communicator that carries its host buffers.
  virtual void set_wait_deadline(double /*seconds*/, const std::string& /*reason*/) {}
  virtual void clear_wait_deadline() {}

  // Typed conveniences: the element type comes from the span.
  template <typename T>
  void all_reduce(std::span<T> buf, ReduceOp op) {
    all_reduce(buf.data(), buf.size(), dtype_of<T>(), op);
  }
  template <typename T>
  std::unique_ptr<CollectiveHandle> all_reduce_async(std::span<T> buf, ReduceOp op) {
    return all_reduce_async(buf.data(), buf.size(), dtype_of<T>(), op);
  }
  template <typename T>
  void all_gather(std::span<const T> send, std::span<T> recv) {
    check_span_sizes("all_gather", recv.size(), send.size());
    all_gather(send.data(), recv.data(), send.size(), dtype_of<T>());
  }
  template <typename T>
  void reduce_scatter(std::span<const T> send, std::span<T> recv, ReduceOp op) {
    check_span_sizes("reduce_scatter", send.size(), recv.size());
    reduce_scatter(send.data(), recv.data(), recv.size(), dtype_of<T>(), op);
  }
  template <typename T>
  void broadcast(std::span<T> buf, int root) {
    broadcast(buf.data(), buf.size(), dtype_of<T>(), root);
  }

 private:
  // Throws unless big == size() * small (the layout of gathered and scattered buffers).
  void check_span_sizes(const char* what, size_t big, size_t small) const;
};

// set_wait_deadline for one scope.
class ScopedWaitDeadline {
 public:
  ScopedWaitDeadline(Communicator& comm, double seconds, const std::string& reason) : comm_(comm) {
    comm_.set_wait_deadline(seconds, reason);
  }
  ~ScopedWaitDeadline() { comm_.clear_wait_deadline(); }
  ScopedWaitDeadline(const ScopedWaitDeadline&) = delete;
  ScopedWaitDeadline& operator=(const ScopedWaitDeadline&) = delete;

 private:
  Communicator& comm_;
};

// Seconds this process's threads have spent blocked waiting for collectives to complete, since
// the start (summed over communicators). It is the communication a step could not hide behind
// compute: on host buffers (MPI) every blocking call and wait() counts; on device buffers (NCCL)
// the host does not block, so only their host-side (MPI) waits count.
double host_wait_seconds();
// Adds to host_wait_seconds(); called by the communicators where they block.
void add_host_wait_seconds(double seconds);

// The one-line description used by deadline diagnostics, e.g. "all_reduce(count=4096, f32, sum)".
std::string describe_collective(std::string_view name, size_t count, DType dtype);
std::string describe_collective(std::string_view name, size_t count, DType dtype, ReduceOp op);

}  // namespace tessera::parallel
