// One decoder layer: [masked self-attention, cross-attention over the encoder output,
// feed-forward], each inside a residual connection.
#pragma once

#include <string>

#include "model/attention.h"
#include "model/config.h"
#include "model/feed_forward.h"
#include "model/residual.h"

namespace tessera::model {

class DecoderLayer {
 public:
  DecoderLayer(ParameterStore& store, const std::string& name, const ModelConfig& cfg, uint32_t& next_site,
               parallel::Communicator& tp);
  // y [B, T, d], memory [B, S, d] (the encoder output) -> [B, T, d].
  Tensor forward(const StepContext& ctx, const Tensor& y, const Tensor& tgt_lengths, const Tensor& memory,
                 const Tensor& src_lengths);
  // Returns dy; adds this layer's partial (un-reduced) gradient of the memory into dmemory_partial.
  Tensor backward(const Tensor& dy, Tensor& dmemory_partial);

 private:
  parallel::Communicator& tp_;
  MultiHeadAttention self_attention_;
  ResidualConnection self_attention_residual_;
  MultiHeadAttention cross_attention_;
  ResidualConnection cross_attention_residual_;
  FeedForward ffn_;
  ResidualConnection ffn_residual_;
};

}  // namespace tessera::model
