// The model's hyper-parameters (the paper's Table 3 names them) and their validation.
#pragma once

#include <cstdint>
#include <string>

namespace tessera::model {

struct ModelConfig {
  int64_t vocab_size = 8000;     // shared source/target vocabulary
  int64_t d_model = 512;
  int64_t d_ff = 2048;
  int64_t heads = 8;
  int64_t encoder_layers = 6;
  int64_t decoder_layers = 6;
  float dropout = 0.1f;          // on sublayer outputs and embedding + position sums
  float attention_dropout = 0.0f;  // on attention probabilities
  bool pre_ln = false;           // false: the paper's post-LN; true: pre-LN plus a final LN
  std::string activation = "relu";  // relu (the paper) or gelu
  double label_smoothing = 0.1;
  int32_t pad_id = 0, unk_id = 1, bos_id = 2, eos_id = 3;

  int64_t d_head() const { return d_model / heads; }
  // Throws tessera::Error naming the option at fault (--heads, --dropout, ...), also
  // for a tensor-parallel size that does not divide the heads or the FFN width.
  void validate(int tensor_parallel = 1) const;
  // Parameters of the global model (embedding counted once, padded to a multiple of tp).
  int64_t parameter_count(int tensor_parallel = 1) const;
};

}  // namespace tessera::model
