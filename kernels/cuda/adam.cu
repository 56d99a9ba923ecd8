// Adam, fused over the flat parameter buffer: one grid-stride pass reads grad, m, v, param and
// writes m, v, param with adam_update (math.h); the bias corrections 1 / (1 - beta^t) are
// computed once on the host, by the same function the CPU uses.
#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {
namespace {

template <typename T>
__global__ void adam_kernel(T* param, const T* grad, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T c1,
                            T c2, T grad_scale) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) {
    T p = param[i], mi = m[i], vi = v[i];
    adam_update(p, mi, vi, grad[i], grad_scale, beta1, beta2, c1, c2, lr, eps);
    param[i] = p;
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

void adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2,
               double eps, int64_t step, double grad_scale) {
  const int64_t n = param.numel();
  if (n == 0) return;
  const double c1 = adam_bias_correction(beta1, step), c2 = adam_bias_correction(beta2, step);
  TESSERA_DISPATCH_FLOAT(param.dtype(), "adam_step", {
    using T = scalar_t;
    adam_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(
        param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), n, static_cast<T>(lr), static_cast<T>(beta1),
        static_cast<T>(beta2), static_cast<T>(eps), static_cast<T>(c1), static_cast<T>(c2),
        static_cast<T>(grad_scale));
    check_launch("adam_step");
  });
}

}  // namespace tessera::kernels::cuda
