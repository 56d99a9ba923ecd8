#include "core/allocator.h"

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace tessera {
namespace {

// Host memory, 64-byte aligned. Blocks of at least kCacheMinBytes are kept for reuse when freed:
// a training step allocates and frees the same activation sizes every step, and memory fresh from
// the kernel costs a page fault per 4 KiB page on first touch (about 17k faults per step of the
// small model before this cache). Sizes round up to a class (an eighth of their power of two) so
// batches of slightly different shapes share blocks; past kCacheMaxBytes of idle blocks, all idle
// blocks go back to the system.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    if (bytes < kCacheMinBytes) return checked_alloc((bytes + 63) / 64 * 64, bytes);
    const size_t size = size_class(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    void* p = nullptr;
    auto it = idle_.find(size);
    if (it != idle_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      idle_bytes_ -= size;
    } else {
      p = checked_alloc(size, bytes);
    }
    cached_size_[p] = size;
    return p;
  }

  void deallocate(void* ptr) override {
    if (ptr == nullptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cached_size_.find(ptr);
    if (it == cached_size_.end()) return std::free(ptr);  // a small block
    idle_[it->second].push_back(ptr);
    idle_bytes_ += it->second;
    cached_size_.erase(it);
    if (idle_bytes_ > kCacheMaxBytes) release_idle_locked();
  }

  void zero(void* ptr, size_t bytes) override { std::memset(ptr, 0, bytes); }
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes,
                 size_t rows) override {
    for (size_t i = 0; i < rows; ++i)
      std::memcpy(static_cast<char*>(dst) + i * dst_pitch, static_cast<const char*>(src) + i * src_pitch, row_bytes);
  }

 private:
#if defined(__SANITIZE_ADDRESS__)
  static constexpr size_t kCacheMinBytes = SIZE_MAX;  // AddressSanitizer sees every free
#else
  static constexpr size_t kCacheMinBytes = size_t{256} << 10;
#endif
  static constexpr size_t kCacheMaxBytes = size_t{4} << 30;

  static void* checked_alloc(size_t rounded, size_t bytes) {
    void* p = std::aligned_alloc(64, rounded);
    TESSERA_CHECK(p != nullptr, "out of host memory allocating ", bytes, " bytes");
    return p;
  }
  // bytes rounded up to a multiple of an eighth of its power of two (a multiple of 64).
  static size_t size_class(size_t bytes) {
    const size_t step = std::bit_floor(bytes) / 8;
    return (bytes + step - 1) / step * step;
  }
  void release_idle_locked() {
    for (auto& [size, blocks] : idle_)
      for (void* p : blocks) std::free(p);
    idle_.clear();
    idle_bytes_ = 0;
  }

  std::mutex mutex_;
  std::unordered_map<void*, size_t> cached_size_;      // blocks in use that return to idle_
  std::map<size_t, std::vector<void*>> idle_;          // freed blocks by size class
  size_t idle_bytes_ = 0;
};

Allocator* g_cuda_allocator = nullptr;
Device g_cuda_device = Device::cpu;

}  // namespace

Allocator& cpu_allocator() {
  // Never destroyed: tensors with static storage may free their memory after main returns.
  static CpuAllocator* allocator = new CpuAllocator;
  return *allocator;
}

void register_cuda_allocator(Allocator* allocator, Device device) {
  g_cuda_allocator = allocator;
  g_cuda_device = device;
}

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) return cpu_allocator();
  TESSERA_CHECK(g_cuda_allocator != nullptr, "a tensor on ", device_name(device),
                " was requested, but no GPU was selected (run with --device cuda on a machine with a GPU and a "
                "build with the CUDA backend)");
  TESSERA_CHECK(device == g_cuda_device, "a tensor on ", device_name(device), " was requested, but this rank uses ",
                device_name(g_cuda_device), " (one GPU per rank)");
  return *g_cuda_allocator;
}

}  // namespace tessera
