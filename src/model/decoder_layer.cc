#include "model/decoder_layer.h"

#include "kernels/ops.h"

namespace tessera::model {

DecoderLayer::DecoderLayer(ParameterStore& store, const std::string& name, const ModelConfig& cfg,
                           uint32_t& next_site, parallel::Communicator& tp)
    : tp_(tp),
      self_attention_(store, name + ".self_attention", cfg.d_model, cfg.heads, true, cfg.attention_dropout,
                      next_site++, tp),
      self_attention_residual_(store, name + ".self_attention_norm", cfg.d_model, cfg.pre_ln, cfg.dropout,
                               next_site++),
      cross_attention_(store, name + ".cross_attention", cfg.d_model, cfg.heads, false, cfg.attention_dropout,
                       next_site++, tp),
      cross_attention_residual_(store, name + ".cross_attention_norm", cfg.d_model, cfg.pre_ln, cfg.dropout,
                                next_site++),
      ffn_(store, name + ".ffn", cfg.d_model, cfg.d_ff, activation_of(cfg), tp),
      ffn_residual_(store, name + ".ffn_norm", cfg.d_model, cfg.pre_ln, cfg.dropout, next_site++) {}

Tensor DecoderLayer::forward(const StepContext& ctx, const Tensor& y, const Tensor& tgt_lengths, const Tensor& memory,
                             const Tensor& src_lengths) {
  const int64_t seq = y.dim(1);
  const Tensor in = self_attention_residual_.sublayer_input(y);
  const Tensor y1 = self_attention_residual_.output(ctx, seq, y, self_attention_.forward(ctx, in, in, tgt_lengths));
  const Tensor in2 = cross_attention_residual_.sublayer_input(y1);
  const Tensor y2 =
      cross_attention_residual_.output(ctx, seq, y1, cross_attention_.forward(ctx, in2, memory, src_lengths));
  const Tensor in3 = ffn_residual_.sublayer_input(y2);
  return ffn_residual_.output(ctx, seq, y2, ffn_.forward(in3, ctx.training));
}

void DecoderLayer::add_to_cache(DecoderLayerCache& cache, const Tensor& memory, int64_t k) {
  append_cache_rows(cache.self, KVCache{}, memory.dim(0) * k);
  append_cache_rows(cache.cross, cross_attention_.project_keys_values(memory));
}

Tensor DecoderLayer::forward_step(const Tensor& y, DecoderLayerCache& cache, const Tensor& self_lengths,
                                  const Tensor& src_lengths, const std::vector<int64_t>& positions) {
  StepContext ctx;
  ctx.training = false;
  // The same three sublayers as forward; the newest position attends over every cached one.
  const Tensor in = self_attention_residual_.sublayer_input(y);
  self_attention_.append(cache.self, in, positions);
  // One run of rows per run of sentences at the same position, over that position's prefix.
  const int64_t k = y.dim(0) / static_cast<int64_t>(positions.size());
  std::vector<MultiHeadAttention::CacheRun> runs;
  for (const PositionRun& run : position_runs(positions)) runs.push_back({run.begin * k, run.end * k, run.position + 1});
  // Each residual output also gives the next sublayer's input (one pass per row with pre-LN).
  Tensor in2, in3;
  const Tensor y1 = self_attention_residual_.output(
      ctx, 1, y, self_attention_.attend(in, cache.self, self_lengths, runs), cross_attention_residual_, in2);
  // A sentence's k rows are k queries against its one cross-attention cache.
  const int64_t rows = y.dim(0), sentences = cache.cross.k.dim(0), d = y.dim(2);
  const Tensor cross =
      cross_attention_.attend(in2.reshape({sentences, rows / sentences, d}), cache.cross, src_lengths).reshape({rows, 1, d});
  const Tensor y2 = cross_attention_residual_.output(ctx, 1, y1, cross, ffn_residual_, in3);
  return ffn_residual_.output(ctx, 1, y2, ffn_.forward(in3, /*keep_for_backward=*/false));
}

Tensor DecoderLayer::backward(const Tensor& dy, Tensor& dmemory_partial) {
  Tensor din3 = ffn_.backward(ffn_residual_.backward_output(dy));
  parallel::all_reduce_sum(tp_, din3);
  const Tensor dy2 = ffn_residual_.backward_input(din3);

  Tensor dq, dmemory;
  cross_attention_.backward(cross_attention_residual_.backward_output(dy2), dq, dmemory);
  kernels::axpy(1.0, dmemory, dmemory_partial);  // reduced once for all layers by the model
  parallel::all_reduce_sum(tp_, dq);
  const Tensor dy1 = cross_attention_residual_.backward_input(dq);

  Tensor dq_self, dkv_self;
  self_attention_.backward(self_attention_residual_.backward_output(dy1), dq_self, dkv_self);
  kernels::axpy(1.0, dkv_self, dq_self);
  parallel::all_reduce_sum(tp_, dq_self);
  return self_attention_residual_.backward_input(dq_self);
}

}  // namespace tessera::model
