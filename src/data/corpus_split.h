// De-duplication and the deterministic train/dev/test split.
//
// The split does not depend on the order of the corpus or on a random generator's state:
// every full-sentence pair gets a 64-bit hash of (seed, source sentence), the pairs with the
// smallest hashes become dev, the next ones test, and everything else is train. Adding or
// reordering other data never moves a sentence between dev and test, and a source sentence
// held out for dev/test never appears in train.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "data/sentence_pair.h"
#include "data/text_cleaning.h"

namespace tessera::data {

// A "full sentence" is normalised text of at least `kMinSentenceWords` space-separated words
// whose last character — ignoring closing quotes and brackets — is '.', '!' or '?', and which
// does not end in ".." (an elided fragment). Dictionary headwords ("Aalfang"), phrases
// ("sich halten") and help headings ("Java-Optionen") are not full sentences; "Er kam
// gestern nicht." and "Click OK to close the dialog." are.
inline constexpr std::size_t kMinSentenceWords = 4;
bool is_full_sentence(std::string_view text);
// Both sides are full sentences.
bool is_full_sentence_pair(const SentencePair& pair);

// 64-bit hash of `text` keyed by `seed` (FNV-1a followed by a SplitMix64 finaliser). Stable
// across platforms and runs, unlike std::hash.
std::uint64_t sentence_hash(std::string_view text, std::uint64_t seed);

struct DedupStats {
  std::size_t exact_pairs = 0;  // the same (source, target) seen before
  std::size_t same_source = 0;  // another target for a source seen before (when by_source)
};

// Removes repeated pairs in place, keeping the first occurrence and the order of the rest.
// With `by_source`, a pair whose source sentence was already kept is removed as well, so
// every source sentence has exactly one target. Each removal counts as `duplicate`.
DedupStats deduplicate(std::vector<SentencePair>& pairs, bool by_source, DropReport& report);

struct SplitOptions {
  std::size_t dev_size = 1000;   // full-sentence pairs held out for validation
  std::size_t test_size = 1000;  // full-sentence pairs held out for the final test
  std::uint64_t seed = 1;        // keys the hash that picks the held-out sentences
};

struct CorpusSplit {
  std::vector<SentencePair> train;  // input order kept
  std::vector<SentencePair> dev;    // ordered by hash
  std::vector<SentencePair> test;   // ordered by hash
  std::size_t removed_from_train = 0;  // train pairs dropped because their source was held out
};

// Splits `pairs` as described above. Throws when there are fewer full-sentence pairs than
// dev_size + test_size.
CorpusSplit split_corpus(std::vector<SentencePair> pairs, const SplitOptions& options);

}  // namespace tessera::data
