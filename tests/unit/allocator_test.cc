// The host allocator's cache of large blocks: reuse, best fit, and a bound on what it keeps idle.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/allocator.h"

namespace tessera {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(HostAllocator, AFreedBlockServesTheNextRequestOfItsSizeOrSomewhatSmaller) {
  Allocator& a = cpu_allocator();
  void* p = a.allocate(8 * kMiB);
  a.deallocate(p);
  void* q = a.allocate(8 * kMiB);
  EXPECT_EQ(q, p) << "the idle block of the same size is reused";
  a.deallocate(q);
  // A shape that shrinks (rows of finished sentences leave the batch) takes the same block.
  void* r = a.allocate(5 * kMiB);
  EXPECT_EQ(r, p) << "a request up to twice smaller reuses the idle block";
  a.deallocate(r);
  void* s = a.allocate(3 * kMiB);
  EXPECT_NE(s, p) << "a block more than twice the request is not taken";
  a.deallocate(s);
}

// Shapes that drift (batches of a translation sorted by length) leave one idle block per size in a
// cache that keeps everything: 10 + 20 + ... + 400 MiB = 8.2 GiB here. The cache is bounded by
// 9/8 of the most ever in use at once (400 MiB), freeing the oldest idle blocks. Blocks are never touched, so the
// test costs address space, not memory.
TEST(HostAllocator, IdleBlocksStayWithinThePeakInUse) {
  Allocator& a = cpu_allocator();
  for (size_t mib = 10; mib <= 400; mib += 10) {
    void* p = a.allocate(mib * kMiB);
    ASSERT_NE(p, nullptr);
    a.deallocate(p);
    const HostCacheStats st = host_cache_stats();
    EXPECT_LE(st.in_use_bytes + st.idle_bytes, st.peak_in_use_bytes / 8 * 9) << "after a block of " << mib << " MiB";
  }
  const HostCacheStats st = host_cache_stats();
  EXPECT_GE(st.peak_in_use_bytes, 400 * kMiB);
  EXPECT_LE(st.idle_bytes, st.peak_in_use_bytes / 8 * 9);
  // The most recent (largest) block is still cached: it serves the next request of its size.
  void* again = a.allocate(400 * kMiB);
  const HostCacheStats now = host_cache_stats();
  EXPECT_EQ(now.peak_in_use_bytes, st.peak_in_use_bytes) << "no new block was needed";
  EXPECT_EQ(now.idle_bytes + (now.in_use_bytes - st.in_use_bytes), st.idle_bytes) << "a block moved from idle to use";
  a.deallocate(again);
}

}  // namespace
}  // namespace tessera
