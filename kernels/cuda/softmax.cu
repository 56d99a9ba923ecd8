// Masked softmax over the last dimension of attention scores, one block per row: the row's
// visible keys (masked_softmax_visible, math.h) are the first `visible`; a block reduction takes
// their max, each thread writes exp(scale * (s - max)) for its keys, a second reduction sums
// them, and each thread rescales its own keys by 1 / sum. Masked keys get exactly 0. Backward:
// ds = scale * p * (dp - sum_j p_j dp_j), the sum again a block reduction.
#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {
namespace {

template <typename T>
__global__ void masked_softmax_forward_kernel(const T* scores, const int32_t* key_lengths, bool causal, T scale,
                                              T* probs, int64_t rows, int64_t heads, int64_t sq, int64_t sk) {
  __shared__ typename BlockReduceT<T>::TempStorage temp;
  __shared__ T result;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t b = r / (heads * sq), i = r % sq;
    const int64_t visible = masked_softmax_visible(sk, sq, i, key_lengths[b], causal);
    const T* s = scores + r * sk;
    T* p = probs + r * sk;
    T mx = negative_infinity<T>();
    for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) mx = MaxOp()(mx, s[j]);
    mx = block_all_reduce(mx, MaxOp(), temp, result);
    T sum = 0;
    for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) {
      p[j] = masked_softmax_exp(s[j], mx, scale);
      sum += p[j];
    }
    sum = block_all_reduce(sum, SumOp(), temp, result);
    const T inv = visible > 0 ? T(1) / sum : T(0);
    for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) p[j] *= inv;
    for (int64_t j = visible + threadIdx.x; j < sk; j += blockDim.x) p[j] = T(0);
  }
}

// dscores may be dprobs: each thread writes only the elements it alone read, after the reduction.
template <typename T>
__global__ void masked_softmax_backward_kernel(const T* probs, const T* dprobs, T scale, T* dscores, int64_t rows,
                                               int64_t cols) {
  __shared__ typename BlockReduceT<T>::TempStorage temp;
  __shared__ T result;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* p = probs + r * cols;
    const T* dp = dprobs + r * cols;
    T* ds = dscores + r * cols;
    T dot = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dot += p[j] * dp[j];
    dot = block_all_reduce(dot, SumOp(), temp, result);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) ds[j] = softmax_backward_element(p[j], dp[j], dot, scale);
  }
}

}  // namespace

void masked_softmax_forward(const Tensor& scores, const Tensor& key_lengths, bool causal, double scale,
                            Tensor& probs) {
  const int64_t batch = scores.dim(0), heads = scores.dim(1), sq = scores.dim(2), sk = scores.dim(3);
  const int64_t rows = batch * heads * sq;
  if (rows == 0 || sk == 0) return;
  TESSERA_DISPATCH_FLOAT(scores.dtype(), "masked_softmax_forward", {
    masked_softmax_forward_kernel<<<blocks_for_rows(rows), kThreads, 0, stream()>>>(
        scores.data<scalar_t>(), key_lengths.data<int32_t>(), causal, static_cast<scalar_t>(scale),
        probs.data<scalar_t>(), rows, heads, sq, sk);
    check_launch("masked_softmax_forward");
  });
}

void masked_softmax_backward(const Tensor& probs, const Tensor& dprobs, double scale, Tensor& dscores) {
  const int64_t cols = probs.dim(-1);
  if (probs.numel() == 0) return;
  const int64_t rows = probs.numel() / cols;
  TESSERA_DISPATCH_FLOAT(probs.dtype(), "masked_softmax_backward", {
    masked_softmax_backward_kernel<<<blocks_for_rows(rows), kThreads, 0, stream()>>>(
        probs.data<scalar_t>(), dprobs.data<scalar_t>(), static_cast<scalar_t>(scale), dscores.data<scalar_t>(),
        rows, cols);
    check_launch("masked_softmax_backward");
  });
}

}  // namespace tessera::kernels::cuda
