#include "core/allocator.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"

namespace tessera {
namespace {

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    TESSERA_CHECK(p != nullptr, "out of host memory allocating ", bytes, " bytes");
    return p;
  }
  void deallocate(void* ptr) override { std::free(ptr); }
  void zero(void* ptr, size_t bytes) override { std::memset(ptr, 0, bytes); }
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
};

Allocator* g_cuda_allocator = nullptr;

}  // namespace

Allocator& cpu_allocator() {
  static CpuAllocator allocator;
  return allocator;
}

void register_cuda_allocator(Allocator* allocator) { g_cuda_allocator = allocator; }

Allocator& allocator_for(Device device) {
  if (device == Device::cpu) return cpu_allocator();
  TESSERA_CHECK(g_cuda_allocator != nullptr,
                "a cuda tensor was requested but the CUDA backend is not built or no GPU is present");
  return *g_cuda_allocator;
}

}  // namespace tessera
