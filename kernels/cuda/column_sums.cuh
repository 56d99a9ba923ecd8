// Deterministic column sums out[s][c] += sum_r f(r, c)[s] over a [rows, cols] matrix, without
// atomics: pass 1 cuts the rows into fixed chunks of kChunkRows; a block takes 32 columns of one
// chunk, its 8 warps read whole 128-byte row segments (lane = column) and each lane sums its
// warp's rows in order; the 8 warp partials are added in warp order into partial[chunk]. Pass 2
// adds the chunks' partials in chunk order. The order of every addition is fixed by the shape
// alone, so the result is the same on every run and every GPU.
#pragma once

#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {

constexpr int kColumnTile = 32;                     // columns per block: one per lane
constexpr int kColumnWarps = kThreads / kColumnTile;  // warps per block, each over every 8th row
constexpr int64_t kChunkRows = 256;                 // rows per chunk of pass 1

// Where the kSums column sums go: device arrays of cols elements each, passed by value.
template <typename T, int kSums>
struct ColumnOutputs {
  T* column[kSums];
};

// f(r, c, v) fills v[0..kSums) for element (r, c) (a functor with a __device__ call operator);
// partial is [chunks, kSums, cols].
template <typename T, int kSums, typename Fn>
__global__ void column_partials_kernel(Fn f, int64_t rows, int64_t cols, int64_t col_tiles, int64_t tiles,
                                       T* partial) {
  __shared__ T warp_sums[kSums][kColumnWarps][kColumnTile];
  const int lane = threadIdx.x % kColumnTile, warp = threadIdx.x / kColumnTile;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t chunk = tile / col_tiles, c = (tile % col_tiles) * kColumnTile + lane;
    const int64_t r_end = rows < (chunk + 1) * kChunkRows ? rows : (chunk + 1) * kChunkRows;
    T acc[kSums];
    for (int s = 0; s < kSums; ++s) acc[s] = T(0);
    if (c < cols) {
      for (int64_t r = chunk * kChunkRows + warp; r < r_end; r += kColumnWarps) {
        T v[kSums];
        f(r, c, v);
        for (int s = 0; s < kSums; ++s) acc[s] += v[s];
      }
    }
    for (int s = 0; s < kSums; ++s) warp_sums[s][warp][lane] = acc[s];
    __syncthreads();
    if (warp == 0 && c < cols) {
      for (int s = 0; s < kSums; ++s) {
        T total = warp_sums[s][0][lane];
        for (int w = 1; w < kColumnWarps; ++w) total += warp_sums[s][w][lane];
        partial[(chunk * kSums + s) * cols + c] = total;
      }
    }
    __syncthreads();  // warp_sums is rewritten by the next tile
  }
}

// out.column[s][c] += the sum over chunks of partial[chunk, s, c], in chunk order.
template <typename T, int kSums>
__global__ void column_totals_kernel(const T* partial, int64_t chunks, int64_t cols, ColumnOutputs<T, kSums> out) {
  for (int64_t i = grid_first(); i < kSums * cols; i += grid_stride()) {
    const int64_t s = i / cols, c = i % cols;
    T total = T(0);
    for (int64_t chunk = 0; chunk < chunks; ++chunk) total += partial[(chunk * kSums + s) * cols + c];
    out.column[s][c] += total;
  }
}

// Adds the column sums of f over a rows x cols matrix into out (two kernels on the stream).
template <typename T, int kSums, typename Fn>
void add_column_sums(Fn f, int64_t rows, int64_t cols, ColumnOutputs<T, kSums> out, const char* op) {
  if (rows == 0 || cols == 0) return;
  const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
  const int64_t col_tiles = (cols + kColumnTile - 1) / kColumnTile;
  const int64_t tiles = chunks * col_tiles;
  DeviceScratch partial(static_cast<size_t>(chunks * kSums * cols) * sizeof(T));
  column_partials_kernel<T, kSums><<<blocks_for_rows(tiles), kThreads, 0, stream()>>>(
      f, rows, cols, col_tiles, tiles, static_cast<T*>(partial.get()));
  check_launch(op);
  column_totals_kernel<T, kSums><<<blocks_for(kSums * cols), kThreads, 0, stream()>>>(
      static_cast<const T*>(partial.get()), chunks, cols, out);
  check_launch(op);
}

}  // namespace tessera::kernels::cuda
