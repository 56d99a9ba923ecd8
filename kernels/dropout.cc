// Counter-based dropout: operand checks, then the CPU or CUDA kernel; both draw the mask from
// dropout_keep's Philox counter (math.h), so the masks agree bit for bit.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {

void dropout_forward(const DropoutSite& site, const Tensor& x, const Tensor& residual, Tensor& y) {
  check_dropout_site(site, "dropout_forward");
  check_operands("dropout_forward", {{x, "x"}, {residual, "residual", Operand::optional}, {y, "y"}});
  check_min_ndim(x, 1, "dropout_forward", "x");
  check_shape(y, x.shape(), "dropout_forward", "y");
  if (residual.defined()) check_shape(residual, x.shape(), "dropout_forward", "residual");
#if defined(TESSERA_WITH_CUDA)
  if (x.device().is_cuda()) return cuda::dropout_forward(site, x, residual, y);
#endif
  const int64_t cols = x.dim(-1), rows = rows_of(x);
  TESSERA_DISPATCH_FLOAT(x.dtype(), "dropout_forward",
                         cpu::dropout_forward(site, x.data<scalar_t>(),
                                              residual.defined() ? residual.data<scalar_t>() : nullptr,
                                              y.data<scalar_t>(), rows, cols));
}

void dropout_backward(const DropoutSite& site, const Tensor& dy, Tensor& dx) {
  check_dropout_site(site, "dropout_backward");
  check_operands("dropout_backward", {{dy, "dy"}, {dx, "dx"}});
  check_min_ndim(dy, 1, "dropout_backward", "dy");
  check_shape(dx, dy.shape(), "dropout_backward", "dx");
#if defined(TESSERA_WITH_CUDA)
  if (dy.device().is_cuda()) return cuda::dropout_backward(site, dy, dx);
#endif
  const int64_t cols = dy.dim(-1), rows = rows_of(dy);
  TESSERA_DISPATCH_FLOAT(dy.dtype(), "dropout_backward",
                         cpu::dropout_backward(site, dy.data<scalar_t>(), dx.data<scalar_t>(), rows, cols));
}

}  // namespace tessera::kernels
