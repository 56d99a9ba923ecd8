#include "parallel/host_staged_communicator.h"

#include <vector>

#include "core/allocator.h"
#if defined(TESSERA_WITH_CUDA)
#include "kernels/cuda/runtime.h"
#endif

namespace tessera::parallel {
namespace {

bool on_device(const void* p) {
#if defined(TESSERA_WITH_CUDA)
  return p != nullptr && kernels::cuda::is_device_pointer(p);
#else
  return false;
#endif
}

// A host copy of a buffer that may live on the device; write_back() returns the result.
class Staged {
 public:
  Staged(void* buf, size_t bytes, Device device, bool read)
      : buf_(buf), bytes_(bytes), device_(device), staged_(on_device(buf)) {
    if (!staged_) return;
    host_.resize(bytes);
    if (read) allocator_for(device_).copy(host_.data(), Device::cpu, buf_, device_, bytes_);
  }
  void* data() { return staged_ ? host_.data() : buf_; }
  void write_back() {
    if (staged_) allocator_for(device_).copy(buf_, device_, host_.data(), Device::cpu, bytes_);
  }

 private:
  void* buf_;
  size_t bytes_;
  Device device_;
  bool staged_;
  std::vector<char> host_;
};

class DoneHandle final : public CollectiveHandle {
 public:
  void wait() override {}
};

class StagedHandle final : public CollectiveHandle {
 public:
  StagedHandle(std::unique_ptr<Staged> staged, std::unique_ptr<CollectiveHandle> inner)
      : staged_(std::move(staged)), inner_(std::move(inner)) {}
  ~StagedHandle() override {
    // The buffer must not stay stale when a handle is dropped unwaited.
    if (!done_) try { wait(); } catch (...) {}
  }
  void wait() override {
    if (done_) return;
    inner_->wait();
    staged_->write_back();
    done_ = true;
  }

 private:
  std::unique_ptr<Staged> staged_;
  std::unique_ptr<CollectiveHandle> inner_;
  bool done_ = false;
};

}  // namespace

HostStagedCommunicator::HostStagedCommunicator(std::unique_ptr<Communicator> inner, Device device)
    : inner_(std::move(inner)), device_(device) {}

void HostStagedCommunicator::all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) {
  Staged b(buf, count * dtype_size(dtype), device_, true);
  inner_->all_reduce(b.data(), count, dtype, op);
  b.write_back();
}

std::unique_ptr<CollectiveHandle> HostStagedCommunicator::all_reduce_async(void* buf, size_t count, DType dtype,
                                                                           ReduceOp op, StreamOrder) {
  auto b = std::make_unique<Staged>(buf, count * dtype_size(dtype), device_, true);
  auto inner = inner_->all_reduce_async(b->data(), count, dtype, op);
  return std::make_unique<StagedHandle>(std::move(b), std::move(inner));
}

void HostStagedCommunicator::all_gather(const void* send, void* recv, size_t send_count, DType dtype) {
  const size_t bytes = send_count * dtype_size(dtype);
  Staged s(const_cast<void*>(send), bytes, device_, true), r(recv, bytes * size(), device_, false);
  inner_->all_gather(s.data(), r.data(), send_count, dtype);
  r.write_back();
}

void HostStagedCommunicator::reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype,
                                            ReduceOp op) {
  const size_t bytes = recv_count * dtype_size(dtype);
  Staged s(const_cast<void*>(send), bytes * size(), device_, true), r(recv, bytes, device_, false);
  inner_->reduce_scatter(s.data(), r.data(), recv_count, dtype, op);
  r.write_back();
}

std::unique_ptr<CollectiveHandle> HostStagedCommunicator::all_gather_async(const void* send, void* recv,
                                                                           size_t send_count, DType dtype,
                                                                           StreamOrder) {
  all_gather(send, recv, send_count, dtype);
  return std::make_unique<DoneHandle>();
}

std::unique_ptr<CollectiveHandle> HostStagedCommunicator::reduce_scatter_async(const void* send, void* recv,
                                                                               size_t recv_count, DType dtype,
                                                                               ReduceOp op, StreamOrder) {
  reduce_scatter(send, recv, recv_count, dtype, op);
  return std::make_unique<DoneHandle>();
}

void HostStagedCommunicator::broadcast(void* buf, size_t count, DType dtype, int root) {
  Staged b(buf, count * dtype_size(dtype), device_, true);
  inner_->broadcast(b.data(), count, dtype, root);
  b.write_back();
}

}  // namespace tessera::parallel
