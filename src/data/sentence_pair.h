// One aligned translation unit: a source (German) sentence and its target (English) sentence.
#pragma once

#include <string>

namespace tessera::data {

struct SentencePair {
  std::string source;  // German
  std::string target;  // English

  friend bool operator==(const SentencePair&, const SentencePair&) = default;
};

}  // namespace tessera::data
