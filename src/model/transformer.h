// The encoder-decoder of "Attention Is All You Need", sharded over a tensor-parallel group.
//
// Step, top to bottom: embed source and target (shared, scaled, vocabulary-parallel) + sinusoidal
// positions + dropout; N encoder layers; N decoder layers over the encoder output; project onto
// the tied embedding (logits stay vocabulary-sharded); label-smoothed cross-entropy. Backward runs
// the same path in reverse and tells the parameter store as each layer's gradients complete, so
// data parallelism can start reducing them while the rest of backward runs.
#pragma once

#include <memory>
#include <vector>

#include "model/batch.h"
#include "model/config.h"
#include "model/context.h"
#include "model/decoder_layer.h"
#include "model/encoder_layer.h"
#include "model/layer_norm.h"
#include "model/parameters.h"
#include "parallel/vocab_parallel_cross_entropy.h"
#include "parallel/vocab_parallel_embedding.h"

namespace tessera::model {

struct LossStats {
  double loss_sum = 0;  // summed over target tokens
  int64_t tokens = 0;
  int64_t correct = 0;  // targets predicted by the argmax (teacher forcing)
};

// The state of incremental decoding for a batch of sentences, each decoded by k hypotheses
// ("rows"; rows [s k, (s + 1) k) belong to sentence s): per decoder layer, the cached keys and
// values of this rank's heads (every tensor-parallel rank holds its own heads' cache), each
// sentence's source length for the cross-attention mask, and each sentence's own target position:
// sentences join the batch as others leave it, so they stand at different positions.
struct DecoderState {
  int64_t rows_per_sentence = 1;         // k
  std::vector<int64_t> positions;        // [sentences]: target positions fed so far (the next token's)
  std::vector<int32_t> source_lengths;   // [sentences], on the host
  Tensor src_lengths;                    // the same on the model's device, i32
  std::vector<DecoderLayerCache> layers;
  int64_t sentences() const { return static_cast<int64_t>(positions.size()); }
  int64_t rows() const { return sentences() * rows_per_sentence; }
};

class Transformer {
 public:
  // Declares every parameter in `store` (call store.finalize afterwards).
  Transformer(const ModelConfig& cfg, ParameterStore& store, parallel::Communicator& tp);

  const ModelConfig& config() const { return cfg_; }

  // Forward and backward on one batch slice. Parameter gradients accumulate into the store,
  // scaled by grad_scale (1 / target tokens of the global batch, so the summed gradient is that
  // of the mean loss). With notify, the store's grads-ready hook fires as each layer completes.
  LossStats forward_backward(const Batch& batch, const StepContext& ctx, double grad_scale, bool notify_grads_ready);
  // Forward only, no dropout.
  LossStats evaluate(const Batch& batch);

  // Teacher-forced next-token logits without dropout, [B*T, V/tp]: this rank's vocabulary slice.
  Tensor teacher_forced_logits(const Tensor& src, const Tensor& src_lengths, const Tensor& tgt_in,
                               const Tensor& tgt_lengths);

  // Greedy decoding: for each source sentence, the argmax token at each step until eos or
  // max_len tokens. Returns the ids without bos/eos.
  std::vector<std::vector<int32_t>> greedy_decode(const Tensor& src, const Tensor& src_lengths, int64_t max_len);

  // Incremental decoding with cached keys and values (greedy_decode and eval/beam_search use it).
  // Encodes src [B, S] once and starts rows_per_sentence empty hypotheses per sentence: rows
  // [s*k, (s+1)*k) belong to sentence s and share its cross-attention keys and values (held once).
  DecoderState start_decoding(const Tensor& src, const Tensor& src_lengths, int64_t rows_per_sentence);
  // A state with no sentence yet, for add_sentences.
  DecoderState start_decoding(int64_t rows_per_sentence) const;
  // The same for sentences that join a running batch: encoded and appended after the state's
  // sentences, at position 0, while the others go on from where they are.
  void add_sentences(DecoderState& state, const Tensor& src, const Tensor& src_lengths);
  // Feeds each row's newest token (at its sentence's position) through the decoder and returns
  // the logits of the token after it, [rows, V/tp]: this rank's vocabulary slice.
  Tensor decode_step_logits(DecoderState& state, const std::vector<int32_t>& last_tokens);
  // Keeps rows rows[0], rows[1], ... of the state: reselected beams, finished sentences dropped.
  // Rows stay grouped by sentence: rows [j k, (j + 1) k) of the result must all come from one
  // sentence, the j-th kept one, and kept sentences keep their order. The caches are rearranged in
  // place: no step allocates a new cache.
  void reorder(DecoderState& state, const std::vector<int64_t>& rows) const;

  // The vocabulary split of the logits, and the group they are split over.
  const parallel::VocabParallelEmbedding& embedding() const { return embedding_; }
  parallel::Communicator& tensor_parallel() const { return tp_; }

 private:
  struct ParamRange {
    int first, last;
  };
  Tensor embed(const StepContext& ctx, const Tensor& ids, uint32_t site);
  void embed_backward(const Tensor& ids, const Tensor& dx, const StepContext& ctx, uint32_t site);
  Tensor encode(const StepContext& ctx, const Tensor& src, const Tensor& src_lengths);
  Tensor decode(const StepContext& ctx, const Tensor& tgt_in, const Tensor& tgt_lengths, const Tensor& memory,
                const Tensor& src_lengths);
  void notify(const ParamRange& r) const;

  ModelConfig cfg_;
  ParameterStore& store_;
  parallel::Communicator& tp_;
  parallel::VocabParallelEmbedding embedding_;
  std::vector<std::unique_ptr<EncoderLayer>> encoder_;
  std::vector<std::unique_ptr<DecoderLayer>> decoder_;
  std::vector<ParamRange> encoder_params_, decoder_params_;
  std::unique_ptr<LayerNorm> encoder_norm_, decoder_norm_;  // pre-LN only
  uint32_t source_site_ = 0, target_site_ = 1;
  bool notify_ = false;
};

}  // namespace tessera::model
