#include "parallel/vocab_parallel_topk.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tessera::parallel {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Candidate {
  double value;
  int32_t id;
};
// Higher value first; on ties the lower token id.
bool better(const Candidate& a, const Candidate& b) { return a.value > b.value || (a.value == b.value && a.id < b.id); }

std::vector<double> log_normalizer(const Tensor& z, int64_t real_cols, Communicator& tp) {
  const int64_t n = z.dim(0), cols = z.dim(1);
  const double* p = z.data<double>();
  std::vector<double> m(n, kNegInf), s(n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < real_cols; ++j) m[i] = std::max(m[i], p[i * cols + j]);
  if (tp.size() > 1) tp.all_reduce(m.data(), n, DType::f64, ReduceOp::max);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < real_cols; ++j) s[i] += std::exp(p[i * cols + j] - m[i]);
  if (tp.size() > 1) tp.all_reduce(s.data(), n, DType::f64, ReduceOp::sum);
  for (int64_t i = 0; i < n; ++i) m[i] += std::log(s[i]);
  return m;
}

}  // namespace

std::vector<double> vocab_parallel_log_normalizer(const Tensor& logits_r, int64_t real_cols, Communicator& tp) {
  return log_normalizer(logits_r.to(DType::f64), real_cols, tp);
}

VocabTopK vocab_parallel_topk_log_probs(const Tensor& logits_r, int64_t real_cols, int64_t vocab_start, int64_t k,
                                        Communicator& tp) {
  const Tensor z = logits_r.to(DType::f64);
  const int64_t n = z.dim(0), cols = z.dim(1);
  const std::vector<double> log_z = log_normalizer(z, real_cols, tp);
  // This slice's k best tokens of each row, kept sorted by insertion; columns are scanned in
  // increasing id, so an equal value never displaces an earlier (lower) id.
  std::vector<Candidate> local(n * k, Candidate{kNegInf, -1});
  std::vector<Candidate> row;
  for (int64_t i = 0; i < n; ++i) {
    row.clear();
    for (int64_t j = 0; j < real_cols; ++j) {
      const Candidate c{z.data<double>()[i * cols + j] - log_z[i], static_cast<int32_t>(vocab_start + j)};
      if (static_cast<int64_t>(row.size()) == k && !better(c, row.back())) continue;
      row.insert(std::upper_bound(row.begin(), row.end(), c, better), c);
      if (static_cast<int64_t>(row.size()) > k) row.pop_back();
    }
    std::copy(row.begin(), row.end(), local.begin() + i * k);
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
