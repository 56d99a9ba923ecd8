// The rank's GPU, stream, memory pool and pinned staging buffers (see runtime.h).
//
// Memory: tensors come from the device's stream-ordered pool (cudaMallocAsync / cudaFreeAsync on
// the rank's stream) with its release threshold raised to "never", so after the first step every
// allocation is served from memory the pool already holds: a caching allocator without a
// cudaFree per tensor. Because all of the rank's work runs on one stream, a block freed in stream
// order is reused only after the kernels that read it.
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/allocator.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/runtime.h"

#ifndef TESSERA_CUDA_ARCHITECTURES
#define TESSERA_CUDA_ARCHITECTURES "unknown"
#endif

namespace tessera::kernels::cuda {
namespace {

// An empty kernel: asking for its attributes tells whether this binary holds code (SASS for the
// GPU's architecture, or PTX the driver can compile) that runs on the current device.
__global__ void image_probe_kernel() {}

struct Runtime {
  std::mutex mutex;
  std::atomic<bool> selected{false};  // set last, after stream and info; read without the mutex
  DeviceInfo info;
  cudaStream_t stream = nullptr;
  std::string unavailable;  // why selecting GPU 0 failed, once it was tried
  bool tried = false;
};
Runtime& runtime() {
  static Runtime* r = new Runtime;  // never destroyed: tensors may be freed after main returns
  return *r;
}

bool sync_after_every_kernel() {
  static const bool on = [] {
    const char* v = std::getenv("TESSERA_CUDA_SYNC");
    return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
  }();
  return on;
}

// Host-to-device copies go through two pinned buffers used in turn: the host memcpy into one
// overlaps the DMA out of the other, and a buffer is refilled only after its last copy finished.
class PinnedStaging {
 public:
  static constexpr size_t kChunk = size_t{8} << 20;

  void copy(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t done = 0; done < bytes;) {
      Buffer& b = buffers_[next_];
      next_ ^= 1;
      if (b.host == nullptr) {
        CUDA_CHECK(cudaMallocHost(&b.host, kChunk));
        CUDA_CHECK(cudaEventCreateWithFlags(&b.copied, cudaEventDisableTiming));
      } else {
        CUDA_CHECK(cudaEventSynchronize(b.copied));
      }
      const size_t n = std::min(kChunk, bytes - done);
      std::memcpy(b.host, static_cast<const char*>(src) + done, n);
      CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + done, b.host, n, cudaMemcpyHostToDevice, stream));
      CUDA_CHECK(cudaEventRecord(b.copied, stream));
      done += n;
    }
  }

 private:
  struct Buffer {
    void* host = nullptr;
    cudaEvent_t copied = nullptr;
  };
  std::mutex mutex_;
  Buffer buffers_[2];
  int next_ = 0;
};
PinnedStaging& staging() {
  static PinnedStaging* s = new PinnedStaging;
  return *s;
}

class CudaAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    const cudaError_t status = cudaMallocAsync(&p, bytes, stream());
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_bytes = 0, total = 0;
      (void)cudaMemGetInfo(&free_bytes, &total);
      TESSERA_FAIL("out of GPU memory on ", device_name(current_device()), " allocating ", bytes, " bytes (",
                   free_bytes >> 20, " MiB of ", total >> 20, " MiB free): lower --max-tokens or use more ranks");
    }
    CUDA_CHECK(status);
    return p;
  }
  // Called from ~Storage, so it must not throw. At process exit the runtime may already be
  // unloaded (cudaErrorCudartUnloading); the driver reclaims the memory then anyway.
  void deallocate(void* ptr) override {
    if (ptr != nullptr && cudaFreeAsync(ptr, stream()) != cudaSuccess) (void)cudaGetLastError();
  }
  void zero(void* ptr, size_t bytes) override {
    if (bytes > 0) CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, stream()));
  }
  // Stream-ordered like the kernels. A copy to the host returns once the data is there; a copy
  // from the host returns once the source may be reused (it went through pinned staging).
  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) override {
    if (bytes == 0) return;
    if (src_device.is_cpu() && dst_device.is_cpu()) {
      std::memcpy(dst, src, bytes);
    } else if (src_device.is_cpu()) {
      copy_to_device_async(dst, src, bytes);
    } else if (dst_device.is_cpu()) {
      CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
      synchronize("a device-to-host copy");
    } else {
      CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
    }
  }
  // Pinning only speeds the copies up. Where the platform refuses it (cudaDevAttrHostRegisterSupported
  // is 0, or the range shares a page with a registered one) the copies run from pageable memory.
  bool pin_host(void* host, size_t bytes) override {
    if (bytes == 0) return false;
    if (cudaHostRegister(host, bytes, cudaHostRegisterDefault) == cudaSuccess) return true;
    (void)cudaGetLastError();  // clear the error: nothing failed that the caller must know of
    return false;
  }
  void unpin_host(void* host) override { (void)cudaHostUnregister(host); }
  // One 2-D copy for all runs (cudaMemcpy2DAsync: width = row_bytes, height = rows).
  void copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes,
                 size_t rows) override {
    if (row_bytes > 0 && rows > 0)
      CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, rows, cudaMemcpyDeviceToDevice,
                                   stream()));
  }
};

std::string visible_devices_note() {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  return v == nullptr ? std::string(" (CUDA_VISIBLE_DEVICES is not set)") : " (CUDA_VISIBLE_DEVICES=" + std::string(v) + ")";
}

// The GPU of local rank `local_rank` among `local_ranks`: the one with its index among the visible
// GPUs, or the only one when the launcher gave each rank its own (srun --gpus-per-task=1 and
// CUDA_VISIBLE_DEVICES per rank leave every rank seeing one GPU, its own).
DeviceInfo select_locked(Runtime& r, int local_rank, int local_ranks) {
  if (r.selected.load(std::memory_order_acquire)) return r.info;  // one GPU per process, chosen once
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    TESSERA_FAIL("--device cuda: no usable CUDA device: cudaGetDeviceCount returned ", cudaGetErrorName(status), " (",
                 cudaGetErrorString(status), ")", visible_devices_note(),
                 ". Is the NVIDIA driver loaded and a GPU allocated to this job?");
  }
  TESSERA_CHECK(count > 0, "--device cuda: no CUDA device is visible", visible_devices_note());
  TESSERA_CHECK(count == 1 || local_ranks <= count, "--device cuda: this node runs ", local_ranks,
                " ranks but sees only ", count, " GPUs", visible_devices_note(),
                "; start at most one rank per GPU (mpirun --npernode ", count, ", or srun --gpus-per-task=1)");
  const int ordinal = count == 1 ? 0 : local_rank;
  TESSERA_CHECK(ordinal >= 0 && ordinal < count, "--device cuda: local rank ", local_rank, " has no GPU among ", count);
  CUDA_CHECK(cudaSetDevice(ordinal));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal));
  cudaFuncAttributes attributes{};
  const cudaError_t image = cudaFuncGetAttributes(&attributes, image_probe_kernel);
  if (image != cudaSuccess) {
    (void)cudaGetLastError();
    TESSERA_FAIL("--device cuda: GPU ", ordinal, " (", prop.name, ") has compute capability ", prop.major, ".",
                 prop.minor, ", but this build holds code only for CUDA architectures ", TESSERA_CUDA_ARCHITECTURES,
                 " (", cudaGetErrorString(image), "); rebuild with -DCMAKE_CUDA_ARCHITECTURES=", prop.major,
                 prop.minor);
  }
  CUDA_CHECK(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));
  // Keep freed blocks in the pool instead of returning them to the driver at each synchronisation.
  cudaMemPool_t pool = nullptr;
  CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, ordinal));
  uint64_t keep_all = UINT64_MAX;
  CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));

  r.info.ordinal = ordinal;
  r.info.visible = count;
  r.info.name = prop.name;
  r.info.major = prop.major;
  r.info.minor = prop.minor;
  r.info.memory_bytes = prop.totalGlobalMem;
  // Never destroyed, like the CPU allocator: tensors may be freed after main returns.
  static CudaAllocator* allocator = new CudaAllocator;
  register_cuda_allocator(allocator, Device::cuda(ordinal));
  r.selected.store(true, std::memory_order_release);
  return r.info;
}

}  // namespace

DeviceInfo select_device(int local_rank, int local_ranks) {
  Runtime& r = runtime();
  std::lock_guard<std::mutex> lock(r.mutex);
  return select_locked(r, local_rank, local_ranks);
}

bool device_available() {
  Runtime& r = runtime();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.selected.load(std::memory_order_acquire)) return true;
  if (!r.tried) {
    r.tried = true;
    try {
      select_locked(r, 0, 1);
    } catch (const Error& e) {
      r.unavailable = e.what();
    }
  }
  return r.selected.load(std::memory_order_acquire);
}

std::string unavailable_reason() {
  if (device_available()) return "";
  return runtime().unavailable;
}

Device current_device() {
  Runtime& r = runtime();
  std::lock_guard<std::mutex> lock(r.mutex);
  return Device::cuda(select_locked(r, 0, 1).ordinal);
}

cudaStream_t stream() {
  Runtime& r = runtime();
  if (!r.selected.load(std::memory_order_acquire)) current_device();
  return r.stream;
}

void check_launch(const char* op) {
  const cudaError_t launch = cudaGetLastError();
  if (launch != cudaSuccess)
    TESSERA_FAIL(op, ": kernel launch failed: ", cudaGetErrorName(launch), " (", cudaGetErrorString(launch), ")");
  if (sync_after_every_kernel()) synchronize(op);
}

void synchronize(const char* what) {
  const cudaError_t status = cudaStreamSynchronize(stream());
  if (status != cudaSuccess)
    TESSERA_FAIL(what, ": CUDA error ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ")",
                 sync_after_every_kernel() ? "" : "; it may come from an earlier kernel: rerun with TESSERA_CUDA_SYNC=1 "
                                                  "to name the op that raised it");
}

void copy_to_device_async(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) staging().copy(dst, src, bytes, stream());
}

bool is_device_pointer(const void* p) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice;
}

NvtxRange::NvtxRange(const char* name) { nvtxRangePushA(name); }
NvtxRange::~NvtxRange() { nvtxRangePop(); }

}  // namespace tessera::kernels::cuda
