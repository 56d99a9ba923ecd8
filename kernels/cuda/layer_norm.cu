// Layer normalisation (Ba et al. 2016) over the last dimension, one block per row: a block
// reduction gives the mean, a second the sum of squared deviations (two passes over the row, as
// on the CPU, never E[x^2] - E[x]^2), and each thread normalises its own columns. Backward: dx
// per row from two block reductions (mean of g = dy * gamma and of g * xhat); dgamma and dbeta
// are column sums over rows, computed deterministically by column_sums.cuh (no atomics).
#include "kernels/cuda/column_sums.cuh"
#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {
namespace {

template <typename T>
__global__ void layer_norm_forward_kernel(const T* x, const T* gamma, const T* beta, T eps, T* y, T* mean, T* rstd,
                                          int64_t rows, int64_t cols) {
  __shared__ typename BlockReduceT<T>::TempStorage temp;
  __shared__ T result;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T sum = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += xr[c];
    const T mu = block_all_reduce(sum, SumOp(), temp, result) / cols;
    T sq = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sq += (xr[c] - mu) * (xr[c] - mu);
    const T rs = layer_norm_rstd(block_all_reduce(sq, SumOp(), temp, result), cols, eps);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = layer_norm_y(xr[c], mu, rs, gamma[c], beta[c]);
    if (threadIdx.x == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
  }
}

// dx may be dy: each thread writes only the elements it alone read, after the reductions.
template <typename T>
__global__ void layer_norm_dx_kernel(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx,
                                     int64_t rows, int64_t cols) {
  __shared__ typename BlockReduceT<T>::TempStorage temp;
  __shared__ T result;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    T* dxr = dx + r * cols;
    const T mu = mean[r], rs = rstd[r];
    T sum_g = 0, sum_gx = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const T g = dyr[c] * gamma[c];
      sum_g += g;
      sum_gx += g * layer_norm_xhat(xr[c], mu, rs);
    }
    const T mean_g = block_all_reduce(sum_g, SumOp(), temp, result) / cols;
    const T mean_gx = block_all_reduce(sum_gx, SumOp(), temp, result) / cols;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      dxr[c] = layer_norm_dx(dyr[c], gamma[c], layer_norm_xhat(xr[c], mu, rs), rs, mean_g, mean_gx);
  }
}

// The two column-sum terms of element (r, c): dgamma's dy * xhat and dbeta's dy.
template <typename T>
struct LayerNormParamTerms {
  const T* x;
  const T* dy;
  const T* mean;
  const T* rstd;
  int64_t cols;
  __device__ __forceinline__ void operator()(int64_t r, int64_t c, T* v) const {
    const T d = dy[r * cols + c];
    v[0] = d * layer_norm_xhat(x[r * cols + c], mean[r], rstd[r]);
    v[1] = d;
  }
};

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
