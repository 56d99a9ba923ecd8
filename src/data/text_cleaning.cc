#include "data/text_cleaning.h"

#include <iomanip>
#include <ostream>

#include "core/error.h"

namespace tessera::data {

std::string_view drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::empty_side: return "empty_side";
    case DropReason::invalid_utf8: return "invalid_utf8";
    case DropReason::too_long: return "too_long";
    case DropReason::misaligned: return "misaligned";
    case DropReason::duplicate: return "duplicate";
  }
  TESSERA_FAIL("unknown DropReason value ", static_cast<int>(reason));
}

void DropReport::add(DropReason reason, std::size_t n) {
  counts_[static_cast<std::size_t>(reason)] += n;
}

void DropReport::merge(const DropReport& other) {
  for (std::size_t i = 0; i < kNumDropReasons; ++i) counts_[i] += other.counts_[i];
  kept_ += other.kept_;
}

std::size_t DropReport::dropped() const {
  std::size_t total = 0;
  for (std::size_t c : counts_) total += c;
  return total;
}

void DropReport::print_table(std::ostream& os, std::string_view title) const {
  os << title << "\n";
  os << "  " << std::left << std::setw(16) << "reason" << std::right << std::setw(10) << "pairs"
     << "\n";
  for (std::size_t i = 0; i < kNumDropReasons; ++i) {
    os << "  " << std::left << std::setw(16) << drop_reason_name(static_cast<DropReason>(i))
       << std::right << std::setw(10) << counts_[i] << "\n";
  }
  os << "  " << std::left << std::setw(16) << "dropped total" << std::right << std::setw(10)
     << dropped() << "\n";
  os << "  " << std::left << std::setw(16) << "kept" << std::right << std::setw(10) << kept_
     << "\n";
}

namespace {

// Decodes the code point starting at text[i] and advances i. The caller guarantees validity;
// the bound check only keeps a truncated sequence from reading past the end.
char32_t decode_one(std::string_view text, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  int extra = b0 < 0x80 ? 0 : b0 < 0xE0 ? 1 : b0 < 0xF0 ? 2 : 3;
  char32_t cp = extra == 0 ? b0 : extra == 1 ? (b0 & 0x1F) : extra == 2 ? (b0 & 0x0F) : (b0 & 0x07);
  ++i;
  for (int k = 0; k < extra && i < text.size(); ++k, ++i) cp = (cp << 6) | (static_cast<unsigned char>(text[i]) & 0x3F);
  return cp;
}

bool is_space(char32_t cp) {
  return cp == U' ' || cp == U'\t' || cp == U'\n' || cp == U'\r' || cp == U'\f' || cp == U'\v' ||
         cp == 0xA0 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Characters that carry no text: zero-width space, byte-order mark, remaining C0 controls, DEL.
bool is_invisible(char32_t cp) {
  return cp == 0x200B || cp == 0xFEFF || cp < 0x20 || cp == 0x7F;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    int extra;
    char32_t min_cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) {  // 0xC0/0xC1 could only start overlong 2-byte forms
      extra = 1;
      min_cp = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      extra = 2;
      min_cp = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      extra = 3;
      min_cp = 0x10000;
    } else {
      return false;
    }
    if (i + extra >= n) return false;  // sequence truncated by the end of the text
    char32_t cp = b0 & (0x3F >> extra);
    for (int k = 1; k <= extra; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

std::size_t utf8_length(std::string_view text) {
  std::size_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string normalize_whitespace(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t start = i;
    const char32_t cp = decode_one(text, i);
    if (is_space(cp)) {
      pending_space = !out.empty();  // leading whitespace is dropped
      continue;
    }
    if (is_invisible(cp)) continue;
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.append(text.substr(start, i - start));
  }
  return out;
}

std::optional<DropReason> clean_pair(std::string& source, std::string& target,
                                     const CleaningOptions& options) {
  if (!is_valid_utf8(source) || !is_valid_utf8(target)) return DropReason::invalid_utf8;
  source = normalize_whitespace(source);
  target = normalize_whitespace(target);
  if (source.empty() || target.empty()) return DropReason::empty_side;
  if (utf8_length(source) > options.max_chars || utf8_length(target) > options.max_chars)
    return DropReason::too_long;
  return std::nullopt;
}

void clean_pairs(std::vector<SentencePair>& pairs, const CleaningOptions& options,
                 DropReport& report) {
  std::size_t kept = 0;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    if (auto reason = clean_pair(pairs[i].source, pairs[i].target, options)) {
      report.add(*reason);
    } else {
      if (kept != i) pairs[kept] = std::move(pairs[i]);
      ++kept;
    }
  }
  pairs.resize(kept);
  report.add_kept(kept);
}

}  // namespace tessera::data
