// Adam step: operand checks, then the fused update of kernels/cpu/adam_cpu.cc or kernels/cuda/adam.cu.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {

void adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2,
               double eps, int64_t step, double grad_scale) {
  check_operands("adam_step", {{param, "param"}, {grad, "grad"}, {m, "m"}, {v, "v"}});
  check_shape(grad, param.shape(), "adam_step", "grad");
  check_shape(m, param.shape(), "adam_step", "m");
  check_shape(v, param.shape(), "adam_step", "v");
  TESSERA_CHECK(step >= 1, "adam_step: step ", step, " must start at 1 (bias correction divides by 1 - beta^step)");
#if defined(TESSERA_WITH_CUDA)
  if (param.device().is_cuda()) return cuda::adam_step(param, grad, m, v, lr, beta1, beta2, eps, step, grad_scale);
#endif
  TESSERA_DISPATCH_FLOAT(param.dtype(), "adam_step",
                         cpu::adam_step(param.data<scalar_t>(), grad.data<scalar_t>(), m.data<scalar_t>(),
                                        v.data<scalar_t>(), param.numel(), lr, beta1, beta2, eps, step, grad_scale));
}

}  // namespace tessera::kernels
