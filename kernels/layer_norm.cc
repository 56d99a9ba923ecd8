// Layer norm forward and backward: operand checks, then the CPU (cpu/layer_norm_cpu.cc) or CUDA
// (cuda/layer_norm.cu) kernels, which share the per-element formulas of math.h.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {

void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y,
                        Tensor& mean, Tensor& rstd) {
  check_operands("layer_norm_forward", {{x, "x"}, {gamma, "gamma"}, {beta, "beta"}, {y, "y"}, {mean, "mean"},
                                        {rstd, "rstd"}});
  check_min_ndim(x, 1, "layer_norm_forward", "x");
  const int64_t cols = x.dim(-1), rows = rows_of(x);
  check_shape(gamma, {cols}, "layer_norm_forward", "gamma");
  check_shape(beta, {cols}, "layer_norm_forward", "beta");
  check_shape(y, x.shape(), "layer_norm_forward", "y");
  check_shape(mean, {rows}, "layer_norm_forward", "mean");
  check_shape(rstd, {rows}, "layer_norm_forward", "rstd");
#if defined(TESSERA_WITH_CUDA)
  if (x.device().is_cuda()) return cuda::layer_norm_forward(x, gamma, beta, eps, y, mean, rstd);
#endif
  TESSERA_DISPATCH_FLOAT(x.dtype(), "layer_norm_forward",
                         cpu::layer_norm_forward(x.data<scalar_t>(), gamma.data<scalar_t>(), beta.data<scalar_t>(),
                                                 static_cast<scalar_t>(eps), y.data<scalar_t>(),
                                                 mean.data<scalar_t>(), rstd.data<scalar_t>(), rows, cols));
}

void layer_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  check_operands("layer_norm_backward", {{x, "x"}, {gamma, "gamma"}, {mean, "mean"}, {rstd, "rstd"}, {dy, "dy"},
                                         {dx, "dx"}, {dgamma, "dgamma"}, {dbeta, "dbeta"}});
  check_min_ndim(x, 1, "layer_norm_backward", "x");
  const int64_t cols = x.dim(-1), rows = rows_of(x);
  check_shape(gamma, {cols}, "layer_norm_backward", "gamma");
  check_shape(dy, x.shape(), "layer_norm_backward", "dy");
  check_shape(dx, x.shape(), "layer_norm_backward", "dx");
  check_shape(dgamma, {cols}, "layer_norm_backward", "dgamma");
  check_shape(dbeta, {cols}, "layer_norm_backward", "dbeta");
  check_shape(mean, {rows}, "layer_norm_backward", "mean");
  check_shape(rstd, {rows}, "layer_norm_backward", "rstd");
#if defined(TESSERA_WITH_CUDA)
  if (x.device().is_cuda()) return cuda::layer_norm_backward(x, gamma, mean, rstd, dy, dx, dgamma, dbeta);
#endif
  TESSERA_DISPATCH_FLOAT(x.dtype(), "layer_norm_backward",
                         cpu::layer_norm_backward(x.data<scalar_t>(), gamma.data<scalar_t>(), mean.data<scalar_t>(),
                                                  rstd.data<scalar_t>(), dy.data<scalar_t>(), dx.data<scalar_t>(),
                                                  dgamma.data<scalar_t>(), dbeta.data<scalar_t>(), rows, cols));
}

}  // namespace tessera::kernels
