#include "eval/greedy_search.h"

#include <algorithm>

#include "core/error.h"
#include "parallel/vocab_parallel_cross_entropy.h"

namespace tessera::eval {

std::vector<std::vector<int32_t>> greedy_search(model::Transformer& model, SentenceFeed& feed, int64_t max_len_extra,
                                                int64_t batch_sentences) {
  const model::ModelConfig& cfg = model.config();
  TESSERA_CHECK(batch_sentences >= 1, "greedy search: --batch-sentences must be at least 1, got ", batch_sentences);
  std::vector<std::vector<int32_t>> out;
  std::vector<int64_t> max_len;
  std::vector<int64_t> active;  // the sentence each row of the state decodes
  std::vector<int32_t> last;    // each row's newest token
  model::DecoderState state = model.start_decoding(1);

  auto refill = [&] {
    const Tensor src_lengths = refill_batch(model, state, feed, static_cast<int64_t>(active.size()), batch_sentences);
    for (int64_t i = 0; i < src_lengths.dim(0); ++i) {
      active.push_back(static_cast<int64_t>(out.size()));
      out.emplace_back();
      // Source pieces (its eos not counted) + max_len_extra tokens; at least one, as beam search.
      max_len.push_back(std::max<int64_t>(1, src_lengths.data<int32_t>()[i] - 1 + max_len_extra));
      last.push_back(cfg.bos_id);
    }
  };

  for (refill(); !active.empty(); refill()) {
    const Tensor next = on_device(
        parallel::vocab_parallel_argmax(model.decode_step_logits(state, last), model.embedding().real_local_rows(),
                                        model.embedding().vocab_start(), model.tensor_parallel()),
        Device::cpu);
    // A row that emits eos, or reaches its length bound, is finished and leaves the batch.
    std::vector<int64_t> keep, still_active;
    last.clear();
    for (size_t r = 0; r < active.size(); ++r) {
      const int64_t s = active[r];
      const int32_t id = next.data<int32_t>()[r];
      if (id == cfg.eos_id) continue;
      out[s].push_back(id);
      if (static_cast<int64_t>(out[s].size()) >= max_len[s]) continue;
      keep.push_back(static_cast<int64_t>(r));
      still_active.push_back(s);
      last.push_back(id);
    }
    model.reorder(state, keep);
    active.swap(still_active);
  }
  return out;
}

}  // namespace tessera::eval
