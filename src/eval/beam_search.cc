#include "eval/beam_search.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "parallel/vocab_parallel_topk.h"

namespace tessera::eval {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Live {
  std::vector<int32_t> tokens;
  double log_prob = kNegInf;  // -inf: an empty slot that proposes nothing
};

// One way to extend a live hypothesis by one token.
struct Candidate {
  double log_prob;  // of the extended hypothesis
  int64_t beam;     // the live hypothesis it extends
  int32_t token;
};

// Inserts h into hyps (best score first; equal scores keep arrival order) and keeps the best k.
void keep_best(std::vector<Hypothesis>& hyps, Hypothesis h, size_t k) {
  const auto at = std::upper_bound(hyps.begin(), hyps.end(), h.score,
                                   [](double score, const Hypothesis& x) { return score > x.score; });
  hyps.insert(at, std::move(h));
  if (hyps.size() > k) hyps.pop_back();
}

}  // namespace

double length_penalty(int64_t length, double alpha) { return std::pow((5.0 + static_cast<double>(length)) / 6.0, alpha); }

std::vector<std::vector<Hypothesis>> beam_search_nbest(model::Transformer& model, SentenceFeed& feed,
                                                       const BeamOptions& options, int64_t batch_sentences) {
  const model::ModelConfig& cfg = model.config();
  const int64_t k = options.beam;
  const size_t beam = static_cast<size_t>(k);
  TESSERA_CHECK(k >= 1, "beam search: --beam must be at least 1, got ", k);
  TESSERA_CHECK(batch_sentences >= 1, "beam search: --batch-sentences must be at least 1, got ", batch_sentences);
  // Each live hypothesis proposes 2k tokens: even if k of them end in eos, k others remain.
  const int64_t proposals = std::min<int64_t>(2 * k, cfg.vocab_size);

  // Per sentence, in the feed's order: its live and finished hypotheses, tokens generated so far
  // and length bound.
  std::vector<std::vector<Live>> live;
  std::vector<std::vector<Hypothesis>> finished;
  std::vector<int64_t> generated, max_len;
  std::vector<int64_t> active;  // sentences in the decoder state; active[a] owns rows [a k, (a + 1) k)
  model::DecoderState state = model.start_decoding(k);
  std::vector<int32_t> last;    // each row's newest token
  std::vector<Candidate> candidates;

  // Takes sentences into the free rows. Every sentence starts with k copies of the empty
  // hypothesis; only the first is live, so its first step does not propose the same tokens k times.
  auto refill = [&] {
    const Tensor src_lengths = refill_batch(model, state, feed, static_cast<int64_t>(active.size()), batch_sentences);
    for (int64_t i = 0; i < src_lengths.dim(0); ++i) {
      active.push_back(static_cast<int64_t>(live.size()));
      live.emplace_back(beam);
      live.back()[0].log_prob = 0;
      finished.emplace_back();
      generated.push_back(0);
      max_len.push_back(std::max<int64_t>(
          1, static_cast<int64_t>(options.max_len_a * src_lengths.data<int32_t>()[i]) + options.max_len_b));
      last.insert(last.end(), beam, cfg.bos_id);
    }
  };

  for (refill(); !active.empty(); refill()) {
    const parallel::VocabTopK top = parallel::vocab_parallel_topk_log_probs(
        model.decode_step_logits(state, last), model.embedding().real_local_rows(), model.embedding().vocab_start(),
        proposals, model.tensor_parallel());
    std::vector<int64_t> rows, still_active;
    last.clear();
    for (size_t a = 0; a < active.size(); ++a) {
      const int64_t s = active[a];
      const int64_t length = ++generated[s];  // tokens generated after this step
      const double lp = length_penalty(length, options.length_penalty);
      candidates.clear();
      for (int64_t b = 0; b < k; ++b) {
        if (live[s][b].log_prob == kNegInf) continue;
        const int64_t row = static_cast<int64_t>(a) * k + b;
        for (int64_t j = 0; j < proposals; ++j) {
          const int32_t id = top.ids[row * proposals + j];
          if (id >= 0) candidates.push_back({live[s][b].log_prob + top.log_probs[row * proposals + j], b, id});
        }
      }
      // Best first; equal scores keep the proposal order (lower beam, then lower token id), so
      // the choice is deterministic and the same on every rank.
      std::stable_sort(candidates.begin(), candidates.end(),
                       [](const Candidate& x, const Candidate& y) { return x.log_prob > y.log_prob; });
      std::vector<Live> next;
      std::vector<int64_t> parents;
      for (size_t i = 0; i < candidates.size() && next.size() < beam; ++i) {
        const Candidate& c = candidates[i];
        const Live& parent = live[s][c.beam];
        if (c.token == cfg.eos_id) {
          // Only an eos among the best k candidates finishes a hypothesis (as in fairseq).
          if (i < beam) keep_best(finished[s], {parent.tokens, c.log_prob, c.log_prob / lp}, beam);
          continue;
        }
        next.push_back({parent.tokens, c.log_prob});
        next.back().tokens.push_back(c.token);
        parents.push_back(c.beam);
      }
      const bool at_max = length >= max_len[s];
      if (at_max)  // out of length: the live hypotheses finish as they are, without eos
        for (const Live& h : next) keep_best(finished[s], {h.tokens, h.log_prob, h.log_prob / lp}, beam);
      // Done once the best hypothesis so far is a finished one: the best live one (next[0], the
      // candidates are sorted) does not beat it at its current length.
      if (at_max || next.empty() || (!finished[s].empty() && finished[s][0].score >= next[0].log_prob / lp)) {
        live[s] = {};  // its rows leave the batch
        continue;
      }

      // Fewer than k live hypotheses only when the vocabulary is tiny: fill with empty slots.
      while (next.size() < beam) {
        next.push_back({});
        parents.push_back(0);
      }
      for (size_t b = 0; b < beam; ++b) {
        rows.push_back(static_cast<int64_t>(a) * k + parents[b]);  // the cache rows follow the hypotheses
        last.push_back(next[b].tokens.empty() ? cfg.pad_id : next[b].tokens.back());
      }
      live[s] = std::move(next);
      still_active.push_back(s);
    }
    model.reorder(state, rows);
    active.swap(still_active);
  }
  return finished;
}

std::vector<std::vector<Hypothesis>> beam_search_nbest(model::Transformer& model, const Tensor& src,
                                                       const Tensor& src_lengths, const BeamOptions& options) {
  BatchFeed feed(src, src_lengths);
  return beam_search_nbest(model, feed, options, std::max<int64_t>(1, src.dim(0)));
}

std::vector<std::vector<int32_t>> best_tokens(const std::vector<std::vector<Hypothesis>>& nbest) {
  std::vector<std::vector<int32_t>> out(nbest.size());
  for (size_t s = 0; s < nbest.size(); ++s)
    if (!nbest[s].empty()) out[s] = nbest[s].front().tokens;
  return out;
}

std::vector<std::vector<int32_t>> beam_search(model::Transformer& model, const Tensor& src, const Tensor& src_lengths,
                                              const BeamOptions& options) {
  return best_tokens(beam_search_nbest(model, src, src_lengths, options));
}

}  // namespace tessera::eval
