// Multi-head scaled dot-product attention, softmax(Q K^T / sqrt(d_k) + mask) V, with its heads
// split across the tensor-parallel group: Q, K and V are column-parallel (rank r computes heads
// [r h/tp, (r+1) h/tp) with no communication) and the output projection is row-parallel (one
// all-reduce in forward). Self-attention reads one input; cross-attention reads queries from the
// decoder and keys/values from the encoder output ("memory").
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/context.h"
#include "model/parameters.h"
#include "parallel/communicator.h"
#include "parallel/tensor_parallel_linear.h"

namespace tessera::model {

// Keys and values of this rank's heads kept across incremental decoding steps, heads-major
// [rows, h/tp, capacity, d_k]. Positions [0, length) are read; a row whose own sequence is shorter
// (a shorter source sentence, a hypothesis that joined the batch later) is masked past its own
// length, and what it holds there is finite (caches are allocated zeroed), since masked
// probabilities are exact zeros that multiply it. A cross-attention cache holds the projected
// encoder output of each sentence, computed once. A self-attention cache gains one position per
// row and step in place; when a row reaches the capacity, the capacity grows by 16 positions (one
// copy of what it holds), so a step rarely allocates or copies the past.
struct KVCache {
  Tensor k, v;
  int64_t length = 0;
  int64_t capacity() const { return k.defined() ? k.dim(2) : 0; }
};

// Keeps rows rows[0], rows[1], ... of `cache` in place (repeats, reorders or drops rows), copying
// only filled positions and allocating no new cache. Rows come in groups of `group` (a sentence's
// hypotheses): the rows of group j all come from one source group, and source groups ascend.
// group_lengths[g], when given, is how many positions source group g has filled (its sentence's
// own length; else cache.length for every group).
void keep_cache_rows(KVCache& cache, const std::vector<int64_t>& rows, int64_t group,
                     const std::vector<int64_t>& group_lengths = {});

// Appends the rows of `more` after those of `cache` (sentences joining a decoding batch); the
// result reads max(length, more.length) positions. `more` undefined: `empty_rows` rows with no
// position filled (a self-attention cache of hypotheses that have not fed a token yet), which
// also leaves an undefined cache undefined.
void append_cache_rows(KVCache& cache, const KVCache& more, int64_t empty_rows = 0);

// Groups [begin, end) of consecutive entries of `positions` (one per sentence of a decoding batch)
// that share one position: sentences that joined the batch together step together.
struct PositionRun {
  int64_t begin, end, position;
};
std::vector<PositionRun> position_runs(const std::vector<int64_t>& positions);

// The rows rows[0], rows[1], ... of t along dimension 0 (repeats, reorders or drops rows).
Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& rows);

class MultiHeadAttention {
 public:
  MultiHeadAttention(ParameterStore& store, const std::string& name, int64_t d_model, int64_t heads,
                     bool causal, float attention_dropout, uint32_t dropout_site, parallel::Communicator& tp);
  int first_param() const { return q_.first_param(); }
  int last_param() const { return out_.last_param(); }

  // xq [B, Sq, d] queries, xkv [B, Sk, d] keys and values (the same tensor for self-attention);
  // key_lengths [B] masks padded keys. Returns [B, Sq, d], complete on every rank.
  Tensor forward(const StepContext& ctx, const Tensor& xq, const Tensor& xkv, const Tensor& key_lengths);
  // Returns the partial (per-rank) gradients of xq and xkv; the caller all-reduces them over tp.
  // For self-attention, pass the same tensor twice in forward and add the two in backward.
  void backward(const Tensor& dout, Tensor& dxq_partial, Tensor& dxkv_partial);

  // Incremental decoding: no dropout, and nothing is kept for backward.
  // The keys and values of x [B, S, d] (the encoder output, for cross-attention).
  KVCache project_keys_values(const Tensor& x);
  // Writes the keys and values of x [B, 1, d], each row's newest token, into a self-attention
  // cache: rows [g k, (g + 1) k) at position positions[g] (k = B / positions.size()). Afterwards
  // the cache reads max(positions) + 1 positions.
  void append(KVCache& cache, const Tensor& x, const std::vector<int64_t>& positions);
  // Attention of xq [B, Sq, d] over the filled positions of the cache (Sk = cache.length);
  // key_lengths [B] masks padded keys and a causal layer lets query i see keys j <= i + (Sk - Sq).
  // Returns [B, Sq, d] on every rank. Beam search passes a sentence's k hypotheses as its Sq = k
  // queries against the sentence's one cross-attention cache.
  Tensor attend(const Tensor& xq, const KVCache& cache, const Tensor& key_lengths);
  // The same, each run of rows [begin, end) reading only the first `length` cached positions (rows
  // at different positions of their sequences: no product over positions that all of them mask).
  struct CacheRun {
    int64_t begin, end, length;
  };
  Tensor attend(const Tensor& xq, const KVCache& cache, const Tensor& key_lengths, const std::vector<CacheRun>& runs);

 private:
  // x [B, S, d] through a column-parallel projection, split into this rank's heads [B, h/tp, S, d_k].
  Tensor project_heads(parallel::ColumnParallelLinear& linear, const Tensor& x);

  int64_t d_model_, local_heads_, d_head_, head_offset_;
  bool causal_;
  float attention_dropout_;
  uint32_t site_id_;
  parallel::ColumnParallelLinear q_, k_, v_;
  parallel::RowParallelLinear out_;
  // Kept for backward: heads-major Q, K, V [B, h/tp, S, d_k], the softmax probabilities
  // [B, h/tp, Sq, Sk] before dropout, and the dropout site.
  Tensor qh_, kh_, vh_, probs_;
  kernels::DropoutSite site_;
};

}  // namespace tessera::model
