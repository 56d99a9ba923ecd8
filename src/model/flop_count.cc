#include "model/flop_count.h"

namespace tessera::model {

double forward_flops(const ModelConfig& c, double s, double t) {
  const double d = static_cast<double>(c.d_model), ff = static_cast<double>(c.d_ff);
  // An [n, in] x [in, out] product is 2 n in out FLOPs; attention's QK^T and PV over all heads are
  // 2 q k d each (heads x d_head = d).
  const double linear = 2 * d * d, ffn = 2 * 2 * d * ff;
  const double encoder = 4 * s * linear + 2 * 2 * s * s * d + s * ffn;
  const double decoder = 4 * t * linear + 2 * 2 * t * t * d    // self-attention
                         + 2 * t * linear + 2 * s * linear      // cross: Q and output from the target, K and V from the source
                         + 2 * 2 * t * s * d                    // cross QK^T and PV
                         + t * ffn;
  const double logits = 2 * t * d * static_cast<double>(c.vocab_size);  // tied output projection
  return static_cast<double>(c.encoder_layers) * encoder + static_cast<double>(c.decoder_layers) * decoder + logits;
}

double training_flops(const ModelConfig& config, const std::vector<TokenPair>& batch) {
  double flops = 0;
  for (const TokenPair& p : batch)  // eos after the source; bos before (input) / eos after (label) the target
    flops += forward_flops(config, static_cast<double>(p.src.size() + 1), static_cast<double>(p.tgt.size() + 1));
  return 3 * flops;
}

}  // namespace tessera::model
