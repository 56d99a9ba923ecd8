// Layer normalisation (Ba et al. 2016) over the last dimension, one block per row
// (layer_norm_row.cuh): a block reduction gives the mean, a second the sum of squared deviations
// (two passes over the row, as on the CPU, never E[x^2] - E[x]^2), and each thread normalises its
// own columns. Backward: dx per row from two block reductions (mean of g = dy * gamma and of
// g * xhat); dgamma and dbeta are column sums over rows, computed deterministically by
// column_sums.cuh (no atomics).
#include "kernels/cuda/column_sums.cuh"
#include "kernels/cuda/layer_norm_row.cuh"

namespace tessera::kernels::cuda {
namespace {

template <typename T>
__global__ void layer_norm_forward_kernel(const T* x, const T* gamma, const T* beta, T eps, T* y, T* mean, T* rstd,
                                          int64_t rows, int64_t cols) {
  __shared__ typename BlockReduceT<T>::TempStorage temp;
  __shared__ T result;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x)
    layer_norm_row_forward(x + r * cols, gamma, beta, eps, y + r * cols, mean + r, rstd + r, cols, temp, result);
}

// dx may be dy (layer_norm_row_dx).
template <typename T>
__global__ void layer_norm_dx_kernel(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx,
                                     int64_t rows, int64_t cols) {
  __shared__ typename BlockReduceT<T>::TempStorage temp;
  __shared__ T result;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x)
    layer_norm_row_dx(x + r * cols, gamma, mean[r], rstd[r], dy + r * cols, static_cast<const T*>(nullptr),
                      dx + r * cols, cols, temp, result);
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y, Tensor& mean,
                        Tensor& rstd) {
  const int64_t cols = x.dim(-1);
  if (x.numel() == 0) return;
  const int64_t rows = x.numel() / cols;
  TESSERA_DISPATCH_FLOAT(x.dtype(), "layer_norm_forward", {
    layer_norm_forward_kernel<<<blocks_for_rows(rows), kThreads, 0, stream()>>>(
        x.data<scalar_t>(), gamma.data<scalar_t>(), beta.data<scalar_t>(), static_cast<scalar_t>(eps),
        y.data<scalar_t>(), mean.data<scalar_t>(), rstd.data<scalar_t>(), rows, cols);
    check_launch("layer_norm_forward");
  });
}

void layer_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  const int64_t cols = x.dim(-1);
  if (x.numel() == 0) return;
  const int64_t rows = x.numel() / cols;
  TESSERA_DISPATCH_FLOAT(x.dtype(), "layer_norm_backward", {
    // The parameter gradients first: they read dy, which dx may overwrite.
    add_column_sums(LayerNormParamTerms<scalar_t>{x.data<scalar_t>(), dy.data<scalar_t>(), mean.data<scalar_t>(),
                                                  rstd.data<scalar_t>(), cols},
                    rows, cols, ColumnOutputs<scalar_t, 2>{{dgamma.data<scalar_t>(), dbeta.data<scalar_t>()}},
                    "layer_norm_backward");
    layer_norm_dx_kernel<<<blocks_for_rows(rows), kThreads, 0, stream()>>>(
        x.data<scalar_t>(), gamma.data<scalar_t>(), mean.data<scalar_t>(), rstd.data<scalar_t>(),
        dy.data<scalar_t>(), dx.data<scalar_t>(), rows, cols);
    check_launch("layer_norm_backward");
  });
}

}  // namespace tessera::kernels::cuda
