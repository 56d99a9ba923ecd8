// The sublayer output path fused, one block per row:
//   forward:  sum = residual + mask * x / (1 - p), then y = LN(sum) (layer_norm_row.cuh);
//   backward: dx = LN'(dy) (+ dresidual), then dx_dropped = mask * dx / (1 - p).
// A thread draws one Philox block for four adjacent columns (dropout_row_counter, math.h), as
// dropout.cu does; the row's sum or dx is then re-read by the block after a barrier (from L1/L2,
// not a second kernel's pass over memory). The parameter gradients are layer_norm.cu's column
// sums. Every step rounds where the unfused kernels round, so results are theirs bit for bit.
#include "kernels/cuda/column_sums.cuh"
#include "kernels/cuda/layer_norm_row.cuh"

namespace tessera::kernels::cuda {
namespace {

// out[c] = (residual ? residual[c] : 0) + in[c] * mask(c) over row `r`, four columns per Philox
// block; with a null residual, out[c] = in[c] * mask(c) (dropout.cu's arithmetic either way).
template <typename T>
__device__ void dropout_row(const DropoutSite& site, const PhiloxKey& key, int64_t r, const T* in, const T* residual,
                            T* out, int64_t cols) {
  const T keep_scale = dropout_keep_scale<T>(site.p);
  PhiloxCounter ctr = dropout_row_counter(site, r);
  for (int64_t g = threadIdx.x; 4 * g < cols; g += blockDim.x) {
    ctr.c0 = static_cast<uint32_t>(g);
    const PhiloxBlock words = philox4x32(ctr, key);
    for (int k = 0; k < 4 && 4 * g + k < cols; ++k) {
      const int64_t c = 4 * g + k;
      const T mask = dropout_keep_word(words.x[k], site.p) ? keep_scale : T(0);
      out[c] = residual != nullptr ? residual[c] + mul_rn(in[c], mask) : mul_rn(in[c], mask);
    }
  }
}

template <typename T>
__global__ void dropout_add_layer_norm_kernel(DropoutSite site, const T* x, const T* residual, const T* gamma,
                                              const T* beta, T eps, T* sum, T* y, T* mean, T* rstd, int64_t rows,
                                              int64_t cols) {
  __shared__ typename BlockReduceT<T>::TempStorage temp;
  __shared__ T result;
  const PhiloxKey key = philox_key(site.seed, site.step);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    dropout_row(site, key, r, x + r * cols, residual + r * cols, sum + r * cols, cols);
    __syncthreads();  // the row's sum, written by the block, is read by other threads below
    layer_norm_row_forward(sum + r * cols, gamma, beta, eps, y + r * cols, mean + r, rstd + r, cols, temp, result);
  }
}

template <typename T>
__global__ void layer_norm_add_dropout_dx_kernel(DropoutSite site, const T* x, const T* gamma, const T* mean,
                                                 const T* rstd, const T* dy, const T* dresidual, T* dx, T* dx_dropped,
                                                 int64_t rows, int64_t cols) {
  __shared__ typename BlockReduceT<T>::TempStorage temp;
  __shared__ T result;
  const PhiloxKey key = philox_key(site.seed, site.step);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    layer_norm_row_dx(x + r * cols, gamma, mean[r], rstd[r], dy + r * cols,
                      dresidual != nullptr ? dresidual + r * cols : nullptr, dx + r * cols, cols, temp, result);
    if (dx_dropped == nullptr) continue;
    __syncthreads();  // the row's dx, written by the block, is read by other threads below
    dropout_row(site, key, r, static_cast<const T*>(dx + r * cols), static_cast<const T*>(nullptr),
                dx_dropped + r * cols, cols);
  }
}

}  // namespace

void dropout_add_layer_norm_forward(const DropoutSite& site, const Tensor& x, const Tensor& residual,
                                    const Tensor& gamma, const Tensor& beta, double eps, Tensor& sum, Tensor& y,
                                    Tensor& mean, Tensor& rstd) {
  const int64_t cols = x.dim(-1);
  if (x.numel() == 0) return;
  const int64_t rows = x.numel() / cols;
  TESSERA_DISPATCH_FLOAT(x.dtype(), "dropout_add_layer_norm_forward", {
    dropout_add_layer_norm_kernel<<<blocks_for_rows(rows), kThreads, 0, stream()>>>(
        site, x.data<scalar_t>(), residual.data<scalar_t>(), gamma.data<scalar_t>(), beta.data<scalar_t>(),
        static_cast<scalar_t>(eps), sum.data<scalar_t>(), y.data<scalar_t>(), mean.data<scalar_t>(),
        rstd.data<scalar_t>(), rows, cols);
    check_launch("dropout_add_layer_norm_forward");
  });
}

void layer_norm_add_dropout_backward(const DropoutSite& site, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                     const Tensor& rstd, const Tensor& dy, const Tensor& dresidual, Tensor& dx,
                                     Tensor& dx_dropped, Tensor& dgamma, Tensor& dbeta) {
  const int64_t cols = x.dim(-1);
  if (x.numel() == 0) return;
  const int64_t rows = x.numel() / cols;
  TESSERA_DISPATCH_FLOAT(x.dtype(), "layer_norm_add_dropout_backward", {
    // The parameter gradients first: they read dy, which dx may overwrite.
    add_column_sums(LayerNormParamTerms<scalar_t>{x.data<scalar_t>(), dy.data<scalar_t>(), mean.data<scalar_t>(),
                                                  rstd.data<scalar_t>(), cols},
                    rows, cols, ColumnOutputs<scalar_t, 2>{{dgamma.data<scalar_t>(), dbeta.data<scalar_t>()}},
                    "layer_norm_add_dropout_backward");
    layer_norm_add_dropout_dx_kernel<<<blocks_for_rows(rows), kThreads, 0, stream()>>>(
        site, x.data<scalar_t>(), gamma.data<scalar_t>(), mean.data<scalar_t>(), rstd.data<scalar_t>(),
        dy.data<scalar_t>(), dresidual.defined() ? dresidual.data<scalar_t>() : nullptr, dx.data<scalar_t>(),
        dx_dropped.defined() ? dx_dropped.data<scalar_t>() : nullptr, rows, cols);
    check_launch("layer_norm_add_dropout_backward");
  });
}

}  // namespace tessera::kernels::cuda
