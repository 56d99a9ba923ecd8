// The CUDA runtime as a rank uses it: one GPU chosen before any other CUDA call, one non-blocking
// stream that every kernel, copy and cuBLAS call of the rank runs on, launch checks that name the
// op, and NVTX ranges for profilers. Host code only (no kernels here), so .cc files include it.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/dtype.h"

namespace tessera::kernels::cuda {

struct DeviceInfo {
  int ordinal = 0;             // among the visible GPUs (CUDA_VISIBLE_DEVICES applied)
  int visible = 0;             // how many GPUs this process sees
  std::string name;            // e.g. "NVIDIA H100 80GB HBM3"
  int major = 0, minor = 0;    // compute capability
  size_t memory_bytes = 0;
};

// Chooses GPU `local_rank` for a rank that is one of `local_ranks` on its node (or the only visible
// GPU, when the launcher gave each rank its own: srun --gpus-per-task=1), creates the rank's
// stream, cuBLAS handle and memory pool, and registers the device allocator. Throws
// tessera::Error, saying what to change, when no GPU is visible, when the node has more ranks than
// visible GPUs, or when this build holds no code for the GPU's compute capability. A process uses
// one GPU: once chosen, later calls return it.
DeviceInfo select_device(int local_rank, int local_ranks);
// The selected device; select_device(0, 1) on first use when nothing was selected (tests, tools).
Device current_device();
// True when a GPU is visible and usable; selects GPU 0 when none was selected yet. Never throws.
bool device_available();
// Why device_available() is false, in a sentence ("" when it is true).
std::string unavailable_reason();

// The rank's compute stream (non-blocking: it never waits on the legacy default stream).
cudaStream_t stream();
// After a kernel launch: throws naming `op` if the launch failed. With TESSERA_CUDA_SYNC=1 in the
// environment it also waits for the kernel and reports an error it raised, still naming `op`.
void check_launch(const char* op);
// Waits for everything queued on the stream; throws naming `what` on an asynchronous error.
void synchronize(const char* what);

// Asynchronous host-to-device copy through pinned staging buffers: returns once `src` has been
// copied into a pinned buffer, so the caller may reuse it at once, while the DMA overlaps compute.
void copy_to_device_async(void* dst, const void* src, size_t bytes);

// True when `p` points into device memory (as opposed to host memory, pinned or not).
bool is_device_pointer(const void* p);

// An NVTX range (visible in Nsight Systems) for the lifetime of the object.
class NvtxRange {
 public:
  explicit NvtxRange(const char* name);
  ~NvtxRange();
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace tessera::kernels::cuda
