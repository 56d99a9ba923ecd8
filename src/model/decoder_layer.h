// One decoder layer: [masked self-attention, cross-attention over the encoder output,
// feed-forward], each inside a residual connection.
#pragma once

#include <string>

#include "model/attention.h"
#include "model/config.h"
#include "model/feed_forward.h"
#include "model/residual.h"

namespace tessera::model {

// What one decoder layer keeps between incremental decoding steps: the keys and values of every
// past position of each row (hypothesis) for its self-attention, and of the encoder output of each
// sentence for its cross-attention (one per sentence, however many rows decode it).
struct DecoderLayerCache {
  KVCache self, cross;
};

class DecoderLayer {
 public:
  DecoderLayer(ParameterStore& store, const std::string& name, const ModelConfig& cfg, uint32_t& next_site,
               parallel::Communicator& tp);
  // y [B, T, d], memory [B, S, d] (the encoder output) -> [B, T, d].
  Tensor forward(const StepContext& ctx, const Tensor& y, const Tensor& tgt_lengths, const Tensor& memory,
                 const Tensor& src_lengths);
  // Returns dy; adds this layer's partial (un-reduced) gradient of the memory into dmemory_partial.
  Tensor backward(const Tensor& dy, Tensor& dmemory_partial);

  // Incremental decoding, no dropout. Adds sentences to `cache`: their cross-attention keys and
  // values, from memory [sentences, S, d], and k empty self-attention rows each.
  void add_to_cache(DecoderLayerCache& cache, const Tensor& memory, int64_t k);
  // y [rows, 1, d], the newest position of each row -> [rows, 1, d], where rows [s k, (s + 1) k)
  // decode sentence s (k = rows / sentences), whose newest token sits at positions[s]. Writes its
  // keys and values into the self-attention cache; self_lengths [rows] is each row's own filled
  // length after that write (positions[s] + 1), src_lengths [sentences].
  Tensor forward_step(const Tensor& y, DecoderLayerCache& cache, const Tensor& self_lengths,
                      const Tensor& src_lengths, const std::vector<int64_t>& positions);

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
