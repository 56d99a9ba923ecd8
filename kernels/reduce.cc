// Reductions whose results the host reads: sums of squares (gradient norms, checkpoint checks)
// and the logged token statistics. Each returns host values, so on CUDA each is one read-back.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {

std::vector<double> sum_squares_segments(const Tensor& x, const std::vector<int64_t>& bounds) {
  check_operands("sum_squares_segments", {{x, "x"}});
  TESSERA_CHECK(bounds.size() % 2 == 0, "sum_squares_segments: ", bounds.size(),
                " segment bounds, expected (begin, end) pairs");
  const int64_t segments = static_cast<int64_t>(bounds.size() / 2);
  for (int64_t s = 0; s < segments; ++s)
    TESSERA_CHECK(0 <= bounds[2 * s] && bounds[2 * s] <= bounds[2 * s + 1] && bounds[2 * s + 1] <= x.numel(),
                  "sum_squares_segments: segment ", s, " [", bounds[2 * s], ", ", bounds[2 * s + 1],
                  ") lies outside tensor 'x' of ", x.numel(), " elements");
#if defined(TESSERA_WITH_CUDA)
  if (x.device().is_cuda()) return cuda::sum_squares_segments(x, bounds);
#endif
  std::vector<double> out(segments);
  TESSERA_DISPATCH_FLOAT(x.dtype(), "sum_squares_segments",
                         cpu::sum_squares_segments(x.data<scalar_t>(), bounds.data(), segments, out.data()));
  return out;
}

double sum_squares(const Tensor& x) {
  check_operands("sum_squares", {{x, "x"}});
  return sum_squares_segments(x, {0, x.numel()})[0];
}

TokenStats token_stats(const Tensor& row_loss, const Tensor& predicted, const Tensor& targets, int32_t pad_id) {
  check_operands("token_stats", {{row_loss, "row_loss"}, {predicted, "predicted", Operand::index},
                                 {targets, "targets", Operand::index}});
  check_ndim(row_loss, 1, "token_stats", "row_loss");
  check_shape(predicted, row_loss.shape(), "token_stats", "predicted");
  check_shape(targets, row_loss.shape(), "token_stats", "targets");
#if defined(TESSERA_WITH_CUDA)
  if (row_loss.device().is_cuda()) return cuda::token_stats(row_loss, predicted, targets, pad_id);
#endif
  TokenStats stats;
  TESSERA_DISPATCH_FLOAT(row_loss.dtype(), "token_stats",
                         stats = cpu::token_stats(row_loss.data<scalar_t>(), predicted.data<int32_t>(),
                                                  targets.data<int32_t>(), pad_id, row_loss.numel()));
  return stats;
}

}  // namespace tessera::kernels
