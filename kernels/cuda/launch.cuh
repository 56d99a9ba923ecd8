// What every CUDA kernel file shares: launch geometry (grid-stride loops over elements, one block
// per row), a block-wide reduction whose result every thread sees (cub::BlockReduce), and
// stream-ordered scratch memory. Everything runs on the rank's stream (runtime.h).
#pragma once

#include <cub/cub.cuh>
#include <cuda/std/limits>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels::cuda {

// Threads per block of every kernel here (a multiple of the warp size).
constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the GPU, never near the grid limit.
inline int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 8192)); }
// Blocks for a kernel with one block per row that strides over rows past the grid.
inline int blocks_for_rows(int64_t rows) { return static_cast<int>(std::min<int64_t>(rows, int64_t{1} << 20)); }

// The grid-stride loop: this thread's first element and the stride, in 64-bit.
__device__ __forceinline__ int64_t grid_first() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

// A reduction over the block whose result every thread receives. `temp` and `result` are
// __shared__; the call synchronises the block, so it must be reached by every thread, and the
// same storage may serve the next call.
template <typename T>
using BlockReduceT = cub::BlockReduce<T, kThreads>;

template <typename T, typename Op>
__device__ __forceinline__ T block_all_reduce(T value, Op op, typename BlockReduceT<T>::TempStorage& temp,
                                              T& result) {
  const T r = BlockReduceT<T>(temp).Reduce(value, op);
  if (threadIdx.x == 0) result = r;
  __syncthreads();
  const T all = result;
  __syncthreads();  // everyone has read `result` (and left `temp`) before the next call writes them
  return all;
}

// -infinity of T, in host and device code.
template <typename T>
__host__ __device__ __forceinline__ T negative_infinity() { return -::cuda::std::numeric_limits<T>::infinity(); }

struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(const T& a, const T& b) const { return a + b; }
};
struct MaxOp {  // std::max's choice: a unless a < b
  template <typename T>
  __device__ __forceinline__ T operator()(const T& a, const T& b) const { return a < b ? b : a; }
};

// Device memory for the duration of one op, ordered on the stream: freed (cudaFreeAsync) after
// the work queued before the destructor runs, so kernels queued earlier may still use it.
class DeviceScratch {
 public:
  explicit DeviceScratch(size_t bytes) {
    if (bytes > 0) CUDA_CHECK(cudaMallocAsync(&ptr_, bytes, stream()));
  }
  ~DeviceScratch() {
    if (ptr_ != nullptr && cudaFreeAsync(ptr_, stream()) != cudaSuccess) (void)cudaGetLastError();
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

// Carves typed arrays out of one allocation, each aligned for any CUB or vector access.
class ScratchLayout {
 public:
  template <typename T>
  size_t add(int64_t count) {
    const size_t offset = bytes_;
    bytes_ += (static_cast<size_t>(count) * sizeof(T) + 255) / 256 * 256;
    return offset;
  }
  size_t bytes() const { return bytes_; }
  template <typename T>
  static T* at(const DeviceScratch& s, size_t offset) {
    return reinterpret_cast<T*>(static_cast<char*>(s.get()) + offset);
  }

 private:
  size_t bytes_ = 0;
};

}  // namespace tessera::kernels::cuda
