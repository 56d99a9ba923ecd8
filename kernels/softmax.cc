// Masked attention softmax forward and backward: operand checks, then the CPU (cpu/softmax_cpu.cc)
// or CUDA (cuda/softmax.cu) kernels.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {

void masked_softmax_forward(const Tensor& scores, const Tensor& key_lengths, bool causal, double scale,
                            Tensor& probs) {
  check_operands("masked_softmax_forward",
                 {{scores, "scores"}, {key_lengths, "key_lengths", Operand::index}, {probs, "probs"}});
  check_ndim(scores, 4, "masked_softmax_forward", "scores");
  check_shape(probs, scores.shape(), "masked_softmax_forward", "probs");
  check_shape(key_lengths, {scores.dim(0)}, "masked_softmax_forward", "key_lengths");
  TESSERA_CHECK(!causal || scores.dim(3) >= scores.dim(2), "masked_softmax_forward: causal mask needs at least as many keys (",
                scores.dim(3), ") as queries (", scores.dim(2), ")");
#if defined(TESSERA_WITH_CUDA)
  if (scores.device().is_cuda()) return cuda::masked_softmax_forward(scores, key_lengths, causal, scale, probs);
#endif
  TESSERA_DISPATCH_FLOAT(scores.dtype(), "masked_softmax_forward",
                         cpu::masked_softmax_forward(scores.data<scalar_t>(), key_lengths.data<int32_t>(), causal,
                                                     static_cast<scalar_t>(scale), probs.data<scalar_t>(),
                                                     scores.dim(0), scores.dim(1), scores.dim(2), scores.dim(3)));
}

void masked_softmax_backward(const Tensor& probs, const Tensor& dprobs, double scale, Tensor& dscores) {
  check_operands("masked_softmax_backward", {{probs, "probs"}, {dprobs, "dprobs"}, {dscores, "dscores"}});
  check_min_ndim(probs, 1, "masked_softmax_backward", "probs");
  check_shape(dprobs, probs.shape(), "masked_softmax_backward", "dprobs");
  check_shape(dscores, probs.shape(), "masked_softmax_backward", "dscores");
#if defined(TESSERA_WITH_CUDA)
  if (probs.device().is_cuda()) return cuda::masked_softmax_backward(probs, dprobs, scale, dscores);
#endif
  TESSERA_DISPATCH_FLOAT(probs.dtype(), "masked_softmax_backward",
                         cpu::masked_softmax_backward(probs.data<scalar_t>(), dprobs.data<scalar_t>(),
                                                      static_cast<scalar_t>(scale), dscores.data<scalar_t>(),
                                                      rows_of(probs), probs.dim(-1)));
}

}  // namespace tessera::kernels
