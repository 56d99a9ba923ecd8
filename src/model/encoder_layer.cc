#include "model/encoder_layer.h"

#include "kernels/ops.h"

namespace tessera::model {

EncoderLayer::EncoderLayer(ParameterStore& store, const std::string& name, const ModelConfig& cfg,
                           uint32_t& next_site, parallel::Communicator& tp)
    : tp_(tp),
      self_attention_(store, name + ".self_attention", cfg.d_model, cfg.heads, false, cfg.attention_dropout,
                      next_site++, tp),
      attention_residual_(store, name + ".self_attention_norm", cfg.d_model, cfg.pre_ln, cfg.dropout, next_site++),
      ffn_(store, name + ".ffn", cfg.d_model, cfg.d_ff, activation_of(cfg), tp),
      ffn_residual_(store, name + ".ffn_norm", cfg.d_model, cfg.pre_ln, cfg.dropout, next_site++) {}

Tensor EncoderLayer::forward(const StepContext& ctx, const Tensor& x, const Tensor& src_lengths) {
  const int64_t seq = x.dim(1);
  const Tensor in = attention_residual_.sublayer_input(x);
  Tensor in2;  // ffn_residual_.sublayer_input(x1), computed with x1 in one pass
  const Tensor x1 =
      attention_residual_.output(ctx, seq, x, self_attention_.forward(ctx, in, in, src_lengths), ffn_residual_, in2);
  return ffn_residual_.output(ctx, seq, x1, ffn_.forward(in2, ctx.training));
}

Tensor EncoderLayer::backward(const Tensor& dy) {
  Tensor din2 = ffn_.backward(ffn_residual_.backward_output(dy));
  parallel::all_reduce_sum(tp_, din2);
  // attention_residual_.backward_output(ffn_residual_.backward_input(din2)), in one pass
  const Tensor dattention = ffn_residual_.backward_input(din2, attention_residual_);
  Tensor dq, dkv;
  self_attention_.backward(dattention, dq, dkv);
  kernels::axpy(1.0, dkv, dq);  // self-attention: queries, keys and values all read the same input
  parallel::all_reduce_sum(tp_, dq);
  return attention_residual_.backward_input(dq);
}

}  // namespace tessera::model
