// Label-smoothed cross-entropy over this rank's slice of the vocabulary, one block per row: block
// reductions give the row's max, then sum_j exp(z_j - max) and sum_j z_j (the all-reduces between
// the steps, in the model, combine the ranks' slices). The loss and dlogits are per-row and
// per-element formulas of math.h. row_argmax reduces (value, column) pairs with ranks_before, so
// ties go to the lowest column, as on the CPU.
#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {
namespace {

template <typename T>
__global__ void row_max_kernel(const T* logits, int64_t rows, int64_t cols, int64_t real_cols, T* row_max) {
  __shared__ typename BlockReduceT<T>::TempStorage temp;
  __shared__ T result;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* z = logits + r * cols;
    T mx = negative_infinity<T>();
    for (int64_t j = threadIdx.x; j < real_cols; j += blockDim.x) mx = MaxOp()(mx, z[j]);
    mx = block_all_reduce(mx, MaxOp(), temp, result);
    if (threadIdx.x == 0) row_max[r] = mx;
  }
}

template <typename T>
__global__ void row_sums_kernel(const T* logits, int64_t rows, int64_t cols, int64_t real_cols,
                                const int32_t* targets, int64_t vocab_start, const T* row_max, T* sums) {
  __shared__ typename BlockReduceT<T>::TempStorage temp;
  __shared__ T result;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* z = logits + r * cols;
    const T mx = row_max[r];
    T sum_exp = 0, sum_z = 0;
    for (int64_t j = threadIdx.x; j < real_cols; j += blockDim.x) {
      sum_exp += cross_entropy_exp(z[j], mx);
      sum_z += z[j];
    }
    sum_exp = block_all_reduce(sum_exp, SumOp(), temp, result);
    sum_z = block_all_reduce(sum_z, SumOp(), temp, result);
    if (threadIdx.x == 0) {
      const int64_t t = static_cast<int64_t>(targets[r]) - vocab_start;
      sums[3 * r + 0] = sum_exp;
      sums[3 * r + 1] = (t >= 0 && t < real_cols) ? z[t] : T(0);
      sums[3 * r + 2] = sum_z;
    }
  }
}

// dlogits may be logits: each element is read and then written by the same thread.
template <typename T>
__global__ void loss_backward_kernel(const T* logits, int64_t rows, int64_t cols, int64_t real_cols,
                                     const int32_t* targets, int64_t vocab_start, const T* row_max, const T* sums,
                                     T eps, T uniform, int64_t vocab_size, int32_t pad_id, T g, T* row_loss,
                                     T* dlogits) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* z = logits + r * cols;
    T* dz = dlogits + r * cols;
    if (targets[r] == pad_id) {
      if (threadIdx.x == 0) row_loss[r] = T(0);
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dz[j] = T(0);
      continue;
    }
    const T log_z = cross_entropy_log_z(row_max[r], sums[3 * r + 0]);
    if (threadIdx.x == 0)
      row_loss[r] = cross_entropy_row_loss(log_z, sums[3 * r + 1], sums[3 * r + 2], eps, vocab_size);
    const int64_t t = static_cast<int64_t>(targets[r]) - vocab_start;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      if (j >= real_cols) {
        dz[j] = T(0);
        continue;
      }
      const T d = cross_entropy_dlogit(z[j], log_z, g, uniform);
      dz[j] = j == t ? cross_entropy_target_dlogit(d, g, eps) : d;
    }
  }
}

// A candidate for the row's best column; `column` INT64_MAX marks none.
template <typename T>
struct Best {
  T value;
  int64_t column;
};
struct BestOp {
  template <typename T>
  __device__ __forceinline__ Best<T> operator()(const Best<T>& a, const Best<T>& b) const {
    if (b.column == INT64_MAX) return a;
    if (a.column == INT64_MAX) return b;
    return ranks_before(b.value, b.column, a.value, a.column) ? b : a;
  }
};

template <typename T>
__global__ void row_argmax_kernel(const T* logits, int64_t rows, int64_t cols, int64_t real_cols,
                                  int64_t vocab_start, T* max_value, int32_t* max_index) {
  __shared__ typename BlockReduceT<Best<T>>::TempStorage temp;
  __shared__ Best<T> result;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* z = logits + r * cols;
    Best<T> best{negative_infinity<T>(), INT64_MAX};
    for (int64_t j = threadIdx.x; j < real_cols; j += blockDim.x) best = BestOp()(best, Best<T>{z[j], j});
    best = block_all_reduce(best, BestOp(), temp, result);
    if (threadIdx.x == 0) {
      // No real column: -inf at the slice's first id, as on the CPU.
      max_value[r] = best.column == INT64_MAX ? negative_infinity<T>() : best.value;
      max_index[r] = static_cast<int32_t>(vocab_start + (best.column == INT64_MAX ? 0 : best.column));
    }
  }
}

}  // namespace

void cross_entropy_row_max(const Tensor& logits, int64_t real_cols, Tensor& row_max) {
  const int64_t rows = logits.dim(0), cols = logits.dim(1);
  if (rows == 0) return;
  TESSERA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_row_max", {
    row_max_kernel<<<blocks_for_rows(rows), kThreads, 0, stream()>>>(logits.data<scalar_t>(), rows, cols, real_cols,
                                                                     row_max.data<scalar_t>());
    check_launch("cross_entropy_row_max");
  });
}

void cross_entropy_row_sums(const Tensor& logits, int64_t real_cols, const Tensor& targets, int64_t vocab_start,
                            const Tensor& row_max, Tensor& sums) {
  const int64_t rows = logits.dim(0), cols = logits.dim(1);
  if (rows == 0) return;
  TESSERA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_row_sums", {
    row_sums_kernel<<<blocks_for_rows(rows), kThreads, 0, stream()>>>(
        logits.data<scalar_t>(), rows, cols, real_cols, targets.data<int32_t>(), vocab_start,
        row_max.data<scalar_t>(), sums.data<scalar_t>());
    check_launch("cross_entropy_row_sums");
  });
}

void cross_entropy_loss_backward(const Tensor& logits, int64_t real_cols, const Tensor& targets, int64_t vocab_start,
                                 const Tensor& row_max, const Tensor& sums, double smoothing, int64_t vocab_size,
                                 int32_t pad_id, double grad_scale, Tensor& row_loss, Tensor& dlogits) {
  const int64_t rows = logits.dim(0), cols = logits.dim(1);
  if (rows == 0) return;
  TESSERA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_loss_backward", {
    const scalar_t eps = static_cast<scalar_t>(smoothing);
    const scalar_t uniform = eps / static_cast<scalar_t>(vocab_size);
    loss_backward_kernel<<<blocks_for_rows(rows), kThreads, 0, stream()>>>(
        logits.data<scalar_t>(), rows, cols, real_cols, targets.data<int32_t>(), vocab_start,
        row_max.data<scalar_t>(), sums.data<scalar_t>(), eps, uniform, vocab_size, pad_id,
        static_cast<scalar_t>(grad_scale), row_loss.data<scalar_t>(), dlogits.data<scalar_t>());
    check_launch("cross_entropy_loss_backward");
  });
}

void row_argmax(const Tensor& logits, int64_t real_cols, int64_t vocab_start, Tensor& max_value, Tensor& max_index) {
  const int64_t rows = logits.dim(0), cols = logits.dim(1);
  if (rows == 0) return;
  TESSERA_DISPATCH_FLOAT(logits.dtype(), "row_argmax", {
    row_argmax_kernel<<<blocks_for_rows(rows), kThreads, 0, stream()>>>(logits.data<scalar_t>(), rows, cols,
                                                                         real_cols, vocab_start,
                                                                         max_value.data<scalar_t>(),
                                                                         max_index.data<int32_t>());
    check_launch("row_argmax");
  });
}

}  // namespace tessera::kernels::cuda
