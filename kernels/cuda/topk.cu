// The k best real logits of each row: cub::DeviceSegmentedRadixSort sorts each row's real columns
// in descending order, carrying the column index along as the value. Radix sort is stable (and
// takes -0.0 and +0.0 as equal), so among equal logits the lower column, hence the lower token id,
// comes first: the CPU's order (ranks_before, math.h). A small kernel then copies the first k of
// each row and fills the slots past the row's real columns with -inf and id -1. Rows are sorted in
// chunks of at most kChunkItems elements, which bounds the scratch memory and CUB's int sizes.
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>

#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {
namespace {

constexpr int64_t kChunkItems = int64_t{1} << 22;

// Offset r * cols + add: the begin (add 0) or end (add real_cols) of row r's real columns.
struct RowOffset {
  int cols, add;
  __host__ __device__ int operator()(int r) const { return r * cols + add; }
};

__global__ void column_index_kernel(int32_t* v, int64_t n, int64_t cols) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) v[i] = static_cast<int32_t>(i % cols);
}

// values/ids [rows, k] of rows [0, rows) of the chunk, from its sorted rows (row stride cols).
template <typename T>
__global__ void take_topk_kernel(const T* sorted_values, const int32_t* sorted_columns, int64_t rows, int64_t cols,
                                 int64_t real_cols, int64_t vocab_start, int64_t k, T* values, int32_t* ids) {
  for (int64_t i = grid_first(); i < rows * k; i += grid_stride()) {
    const int64_t r = i / k, s = i % k;
    if (s < real_cols) {
      values[i] = sorted_values[r * cols + s];
      ids[i] = static_cast<int32_t>(vocab_start + sorted_columns[r * cols + s]);
    } else {
      values[i] = negative_infinity<T>();
      ids[i] = -1;
    }
  }
}

template <typename T>
void row_topk_typed(const T* logits, int64_t rows, int64_t cols, int64_t real_cols, int64_t vocab_start, int64_t k,
                    T* values, int32_t* ids) {
  if (real_cols == 0) {  // nothing to sort: every slot is empty
    take_topk_kernel<<<blocks_for(rows * k), kThreads, 0, stream()>>>(static_cast<const T*>(nullptr),
                                                                      static_cast<const int32_t*>(nullptr), rows,
                                                                      cols, real_cols, vocab_start, k, values, ids);
    check_launch("row_topk");
    return;
  }
  TESSERA_CHECK(cols <= kChunkItems, "row_topk: rows of ", cols, " logits exceed the sort's chunk of ", kChunkItems);
  const int64_t chunk_rows = std::min(rows, kChunkItems / cols);
  const int64_t chunk_items = chunk_rows * cols;
  const auto begins = thrust::make_transform_iterator(thrust::make_counting_iterator<int>(0),
                                                      RowOffset{static_cast<int>(cols), 0});
  const auto ends = thrust::make_transform_iterator(thrust::make_counting_iterator<int>(0),
                                                    RowOffset{static_cast<int>(cols), static_cast<int>(real_cols)});
  // Temporary storage for the largest chunk, and for the last one, which may be smaller.
  size_t temp_bytes = 0;
  for (const int64_t n_rows : {chunk_rows, rows % chunk_rows}) {
    if (n_rows == 0) continue;
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
        nullptr, bytes, static_cast<const T*>(nullptr), static_cast<T*>(nullptr), static_cast<const int32_t*>(nullptr),
        static_cast<int32_t*>(nullptr), static_cast<int>(n_rows * cols), static_cast<int>(n_rows), begins, ends, 0,
        static_cast<int>(sizeof(T) * 8), stream()));
    temp_bytes = std::max(temp_bytes, bytes);
  }
  ScratchLayout layout;
  const size_t keys_at = layout.add<T>(chunk_items), columns_in_at = layout.add<int32_t>(chunk_items),
               columns_at = layout.add<int32_t>(chunk_items),
               temp_at = layout.add<char>(static_cast<int64_t>(temp_bytes));
  DeviceScratch scratch(layout.bytes());
  T* sorted_values = ScratchLayout::at<T>(scratch, keys_at);
  int32_t* columns_in = ScratchLayout::at<int32_t>(scratch, columns_in_at);
  int32_t* sorted_columns = ScratchLayout::at<int32_t>(scratch, columns_at);
  column_index_kernel<<<blocks_for(chunk_items), kThreads, 0, stream()>>>(columns_in, chunk_items, cols);
  check_launch("row_topk");
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t n_rows = std::min(chunk_rows, rows - r0);
    size_t bytes = temp_bytes;
    CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
        ScratchLayout::at<char>(scratch, temp_at), bytes, logits + r0 * cols, sorted_values,
        static_cast<const int32_t*>(columns_in), sorted_columns, static_cast<int>(n_rows * cols),
        static_cast<int>(n_rows), begins, ends, 0, static_cast<int>(sizeof(T) * 8), stream()));
    take_topk_kernel<<<blocks_for(n_rows * k), kThreads, 0, stream()>>>(sorted_values, sorted_columns, n_rows, cols,
                                                                        real_cols, vocab_start, k, values + r0 * k,
                                                                        ids + r0 * k);
    check_launch("row_topk");
  }
}

}  // namespace

void row_topk(const Tensor& logits, int64_t real_cols, int64_t vocab_start, int64_t k, Tensor& values, Tensor& ids) {
  const int64_t rows = logits.dim(0), cols = logits.dim(1);
  if (rows == 0 || k == 0) return;
  TESSERA_DISPATCH_FLOAT(logits.dtype(), "row_topk",
                         row_topk_typed(logits.data<scalar_t>(), rows, cols, real_cols, vocab_start, k,
                                        values.data<scalar_t>(), ids.data<int32_t>()));
}

}  // namespace tessera::kernels::cuda
