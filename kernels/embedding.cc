// Vocabulary-parallel embedding lookup, its gradient and sinusoidal positions: operand checks,
// then the CPU (cpu/embedding_cpu.cc) or CUDA (cuda/embedding.cu) kernels.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {

void embedding_forward(const Tensor& ids, const Tensor& table, int64_t vocab_start, double scale, Tensor& out) {
  check_operands("embedding_forward", {{table, "table"}, {ids, "ids", Operand::index}, {out, "out"}});
  check_ndim(table, 2, "embedding_forward", "table");
  check_shape(out, {ids.numel(), table.dim(1)}, "embedding_forward", "out");
#if defined(TESSERA_WITH_CUDA)
  if (table.device().is_cuda()) return cuda::embedding_forward(ids, table, vocab_start, scale, out);
#endif
  TESSERA_DISPATCH_FLOAT(table.dtype(), "embedding_forward",
                         cpu::embedding_forward(ids.data<int32_t>(), table.data<scalar_t>(), vocab_start,
                                                table.dim(0), static_cast<scalar_t>(scale),
                                                out.data<scalar_t>(), ids.numel(), table.dim(1)));
}

void embedding_backward(const Tensor& ids, const Tensor& dout, int64_t vocab_start, double scale, Tensor& dtable) {
  check_operands("embedding_backward", {{dtable, "dtable"}, {ids, "ids", Operand::index}, {dout, "dout"}});
  check_ndim(dtable, 2, "embedding_backward", "dtable");
  check_shape(dout, {ids.numel(), dtable.dim(1)}, "embedding_backward", "dout");
#if defined(TESSERA_WITH_CUDA)
  if (dtable.device().is_cuda()) return cuda::embedding_backward(ids, dout, vocab_start, scale, dtable);
#endif
  TESSERA_DISPATCH_FLOAT(dtable.dtype(), "embedding_backward",
                         cpu::embedding_backward(ids.data<int32_t>(), dout.data<scalar_t>(), vocab_start,
                                                 dtable.dim(0), static_cast<scalar_t>(scale),
                                                 dtable.data<scalar_t>(), ids.numel(), dtable.dim(1)));
}

void add_positions(Tensor& x, int64_t seq_len, int64_t position_offset) {
  check_operands("add_positions", {{x, "x"}});
  check_ndim(x, 2, "add_positions", "x");
  TESSERA_CHECK(seq_len > 0 && x.dim(0) % seq_len == 0, "add_positions: ", x.dim(0),
                " rows are not whole sequences of length ", seq_len);
#if defined(TESSERA_WITH_CUDA)
  if (x.device().is_cuda()) return cuda::add_positions(x, seq_len, position_offset);
#endif
  TESSERA_DISPATCH_FLOAT(x.dtype(), "add_positions",
                         cpu::add_positions(x.data<scalar_t>(), x.dim(0), x.dim(1), seq_len, position_offset));
}

}  // namespace tessera::kernels
