// Layer normalisation of one row by one block, forward and backward, as every CUDA kernel that
// normalises computes it (layer_norm.cu alone, residual_layer_norm.cu fused with the residual sum
// and dropout): each thread takes columns threadIdx.x, + blockDim.x, ..., and block reductions
// (cub) give the row's mean, squared deviations and the two means of the backward. One
// definition, so the fused and unfused kernels reduce in the same order and agree bit for bit.
// Every thread of the block must call these (they synchronise).
#pragma once

#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {

// a * b and a + b each rounded on their own, never contracted into one FMA (nvcc contracts
// a * b + c by default): the arithmetic of the unfused kernels, which round between passes.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

// y = (x - mean) * rstd * gamma + beta over row xr (two reductions: the mean, then the squared
// deviations); thread 0 stores the row's mean and rstd.
template <typename T>
__device__ void layer_norm_row_forward(const T* xr, const T* gamma, const T* beta, T eps, T* yr, T* mean, T* rstd,
                                       int64_t cols, typename BlockReduceT<T>::TempStorage& temp, T& result) {
  T sum = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += xr[c];
  const T mu = block_all_reduce(sum, SumOp(), temp, result) / cols;
  T sq = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sq += (xr[c] - mu) * (xr[c] - mu);
  const T rs = layer_norm_rstd(block_all_reduce(sq, SumOp(), temp, result), cols, eps);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = layer_norm_y(xr[c], mu, rs, gamma[c], beta[c]);
  if (threadIdx.x == 0) {
    *mean = mu;
    *rstd = rs;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma, over one row, plus dres
// when it is not null. dx may be dy: each thread writes only the elements it alone read, after
// the reductions.
template <typename T>
__device__ void layer_norm_row_dx(const T* xr, const T* gamma, T mu, T rs, const T* dyr, const T* dres, T* dxr,
                                  int64_t cols, typename BlockReduceT<T>::TempStorage& temp, T& result) {
  T sum_g = 0, sum_gx = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const T g = dyr[c] * gamma[c];
    sum_g += g;
    sum_gx += g * layer_norm_xhat(xr[c], mu, rs);
  }
  const T mean_g = block_all_reduce(sum_g, SumOp(), temp, result) / cols;
  const T mean_gx = block_all_reduce(sum_gx, SumOp(), temp, result) / cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const T d = layer_norm_dx(dyr[c], gamma[c], layer_norm_xhat(xr[c], mu, rs), rs, mean_g, mean_gx);
    dxr[c] = dres != nullptr ? add_rn(d, dres[c]) : d;
  }
}

// The two column-sum terms of element (r, c) for column_sums.cuh: dgamma's dy * xhat and dbeta's dy.
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

}  // namespace tessera::kernels::cuda
