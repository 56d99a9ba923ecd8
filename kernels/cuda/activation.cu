// Bias + activation and its backward as elementwise kernels. The activation functions come from
// kernels/math.h, the same code the CPU backend runs, so both backends compute the same function.
#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {
namespace {

template <Activation act, typename T>
__device__ __forceinline__ T activate(T x) {
  if constexpr (act == Activation::relu) return relu(x);
  else return gelu(x);
}
template <Activation act, typename T>
__device__ __forceinline__ T activate_grad(T x) {
  if constexpr (act == Activation::relu) return relu_grad(x);
  else return gelu_grad(x);
}

// pre[i] += bias[i % cols]; y[i] = act(pre[i]): one read and two writes per element.
template <Activation act, typename T>
__global__ void bias_activation_kernel(T* pre, const T* bias, T* y, int64_t n, int64_t cols) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) {
    const T p = pre[i] + bias[i % cols];
    pre[i] = p;
    y[i] = activate<act>(p);
  }
}

// dpre[i] = dy[i] * act'(pre[i]); dpre may alias dy, since each thread reads dy[i] before writing.
template <Activation act, typename T>
__global__ void activation_backward_kernel(const T* pre, const T* dy, T* dpre, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) dpre[i] = dy[i] * activate_grad<act>(pre[i]);
}

template <typename T>
void launch_bias_activation(Activation act, T* pre, const T* bias, T* y, int64_t n, int64_t cols) {
  if (act == Activation::relu)
    bias_activation_kernel<Activation::relu><<<blocks_for(n), kThreads, 0, stream()>>>(pre, bias, y, n, cols);
  else
    bias_activation_kernel<Activation::gelu><<<blocks_for(n), kThreads, 0, stream()>>>(pre, bias, y, n, cols);
  check_launch("bias_activation_forward");
}

template <typename T>
void launch_activation_backward(Activation act, const T* pre, const T* dy, T* dpre, int64_t n) {
  if (act == Activation::relu)
    activation_backward_kernel<Activation::relu><<<blocks_for(n), kThreads, 0, stream()>>>(pre, dy, dpre, n);
  else
    activation_backward_kernel<Activation::gelu><<<blocks_for(n), kThreads, 0, stream()>>>(pre, dy, dpre, n);
  check_launch("activation_backward");
}

}  // namespace

void bias_activation_forward(Activation act, Tensor& pre, const Tensor& bias, Tensor& y) {
  const int64_t n = pre.numel(), cols = bias.numel();
  if (n == 0) return;
  TESSERA_DISPATCH_FLOAT(pre.dtype(), "bias_activation_forward",
                         launch_bias_activation(act, pre.data<scalar_t>(), bias.data<scalar_t>(), y.data<scalar_t>(),
                                                n, cols));
}

void activation_backward(Activation act, const Tensor& pre, const Tensor& dy, Tensor& dpre) {
  const int64_t n = pre.numel();
  if (n == 0) return;
  TESSERA_DISPATCH_FLOAT(pre.dtype(), "activation_backward",
                         launch_activation_backward(act, pre.data<scalar_t>(), dy.data<scalar_t>(),
                                                    dpre.data<scalar_t>(), n));
}

}  // namespace tessera::kernels::cuda
