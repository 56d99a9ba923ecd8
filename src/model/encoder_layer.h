// One encoder layer: [self-attention, feed-forward], each inside a residual connection.
#pragma once

#include <string>

#include "model/attention.h"
#include "model/config.h"
#include "model/feed_forward.h"
#include "model/residual.h"

namespace tessera::model {

class EncoderLayer {
 public:
  EncoderLayer(ParameterStore& store, const std::string& name, const ModelConfig& cfg, uint32_t& next_site,
               parallel::Communicator& tp);
  // x [B, S, d] -> [B, S, d]; src_lengths [B] masks padded keys.
  Tensor forward(const StepContext& ctx, const Tensor& x, const Tensor& src_lengths);
  Tensor backward(const Tensor& dy);

 private:
  parallel::Communicator& tp_;
  MultiHeadAttention self_attention_;
  ResidualConnection attention_residual_;
  FeedForward ffn_;
  ResidualConnection ffn_residual_;
};

}  // namespace tessera::model
