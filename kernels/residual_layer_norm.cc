// The fused sublayer output path (residual + dropout + layer norm): operand checks, then the CPU
// (cpu/residual_layer_norm_cpu.cc) or CUDA (cuda/residual_layer_norm.cu) kernels. Both draw the
// dropout mask of dropout_keep (math.h) and normalise with math.h's layer norm formulas.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {

void dropout_add_layer_norm_forward(const DropoutSite& site, const Tensor& x, const Tensor& residual,
                                    const Tensor& gamma, const Tensor& beta, double eps, Tensor& sum, Tensor& y,
                                    Tensor& mean, Tensor& rstd) {
  constexpr const char* op = "dropout_add_layer_norm_forward";
  check_dropout_site(site, op);
  check_operands(op, {{x, "x"}, {residual, "residual"}, {gamma, "gamma"}, {beta, "beta"}, {sum, "sum"}, {y, "y"},
                      {mean, "mean"}, {rstd, "rstd"}});
  check_min_ndim(x, 1, op, "x");
  const int64_t cols = x.dim(-1), rows = rows_of(x);
  check_shape(residual, x.shape(), op, "residual");
  check_shape(gamma, {cols}, op, "gamma");
  check_shape(beta, {cols}, op, "beta");
  check_shape(sum, x.shape(), op, "sum");
  check_shape(y, x.shape(), op, "y");
  check_shape(mean, {rows}, op, "mean");
  check_shape(rstd, {rows}, op, "rstd");
#if defined(TESSERA_WITH_CUDA)
  if (x.device().is_cuda()) return cuda::dropout_add_layer_norm_forward(site, x, residual, gamma, beta, eps, sum, y,
                                                                        mean, rstd);
#endif
  TESSERA_DISPATCH_FLOAT(x.dtype(), op,
                         cpu::dropout_add_layer_norm_forward(site, x.data<scalar_t>(), residual.data<scalar_t>(),
                                                             gamma.data<scalar_t>(), beta.data<scalar_t>(),
                                                             static_cast<scalar_t>(eps), sum.data<scalar_t>(),
                                                             y.data<scalar_t>(), mean.data<scalar_t>(),
                                                             rstd.data<scalar_t>(), rows, cols));
}

void layer_norm_add_dropout_backward(const DropoutSite& site, const Tensor& x, const Tensor& gamma,
                                     const Tensor& mean, const Tensor& rstd, const Tensor& dy,
                                     const Tensor& dresidual, Tensor& dx, Tensor& dx_dropped, Tensor& dgamma,
                                     Tensor& dbeta) {
  constexpr const char* op = "layer_norm_add_dropout_backward";
  if (dx_dropped.defined()) check_dropout_site(site, op);
  check_operands(op, {{x, "x"}, {gamma, "gamma"}, {mean, "mean"}, {rstd, "rstd"}, {dy, "dy"},
                      {dresidual, "dresidual", Operand::optional}, {dx, "dx"},
                      {dx_dropped, "dx_dropped", Operand::optional}, {dgamma, "dgamma"}, {dbeta, "dbeta"}});
  check_min_ndim(x, 1, op, "x");
  const int64_t cols = x.dim(-1), rows = rows_of(x);
  check_shape(gamma, {cols}, op, "gamma");
  check_shape(dy, x.shape(), op, "dy");
  if (dresidual.defined()) check_shape(dresidual, x.shape(), op, "dresidual");
  check_shape(dx, x.shape(), op, "dx");
  if (dx_dropped.defined()) check_shape(dx_dropped, x.shape(), op, "dx_dropped");
  check_shape(dgamma, {cols}, op, "dgamma");
  check_shape(dbeta, {cols}, op, "dbeta");
  check_shape(mean, {rows}, op, "mean");
  check_shape(rstd, {rows}, op, "rstd");
#if defined(TESSERA_WITH_CUDA)
  if (x.device().is_cuda())
    return cuda::layer_norm_add_dropout_backward(site, x, gamma, mean, rstd, dy, dresidual, dx, dx_dropped, dgamma,
                                                 dbeta);
#endif
  TESSERA_DISPATCH_FLOAT(
      x.dtype(), op,
      cpu::layer_norm_add_dropout_backward(site, x.data<scalar_t>(), gamma.data<scalar_t>(), mean.data<scalar_t>(),
                                           rstd.data<scalar_t>(), dy.data<scalar_t>(),
                                           dresidual.defined() ? dresidual.data<scalar_t>() : nullptr,
                                           dx.data<scalar_t>(),
                                           dx_dropped.defined() ? dx_dropped.data<scalar_t>() : nullptr,
                                           dgamma.data<scalar_t>(), dbeta.data<scalar_t>(), rows, cols));
}

}  // namespace tessera::kernels
