// Elementwise ops, bias + activation and the attention head reshapes: operand checks, then the
// CPU (cpu/elementwise_cpu.cc) or CUDA (cuda/elementwise.cu, cuda/activation.cu) kernels.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  check_operands("add", {{a, "a"}, {b, "b"}, {out, "out"}});
  check_shape(b, a.shape(), "add", "b");
  check_shape(out, a.shape(), "add", "out");
#if defined(TESSERA_WITH_CUDA)
  if (a.device().is_cuda()) return cuda::add(a, b, out);
#endif
  TESSERA_DISPATCH_FLOAT(a.dtype(), "add",
                         cpu::add(a.data<scalar_t>(), b.data<scalar_t>(), out.data<scalar_t>(), a.numel()));
}

void axpy(double alpha, const Tensor& x, Tensor& y) {
  check_operands("axpy", {{x, "x"}, {y, "y"}});
  check_shape(y, x.shape(), "axpy", "y");
#if defined(TESSERA_WITH_CUDA)
  if (x.device().is_cuda()) return cuda::axpy(alpha, x, y);
#endif
  TESSERA_DISPATCH_FLOAT(x.dtype(), "axpy",
                         cpu::axpy(static_cast<scalar_t>(alpha), x.data<scalar_t>(), y.data<scalar_t>(), x.numel()));
}

void scale(Tensor& x, double alpha) {
  check_operands("scale", {{x, "x"}});
#if defined(TESSERA_WITH_CUDA)
  if (x.device().is_cuda()) return cuda::scale(x, alpha);
#endif
  TESSERA_DISPATCH_FLOAT(x.dtype(), "scale", cpu::scale(x.data<scalar_t>(), static_cast<scalar_t>(alpha), x.numel()));
}

void add_bias(Tensor& x, const Tensor& bias) {
  check_operands("add_bias", {{x, "x"}, {bias, "bias"}});
  check_min_ndim(x, 1, "add_bias", "x");
  check_shape(bias, {x.dim(-1)}, "add_bias", "bias");
#if defined(TESSERA_WITH_CUDA)
  if (x.device().is_cuda()) return cuda::add_bias(x, bias);
#endif
  TESSERA_DISPATCH_FLOAT(x.dtype(), "add_bias",
                         cpu::add_bias(x.data<scalar_t>(), bias.data<scalar_t>(), rows_of(x), x.dim(-1)));
}

void bias_backward(const Tensor& dy, Tensor& dbias) {
  check_operands("bias_backward", {{dy, "dy"}, {dbias, "dbias"}});
  check_min_ndim(dy, 1, "bias_backward", "dy");
  check_shape(dbias, {dy.dim(-1)}, "bias_backward", "dbias");
#if defined(TESSERA_WITH_CUDA)
  if (dy.device().is_cuda()) return cuda::bias_backward(dy, dbias);
#endif
  TESSERA_DISPATCH_FLOAT(dy.dtype(), "bias_backward",
                         cpu::bias_backward(dy.data<scalar_t>(), dbias.data<scalar_t>(), rows_of(dy), dy.dim(-1)));
}

void bias_activation_forward(Activation act, Tensor& pre, const Tensor& bias, Tensor& y) {
  check_operands("bias_activation_forward", {{pre, "pre"}, {bias, "bias"}, {y, "y"}});
  check_min_ndim(pre, 1, "bias_activation_forward", "pre");
  check_shape(bias, {pre.dim(-1)}, "bias_activation_forward", "bias");
  check_shape(y, pre.shape(), "bias_activation_forward", "y");
#if defined(TESSERA_WITH_CUDA)
  if (pre.device().is_cuda()) return cuda::bias_activation_forward(act, pre, bias, y);
#endif
  TESSERA_DISPATCH_FLOAT(pre.dtype(), "bias_activation_forward",
                         cpu::bias_activation_forward(act, pre.data<scalar_t>(), bias.data<scalar_t>(),
                                                      y.data<scalar_t>(), rows_of(pre), pre.dim(-1)));
}

void activation_backward(Activation act, const Tensor& pre, const Tensor& dy, Tensor& dpre) {
  check_operands("activation_backward", {{pre, "pre"}, {dy, "dy"}, {dpre, "dpre"}});
  check_shape(dy, pre.shape(), "activation_backward", "dy");
  check_shape(dpre, pre.shape(), "activation_backward", "dpre");
#if defined(TESSERA_WITH_CUDA)
  if (pre.device().is_cuda()) return cuda::activation_backward(act, pre, dy, dpre);
#endif
  TESSERA_DISPATCH_FLOAT(pre.dtype(), "activation_backward",
                         cpu::activation_backward(act, pre.data<scalar_t>(), dy.data<scalar_t>(),
                                                  dpre.data<scalar_t>(), pre.numel()));
}

void split_heads(const Tensor& x, int64_t heads, Tensor& y) {
  check_operands("split_heads", {{x, "x"}, {y, "y"}});
  check_ndim(x, 3, "split_heads", "x");
  TESSERA_CHECK(heads > 0 && x.dim(2) % heads == 0, "split_heads: width ", x.dim(2),
                " does not divide into ", heads, " heads");
  const int64_t b = x.dim(0), s = x.dim(1), dk = x.dim(2) / heads;
  check_shape(y, {b, heads, s, dk}, "split_heads", "y");
#if defined(TESSERA_WITH_CUDA)
  if (x.device().is_cuda()) return cuda::split_heads(x, heads, y);
#endif
  TESSERA_DISPATCH_FLOAT(x.dtype(), "split_heads",
                         cpu::split_heads(x.data<scalar_t>(), y.data<scalar_t>(), b, s, heads, dk));
}

void merge_heads(const Tensor& y, Tensor& x) {
  check_operands("merge_heads", {{y, "y"}, {x, "x"}});
  check_ndim(y, 4, "merge_heads", "y");
  const int64_t b = y.dim(0), h = y.dim(1), s = y.dim(2), dk = y.dim(3);
  check_shape(x, {b, s, h * dk}, "merge_heads", "x");
#if defined(TESSERA_WITH_CUDA)
  if (y.device().is_cuda()) return cuda::merge_heads(y, x);
#endif
  TESSERA_DISPATCH_FLOAT(y.dtype(), "merge_heads",
                         cpu::merge_heads(y.data<scalar_t>(), x.data<scalar_t>(), b, s, h, dk));
}

}  // namespace tessera::kernels
