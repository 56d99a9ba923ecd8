// Vocabulary-parallel cross-entropy and row argmax: operand checks, then the CPU or CUDA kernels
// (cpu/cross_entropy_cpu.cc, cuda/cross_entropy.cu), which share their per-row formulas (math.h).
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {
namespace {
void check_logits(const Tensor& logits, int64_t real_cols, const char* op) {
  check_ndim(logits, 2, op, "logits");
  TESSERA_CHECK(real_cols >= 0 && real_cols <= logits.dim(1), op, ": ", real_cols,
                " real vocabulary columns in logits of shape ", shape_string(logits.shape()));
}
}  // namespace

void cross_entropy_row_max(const Tensor& logits, int64_t real_cols, Tensor& row_max) {
  check_operands("cross_entropy_row_max", {{logits, "logits"}, {row_max, "row_max"}});
  check_logits(logits, real_cols, "cross_entropy_row_max");
  check_shape(row_max, {logits.dim(0)}, "cross_entropy_row_max", "row_max");
#if defined(TESSERA_WITH_CUDA)
  if (logits.device().is_cuda()) return cuda::cross_entropy_row_max(logits, real_cols, row_max);
#endif
  TESSERA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_row_max",
                         cpu::cross_entropy_row_max(logits.data<scalar_t>(), logits.dim(0), logits.dim(1),
                                                    real_cols, row_max.data<scalar_t>()));
}

void cross_entropy_row_sums(const Tensor& logits, int64_t real_cols, const Tensor& targets, int64_t vocab_start,
                            const Tensor& row_max, Tensor& sums) {
  check_operands("cross_entropy_row_sums", {{logits, "logits"}, {targets, "targets", Operand::index},
                                            {row_max, "row_max"}, {sums, "sums"}});
  check_logits(logits, real_cols, "cross_entropy_row_sums");
  const int64_t n = logits.dim(0);
  check_shape(targets, {n}, "cross_entropy_row_sums", "targets");
  check_shape(row_max, {n}, "cross_entropy_row_sums", "row_max");
  check_shape(sums, {n, 3}, "cross_entropy_row_sums", "sums");
#if defined(TESSERA_WITH_CUDA)
  if (logits.device().is_cuda())
    return cuda::cross_entropy_row_sums(logits, real_cols, targets, vocab_start, row_max, sums);
#endif
  TESSERA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_row_sums",
                         cpu::cross_entropy_row_sums(logits.data<scalar_t>(), n, logits.dim(1), real_cols,
                                                     targets.data<int32_t>(), vocab_start,
                                                     row_max.data<scalar_t>(), sums.data<scalar_t>()));
}

void cross_entropy_loss_backward(const Tensor& logits, int64_t real_cols, const Tensor& targets,
                                 int64_t vocab_start, const Tensor& row_max, const Tensor& sums,
                                 double smoothing, int64_t vocab_size, int32_t pad_id, double grad_scale,
                                 Tensor& row_loss, Tensor& dlogits) {
  check_operands("cross_entropy_loss_backward",
                 {{logits, "logits"}, {targets, "targets", Operand::index}, {row_max, "row_max"}, {sums, "sums"},
                  {row_loss, "row_loss"}, {dlogits, "dlogits"}});
  check_logits(logits, real_cols, "cross_entropy_loss_backward");
  const int64_t n = logits.dim(0);
  check_shape(targets, {n}, "cross_entropy_loss_backward", "targets");
  check_shape(row_max, {n}, "cross_entropy_loss_backward", "row_max");
  check_shape(sums, {n, 3}, "cross_entropy_loss_backward", "sums");
  check_shape(row_loss, {n}, "cross_entropy_loss_backward", "row_loss");
  check_shape(dlogits, logits.shape(), "cross_entropy_loss_backward", "dlogits");
  TESSERA_CHECK(smoothing >= 0 && smoothing < 1, "cross_entropy_loss_backward: label smoothing ", smoothing,
                " outside [0, 1)");
#if defined(TESSERA_WITH_CUDA)
  if (logits.device().is_cuda())
    return cuda::cross_entropy_loss_backward(logits, real_cols, targets, vocab_start, row_max, sums, smoothing,
                                             vocab_size, pad_id, grad_scale, row_loss, dlogits);
#endif
  TESSERA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_loss_backward",
                         cpu::cross_entropy_loss_backward(logits.data<scalar_t>(), n, logits.dim(1), real_cols,
                                                          targets.data<int32_t>(), vocab_start,
                                                          row_max.data<scalar_t>(), sums.data<scalar_t>(),
                                                          smoothing, vocab_size, pad_id, grad_scale,
                                                          row_loss.data<scalar_t>(), dlogits.data<scalar_t>()));
}

void row_argmax(const Tensor& logits, int64_t real_cols, int64_t vocab_start, Tensor& max_value, Tensor& max_index) {
  check_operands("row_argmax",
                 {{logits, "logits"}, {max_value, "max_value"}, {max_index, "max_index", Operand::index}});
  check_logits(logits, real_cols, "row_argmax");
  check_shape(max_value, {logits.dim(0)}, "row_argmax", "max_value");
  check_shape(max_index, {logits.dim(0)}, "row_argmax", "max_index");
#if defined(TESSERA_WITH_CUDA)
  if (logits.device().is_cuda()) return cuda::row_argmax(logits, real_cols, vocab_start, max_value, max_index);
#endif
  TESSERA_DISPATCH_FLOAT(logits.dtype(), "row_argmax",
                         cpu::row_argmax(logits.data<scalar_t>(), logits.dim(0), logits.dim(1), real_cols,
                                         vocab_start, max_value.data<scalar_t>(), max_index.data<int32_t>()));
}

}  // namespace tessera::kernels
