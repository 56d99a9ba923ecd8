#include "parallel/vocab_parallel_topk.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/ops.h"

namespace tessera::parallel {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Candidate {
  double value;
  int32_t id;
};
// Higher value first; on ties the lower token id.
bool better(const Candidate& a, const Candidate& b) { return a.value > b.value || (a.value == b.value && a.id < b.id); }

// logZ per row, over the whole vocabulary, from statistics computed in the logits' precision on
// their device: the slice's row max (all-reduce max), then its sum of exp(z - max) (all-reduce
// sum). An f32 row's sum is an f32 sum (the vectorised exp and additions of the training loss);
// logZ itself is formed in f64.
std::vector<double> log_normalizer(const Tensor& z, int64_t real_cols, Communicator& tp) {
  const int64_t n = z.dim(0);
  const Device dev = z.device();
  Tensor row_max = Tensor::empty({n}, z.dtype(), dev), sums = Tensor::empty({n, 3}, z.dtype(), dev);
  Tensor no_targets = Tensor::empty({n}, DType::i32);
  std::fill(no_targets.data<int32_t>(), no_targets.data<int32_t>() + n, -1);  // owned by no slice
  kernels::cross_entropy_row_max(z, real_cols, row_max);
  if (tp.size() > 1) tp.all_reduce(row_max.raw(), n, z.dtype(), ReduceOp::max);
  kernels::cross_entropy_row_sums(z, real_cols, on_device(no_targets, dev), 0, row_max, sums);
  if (tp.size() > 1) tp.all_reduce(sums.raw(), 3 * n, z.dtype(), ReduceOp::sum);
  const Tensor m = on_device(row_max, Device::cpu).to(DType::f64), s = on_device(sums, Device::cpu).to(DType::f64);
  std::vector<double> log_z(n);
  for (int64_t i = 0; i < n; ++i) log_z[i] = m.data<double>()[i] + std::log(s.data<double>()[3 * i]);
  return log_z;
}

}  // namespace

std::vector<double> vocab_parallel_log_normalizer(const Tensor& logits_r, int64_t real_cols, Communicator& tp) {
  return log_normalizer(logits_r, real_cols, tp);
}

VocabTopK vocab_parallel_topk_log_probs(const Tensor& logits_r, int64_t real_cols, int64_t vocab_start, int64_t k,
                                        Communicator& tp) {
  const Tensor& z = logits_r;
  const int64_t n = z.dim(0);
  const std::vector<double> log_z = log_normalizer(z, real_cols, tp);
  // This slice's k best tokens of each row (top-k of z is top-k of z - logZ), on the device; only
  // the n x k candidates come back to the host.
  Tensor values = Tensor::empty({n, k}, z.dtype(), z.device()), ids = Tensor::empty({n, k}, DType::i32, z.device());
  kernels::row_topk(z, real_cols, vocab_start, k, values, ids);
  const Tensor host_values = on_device(values, Device::cpu).to(DType::f64), host_ids = on_device(ids, Device::cpu);
  std::vector<Candidate> local(n * k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int32_t id = host_ids.data<int32_t>()[i * k + j];
      local[i * k + j] = {id < 0 ? kNegInf : host_values.data<double>()[i * k + j] - log_z[i], id};
    }
  VocabTopK out;
  out.k = k;
  out.log_probs.resize(n * k);
  out.ids.resize(n * k);
  if (tp.size() > 1) {
    // Gather every rank's candidates as (log p, id) pairs of doubles and keep the best k of each row.
    std::vector<double> mine(2 * n * k), all(2 * n * k * tp.size());
    for (int64_t i = 0; i < n * k; ++i) {
      mine[2 * i] = local[i].value;
      mine[2 * i + 1] = local[i].id;
    }
    tp.all_gather(mine.data(), all.data(), mine.size(), DType::f64);
    std::vector<Candidate> merged(k * tp.size());
    for (int64_t i = 0; i < n; ++i) {
      for (int r = 0; r < tp.size(); ++r)
        for (int64_t j = 0; j < k; ++j) {
          const double* c = all.data() + 2 * ((r * n + i) * k + j);
          merged[r * k + j] = {c[0], static_cast<int32_t>(c[1])};
        }
      // Empty slots (id -1, value -inf) sort after every real token.
      std::partial_sort(merged.begin(), merged.begin() + k, merged.end(), [](const Candidate& a, const Candidate& b) {
        if ((a.id < 0) != (b.id < 0)) return b.id < 0;
        return better(a, b);
      });
      std::copy(merged.begin(), merged.begin() + k, local.begin() + i * k);
    }
  }
  for (int64_t i = 0; i < n * k; ++i) {
    out.log_probs[i] = local[i].value;
    out.ids[i] = local[i].id;
  }
  return out;
}

}  // namespace tessera::parallel
