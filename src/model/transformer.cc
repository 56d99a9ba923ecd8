#include "model/transformer.h"

#include "kernels/ops.h"

namespace tessera::model {

Transformer::Transformer(const ModelConfig& cfg, ParameterStore& store, parallel::Communicator& tp)
    : cfg_(cfg), store_(store), tp_(tp), embedding_(store, "embedding", cfg.vocab_size, cfg.d_model, tp) {
  cfg.validate(tp.size());
  uint32_t next_site = 2;  // 0 and 1: source and target embedding dropout
  for (int64_t i = 0; i < cfg.encoder_layers; ++i) {
    const int first = static_cast<int>(store.size());
    encoder_.push_back(std::make_unique<EncoderLayer>(store, "encoder." + std::to_string(i), cfg, next_site, tp));
    encoder_params_.push_back({first, static_cast<int>(store.size()) - 1});
  }
  if (cfg.pre_ln) encoder_norm_ = std::make_unique<LayerNorm>(store, "encoder.final_norm", cfg.d_model);
  for (int64_t i = 0; i < cfg.decoder_layers; ++i) {
    const int first = static_cast<int>(store.size());
    decoder_.push_back(std::make_unique<DecoderLayer>(store, "decoder." + std::to_string(i), cfg, next_site, tp));
    decoder_params_.push_back({first, static_cast<int>(store.size()) - 1});
  }
  if (cfg.pre_ln) decoder_norm_ = std::make_unique<LayerNorm>(store, "decoder.final_norm", cfg.d_model);
}

void Transformer::notify(const ParamRange& r) const {
  if (notify_) store_.grads_ready(r.first, r.last);
}

Tensor Transformer::embed(const StepContext& ctx, const Tensor& ids, uint32_t site) {
  const int64_t b = ids.dim(0), s = ids.dim(1);
  Tensor x = Tensor::empty({b * s, cfg_.d_model}, store_.dtype());
  embedding_.lookup(ids.reshape({b * s}), x);
  kernels::add_positions(x, s, 0);
  const kernels::DropoutSite drop = ctx.activation_site(cfg_.dropout, RngPurpose::dropout_embedding, site, s);
  if (drop.p > 0) kernels::dropout_forward(drop, x, Tensor(), x);
  return x.reshape({b, s, cfg_.d_model});
}

void Transformer::embed_backward(const Tensor& ids, const Tensor& dx, const StepContext& ctx, uint32_t site) {
  const int64_t b = ids.dim(0), s = ids.dim(1);
  Tensor d = dx.reshape({b * s, cfg_.d_model});
  const kernels::DropoutSite drop = ctx.activation_site(cfg_.dropout, RngPurpose::dropout_embedding, site, s);
  if (drop.p > 0) kernels::dropout_backward(drop, d, d);
  embedding_.lookup_backward(ids.reshape({b * s}), d);  // positions are added: identity gradient
}

Tensor Transformer::encode(const StepContext& ctx, const Tensor& src, const Tensor& src_lengths) {
  Tensor x = embed(ctx, src, source_site_);
  for (auto& layer : encoder_) x = layer->forward(ctx, x, src_lengths);
  return encoder_norm_ ? encoder_norm_->forward(x) : x;
}

Tensor Transformer::decode(const StepContext& ctx, const Tensor& tgt_in, const Tensor& tgt_lengths,
                           const Tensor& memory, const Tensor& src_lengths) {
  Tensor y = embed(ctx, tgt_in, target_site_);
  for (auto& layer : decoder_) y = layer->forward(ctx, y, tgt_lengths, memory, src_lengths);
  return decoder_norm_ ? decoder_norm_->forward(y) : y;
}

LossStats Transformer::forward_backward(const Batch& batch, const StepContext& step_ctx, double grad_scale,
                                        bool notify_grads_ready) {
  notify_ = notify_grads_ready;
  StepContext ctx = step_ctx;
  ctx.sentence_offset = batch.sentence_offset;  // dropout is keyed by the global sentence index
  const int64_t b = batch.size(), t = batch.tgt_in.dim(1), s = batch.src.dim(1);
  const Tensor memory = encode(ctx, batch.src, batch.src_lengths);
  const Tensor h = decode(ctx, batch.tgt_in, batch.tgt_lengths, memory, batch.src_lengths).reshape({b * t, cfg_.d_model});

  Tensor logits = Tensor::empty({b * t, embedding_.local_rows()}, store_.dtype());
  embedding_.project(h, logits);
  const auto ce = parallel::vocab_parallel_cross_entropy(
      logits, embedding_.real_local_rows(), embedding_.vocab_start(), cfg_.vocab_size, batch.tgt_out.reshape({b * t}),
      cfg_.label_smoothing, cfg_.pad_id, grad_scale, /*with_grad=*/true, tp_);

  // Backward: output projection, decoder, encoder, embeddings.
  Tensor dh = Tensor::empty(h.shape(), h.dtype());
  embedding_.project_backward(h, logits, dh);
  logits = Tensor();
  Tensor dy = dh.reshape({b, t, cfg_.d_model});
  if (decoder_norm_) {
    dy = decoder_norm_->backward(dy);
    if (notify_) store_.grads_ready(decoder_norm_->first_param(), decoder_norm_->last_param());
  }
  Tensor dmemory = Tensor::zeros({b, s, cfg_.d_model}, store_.dtype());
  for (size_t i = decoder_.size(); i-- > 0;) {
    dy = decoder_[i]->backward(dy, dmemory);
    notify(decoder_params_[i]);
  }
  parallel::all_reduce_sum(tp_, dmemory);
  if (encoder_norm_) {
    dmemory = encoder_norm_->backward(dmemory);
    if (notify_) store_.grads_ready(encoder_norm_->first_param(), encoder_norm_->last_param());
  }
  Tensor dx = dmemory;
  for (size_t i = encoder_.size(); i-- > 0;) {
    dx = encoder_[i]->backward(dx);
    notify(encoder_params_[i]);
  }
  embed_backward(batch.tgt_in, dy, ctx, target_site_);
  embed_backward(batch.src, dx, ctx, source_site_);
  if (notify_) store_.grads_ready(embedding_.param(), embedding_.param());
  return {ce.loss_sum, ce.tokens, ce.correct};
}

LossStats Transformer::evaluate(const Batch& batch) {
  StepContext ctx;
  ctx.training = false;
  const int64_t b = batch.size(), t = batch.tgt_in.dim(1);
  const Tensor memory = encode(ctx, batch.src, batch.src_lengths);
  const Tensor h = decode(ctx, batch.tgt_in, batch.tgt_lengths, memory, batch.src_lengths).reshape({b * t, cfg_.d_model});
  Tensor logits = Tensor::empty({b * t, embedding_.local_rows()}, store_.dtype());
  embedding_.project(h, logits);
  const auto ce = parallel::vocab_parallel_cross_entropy(
      logits, embedding_.real_local_rows(), embedding_.vocab_start(), cfg_.vocab_size, batch.tgt_out.reshape({b * t}),
      cfg_.label_smoothing, cfg_.pad_id, 0.0, /*with_grad=*/false, tp_);
  return {ce.loss_sum, ce.tokens, ce.correct};
}

std::vector<std::vector<int32_t>> Transformer::greedy_decode(const Tensor& src, const Tensor& src_lengths,
                                                             int64_t max_len) {
  StepContext ctx;
  ctx.training = false;
  const int64_t b = src.dim(0);
  const Tensor memory = encode(ctx, src, src_lengths);
  std::vector<std::vector<int32_t>> out(b);
  std::vector<bool> done(b, false);
  std::vector<int32_t> prefix(b, cfg_.bos_id);  // [B, t] row-major, grows by one column per step
  for (int64_t t = 1; t <= max_len; ++t) {
    Tensor tgt = Tensor::empty({b, t}, DType::i32), lengths = Tensor::empty({b}, DType::i32);
    for (int64_t i = 0; i < b * t; ++i) tgt.data<int32_t>()[i] = prefix[i];
    for (int64_t i = 0; i < b; ++i) lengths.data<int32_t>()[i] = static_cast<int32_t>(t);
    const Tensor h = decode(ctx, tgt, lengths, memory, src_lengths);
    // Only the last position's logits are needed.
    Tensor last = Tensor::empty({b, cfg_.d_model}, h.dtype());
    for (int64_t i = 0; i < b; ++i) last.rows(i, i + 1).copy_from(h.reshape({b * t, cfg_.d_model}).rows(i * t + t - 1, i * t + t));
    Tensor logits = Tensor::empty({b, embedding_.local_rows()}, h.dtype());
    embedding_.project(last, logits);
    const Tensor next = parallel::vocab_parallel_argmax(logits, embedding_.real_local_rows(), embedding_.vocab_start(), tp_);
    std::vector<int32_t> grown(b * (t + 1));
    bool all_done = true;
    for (int64_t i = 0; i < b; ++i) {
      const int32_t id = next.data<int32_t>()[i];
      if (!done[i]) {
        if (id == cfg_.eos_id) done[i] = true;
        else out[i].push_back(id);
      }
      all_done = all_done && done[i];
      for (int64_t j = 0; j < t; ++j) grown[i * (t + 1) + j] = prefix[i * t + j];
      grown[i * (t + 1) + t] = done[i] ? cfg_.pad_id : id;
    }
    prefix.swap(grown);
    if (all_done) break;
  }
  return out;
}

}  // namespace tessera::model
