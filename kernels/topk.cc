// The k best real logits of each row and their global token ids (beam search's candidates).
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {

void row_topk(const Tensor& logits, int64_t real_cols, int64_t vocab_start, int64_t k, Tensor& values,
              Tensor& ids) {
  check_operands("row_topk", {{logits, "logits"}, {values, "values"}, {ids, "ids", Operand::index}});
  check_ndim(logits, 2, "row_topk", "logits");
  TESSERA_CHECK(real_cols >= 0 && real_cols <= logits.dim(1), "row_topk: ", real_cols,
                " real vocabulary columns in logits of shape ", shape_string(logits.shape()));
  TESSERA_CHECK(k >= 0, "row_topk: k = ", k, " is negative");
  check_shape(values, {logits.dim(0), k}, "row_topk", "values");
  check_shape(ids, {logits.dim(0), k}, "row_topk", "ids");
#if defined(TESSERA_WITH_CUDA)
  if (logits.device().is_cuda()) return cuda::row_topk(logits, real_cols, vocab_start, k, values, ids);
#endif
  TESSERA_DISPATCH_FLOAT(logits.dtype(), "row_topk",
                         cpu::row_topk(logits.data<scalar_t>(), logits.dim(0), logits.dim(1), real_cols, vocab_start,
                                       k, values.data<scalar_t>(), ids.data<int32_t>()));
}

}  // namespace tessera::kernels
