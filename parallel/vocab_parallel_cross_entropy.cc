#include "parallel/vocab_parallel_cross_entropy.h"

#include <vector>

#include "kernels/ops.h"

namespace tessera::parallel {

Tensor vocab_parallel_argmax(const Tensor& logits_r, int64_t real_cols, int64_t vocab_start, Communicator& tp) {
  const int64_t n = logits_r.dim(0);
  const Device dev = logits_r.device();
  Tensor value = Tensor::empty({n}, logits_r.dtype(), dev), index = Tensor::empty({n}, DType::i32, dev);
  kernels::row_argmax(logits_r, real_cols, vocab_start, value, index);
  if (tp.size() == 1) return index;
  // Gather every rank's (value, id) candidates as doubles and pick the best: two numbers per row
  // and rank, merged on the host.
  std::vector<double> mine(2 * n), all(2 * n * tp.size());
  const Tensor v64 = on_device(value, Device::cpu).to(DType::f64);
  index = on_device(index, Device::cpu);
  for (int64_t i = 0; i < n; ++i) {
    mine[2 * i] = v64.data<double>()[i];
    mine[2 * i + 1] = index.data<int32_t>()[i];
  }
  tp.all_gather(mine.data(), all.data(), mine.size(), DType::f64);
  for (int64_t i = 0; i < n; ++i) {
    double best = all[2 * i];
    int32_t best_id = static_cast<int32_t>(all[2 * i + 1]);
    for (int r = 1; r < tp.size(); ++r) {
      const double v = all[2 * (r * n + i)];
      if (v > best) {  // ranks are in vocabulary order, so ">" keeps the lowest id on ties
        best = v;
        best_id = static_cast<int32_t>(all[2 * (r * n + i) + 1]);
      }
    }
    index.data<int32_t>()[i] = best_id;
  }
  return on_device(index, dev);
}

CrossEntropyResult vocab_parallel_cross_entropy(Tensor& logits_r, int64_t real_cols, int64_t vocab_start,
                                                int64_t vocab_size, const Tensor& targets, double smoothing,
                                                int32_t pad_id, double grad_scale, bool with_grad,
                                                Communicator& tp) {
  const int64_t n = logits_r.dim(0);
  const DType dt = logits_r.dtype();
  const Device dev = logits_r.device();
  const Tensor argmax = vocab_parallel_argmax(logits_r, real_cols, vocab_start, tp);

  Tensor row_max = Tensor::empty({n}, dt, dev), sums = Tensor::empty({n, 3}, dt, dev),
         row_loss = Tensor::empty({n}, dt, dev);
  kernels::cross_entropy_row_max(logits_r, real_cols, row_max);
  if (tp.size() > 1) tp.all_reduce(row_max.raw(), n, dt, ReduceOp::max);
  kernels::cross_entropy_row_sums(logits_r, real_cols, targets, vocab_start, row_max, sums);
  if (tp.size() > 1) tp.all_reduce(sums.raw(), 3 * n, dt, ReduceOp::sum);

  Tensor dlogits = with_grad ? logits_r : Tensor::empty(logits_r.shape(), dt, dev);
  kernels::cross_entropy_loss_backward(logits_r, real_cols, targets, vocab_start, row_max, sums, smoothing,
                                       vocab_size, pad_id, grad_scale, row_loss, dlogits);
  // The logged scalars: the one read back from the device in this function.
  const kernels::TokenStats stats = kernels::token_stats(row_loss, argmax, targets, pad_id);
  return {stats.loss_sum, stats.tokens, stats.correct};
}

}  // namespace tessera::parallel
