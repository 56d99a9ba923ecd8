// Adam, fused: one pass reads grad, m, v, param and writes m, v, param (adam_update, math.h).

#include "kernels/cpu/cpu_ops.h"

namespace tessera::kernels::cpu {

template <typename T>
void adam_step(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1, double beta2,
               double eps, int64_t step, double grad_scale) {
  const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2), gs = static_cast<T>(grad_scale);
  const T c1 = static_cast<T>(adam_bias_correction(beta1, step));
  const T c2 = static_cast<T>(adam_bias_correction(beta2, step));
  const T lr_t = static_cast<T>(lr), eps_t = static_cast<T>(eps);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) adam_update(param[i], m[i], v[i], grad[i], gs, b1, b2, c1, c2, lr_t, eps_t);
}

#define INSTANTIATE(T) \
  template void adam_step<T>(T*, const T*, T*, T*, int64_t, double, double, double, double, int64_t, double);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
