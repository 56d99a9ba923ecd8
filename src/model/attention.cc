#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"

namespace tessera::model {

MultiHeadAttention::MultiHeadAttention(ParameterStore& store, const std::string& name, int64_t d_model,
                                       int64_t heads, bool causal, float attention_dropout, uint32_t dropout_site,
                                       parallel::Communicator& tp)
    : d_model_(d_model),
      local_heads_(heads / tp.size()),
      d_head_(d_model / heads),
      head_offset_(heads / tp.size() * tp.rank()),
      causal_(causal),
      attention_dropout_(attention_dropout),
      site_id_(dropout_site),
      q_(store, name + ".q", d_model, d_model, tp),
      k_(store, name + ".k", d_model, d_model, tp),
      v_(store, name + ".v", d_model, d_model, tp),
      out_(store, name + ".out", d_model, d_model, tp) {}

namespace {
// [B, S, w] -> [B, heads, S, w/heads]; with S = 1 both layouts are the same bytes.
Tensor to_heads(const Tensor& x, int64_t b, int64_t s, int64_t heads) {
  if (s == 1) return x.reshape({b, heads, 1, x.dim(-1) / heads});
  Tensor y = Tensor::empty({b, heads, s, x.dim(-1) / heads}, x.dtype(), x.device());
  kernels::split_heads(x.reshape({b, s, x.dim(-1)}), heads, y);
  return y;
}
Tensor from_heads(const Tensor& y) {
  if (y.dim(2) == 1) return y.reshape({y.dim(0), y.dim(1) * y.dim(3)});
  Tensor x = Tensor::empty({y.dim(0) * y.dim(2), y.dim(1) * y.dim(3)}, y.dtype(), y.device());
  Tensor x3 = x.reshape({y.dim(0), y.dim(2), y.dim(1) * y.dim(3)});
  kernels::merge_heads(y, x3);
  return x;
}
// Copies positions [0, length) of every (row, head) of `from` [R, H, C, dk] into `to` [R', H, C', dk]:
// rows src_row, src_row + 1, ... of `from` into dst_row, dst_row + 1, ... (`count` rows).
void copy_positions(Tensor& to, int64_t dst_row, const Tensor& from, int64_t src_row, int64_t count, int64_t length) {
  const int64_t heads = from.dim(1), dk = from.dim(3);
  Tensor dst = to.view(dst_row * heads * to.dim(2) * dk, {count * heads * to.dim(2) * dk});
  const Tensor src = from.view(src_row * heads * from.dim(2) * dk, {count * heads * from.dim(2) * dk});
  copy_strided(dst, to.dim(2) * dk, src, from.dim(2) * dk, length * dk, count * heads);
}
// The rows the storage under `cache` [R, H, C, dk] has room for (R or more: rows dropped from a
// batch leave their room for the sentences that join it).
int64_t rows_reserved(const Tensor& cache) {
  const int64_t row = cache.dim(1) * cache.dim(2) * cache.dim(3);
  return row > 0 ? std::max(cache.dim(0), cache.storage_elements() / row) : cache.dim(0);
}
// `cache` with room for at least `needed` positions: the capacity grows by 16 positions, keeping
// what is filled (zeroed past it: rows at earlier positions read those, masked). A sentence of L
// tokens copies its cache L / 16 times, O(L^2 / 32) positions, less than reordering its beams
// copies, and the cache holds at most 15 empty positions.
void reserve(Tensor& cache, int64_t length, int64_t needed) {
  if (cache.dim(2) >= needed) return;
  const int64_t capacity = (needed + 15) / 16 * 16;
  Tensor bigger = Tensor::zeros({cache.dim(0), cache.dim(1), capacity, cache.dim(3)}, cache.dtype(), cache.device());
  if (length > 0) copy_positions(bigger, 0, cache, 0, cache.dim(0), length);
  cache = bigger;
}
// Writes rows [row, row + count) of now [B, H, 1, dk] at position `at` of the same rows of cache [B, H, C, dk].
void write_position(Tensor& cache, int64_t at, const Tensor& now, int64_t row, int64_t count) {
  const int64_t heads = cache.dim(1), dk = cache.dim(3), capacity = cache.dim(2);
  const int64_t first = (row * heads * capacity + at) * dk;
  Tensor dst = cache.view(first, {cache.numel() - first});
  copy_strided(dst, capacity * dk, now.view(row * heads * dk, {count * heads * dk}), dk, dk, count * heads);
}
}  // namespace

void append_cache_rows(KVCache& cache, const KVCache& more, int64_t empty_rows) {
  const bool adds_positions = more.k.defined();
  if (!cache.k.defined() && !adds_positions) return;  // a self-attention cache before its first step
  const Tensor& like = cache.k.defined() ? cache.k : more.k;
  const int64_t rows = cache.k.defined() ? cache.k.dim(0) : 0;
  const int64_t added = adds_positions ? more.k.dim(0) : empty_rows;
  const int64_t heads = like.dim(1), dk = like.dim(3);
  // In place when the storage has room for the rows at the present capacity (sentences replacing
  // those that left); otherwise one copy into a new cache.
  const bool in_place = cache.k.defined() && cache.capacity() >= more.capacity() &&
                        rows_reserved(cache.k) >= rows + added && rows_reserved(cache.v) >= rows + added;
  const int64_t capacity = std::max(cache.capacity(), more.capacity());
  for (auto [mine, theirs] : {std::pair{&cache.k, &more.k}, std::pair{&cache.v, &more.v}}) {
    Tensor joined;
    if (in_place) {
      joined = mine->view(0, {rows + added, heads, capacity, dk});
      // Zeroed: the new rows' unfilled positions are read (masked) while others fill theirs.
      joined.rows(rows, rows + added).zero_();
    } else {
      joined = Tensor::zeros({rows + added, heads, capacity, dk}, like.dtype(), like.device());
      if (rows > 0 && cache.length > 0) copy_positions(joined, 0, *mine, 0, rows, cache.length);
    }
    if (adds_positions && more.length > 0) copy_positions(joined, rows, *theirs, 0, added, more.length);
    *mine = joined;
  }
  cache.length = std::max(cache.length, more.length);
}

std::vector<PositionRun> position_runs(const std::vector<int64_t>& positions) {
  std::vector<PositionRun> runs;
  for (int64_t g = 0; g < static_cast<int64_t>(positions.size()); ++g) {
    if (runs.empty() || positions[g] != runs.back().position) runs.push_back({g, g, positions[g]});
    runs.back().end = g + 1;
  }
  return runs;
}

Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& rows) {
  Shape shape = t.shape();
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor out = Tensor::empty(shape, t.dtype(), t.device());
  // One copy per run of consecutive source rows.
  for (size_t i = 0; i < rows.size();) {
    size_t j = i + 1;
    while (j < rows.size() && rows[j] == rows[j - 1] + 1) ++j;
    const int64_t n = static_cast<int64_t>(j - i);
    out.rows(static_cast<int64_t>(i), static_cast<int64_t>(j)).copy_from(t.rows(rows[i], rows[i] + n));
    i = j;
  }
  return out;
}

void keep_cache_rows(KVCache& cache, const std::vector<int64_t>& rows, int64_t group,
                     const std::vector<int64_t>& group_lengths) {
  const int64_t kept = static_cast<int64_t>(rows.size()) / group;
  TESSERA_CHECK(kept * group == static_cast<int64_t>(rows.size()), "keep_cache_rows: ", rows.size(),
                " rows do not make groups of ", group);
  for (Tensor* t : {&cache.k, &cache.v}) {
    if (!t->defined()) continue;  // a self-attention cache before its first step
    Tensor& buffer = *t;
    // Group j moves from source group s_j >= j (ascending), so no group is overwritten before it
    // is read; a group whose rows are permuted goes through a copy of its source rows first.
    for (int64_t j = 0, previous = -1; j < kept; ++j) {
      const int64_t source = rows[j * group] / group;
      TESSERA_CHECK(source > previous && source < buffer.dim(0) / group, "keep_cache_rows: group ", j,
                    " takes group ", source, ", but kept groups must ascend within the ", buffer.dim(0) / group,
                    " there are");
      previous = source;
      bool identity = true, in_order = true;
      for (int64_t b = 0; b < group; ++b) {
        const int64_t r = rows[j * group + b];
        TESSERA_CHECK(r / group == source, "keep_cache_rows: row ", j * group + b, " takes row ", r,
                      ", outside its group's source rows ", source * group, " to ", source * group + group - 1);
        identity = identity && r == j * group + b;
        in_order = in_order && r == source * group + b;
      }
      if (identity) continue;
      const int64_t length = group_lengths.empty() ? cache.length : group_lengths.at(source);
      if (in_order) {  // the group moves down as it is (a finished sentence left before it): one copy
        copy_positions(buffer, j * group, buffer, source * group, group, length);
        continue;
      }
      Tensor scratch = Tensor::empty({group, buffer.dim(1), buffer.dim(2), buffer.dim(3)}, buffer.dtype(),
                                     buffer.device());
      copy_positions(scratch, 0, buffer, source * group, group, length);
      for (int64_t b = 0; b < group; ++b)
        copy_positions(buffer, j * group + b, scratch, rows[j * group + b] - source * group, 1, length);
    }
    // The first kept * group rows are now the cache; the buffer keeps its storage (no allocation).
    buffer = buffer.view(0, {kept * group, buffer.dim(1), buffer.dim(2), buffer.dim(3)});
  }
}

Tensor MultiHeadAttention::project_heads(parallel::ColumnParallelLinear& linear, const Tensor& x) {
  const int64_t b = x.dim(0), s = x.dim(1);
  Tensor y = Tensor::empty({b * s, local_heads_ * d_head_}, x.dtype(), x.device());
  linear.forward(x.reshape({b * s, d_model_}), y);
  return to_heads(y, b, s, local_heads_);
}

KVCache MultiHeadAttention::project_keys_values(const Tensor& x) {
  return {project_heads(k_, x), project_heads(v_, x), x.dim(1)};
}

void MultiHeadAttention::append(KVCache& cache, const Tensor& x, const std::vector<int64_t>& positions) {
  const int64_t b = x.dim(0), groups = static_cast<int64_t>(positions.size());
  TESSERA_CHECK(groups > 0 && b % groups == 0, "attention append: ", b, " rows do not make ", groups,
                " groups of equal size");
  const int64_t k = b / groups;
  for (Tensor* t : {&cache.k, &cache.v})
    if (!t->defined()) *t = Tensor::zeros({b, local_heads_, 0, d_head_}, x.dtype(), x.device());
  TESSERA_CHECK(cache.k.dim(0) == b, "attention append: ", b, " rows for a cache of ", cache.k.dim(0));
  const int64_t length = *std::max_element(positions.begin(), positions.end()) + 1;
  reserve(cache.k, cache.length, length);
  reserve(cache.v, cache.length, length);
  const Tensor kh = project_heads(k_, x), vh = project_heads(v_, x);
  // One write per run of groups at the same position (sentences that joined the batch together).
  for (const PositionRun& run : position_runs(positions)) {
    write_position(cache.k, run.position, kh, run.begin * k, (run.end - run.begin) * k);
    write_position(cache.v, run.position, vh, run.begin * k, (run.end - run.begin) * k);
  }
  cache.length = length;
}

Tensor MultiHeadAttention::attend(const Tensor& xq, const KVCache& cache, const Tensor& key_lengths) {
  return attend(xq, cache, key_lengths, {CacheRun{0, xq.dim(0), cache.length}});
}

Tensor MultiHeadAttention::attend(const Tensor& xq, const KVCache& cache, const Tensor& key_lengths,
                                  const std::vector<CacheRun>& runs) {
  const int64_t b = xq.dim(0), sq = xq.dim(1);
  const DType dt = xq.dtype();
  const Device dev = xq.device();
  const Tensor qh = project_heads(q_, xq);
  // The same softmax(Q K^T / sqrt(d_k) + mask) V as forward, over the cached keys and values (read
  // in place), one run of rows at a time, each over its own filled positions.
  Tensor ctx_heads = Tensor::empty({b, local_heads_, sq, d_head_}, dt, dev);
  for (const CacheRun& run : runs) {
    if (run.end == run.begin) continue;
    TESSERA_CHECK(run.begin >= 0 && run.end <= b && run.length <= cache.length, "attend: run of rows [", run.begin,
                  ", ", run.end, ") over ", run.length, " positions, for ", b, " rows and ", cache.length,
                  " cached positions");
    Tensor ctx = ctx_heads.rows(run.begin, run.end);
    kernels::cached_attention(qh.rows(run.begin, run.end), cache.k.rows(run.begin, run.end),
                              cache.v.rows(run.begin, run.end), run.length, key_lengths.rows(run.begin, run.end),
                              causal_, 1.0 / std::sqrt(static_cast<double>(d_head_)), ctx, q_.precision());
  }
  Tensor out = Tensor::empty({b * sq, d_model_}, dt, dev);
  out_.forward(from_heads(ctx_heads), out);
  return out.reshape({b, sq, d_model_});
}

Tensor MultiHeadAttention::forward(const StepContext& ctx, const Tensor& xq, const Tensor& xkv,
                                   const Tensor& key_lengths) {
  const int64_t b = xq.dim(0), sq = xq.dim(1), sk = xkv.dim(1);
  const DType dt = xq.dtype();
  const Device dev = xq.device();
  qh_ = project_heads(q_, xq);
  kh_ = project_heads(k_, xkv);
  vh_ = project_heads(v_, xkv);

  // scores = Q K^T per (batch, head); the softmax applies 1/sqrt(d_k) and the masks in place.
  const int64_t bh = b * local_heads_;
  probs_ = Tensor::empty({b, local_heads_, sq, sk}, dt, dev);
  Tensor scores3 = probs_.reshape({bh, sq, sk});
  kernels::batched_matmul(qh_.reshape({bh, sq, d_head_}), false, kh_.reshape({bh, sk, d_head_}), true, scores3, 1.0, 0.0, q_.precision());
  kernels::masked_softmax_forward(probs_, key_lengths, causal_, 1.0 / std::sqrt(static_cast<double>(d_head_)),
                                  probs_);

  // Dropout on the probabilities, keyed by (sentence, global head, query, key).
  site_ = ctx.activation_site(attention_dropout_, RngPurpose::dropout_attention, site_id_, local_heads_ * sq);
  site_.inner_rows = sq;
  site_.head_offset = head_offset_;
  Tensor dropped = probs_;
  if (site_.p > 0) {
    dropped = Tensor::empty(probs_.shape(), dt, dev);
    kernels::dropout_forward(site_, probs_, Tensor(), dropped);
  }
  Tensor ctx_heads = Tensor::empty({b, local_heads_, sq, d_head_}, dt, dev);
  Tensor ctx3 = ctx_heads.reshape({bh, sq, d_head_});
  kernels::batched_matmul(dropped.reshape({bh, sq, sk}), false, vh_.reshape({bh, sk, d_head_}), false, ctx3, 1.0, 0.0, q_.precision());

  Tensor out = Tensor::empty({b * sq, d_model_}, dt, dev);
  out_.forward(from_heads(ctx_heads), out);
  if (!ctx.training) qh_ = kh_ = vh_ = probs_ = Tensor();  // evaluation: nothing is kept for backward
  return out.reshape({b, sq, d_model_});
}

void MultiHeadAttention::backward(const Tensor& dout, Tensor& dxq_partial, Tensor& dxkv_partial) {
  const int64_t b = probs_.dim(0), sq = probs_.dim(2), sk = probs_.dim(3), w = local_heads_ * d_head_;
  const int64_t bh = b * local_heads_;
  const DType dt = dout.dtype();
  const Device dev = dout.device();
  Tensor dctx = Tensor::empty({b * sq, w}, dt, dev);
  out_.backward(dout.reshape({b * sq, d_model_}), dctx);
  Tensor dctx_heads = to_heads(dctx, b, sq, local_heads_);

  Tensor dropped = probs_;
  if (site_.p > 0) {
    dropped = Tensor::empty(probs_.shape(), dt, dev);
    kernels::dropout_forward(site_, probs_, Tensor(), dropped);
  }
  // ctx = P V: dP = dctx V^T, dV = P^T dctx.
  Tensor dprobs = Tensor::empty(probs_.shape(), dt, dev), dvh = Tensor::empty(vh_.shape(), dt, dev);
  Tensor dprobs3 = dprobs.reshape({bh, sq, sk}), dvh3 = dvh.reshape({bh, sk, d_head_});
  kernels::batched_matmul(dctx_heads.reshape({bh, sq, d_head_}), false, vh_.reshape({bh, sk, d_head_}), true, dprobs3, 1.0, 0.0, q_.precision());
  kernels::batched_matmul(dropped.reshape({bh, sq, sk}), true, dctx_heads.reshape({bh, sq, d_head_}), false, dvh3, 1.0, 0.0, q_.precision());
  if (site_.p > 0) kernels::dropout_backward(site_, dprobs, dprobs);
  kernels::masked_softmax_backward(probs_, dprobs, 1.0 / std::sqrt(static_cast<double>(d_head_)), dprobs);
  // scores = Q K^T: dQ = dS K, dK = dS^T Q.
  Tensor dqh = Tensor::empty(qh_.shape(), dt, dev), dkh = Tensor::empty(kh_.shape(), dt, dev);
  Tensor dqh3 = dqh.reshape({bh, sq, d_head_}), dkh3 = dkh.reshape({bh, sk, d_head_});
  kernels::batched_matmul(dprobs3, false, kh_.reshape({bh, sk, d_head_}), false, dqh3, 1.0, 0.0, q_.precision());
  kernels::batched_matmul(dprobs3, true, qh_.reshape({bh, sq, d_head_}), false, dkh3, 1.0, 0.0, q_.precision());

  dxq_partial = Tensor::empty({b * sq, d_model_}, dt, dev);
  dxkv_partial = Tensor::empty({b * sk, d_model_}, dt, dev);
  q_.backward(from_heads(dqh), dxq_partial, false);
  k_.backward(from_heads(dkh), dxkv_partial, false);
  v_.backward(from_heads(dvh), dxkv_partial, true);
  dxq_partial = dxq_partial.reshape({b, sq, d_model_});
  dxkv_partial = dxkv_partial.reshape({b, sk, d_model_});
  qh_ = kh_ = vh_ = probs_ = Tensor();
}

}  // namespace tessera::model
