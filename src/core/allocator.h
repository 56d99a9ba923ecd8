// Where tensor storage comes from. CPU memory is 64-byte aligned (one cache line, a full AVX-512
// vector); CUDA memory comes from the CUDA backend, which registers its allocator at start-up.
#pragma once

#include <cstddef>

#include "core/dtype.h"

namespace tessera {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr) = 0;
  virtual void zero(void* ptr, size_t bytes) = 0;
  // Copies between this allocator's device and the host (or within the device).
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) = 0;
  // `rows` runs of row_bytes within this device: run i from src + i * src_pitch to dst + i * dst_pitch.
  virtual void copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes,
                         size_t rows) = 0;
  // Page-locks `bytes` of host memory at `host` so that copies between it and this device run at
  // full bus speed (cudaHostRegister); false where pinning means nothing (the CPU) or the platform
  // refuses it (the memory stays pageable and copies still work). unpin_host
  // undoes it and never throws.
  virtual bool pin_host(void* /*host*/, size_t /*bytes*/) { return false; }
  virtual void unpin_host(void* /*host*/) {}
};

Allocator& cpu_allocator();
// What the host allocator's cache of large blocks holds now, and the most ever in use at once.
struct HostCacheStats {
  size_t in_use_bytes = 0, idle_bytes = 0, peak_in_use_bytes = 0;
};
HostCacheStats host_cache_stats();
// The allocator for `device`; throws tessera::Error when that backend is not built or present.
Allocator& allocator_for(Device device);
// Called by the CUDA backend once the rank's GPU is chosen: memory of `device` comes from `allocator`.
void register_cuda_allocator(Allocator* allocator, Device device);

}  // namespace tessera
