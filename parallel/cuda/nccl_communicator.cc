#include "parallel/cuda/nccl_communicator.h"

#include <chrono>
#include <thread>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/runtime.h"
#include "parallel/cuda/nccl_check.h"
#include "parallel/cuda/nccl_session.h"

namespace tessera::parallel {
namespace {

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::i32: return ncclInt32;
  }
  TESSERA_FAIL("no NCCL type for DType ", static_cast<int>(dtype));
}

// ncclAvg is the sum divided by the group size; on integers NCCL truncates toward zero, as the
// interface promises.
ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::avg: return ncclAvg;
    case ReduceOp::max: return ncclMax;
  }
  TESSERA_FAIL("no NCCL reduction for ReduceOp ", static_cast<int>(op));
}

cudaStream_t compute_stream() { return kernels::cuda::stream(); }

// The handle of a collective with nothing to move (count 0).
class DoneHandle final : public CollectiveHandle {
 public:
  void wait() override {}
};

}  // namespace

// wait() orders the compute stream after the collective; the host goes on at once. Twice is harmless.
class NcclCommunicator::Handle final : public CollectiveHandle {
 public:
  explicit Handle(std::shared_ptr<const NcclWork> work) : work_(std::move(work)) {}
  // Dropped without wait(): the compute stream still waits for the collective from here on, or a
  // cudaFreeAsync of its buffer on the compute stream could hand the memory to a new tensor while
  // the side stream still reads or writes it (the pool only follows the compute stream's order).
  ~Handle() override {
    if (!waited_ && cudaStreamWaitEvent(compute_stream(), work_->done, 0) != cudaSuccess) (void)cudaGetLastError();
  }
  void wait() override {
    CUDA_CHECK(cudaStreamWaitEvent(compute_stream(), work_->done, 0));
    waited_ = true;
  }

 private:
  std::shared_ptr<const NcclWork> work_;
  bool waited_ = false;
};

NcclCommunicator::NcclCommunicator(std::shared_ptr<NcclSession> session, ncclComm_t comm,
                                   std::unique_ptr<Communicator> host)
    : session_(std::move(session)), comm_(comm), host_(std::move(host)) {
  CUDA_CHECK(cudaEventCreateWithFlags(&issued_, cudaEventDisableTiming));
  // Non-blocking (it never waits on the legacy default stream) and of the highest priority, so a
  // gradient all-reduce starts as soon as its bucket is ready, between the compute kernels.
  int least = 0, greatest = 0;
  CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  CUDA_CHECK(cudaStreamCreateWithPriority(&side_, cudaStreamNonBlocking, greatest));
}

NcclCommunicator::~NcclCommunicator() {
  // Work still queued on the stream or behind the event finishes first: CUDA releases both once
  // the device has passed them, and the session waits for every collective before it ends the
  // communicator.
  if (side_ != nullptr && cudaStreamDestroy(side_) != cudaSuccess) (void)cudaGetLastError();
  if (issued_ != nullptr && cudaEventDestroy(issued_) != cudaSuccess) (void)cudaGetLastError();
}

bool NcclCommunicator::on_device(std::string_view what, const void* send, const void* recv) const {
  const bool send_on_device = kernels::cuda::is_device_pointer(send);
  const bool recv_on_device = kernels::cuda::is_device_pointer(recv);
  TESSERA_CHECK(send_on_device == recv_on_device, what, " on group \"", group_name(), "\": the send buffer is in ",
                send_on_device ? "device" : "host", " memory and the receive buffer in ",
                recv_on_device ? "device" : "host",
                " memory; both must be on the GPU (NCCL) or both on the host (MPI)");
  return send_on_device;
}

std::shared_ptr<const NcclWork> NcclCommunicator::enqueue(std::string what, cudaStream_t stream, const Call& call) {
  auto work = std::make_shared<NcclWork>();
  work->what = std::move(what);
  work->group = group_name();
  work->group_size = size();
  work->number = ++issued_count_;
  CUDA_CHECK(cudaEventCreateWithFlags(&work->done, cudaEventDisableTiming));
  // Collectives of one group run in issue order, whichever stream they are on. Waited for even on
  // the same stream handle: a caller's StreamOrder stream may have been destroyed and its handle
  // value reused by a new stream, and the wait is free when the stream already orders them.
  if (last_ != nullptr) CUDA_CHECK(cudaStreamWaitEvent(stream, last_->done, 0));
  work->issued = std::chrono::steady_clock::now();
  ncclResult_t result = ncclSuccess;
  {
    std::lock_guard lock(NcclWatchdog::nccl_mutex());
    result = call(stream);
  }
  // A non-blocking communicator may still be launching the kernel; nothing may be queued on the
  // stream (not even the event below) until it has.
  session_->settle(comm_, result, work->what, work->group, work->group_size);
  CUDA_CHECK(cudaEventRecord(work->done, stream));
  session_->watchdog().track(work);
  last_ = work;
  return work;
}

std::unique_ptr<CollectiveHandle> NcclCommunicator::start_async(std::string what, StreamOrder order,
                                                                const Call& call) {
  const cudaStream_t compute = compute_stream();
  const cudaStream_t stream = order.stream != nullptr           ? static_cast<cudaStream_t>(order.stream)
                              : session_->implicit_order() ? side_
                                                           : compute;
  if (order.after != nullptr) {
    CUDA_CHECK(cudaStreamWaitEvent(stream, static_cast<cudaEvent_t>(order.after), 0));
  } else if (stream != compute) {
    // The inputs are what the compute stream has queued up to this call.
    CUDA_CHECK(cudaEventRecord(issued_, compute));
    CUDA_CHECK(cudaStreamWaitEvent(stream, issued_, 0));
  }
  return std::make_unique<Handle>(enqueue(std::move(what), stream, call));
}

void NcclCommunicator::all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) {
  if (count == 0) return;
  std::string what = describe_collective("all_reduce", count, dtype, op);
  if (!on_device(what, buf, buf)) return host_->all_reduce(buf, count, dtype, op);
  const ncclDataType_t type = nccl_type(dtype);
  const ncclRedOp_t red = nccl_op(op);
  enqueue(std::move(what), compute_stream(),
          [=, this](cudaStream_t s) { return ncclAllReduce(buf, buf, count, type, red, comm_, s); });
}

std::unique_ptr<CollectiveHandle> NcclCommunicator::all_reduce_async(void* buf, size_t count, DType dtype,
                                                                     ReduceOp op, StreamOrder order) {
  if (count == 0) return std::make_unique<DoneHandle>();
  std::string what = describe_collective("all_reduce", count, dtype, op);
  if (!on_device(what, buf, buf)) return host_->all_reduce_async(buf, count, dtype, op, order);
  const ncclDataType_t type = nccl_type(dtype);
  const ncclRedOp_t red = nccl_op(op);
  return start_async(std::move(what), order,
                     [=, this](cudaStream_t s) { return ncclAllReduce(buf, buf, count, type, red, comm_, s); });
}

// In place when send is this rank's block of recv (send == recv + rank * send_count): NCCL
// recognises the pointers, no flag is needed.
void NcclCommunicator::all_gather(const void* send, void* recv, size_t send_count, DType dtype) {
  if (send_count == 0) return;
  std::string what = describe_collective("all_gather", send_count, dtype);
  if (!on_device(what, send, recv)) return host_->all_gather(send, recv, send_count, dtype);
  const ncclDataType_t type = nccl_type(dtype);
  enqueue(std::move(what), compute_stream(),
          [=, this](cudaStream_t s) { return ncclAllGather(send, recv, send_count, type, comm_, s); });
}

std::unique_ptr<CollectiveHandle> NcclCommunicator::all_gather_async(const void* send, void* recv,
                                                                     size_t send_count, DType dtype,
                                                                     StreamOrder order) {
  if (send_count == 0) return std::make_unique<DoneHandle>();
  std::string what = describe_collective("all_gather", send_count, dtype);
  if (!on_device(what, send, recv)) return host_->all_gather_async(send, recv, send_count, dtype, order);
  const ncclDataType_t type = nccl_type(dtype);
  return start_async(std::move(what), order,
                     [=, this](cudaStream_t s) { return ncclAllGather(send, recv, send_count, type, comm_, s); });
}

// In place when recv is this rank's block of send (recv == send + rank * recv_count).
void NcclCommunicator::reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype, ReduceOp op) {
  if (recv_count == 0) return;
  std::string what = describe_collective("reduce_scatter", recv_count, dtype, op);
  if (!on_device(what, send, recv)) return host_->reduce_scatter(send, recv, recv_count, dtype, op);
  const ncclDataType_t type = nccl_type(dtype);
  const ncclRedOp_t red = nccl_op(op);
  enqueue(std::move(what), compute_stream(),
          [=, this](cudaStream_t s) { return ncclReduceScatter(send, recv, recv_count, type, red, comm_, s); });
}

std::unique_ptr<CollectiveHandle> NcclCommunicator::reduce_scatter_async(const void* send, void* recv,
                                                                         size_t recv_count, DType dtype, ReduceOp op,
                                                                         StreamOrder order) {
  if (recv_count == 0) return std::make_unique<DoneHandle>();
  std::string what = describe_collective("reduce_scatter", recv_count, dtype, op);
  if (!on_device(what, send, recv)) return host_->reduce_scatter_async(send, recv, recv_count, dtype, op, order);
  const ncclDataType_t type = nccl_type(dtype);
  const ncclRedOp_t red = nccl_op(op);
  return start_async(std::move(what), order, [=, this](cudaStream_t s) {
    return ncclReduceScatter(send, recv, recv_count, type, red, comm_, s);
  });
}

void NcclCommunicator::broadcast(void* buf, size_t count, DType dtype, int root) {
  std::string what = detail::concat("broadcast(count=", count, ", ", dtype_name(dtype), ", root=", root, ")");
  TESSERA_CHECK(root >= 0 && root < size(), what, " on group \"", group_name(), "\" of ", size(),
                " ranks: root out of range");
  if (count == 0) return;
  if (!on_device(what, buf, buf)) return host_->broadcast(buf, count, dtype, root);
  const ncclDataType_t type = nccl_type(dtype);
  enqueue(std::move(what), compute_stream(),
          [=, this](cudaStream_t s) { return ncclBroadcast(buf, buf, count, type, root, comm_, s); });
}

void NcclCommunicator::barrier() {
  // The watchdog ends the job if the last collective passes its deadline while we wait here.
  while (last_ != nullptr) {
    const cudaError_t state = cudaEventQuery(last_->done);
    if (state == cudaSuccess) break;
    if (state != cudaErrorNotReady)
      TESSERA_FAIL("barrier() on group \"", group_name(), "\": waiting for ", last_->what, ": CUDA error ",
                   cudaGetErrorName(state), " (", cudaGetErrorString(state), ")");
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  host_->barrier();
}

}  // namespace tessera::parallel
