// Bias + activation and its backward as elementwise kernels. The activation functions come from
// kernels/math.h, the same code the CPU backend runs, so both backends compute the same function.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/math.h"

namespace tessera::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// Enough blocks to fill the GPU; grid-stride loops cover whatever is left, so one launch handles
// any size without a block count that overflows the grid limit.
int blocks_for(int64_t n) {
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 4096));
}

template <Activation act>
__device__ __forceinline__ float activate(float x) {
  if constexpr (act == Activation::relu) return relu(x);
  else return gelu(x);
}
template <Activation act>
__device__ __forceinline__ float activate_grad(float x) {
  if constexpr (act == Activation::relu) return relu_grad(x);
  else return gelu_grad(x);
}

// pre[i] += bias[i % cols]; y[i] = act(pre[i]): one read and two writes per element.
template <Activation act>
__global__ void bias_activation_kernel(float* pre, const float* bias, float* y, int64_t n,
                                       int64_t cols) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float p = pre[i] + bias[i % cols];
    pre[i] = p;
    y[i] = activate<act>(p);
  }
}

// dpre[i] = dy[i] * act'(pre[i]); dpre may alias dy, since each thread reads dy[i] before writing.
template <Activation act>
__global__ void activation_backward_kernel(const float* pre, const float* dy, float* dpre, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dpre[i] = dy[i] * activate_grad<act>(pre[i]);
}

void check_f32_cuda(const Tensor& t, const char* op, const char* name) {
  TESSERA_CHECK(t.defined(), op, ": tensor '", name, "' is undefined");
  TESSERA_CHECK(t.dtype() == DType::f32, op, ": the CUDA backend computes in f32, but tensor '",
                name, "' is ", dtype_name(t.dtype()));
  TESSERA_CHECK(t.device() == Device::cuda, op, ": tensor '", name, "' is not in device memory");
}

}  // namespace

void bias_activation_forward(Activation act, Tensor& pre, const Tensor& bias, Tensor& y) {
  check_f32_cuda(pre, "bias_activation_forward", "pre");
  check_f32_cuda(bias, "bias_activation_forward", "bias");
  check_f32_cuda(y, "bias_activation_forward", "y");
  const int64_t n = pre.numel(), cols = bias.numel();
  if (n == 0) return;
  TESSERA_CHECK(cols > 0 && n % cols == 0, "bias_activation_forward: bias of ", cols,
                " elements does not divide pre ", shape_string(pre.shape()));
  if (act == Activation::relu)
    bias_activation_kernel<Activation::relu><<<blocks_for(n), kThreads>>>(
        pre.data<float>(), bias.data<float>(), y.data<float>(), n, cols);
  else
    bias_activation_kernel<Activation::gelu><<<blocks_for(n), kThreads>>>(
        pre.data<float>(), bias.data<float>(), y.data<float>(), n, cols);
  CUDA_CHECK(cudaGetLastError());
}

void activation_backward(Activation act, const Tensor& pre, const Tensor& dy, Tensor& dpre) {
  check_f32_cuda(pre, "activation_backward", "pre");
  check_f32_cuda(dy, "activation_backward", "dy");
  check_f32_cuda(dpre, "activation_backward", "dpre");
  const int64_t n = pre.numel();
  if (n == 0) return;
  if (act == Activation::relu)
    activation_backward_kernel<Activation::relu><<<blocks_for(n), kThreads>>>(
        pre.data<float>(), dy.data<float>(), dpre.data<float>(), n);
  else
    activation_backward_kernel<Activation::gelu><<<blocks_for(n), kThreads>>>(
        pre.data<float>(), dy.data<float>(), dpre.data<float>(), n);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace tessera::kernels::cuda
