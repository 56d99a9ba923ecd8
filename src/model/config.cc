#include "model/config.h"

#include "core/error.h"

namespace tessera::model {

void ModelConfig::validate(int tp) const {
  TESSERA_CHECK(vocab_size > 4, "--vocab-size: ", vocab_size, " leaves no room beyond pad/unk/bos/eos");
  TESSERA_CHECK(d_model > 0, "--d-model: must be positive, got ", d_model);
  TESSERA_CHECK(d_ff > 0, "--d-ff: must be positive, got ", d_ff);
  TESSERA_CHECK(heads > 0, "--heads: must be positive, got ", heads);
  TESSERA_CHECK(d_model % heads == 0, "--heads: ", heads, " heads do not divide --d-model = ", d_model);
  TESSERA_CHECK(encoder_layers > 0, "--encoder-layers: must be positive, got ", encoder_layers);
  TESSERA_CHECK(decoder_layers > 0, "--decoder-layers: must be positive, got ", decoder_layers);
  TESSERA_CHECK(dropout >= 0 && dropout < 1, "--dropout: ", dropout, " is not a probability in [0, 1)");
  TESSERA_CHECK(attention_dropout >= 0 && attention_dropout < 1, "--attention-dropout: ", attention_dropout,
                " is not a probability in [0, 1)");
  TESSERA_CHECK(activation == "relu" || activation == "gelu", "--activation: '", activation,
                "' is not one of relu, gelu");
  TESSERA_CHECK(label_smoothing >= 0 && label_smoothing < 1, "--label-smoothing: ", label_smoothing,
                " is not in [0, 1)");
  TESSERA_CHECK(tp >= 1, "--tensor-parallel: must be at least 1, got ", tp);
  TESSERA_CHECK(heads % tp == 0, "--tensor-parallel: ", tp, " ranks do not divide --heads = ", heads,
                " (each rank must own whole attention heads)");
  TESSERA_CHECK(d_ff % tp == 0, "--tensor-parallel: ", tp, " ranks do not divide --d-ff = ", d_ff);
}

int64_t ModelConfig::parameter_count(int tp) const {
  const int64_t v = (vocab_size + tp - 1) / tp * tp, d = d_model;
  const int64_t attention = 4 * (d * d + d), ffn = d * d_ff + d_ff + d_ff * d + d, norm = 2 * d;
  const int64_t encoder = encoder_layers * (attention + ffn + 2 * norm);
  const int64_t decoder = decoder_layers * (2 * attention + ffn + 3 * norm);
  const int64_t final_norms = pre_ln ? 2 * norm : 0;
  return v * d + encoder + decoder + final_norms;
}

}  // namespace tessera::model
