#include "model/transformer.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/ops.h"
#include "kernels/trace_range.h"

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
  Tensor x = Tensor::empty({b * s, cfg_.d_model}, store_.dtype(), store_.device());
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
  for (size_t i = 0; i < encoder_.size(); ++i) {
    const kernels::TraceRange range("encoder." + std::to_string(i) + " forward");
    x = encoder_[i]->forward(ctx, x, src_lengths);
  }
  return encoder_norm_ ? encoder_norm_->forward(x) : x;
}

Tensor Transformer::decode(const StepContext& ctx, const Tensor& tgt_in, const Tensor& tgt_lengths,
                           const Tensor& memory, const Tensor& src_lengths) {
  Tensor y = embed(ctx, tgt_in, target_site_);
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const kernels::TraceRange range("decoder." + std::to_string(i) + " forward");
    y = decoder_[i]->forward(ctx, y, tgt_lengths, memory, src_lengths);
  }
  return decoder_norm_ ? decoder_norm_->forward(y) : y;
}

LossStats Transformer::forward_backward(const Batch& host_batch, const StepContext& step_ctx, double grad_scale,
                                        bool notify_grads_ready) {
  const Batch batch = host_batch.to(store_.device());
  notify_ = notify_grads_ready;
  StepContext ctx = step_ctx;
  ctx.sentence_offset = batch.sentence_offset;  // dropout is keyed by the global sentence index
  const int64_t b = batch.size(), t = batch.tgt_in.dim(1), s = batch.src.dim(1);
  const Tensor memory = encode(ctx, batch.src, batch.src_lengths);
  const Tensor h = decode(ctx, batch.tgt_in, batch.tgt_lengths, memory, batch.src_lengths).reshape({b * t, cfg_.d_model});

  Tensor logits = Tensor::empty({b * t, embedding_.local_rows()}, store_.dtype(), store_.device());
  embedding_.project(h, logits);
  const auto ce = parallel::vocab_parallel_cross_entropy(
      logits, embedding_.real_local_rows(), embedding_.vocab_start(), cfg_.vocab_size, batch.tgt_out.reshape({b * t}),
      cfg_.label_smoothing, cfg_.pad_id, grad_scale, /*with_grad=*/true, tp_);

  // Backward: output projection, decoder, encoder, embeddings.
  Tensor dh = Tensor::empty(h.shape(), h.dtype(), h.device());
  embedding_.project_backward(h, logits, dh);
  logits = Tensor();
  Tensor dy = dh.reshape({b, t, cfg_.d_model});
  if (decoder_norm_) {
    dy = decoder_norm_->backward(dy);
    if (notify_) store_.grads_ready(decoder_norm_->first_param(), decoder_norm_->last_param());
  }
  Tensor dmemory = Tensor::zeros({b, s, cfg_.d_model}, store_.dtype(), store_.device());
  for (size_t i = decoder_.size(); i-- > 0;) {
    const kernels::TraceRange range("decoder." + std::to_string(i) + " backward");
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
    const kernels::TraceRange range("encoder." + std::to_string(i) + " backward");
    dx = encoder_[i]->backward(dx);
    notify(encoder_params_[i]);
  }
  embed_backward(batch.tgt_in, dy, ctx, target_site_);
  embed_backward(batch.src, dx, ctx, source_site_);
  if (notify_) store_.grads_ready(embedding_.param(), embedding_.param());
  return {ce.loss_sum, ce.tokens, ce.correct};
}

Tensor Transformer::teacher_forced_logits(const Tensor& src, const Tensor& src_lengths, const Tensor& tgt_in,
                                          const Tensor& tgt_lengths) {
  StepContext ctx;
  ctx.training = false;
  const int64_t b = tgt_in.dim(0), t = tgt_in.dim(1);
  const Device dev = store_.device();
  const Tensor src_lengths_on_dev = on_device(src_lengths, dev);  // read by the encoder and the decoder
  const Tensor memory = encode(ctx, on_device(src, dev), src_lengths_on_dev);
  const Tensor h = decode(ctx, on_device(tgt_in, dev), on_device(tgt_lengths, dev), memory, src_lengths_on_dev)
                       .reshape({b * t, cfg_.d_model});
  Tensor logits = Tensor::empty({b * t, embedding_.local_rows()}, store_.dtype(), dev);
  embedding_.project(h, logits);
  return logits;
}

LossStats Transformer::evaluate(const Batch& host_batch) {
  const Batch batch = host_batch.to(store_.device());
  const int64_t b = batch.size(), t = batch.tgt_in.dim(1);
  Tensor logits = teacher_forced_logits(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_lengths);
  const auto ce = parallel::vocab_parallel_cross_entropy(
      logits, embedding_.real_local_rows(), embedding_.vocab_start(), cfg_.vocab_size, batch.tgt_out.reshape({b * t}),
      cfg_.label_smoothing, cfg_.pad_id, 0.0, /*with_grad=*/false, tp_);
  return {ce.loss_sum, ce.tokens, ce.correct};
}

namespace {
// The state's source lengths as a host tensor [sentences] i32.
Tensor source_lengths_tensor(const DecoderState& state) {
  Tensor t = Tensor::empty({state.sentences()}, DType::i32);
  std::copy(state.source_lengths.begin(), state.source_lengths.end(), t.data<int32_t>());
  return t;
}
}  // namespace

DecoderState Transformer::start_decoding(int64_t rows_per_sentence) const {
  TESSERA_CHECK(rows_per_sentence >= 1, "start_decoding: rows_per_sentence must be at least 1, got ",
                rows_per_sentence);
  DecoderState state;
  state.rows_per_sentence = rows_per_sentence;
  state.layers.resize(decoder_.size());
  return state;
}

DecoderState Transformer::start_decoding(const Tensor& host_src, const Tensor& host_src_lengths,
                                         int64_t rows_per_sentence) {
  DecoderState state = start_decoding(rows_per_sentence);
  add_sentences(state, host_src, host_src_lengths);
  return state;
}

void Transformer::add_sentences(DecoderState& state, const Tensor& host_src, const Tensor& host_src_lengths) {
  const int64_t added = host_src.dim(0);
  TESSERA_CHECK(host_src_lengths.ndim() == 1 && host_src_lengths.dim(0) == added, "add_sentences: ",
                host_src_lengths.numel(), " source lengths for ", added, " sentences");
  if (added == 0) return;
  StepContext ctx;
  ctx.training = false;
  const Tensor src = on_device(host_src, store_.device()), src_lengths = on_device(host_src_lengths, store_.device());
  const Tensor memory = encode(ctx, src, src_lengths);
  // The memory's keys and values are projected once per sentence; its k rows read them together.
  for (size_t i = 0; i < decoder_.size(); ++i) decoder_[i]->add_to_cache(state.layers[i], memory, state.rows_per_sentence);
  const Tensor lengths = on_device(host_src_lengths, Device::cpu);
  for (int64_t s = 0; s < added; ++s) state.source_lengths.push_back(lengths.data<int32_t>()[s]);
  state.positions.resize(state.positions.size() + added, 0);
  state.src_lengths = state.sentences() == added ? src_lengths : on_device(source_lengths_tensor(state), store_.device());
}

Tensor Transformer::decode_step_logits(DecoderState& state, const std::vector<int32_t>& last_tokens) {
  const int64_t rows = state.rows(), k = state.rows_per_sentence;
  TESSERA_CHECK(static_cast<int64_t>(last_tokens.size()) == rows, "decode_step_logits: ", last_tokens.size(),
                " tokens for ", rows, " rows");
  Tensor ids = Tensor::empty({rows}, DType::i32), self_lengths = Tensor::empty({rows}, DType::i32);
  for (int64_t r = 0; r < rows; ++r) {
    ids.data<int32_t>()[r] = last_tokens[r];
    // Every past position of the row's own sequence is real.
    self_lengths.data<int32_t>()[r] = static_cast<int32_t>(state.positions[r / k] + 1);
  }
  ids = on_device(ids, store_.device());
  self_lengths = on_device(self_lengths, store_.device());
  // The embedding of position t is sqrt(d) E[y_t] + PE(t), as in the full-sequence embed(); one
  // call per run of sentences at the same position.
  Tensor y = Tensor::empty({rows, cfg_.d_model}, store_.dtype(), store_.device());
  embedding_.lookup(ids, y);
  for (const PositionRun& run : position_runs(state.positions)) {
    Tensor rows_of_run = y.rows(run.begin * k, run.end * k);
    kernels::add_positions(rows_of_run, 1, run.position);
  }
  y = y.reshape({rows, 1, cfg_.d_model});
  for (size_t i = 0; i < decoder_.size(); ++i)
    y = decoder_[i]->forward_step(y, state.layers[i], self_lengths, state.src_lengths, state.positions);
  if (decoder_norm_) y = decoder_norm_->forward(y);
  for (int64_t& p : state.positions) ++p;
  Tensor logits = Tensor::empty({rows, embedding_.local_rows()}, store_.dtype(), store_.device());
  embedding_.project(y.reshape({rows, cfg_.d_model}), logits);
  return logits;
}

void Transformer::reorder(DecoderState& state, const std::vector<int64_t>& rows) const {
  const int64_t k = state.rows_per_sentence, kept = static_cast<int64_t>(rows.size()) / k;
  TESSERA_CHECK(static_cast<int64_t>(rows.size()) == kept * k, "reorder: ", rows.size(),
                " rows do not make whole sentences of ", k);
  bool same_rows = static_cast<int64_t>(rows.size()) == state.rows();
  std::vector<int64_t> sentences(kept);
  for (int64_t j = 0; j < kept; ++j) {
    sentences[j] = rows[j * k] / k;
    for (int64_t b = 0; b < k; ++b) {
      const int64_t r = rows[j * k + b];
      TESSERA_CHECK(r >= 0 && r < state.rows() && r / k == sentences[j], "reorder: row ", j * k + b, " takes row ", r,
                    ", which does not decode the sentence of its group (rows ", sentences[j] * k, " to ",
                    sentences[j] * k + k - 1, ")");
      same_rows = same_rows && r == j * k + b;
    }
  }
  if (same_rows) return;
  bool same_sentences = kept == state.sentences();
  for (int64_t j = 0; j < kept && same_sentences; ++j) same_sentences = sentences[j] == j;
  // Each sentence's rows hold as many self-attention positions as it has fed tokens, and as many
  // cross-attention positions as its source has: only those are copied.
  const std::vector<int64_t> fed = state.positions;
  const std::vector<int64_t> source_positions(state.source_lengths.begin(), state.source_lengths.end());
  if (!same_sentences) {
    std::vector<int64_t> positions(kept);
    std::vector<int32_t> source_lengths(kept);
    for (int64_t j = 0; j < kept; ++j) {
      positions[j] = state.positions[sentences[j]];
      source_lengths[j] = state.source_lengths[sentences[j]];
    }
    state.positions = std::move(positions);
    state.source_lengths = std::move(source_lengths);
    state.src_lengths = gather_rows(state.src_lengths, sentences);
  }
  // Only the kept sentences' sources are read from now on.
  int64_t longest_source = 0;
  for (int32_t n : state.source_lengths) longest_source = std::max<int64_t>(longest_source, n);
  for (DecoderLayerCache& cache : state.layers) {
    keep_cache_rows(cache.self, rows, k, fed);
    if (!same_sentences) {
      keep_cache_rows(cache.cross, sentences, 1, source_positions);
      cache.cross.length = std::min(cache.cross.length, longest_source);
    }
  }
}

std::vector<std::vector<int32_t>> Transformer::greedy_decode(const Tensor& src, const Tensor& src_lengths,
                                                             int64_t max_len) {
  DecoderState state = start_decoding(src, src_lengths, 1);
  std::vector<std::vector<int32_t>> out(src.dim(0));
  std::vector<int64_t> sentence(src.dim(0));  // the sentence each row of the state decodes
  for (size_t i = 0; i < sentence.size(); ++i) sentence[i] = static_cast<int64_t>(i);
  std::vector<int32_t> last(sentence.size(), cfg_.bos_id);
  for (int64_t t = 0; t < max_len && !sentence.empty(); ++t) {
    const Tensor next = on_device(parallel::vocab_parallel_argmax(decode_step_logits(state, last),
                                                                  embedding_.real_local_rows(), embedding_.vocab_start(), tp_),
                                  Device::cpu);
    // A row that emits eos is finished and leaves the batch; the others append their token.
    std::vector<int64_t> keep, still_decoding;
    last.clear();
    for (size_t r = 0; r < sentence.size(); ++r) {
      const int32_t id = next.data<int32_t>()[r];
      if (id == cfg_.eos_id) continue;
      out[sentence[r]].push_back(id);
      keep.push_back(static_cast<int64_t>(r));
      still_decoding.push_back(sentence[r]);
      last.push_back(id);
    }
    if (!keep.empty() && keep.size() < sentence.size()) reorder(state, keep);
    sentence.swap(still_decoding);
  }
  return out;
}

}  // namespace tessera::model
