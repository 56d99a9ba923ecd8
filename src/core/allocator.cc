#include "core/allocator.h"

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
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
// batches of slightly different shapes share blocks, and a request takes the smallest idle block
// of its class or up to twice its size (best fit): a shape that shrinks step by step, like the
// rows of a decoder whose sentences finish, reuses one block instead of leaving one idle block per
// size behind. The cache (blocks in use and idle together) never holds more than 9/8 of the most
// ever in use at once: a miss first frees the blocks idle the longest until the new block fits
// (the eighth spared keeps the blocks every step reuses through phases that set a new peak), so a
// run whose shapes drift (a translation sorted by length, whose batches grow) keeps what its
// current shapes use instead of one block of every shape it has seen. Large blocks come from
// mmap and go back to the system when freed (a fixed M_MMAP_THRESHOLD: glibc would otherwise raise
// its threshold after each such free and keep later blocks in a heap it cannot shrink).
class CpuAllocator final : public Allocator {
 public:
  CpuAllocator() { ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(kCacheMinBytes < INT32_MAX ? kCacheMinBytes : INT32_MAX)); }
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    if (bytes < kCacheMinBytes) return checked_alloc((bytes + 63) / 64 * 64, bytes);
    const size_t size = size_class(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    void* p = nullptr;
    size_t block = size;
    auto it = idle_.lower_bound(size);
    if (it != idle_.end() && it->first <= 2 * size) {
      block = it->first;
      p = it->second.back().ptr;  // the most recently freed: likely still in cache
      it->second.pop_back();
      if (it->second.empty()) idle_.erase(it);
      idle_bytes_ -= block;
    } else {
      // A miss: the cache (blocks in use and idle) may hold no more than 9/8 of the most ever in
      // use at once, so idle blocks that do not fit make room, oldest first.
      const size_t limit = std::max(peak_in_use_bytes_, in_use_bytes_ + size) / 8 * 9;
      while (!idle_.empty() && in_use_bytes_ + idle_bytes_ + size > limit) release_oldest_idle_locked();
      p = checked_alloc(size, bytes);
    }
    cached_size_[p] = block;
    in_use_bytes_ += block;
    peak_in_use_bytes_ = std::max(peak_in_use_bytes_, in_use_bytes_);
    return p;
  }

  void deallocate(void* ptr) override {
    if (ptr == nullptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cached_size_.find(ptr);
    if (it == cached_size_.end()) return std::free(ptr);  // a small block
    idle_[it->second].push_back({ptr, ++clock_});
    idle_bytes_ += it->second;
    in_use_bytes_ -= it->second;
    cached_size_.erase(it);
    const size_t limit = std::min(kCacheMaxBytes, peak_in_use_bytes_ / 8 * 9);
    while (idle_bytes_ > limit) release_oldest_idle_locked();
  }

  HostCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {in_use_bytes_, idle_bytes_, peak_in_use_bytes_};
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
  // Frees the block idle the longest. Each size's blocks are in the order they were freed, so the
  // oldest block is the first of some size.
  void release_oldest_idle_locked() {
    auto oldest = idle_.begin();
    for (auto it = idle_.begin(); it != idle_.end(); ++it)
      if (it->second.front().freed_at < oldest->second.front().freed_at) oldest = it;
    std::free(oldest->second.front().ptr);
    oldest->second.erase(oldest->second.begin());
    idle_bytes_ -= oldest->first;
    if (oldest->second.empty()) idle_.erase(oldest);
  }

  struct IdleBlock {
    void* ptr;
    uint64_t freed_at;  // clock_ when it was freed
  };
  std::mutex mutex_;
  std::unordered_map<void*, size_t> cached_size_;     // blocks in use that return to idle_
  std::map<size_t, std::vector<IdleBlock>> idle_;     // freed blocks by size, oldest first; no empty lists
  size_t idle_bytes_ = 0, in_use_bytes_ = 0, peak_in_use_bytes_ = 0;
  uint64_t clock_ = 0;
};

Allocator* g_cuda_allocator = nullptr;
Device g_cuda_device = Device::cpu;

CpuAllocator& the_cpu_allocator() {
  // Never destroyed: tensors with static storage may free their memory after main returns.
  static CpuAllocator* allocator = new CpuAllocator;
  return *allocator;
}

}  // namespace

Allocator& cpu_allocator() { return the_cpu_allocator(); }

HostCacheStats host_cache_stats() { return the_cpu_allocator().stats(); }

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
