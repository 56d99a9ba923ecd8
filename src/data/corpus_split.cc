#include "data/corpus_split.h"

#include <algorithm>
#include <string>
#include <unordered_set>

#include "core/error.h"

namespace tessera::data {

namespace {

// Closing punctuation that may follow the sentence-final mark: ." .) .» .“ .” .’ .'
bool ends_with_closer(std::string_view text, std::size_t& length) {
  static constexpr std::string_view kClosers[] = {"\"", "'", ")", "]", "\u00BB", "\u00AB",
                                                  "\u201C", "\u201D", "\u2019", "\u2018"};
  for (std::string_view closer : kClosers) {
    if (text.ends_with(closer)) {
      length = closer.size();
      return true;
    }
  }
  return false;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

bool is_full_sentence(std::string_view text) {
  std::size_t words = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ';
    words += !space && !in_word;
    in_word = !space;
  }
  if (words < kMinSentenceWords) return false;
  for (std::size_t closer = 0; ends_with_closer(text, closer);) text.remove_suffix(closer);
  if (text.empty() || text.ends_with("..")) return false;
  const char last = text.back();
  return last == '.' || last == '!' || last == '?';
}

bool is_full_sentence_pair(const SentencePair& pair) {
  return is_full_sentence(pair.source) && is_full_sentence(pair.target);
}

std::uint64_t sentence_hash(std::string_view text, std::uint64_t seed) {
  std::uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a offset basis
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ULL;  // FNV-1a prime
  }
  return splitmix64(h ^ splitmix64(seed));
}

DedupStats deduplicate(std::vector<SentencePair>& pairs, bool by_source, DropReport& report) {
  DedupStats stats;
  std::unordered_set<std::string> seen_pairs;
  std::unordered_set<std::string> seen_sources;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    // '\t' cannot occur inside a normalised sentence, so it separates the two sides safely.
    if (!seen_pairs.insert(pairs[i].source + '\t' + pairs[i].target).second) {
      ++stats.exact_pairs;
      continue;
    }
    if (by_source && !seen_sources.insert(pairs[i].source).second) {
      ++stats.same_source;
      continue;
    }
    if (kept != i) pairs[kept] = std::move(pairs[i]);
    ++kept;
  }
  pairs.resize(kept);
  report.add(DropReason::duplicate, stats.exact_pairs + stats.same_source);
  return stats;
}

CorpusSplit split_corpus(std::vector<SentencePair> pairs, const SplitOptions& options) {
  struct Candidate {
    std::uint64_t hash;
    std::size_t index;
  };
  std::vector<Candidate> candidates;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    if (is_full_sentence_pair(pairs[i]))
      candidates.push_back({sentence_hash(pairs[i].source, options.seed), i});
  }
  const std::size_t held_out = options.dev_size + options.test_size;
  TESSERA_CHECK(candidates.size() >= held_out, "the corpus has only ", candidates.size(),
                " full-sentence pairs, but dev (", options.dev_size, ") and test (",
                options.test_size, ") need ", held_out, "; lower --dev-size/--test-size");
  // Ties in the hash are broken by the text itself, so the order is total and reproducible.
  auto by_hash = [&](const Candidate& a, const Candidate& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    return pairs[a.index].source < pairs[b.index].source;
  };
  std::partial_sort(candidates.begin(), candidates.begin() + held_out, candidates.end(), by_hash);

  CorpusSplit split;
  std::vector<bool> is_held_out(pairs.size(), false);
  std::unordered_set<std::string> held_out_sources;
  for (std::size_t k = 0; k < held_out; ++k) {
    const std::size_t i = candidates[k].index;
    // A source may occur twice when the corpus was not de-duplicated by source; the second
    // copy would leak the sentence between dev and test, so it is skipped.
    if (!held_out_sources.insert(pairs[i].source).second) continue;
    is_held_out[i] = true;
    (k < options.dev_size ? split.dev : split.test).push_back(pairs[i]);
  }
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    if (is_held_out[i]) continue;
    if (held_out_sources.count(pairs[i].source) > 0) {
      ++split.removed_from_train;
      continue;
    }
    split.train.push_back(std::move(pairs[i]));
  }
  return split;
}

}  // namespace tessera::data
