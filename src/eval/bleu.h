// Corpus-level BLEU, identical to sacreBLEU's defaults: corpus_bleu(hyps, [refs]) with the
// 13a tokenizer, 'exp' smoothing, case-sensitive, n-grams up to 4, no effective order.
//
// BLEU = BP * exp(mean_n log p_n), where p_n is the clipped n-gram precision summed over the
// whole corpus and BP = exp(1 - ref_len / sys_len) penalises hypotheses shorter than the
// references. Strings are UTF-8 bytes; see bleu.cc for why byte-level matching suffices.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::eval {

// sacreBLEU's Tokenizer13a (mteval-v13a.pl): drops "<skipped>", joins "-\n", unescapes
// &quot; &amp; &lt; &gt;, splits off punctuation and symbols, splits '.' and ',' unless they
// sit inside a number, splits '-' after a digit, then collapses whitespace (Python's
// str.split() notion of whitespace, which includes e.g. U+00A0 and U+3000).
std::string tokenize_13a(std::string_view line);

inline constexpr int kBleuMaxOrder = 4;

struct BleuScore {
  double score = 0.0;                              // 0..100
  std::array<double, kBleuMaxOrder> precisions{};  // p_1..p_4 in percent, smoothed
  double bp = 1.0;                                 // brevity penalty
  double sys_len_ratio = 0.0;                      // sys_len / ref_len, 0 when ref_len is 0
  int64_t sys_len = 0, ref_len = 0;                // token counts after tokenisation
  // sacreBLEU's str(score), e.g.
  // "BLEU = 33.83 75.7/46.6/33.0/19.0 (BP = 0.878 ratio = 0.885 hyp_len = 115 ref_len = 130)".
  std::string to_string() const;
};

// Accumulates BLEU's sufficient statistics segment by segment. The statistics add up, so
// data-parallel ranks can each score their shard and all-reduce (sum) stats() before score().
class BleuAccumulator {
 public:
  // Layout as in sacreBLEU: sys_len, ref_len, matches[1..4], hypothesis n-gram totals[1..4].
  using Stats = std::array<int64_t, 2 + 2 * kBleuMaxOrder>;

  // Adds one segment. Both sides are right-stripped and 13a-tokenised, as sacreBLEU does.
  void add(std::string_view hypothesis, std::string_view reference);
  // Adds statistics gathered elsewhere (another accumulator, another rank).
  void merge(const Stats& other);

  const Stats& stats() const { return stats_; }
  BleuScore score() const { return score_from_stats(stats_); }
  static BleuScore score_from_stats(const Stats& stats);

 private:
  Stats stats_{};
};

// BLEU of a corpus against one reference per hypothesis; throws tessera::Error when the two
// lists differ in length.
BleuScore corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs);

}  // namespace tessera::eval
