// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011). A draw is a pure function of a
// 64-bit key and a 128-bit counter, so any rank can produce the number for any element without
// sharing state: Tessera keys by (seed, step) and counts by (purpose, global coordinates), which
// makes dropout masks and initial weights independent of the parallel layout.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define TESSERA_HD __host__ __device__ __forceinline__
#else
#define TESSERA_HD inline
#endif

namespace tessera {

struct PhiloxKey {
  uint32_t k0, k1;
};
struct PhiloxCounter {
  uint32_t c0, c1, c2, c3;
};
struct PhiloxBlock {
  uint32_t x[4];
};

TESSERA_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Ten rounds of Philox4x32 on `ctr` under `key`: four independent uniform 32-bit words.
TESSERA_HD PhiloxBlock philox4x32(PhiloxCounter ctr, PhiloxKey key) {
  uint32_t c0 = ctr.c0, c1 = ctr.c1, c2 = ctr.c2, c3 = ctr.c3, k0 = key.k0, k1 = key.k1;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return PhiloxBlock{{c0, c1, c2, c3}};
}

// A uniform float in [0, 1) from the top 24 bits of a word.
TESSERA_HD float philox_uniform(uint32_t word) { return (word >> 8) * (1.0f / 16777216.0f); }

// What a random stream is for; part of the counter so streams never collide.
enum class RngPurpose : uint32_t {
  init = 1,
  dropout_embedding = 2,
  dropout_attention = 3,
  dropout_residual = 4,
  data_order = 5,
};

// Key of one training step's random streams.
TESSERA_HD PhiloxKey philox_key(uint64_t seed, uint32_t step) {
  return PhiloxKey{static_cast<uint32_t>(seed) ^ static_cast<uint32_t>(seed >> 32) * 0x85EBCA6Bu, step};
}

}  // namespace tessera
