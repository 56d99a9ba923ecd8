#include "parallel/cuda/nccl_communicator.h"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/error.h"

// Every CUDA and NCCL call is checked and a failure names the call.
#define CUDA_CHECK(call)                                                                   \
  do {                                                                                     \
    cudaError_t cuda_check_rc = (call);                                                    \
    TESSERA_CHECK(cuda_check_rc == cudaSuccess, #call, " failed: ",                        \
                  cudaGetErrorString(cuda_check_rc));                                      \
  } while (0)
#define NCCL_CHECK(call)                                                                   \
  do {                                                                                     \
    ncclResult_t nccl_check_rc = (call);                                                   \
    TESSERA_CHECK(nccl_check_rc == ncclSuccess, #call, " failed: ",                        \
                  ncclGetErrorString(nccl_check_rc));                                      \
  } while (0)

namespace tessera::parallel {
namespace {

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::i32: return ncclInt32;
  }
  TESSERA_FAIL("unknown DType ", static_cast<int>(dtype));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::avg: return ncclAvg;
    case ReduceOp::max: return ncclMax;
  }
  TESSERA_FAIL("unknown ReduceOp ", static_cast<int>(op));
}

}  // namespace

// Owns the event recorded after one collective; wait() enforces the deadline.
class NcclCommunicator::Handle final : public CollectiveHandle {
 public:
  Handle(NcclCommunicator& comm, cudaEvent_t event, std::string what)
      : comm_(comm), event_(event), what_(std::move(what)) {}
  ~Handle() override { cudaEventDestroy(event_); }
  void wait() override { comm_.wait_event(event_, what_); }

 private:
  NcclCommunicator& comm_;
  cudaEvent_t event_;
  std::string what_;
};

NcclCommunicator::NcclCommunicator(Communicator& bootstrap, double timeout_s)
    : group_name_(bootstrap.group_name()),
      timeout_s_(timeout_s),
      rank_(bootstrap.rank()),
      size_(bootstrap.size()) {
  TESSERA_CHECK(timeout_s > 0, "--collective-timeout must be positive, got ", timeout_s);
  int mpi_up = 0;
  MPI_Initialized(&mpi_up);
  if (mpi_up) MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);

  // The id is opaque bytes; it travels as i32 words because DType has no byte type.
  ncclUniqueId id{};
  static_assert(sizeof(id) % sizeof(int32_t) == 0);
  if (rank_ == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  bootstrap.broadcast(&id, sizeof(id) / sizeof(int32_t), DType::i32, 0);

  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamDefault));
  CUDA_CHECK(cudaMalloc(&scratch_, sizeof(int)));
  NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
}

NcclCommunicator::~NcclCommunicator() {
  // Destructors cannot throw: release everything and ignore errors on the way out.
  if (comm_) {
    ncclCommFinalize(comm_);
    ncclCommDestroy(comm_);
  }
  if (scratch_) cudaFree(scratch_);
  if (stream_) cudaStreamDestroy(stream_);
}

std::unique_ptr<CollectiveHandle> NcclCommunicator::record(std::string what) {
  cudaEvent_t event = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  auto handle = std::make_unique<Handle>(*this, event, std::move(what));
  CUDA_CHECK(cudaEventRecord(event, stream_));
  return handle;
}

void NcclCommunicator::wait_event(cudaEvent_t event, const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(timeout_s_));
  for (;;) {
    cudaError_t state = cudaEventQuery(event);
    if (state == cudaSuccess) return;
    TESSERA_CHECK(state == cudaErrorNotReady, "cudaEventQuery after ", what, " on group \"",
                  group_name_, "\" failed: ", cudaGetErrorString(state));
    ncclResult_t async_error = ncclSuccess;
    NCCL_CHECK(ncclCommGetAsyncError(comm_, &async_error));
    TESSERA_CHECK(async_error == ncclSuccess || async_error == ncclInProgress, what,
                  " on group \"", group_name_, "\" failed in NCCL: ",
                  ncclGetErrorString(async_error));
    if (std::chrono::steady_clock::now() > deadline) abort_on_timeout(what);
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

void NcclCommunicator::abort_on_timeout(const std::string& what) {
  std::fprintf(stderr, "tessera: rank %d (world) timed out after %.1f s in %s on group \"%s\" of %d ranks\n",
               world_rank_, timeout_s_, what.c_str(), group_name_.c_str(), size_);
  std::fflush(stderr);
  ncclCommAbort(comm_);  // unblocks the kernels stuck waiting for the missing peer
  comm_ = nullptr;
  int mpi_up = 0;
  MPI_Initialized(&mpi_up);
  if (mpi_up) MPI_Abort(MPI_COMM_WORLD, 124);
  std::_Exit(124);
}

std::unique_ptr<CollectiveHandle> NcclCommunicator::all_reduce_async(void* buf, size_t count,
                                                                     DType dtype, ReduceOp op) {
  NCCL_CHECK(ncclAllReduce(buf, buf, count, nccl_type(dtype), nccl_op(op), comm_, stream_));
  return record(describe_collective("all_reduce", count, dtype, op));
}

void NcclCommunicator::all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) {
  all_reduce_async(buf, count, dtype, op)->wait();
}

void NcclCommunicator::all_gather(const void* send, void* recv, size_t send_count, DType dtype) {
  NCCL_CHECK(ncclAllGather(send, recv, send_count, nccl_type(dtype), comm_, stream_));
  record(describe_collective("all_gather", send_count, dtype))->wait();
}

void NcclCommunicator::reduce_scatter(const void* send, void* recv, size_t recv_count,
                                      DType dtype, ReduceOp op) {
  NCCL_CHECK(ncclReduceScatter(send, recv, recv_count, nccl_type(dtype), nccl_op(op), comm_,
                               stream_));
  record(describe_collective("reduce_scatter", recv_count, dtype, op))->wait();
}

void NcclCommunicator::broadcast(void* buf, size_t count, DType dtype, int root) {
  std::string what = detail::concat("broadcast(count=", count, ", ", dtype_name(dtype),
                                    ", root=", root, ")");
  TESSERA_CHECK(root >= 0 && root < size_, what, " on group \"", group_name_, "\" of ", size_,
                " ranks: root out of range");
  NCCL_CHECK(ncclBroadcast(buf, buf, count, nccl_type(dtype), root, comm_, stream_));
  record(std::move(what))->wait();
}

void NcclCommunicator::barrier() {
  NCCL_CHECK(ncclAllReduce(scratch_, scratch_, 1, ncclInt32, ncclSum, comm_, stream_));
  record("barrier()")->wait();
}

}  // namespace tessera::parallel
