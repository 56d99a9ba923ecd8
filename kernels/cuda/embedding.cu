// Vocabulary-parallel embedding lookup, its gradient, and sinusoidal positions.
//
// The gradient dtable[id] += scale * dout[n] over the tokens n with that id is computed without
// atomics, so it is the same on every run: cub::DeviceRadixSort sorts the (id, token) pairs by id
// (stably, so each id's tokens stay in token order, the order the CPU adds them in), and the first
// block to reach each run of equal ids adds that run's rows of dout into the id's row, a thread
// per column.
#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {
namespace {

template <typename T>
__global__ void embedding_forward_kernel(const int32_t* ids, const T* table, int64_t vocab_start, int64_t vocab_rows,
                                         T scale, T* out, int64_t n, int64_t d) {
  for (int64_t i = grid_first(); i < n * d; i += grid_stride()) {
    const int64_t token = i / d, c = i % d;
    const int64_t row = embedding_row(ids[token], vocab_start, vocab_rows);
    out[i] = row >= 0 ? scale * table[row * d + c] : T(0);
  }
}

__global__ void iota_kernel(int32_t* v, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) v[i] = static_cast<int32_t>(i);
}

// sorted_ids[p] with its token sorted_tokens[p], grouped by id with tokens ascending in a group.
template <typename T>
__global__ void embedding_backward_kernel(const int32_t* sorted_ids, const int32_t* sorted_tokens, const T* dout,
                                          int64_t vocab_start, int64_t vocab_rows, T scale, T* dtable, int64_t n,
                                          int64_t d) {
  for (int64_t p = blockIdx.x; p < n; p += gridDim.x) {
    const int32_t id = sorted_ids[p];
    if (p > 0 && sorted_ids[p - 1] == id) continue;  // not the first token of its id
    const int64_t row = embedding_row(id, vocab_start, vocab_rows);
    if (row < 0) continue;  // another rank's slice holds this id
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
      T acc = dtable[row * d + c];
      for (int64_t q = p; q < n && sorted_ids[q] == id; ++q) acc += scale * dout[sorted_tokens[q] * d + c];
      dtable[row * d + c] = acc;
    }
  }
}

template <typename T>
__global__ void add_positions_kernel(T* x, int64_t rows, int64_t d, int64_t seq_len, int64_t position_offset) {
  for (int64_t i = grid_first(); i < rows * d; i += grid_stride()) {
    const int64_t r = i / d, c = i % d;
    x[i] += sinusoid<T>(r % seq_len + position_offset, c, d);
  }
}

}  // namespace

void embedding_forward(const Tensor& ids, const Tensor& table, int64_t vocab_start, double scale, Tensor& out) {
  const int64_t n = ids.numel(), d = table.dim(1);
  if (n == 0 || d == 0) return;
  TESSERA_DISPATCH_FLOAT(table.dtype(), "embedding_forward", {
    embedding_forward_kernel<<<blocks_for(n * d), kThreads, 0, stream()>>>(
        ids.data<int32_t>(), table.data<scalar_t>(), vocab_start, table.dim(0), static_cast<scalar_t>(scale),
        out.data<scalar_t>(), n, d);
    check_launch("embedding_forward");
  });
}

void embedding_backward(const Tensor& ids, const Tensor& dout, int64_t vocab_start, double scale, Tensor& dtable) {
  const int64_t n = ids.numel(), d = dtable.dim(1);
  if (n == 0 || d == 0) return;
  TESSERA_CHECK(n <= INT_MAX, "embedding_backward: ", n, " tokens exceed the 32-bit token index of the sort");
  TESSERA_CHECK(dtable.dtype() == DType::f32 || dtable.dtype() == DType::f64, "embedding_backward: unsupported dtype ",
                dtype_name(dtable.dtype()));
  size_t sort_bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), n, 0, 32, stream()));
  ScratchLayout layout;
  const size_t ids_at = layout.add<int32_t>(n), tokens_in_at = layout.add<int32_t>(n),
               tokens_at = layout.add<int32_t>(n), temp_at = layout.add<char>(static_cast<int64_t>(sort_bytes));
  DeviceScratch scratch(layout.bytes());
  int32_t* sorted_ids = ScratchLayout::at<int32_t>(scratch, ids_at);
  int32_t* tokens_in = ScratchLayout::at<int32_t>(scratch, tokens_in_at);
  int32_t* sorted_tokens = ScratchLayout::at<int32_t>(scratch, tokens_at);
  iota_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(tokens_in, n);
  check_launch("embedding_backward");
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(ScratchLayout::at<char>(scratch, temp_at), sort_bytes,
                                             ids.data<int32_t>(), sorted_ids, static_cast<const int32_t*>(tokens_in),
                                             sorted_tokens, n, 0, 32, stream()));
  TESSERA_DISPATCH_FLOAT(dtable.dtype(), "embedding_backward", {
    embedding_backward_kernel<<<blocks_for_rows(n), kThreads, 0, stream()>>>(
        sorted_ids, sorted_tokens, dout.data<scalar_t>(), vocab_start, dtable.dim(0), static_cast<scalar_t>(scale),
        dtable.data<scalar_t>(), n, d);
    check_launch("embedding_backward");
  });
}

void add_positions(Tensor& x, int64_t seq_len, int64_t position_offset) {
  const int64_t rows = x.dim(0), d = x.dim(1);
  if (rows == 0 || d == 0) return;
  TESSERA_DISPATCH_FLOAT(x.dtype(), "add_positions", {
    add_positions_kernel<<<blocks_for(rows * d), kThreads, 0, stream()>>>(x.data<scalar_t>(), rows, d, seq_len,
                                                                          position_offset);
    check_launch("add_positions");
  });
}

}  // namespace tessera::kernels::cuda
