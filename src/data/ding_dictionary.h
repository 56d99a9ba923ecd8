// The Ding German-English dictionary (Debian package trans-de-en, /usr/share/trans/de-en).
//
// Each non-comment line reads `German :: English`. Both sides split on ` | ` into sub-entries
// that correspond one to one (a headword, then its plural, then example phrases ...). Inside
// a sub-entry, synonyms are separated by `;` and annotations sit in brackets: `{f}` gender,
// `[ugs.]` register, `<Aalmolch>` spelling variant, `(des Bodenprofils)` explanation. We keep
// one pair per aligned sub-entry: annotations removed, whitespace normalised, first synonym.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "data/sentence_pair.h"
#include "data/text_cleaning.h"

namespace tessera::data {

inline constexpr const char* kDingDictionaryPath = "/usr/share/trans/de-en";

// What one dictionary line yields: the kept pairs and a reason for each thing thrown away.
struct DingLine {
  bool is_comment = false;          // `#` lines and blank lines: no pairs and no drops
  std::vector<SentencePair> pairs;  // one per aligned sub-entry with both sides non-empty
  std::vector<DropReason> drops;    // misaligned/invalid_utf8: the whole line; empty_side: one sub-entry
};

// Removes every bracketed annotation — {..}, [..], <..>, (..) — including nested and adjacent
// ones, e.g. "Horizont {m} (des [alten] Bodens)" -> "Horizont  ". An unmatched closing bracket
// is kept as text; an opening bracket that is never closed removes the rest of the text.
std::string strip_annotations(std::string_view text);

// The first synonym of one sub-entry that is not empty once annotations are removed and
// whitespace is normalised, e.g. "Aal blau; blauer Aal" -> "Aal blau", "{n}; Ais {n}" -> "Ais".
// Returns "" when no synonym has text. Input must be valid UTF-8.
std::string first_synonym(std::string_view sub_entry);

// Splits `text` on every occurrence of `separator` (pieces may be empty).
std::vector<std::string_view> split_on(std::string_view text, std::string_view separator);

// Parses one line of the dictionary (without its newline).
DingLine parse_ding_line(std::string_view line);

// Reads the whole dictionary file; records what parsing dropped in `report`.
std::vector<SentencePair> read_ding_dictionary(const std::filesystem::path& path,
                                               DropReport& report);

}  // namespace tessera::data
