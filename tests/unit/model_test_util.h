// Random batches and tiny configurations for model tests.
#pragma once

#include <random>

#include "model/batch.h"
#include "model/config.h"
#include "test_util.h"

namespace tessera::testing {

inline model::ModelConfig tiny_test_config(bool pre_ln = false) {
  model::ModelConfig cfg;
  cfg.vocab_size = 13;
  cfg.d_model = 8;
  cfg.d_ff = 12;
  cfg.heads = 4;
  cfg.encoder_layers = 2;
  cfg.decoder_layers = 2;
  cfg.dropout = 0.2f;
  cfg.attention_dropout = 0.1f;
  cfg.pre_ln = pre_ln;
  cfg.label_smoothing = 0.1;
  return cfg;
}

// A right-padded batch of random sentences with random lengths in [1, max_len].
inline model::Batch random_batch(const model::ModelConfig& cfg, int64_t b, int64_t max_src, int64_t max_tgt,
                                 std::mt19937_64& gen) {
  std::uniform_int_distribution<int32_t> token(4, static_cast<int32_t>(cfg.vocab_size) - 1);
  model::Batch batch;
  batch.src = Tensor::zeros({b, max_src}, DType::i32);
  batch.tgt_in = Tensor::zeros({b, max_tgt}, DType::i32);
  batch.tgt_out = Tensor::zeros({b, max_tgt}, DType::i32);
  batch.src_lengths = Tensor::empty({b}, DType::i32);
  batch.tgt_lengths = Tensor::empty({b}, DType::i32);
  for (int64_t i = 0; i < b; ++i) {
    const int32_t ls = std::uniform_int_distribution<int32_t>(1, static_cast<int32_t>(max_src))(gen);
    const int32_t lt = std::uniform_int_distribution<int32_t>(1, static_cast<int32_t>(max_tgt))(gen);
    batch.src_lengths.data<int32_t>()[i] = ls;
    batch.tgt_lengths.data<int32_t>()[i] = lt;
    for (int32_t j = 0; j < ls; ++j) batch.src.data<int32_t>()[i * max_src + j] = token(gen);
    // tgt_in = bos y1..y(lt-1), tgt_out = y1..y(lt-1) eos
    batch.tgt_in.data<int32_t>()[i * max_tgt] = cfg.bos_id;
    for (int32_t j = 1; j < lt; ++j) {
      const int32_t y = token(gen);
      batch.tgt_in.data<int32_t>()[i * max_tgt + j] = y;
      batch.tgt_out.data<int32_t>()[i * max_tgt + j - 1] = y;
    }
    batch.tgt_out.data<int32_t>()[i * max_tgt + lt - 1] = cfg.eos_id;
  }
  return batch;
}

}  // namespace tessera::testing
