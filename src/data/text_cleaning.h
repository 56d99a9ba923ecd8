// Text hygiene shared by every corpus source: UTF-8 validation, whitespace normalisation,
// length limits, and the DropReport that counts every pair we throw away and why.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/sentence_pair.h"

namespace tessera::data {

// Why a sentence pair was not kept. Every dropped pair is counted under exactly one reason.
enum class DropReason : std::uint8_t {
  empty_side,    // one side is empty after cleaning
  invalid_utf8,  // one side is not well-formed UTF-8
  too_long,      // one side has more code points than the length limit
  misaligned,    // the two sides cannot be paired (different sub-entry counts, missing separator)
  duplicate,     // the pair (or its source sentence) was already seen
};
inline constexpr std::size_t kNumDropReasons = 5;

// "empty_side", "invalid_utf8", ... — the enumerator's own name, used in reports and JSON.
std::string_view drop_reason_name(DropReason reason);

// Counts dropped pairs by reason, and kept pairs, for one corpus source.
class DropReport {
 public:
  void add(DropReason reason, std::size_t n = 1);
  void add_kept(std::size_t n = 1) { kept_ += n; }
  void merge(const DropReport& other);

  std::size_t count(DropReason reason) const { return counts_[static_cast<std::size_t>(reason)]; }
  std::size_t dropped() const;
  std::size_t kept() const { return kept_; }

  // Prints one row per reason, then the dropped total and the kept count, under `title`.
  void print_table(std::ostream& os, std::string_view title) const;

 private:
  std::array<std::size_t, kNumDropReasons> counts_{};
  std::size_t kept_ = 0;
};

// True when `text` is well-formed UTF-8: no stray continuation bytes, no overlong forms,
// no UTF-16 surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
bool is_valid_utf8(std::string_view text);

// Number of code points in valid UTF-8 text (counts lead bytes, so it is cheap).
std::size_t utf8_length(std::string_view text);

// Collapses every run of whitespace into one ASCII space and trims both ends. Whitespace
// here is ASCII space/tab/newline/CR/FF/VT plus the Unicode spaces that HTML and dictionaries
// bring in (U+00A0 no-break space, U+2000..U+200A, U+202F, U+205F, U+3000); zero-width
// characters (U+200B, U+FEFF) and other C0 control characters are removed. Input must be
// valid UTF-8.
std::string normalize_whitespace(std::string_view text);

// Limits applied to every pair, whatever its source.
struct CleaningOptions {
  std::size_t max_chars = 400;  // longest side allowed, in Unicode code points
};

// Validates and normalises one pair in place. Returns the reason to drop it, or nullopt when
// the pair is kept (then both sides are normalised).
std::optional<DropReason> clean_pair(std::string& source, std::string& target,
                                     const CleaningOptions& options);

// Applies clean_pair to every pair, removes the dropped ones (order of the rest is kept) and
// records each drop, and the number kept, in `report`.
void clean_pairs(std::vector<SentencePair>& pairs, const CleaningOptions& options,
                 DropReport& report);

}  // namespace tessera::data
