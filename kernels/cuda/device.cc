// Finding a CUDA device and giving tensors device memory through the Allocator seam.
#include <cuda_runtime.h>

#include "core/allocator.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::kernels::cuda {
namespace {

// Which way a copy goes follows from the (destination, source) device pair.
cudaMemcpyKind copy_kind(Device dst, Device src) {
  if (src == Device::cpu) return dst == Device::cpu ? cudaMemcpyHostToHost : cudaMemcpyHostToDevice;
  return dst == Device::cpu ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
}

class CudaAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
  }
  // Called from ~Storage, so it must not throw. At process exit the runtime may already be
  // unloaded (cudaErrorCudartUnloading); the driver reclaims the memory then anyway.
  void deallocate(void* ptr) override {
    if (ptr != nullptr) (void)cudaFree(ptr);
  }
  void zero(void* ptr, size_t bytes) override {
    if (bytes > 0) CUDA_CHECK(cudaMemset(ptr, 0, bytes));
  }
  // cudaMemcpy on the default stream: ordered after the kernels already launched, and a copy to
  // the host returns only once the data is there.
  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) override {
    if (bytes > 0) CUDA_CHECK(cudaMemcpy(dst, src, bytes, copy_kind(dst_device, src_device)));
  }
};

bool probe_device() {
  int count = 0;
  // No driver, no device or a driver too old for this runtime all mean "no CUDA here", not an
  // error. Clear the runtime's last-error slot so the failed probe does not surface later.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  if (count <= 0) return false;
  static CudaAllocator allocator;
  register_cuda_allocator(&allocator);
  return true;
}

}  // namespace

bool device_available() {
  // A function-local static is initialised exactly once, even when threads race to it.
  static const bool available = probe_device();
  return available;
}

}  // namespace tessera::kernels::cuda
