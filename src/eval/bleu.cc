// sacreBLEU-compatible BLEU: 13a tokenisation, clipped n-gram counts, 'exp' smoothing.
//
// sacreBLEU works on Python code points; we work on UTF-8 bytes. That gives the same result
// for valid UTF-8 because every character class 13a tests ([0-9], '.', ',', '-', and the
// ASCII punctuation set) is ASCII, and bytes of a multi-byte character are never ASCII: a
// multi-byte character only ever plays the role of "not a digit", and splitting before or
// after it is the same whether we look at code points or bytes. The one non-ASCII rule is
// whitespace, where Python's str.split()/rstrip() also split on U+0085, U+00A0, U+3000 etc.;
// python_space_len() lists those byte sequences.
#include "eval/bleu.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>
#include <utility>

#include "core/error.h"

namespace tessera::eval {
namespace {

// Byte length of the Python whitespace character starting at s[i], or 0 if there is none.
// The set is exactly what str.isspace() accepts.
size_t python_space_len(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0; };
  const unsigned char c = byte(i);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  if (c == 0xC2 && (byte(i + 1) == 0x85 || byte(i + 1) == 0xA0)) return 2;  // U+0085, U+00A0
  if (c == 0xE1 && byte(i + 1) == 0x9A && byte(i + 2) == 0x80) return 3;    // U+1680
  if (c == 0xE2 && byte(i + 1) == 0x80) {
    const unsigned char c2 = byte(i + 2);
    // U+2000..U+200A, U+2028, U+2029, U+202F
    if ((c2 >= 0x80 && c2 <= 0x8A) || c2 == 0xA8 || c2 == 0xA9 || c2 == 0xAF) return 3;
  }
  if (c == 0xE2 && byte(i + 1) == 0x81 && byte(i + 2) == 0x9F) return 3;  // U+205F
  if (c == 0xE3 && byte(i + 1) == 0x80 && byte(i + 2) == 0x80) return 3;  // U+3000
  return 0;
}

// Python's str.rstrip(): drops trailing whitespace.
std::string_view rstrip(std::string_view s) {
  size_t end = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t w = python_space_len(s, i);
    i += w > 0 ? w : 1;
    if (w == 0) end = i;
  }
  return s.substr(0, end);
}

// Python's " ".join(s.split()): tokens separated by exactly one ASCII space.
std::string collapse_whitespace(std::string_view s) {
  std::string out;
  bool gap = false;
  for (size_t i = 0; i < s.size();) {
    if (const size_t w = python_space_len(s, i); w > 0) {
      gap = true;
      i += w;
      continue;
    }
    if (gap && !out.empty()) out += ' ';
    gap = false;
    out += s[i++];
  }
  return out;
}

// Python's str.replace(from, to): non-overlapping, left to right, no rescanning of output.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(s.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(s.substr(pos));
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_period_or_comma(char c) { return c == '.' || c == ','; }

// The first 13a regex, [\{-\~\[-\` -\&\(-\+\:-\@\/]: ASCII symbols that always split.
// Note what is absent: '\'', '-', '.', ',', digits and letters.
bool is_split_symbol(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
         (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

// One pass of Python's re.sub for a two-character pattern (first, second): at each position
// try to match s[i], s[i+1]; on a match emit the replacement and skip both characters.
template <typename First, typename Second, typename Emit>
std::string sub_pairs(const std::string& s, First first, Second second, Emit emit) {
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && first(s[i]) && second(s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

// Token boundaries of a collapsed string; an n-gram is then the substring spanning n tokens,
// which is unambiguous because tokens never contain the separating space.
struct Tokens {
  std::string text;
  std::vector<std::pair<size_t, size_t>> spans;  // [begin, end) of each token

  explicit Tokens(std::string t) : text(std::move(t)) {
    for (size_t i = 0; i < text.size();) {
      const size_t j = std::min(text.find(' ', i), text.size());
      spans.emplace_back(i, j);
      i = j + 1;
    }
  }
  std::string_view ngram(size_t first, int n) const {
    return std::string_view(text).substr(spans[first].first,
                                         spans[first + n - 1].second - spans[first].first);
  }
  std::unordered_map<std::string_view, int64_t> count(int n) const {
    std::unordered_map<std::string_view, int64_t> counts;
    for (size_t i = 0; i + n <= spans.size(); ++i) ++counts[ngram(i, n)];
    return counts;
  }
};

}  // namespace

std::string tokenize_13a(std::string_view line) {
  // Language-independent part: markup left over from mteval's SGML and line breaks.
  std::string s = replace_all(line, "<skipped>", "");
  s = replace_all(s, "-\n", "");
  s = replace_all(s, "\n", " ");
  if (s.find('&') != std::string::npos) {
    s = replace_all(s, "&quot;", "\"");
    s = replace_all(s, "&amp;", "&");
    s = replace_all(s, "&lt;", "<");
    s = replace_all(s, "&gt;", ">");
  }
  s = " " + s + " ";

  // Symbols always become their own token.
  std::string spaced;
  spaced.reserve(s.size() * 2);
  for (char c : s) {
    if (is_split_symbol(c)) {
      spaced += ' ';
      spaced += c;
      spaced += ' ';
    } else {
      spaced += c;
    }
  }
  const auto not_digit = [](char c) { return !is_digit(c); };
  // ([^0-9])([\.,]) -> "\1 \2 ": split a period or comma unless a digit precedes it...
  s = sub_pairs(spaced, not_digit, is_period_or_comma, [](std::string& out, char a, char b) {
    out.append({a, ' ', b, ' '});
  });
  // ([\.,])([^0-9]) -> " \1 \2": ...or unless a digit follows it, so "1,000.50" survives.
  s = sub_pairs(s, is_period_or_comma, not_digit, [](std::string& out, char a, char b) {
    out.append({' ', a, ' ', b});
  });
  // ([0-9])(-) -> "\1 \2 ": a dash after a digit is a range or minus, not a hyphen.
  s = sub_pairs(
      s, is_digit, [](char c) { return c == '-'; },
      [](std::string& out, char a, char b) {
        out.append({a, ' ', b, ' '});
      });
  return collapse_whitespace(s);
}

void BleuAccumulator::add(std::string_view hypothesis, std::string_view reference) {
  const Tokens hyp(tokenize_13a(rstrip(hypothesis)));
  const Tokens ref(tokenize_13a(rstrip(reference)));
  stats_[0] += static_cast<int64_t>(hyp.spans.size());
  stats_[1] += static_cast<int64_t>(ref.spans.size());
  for (int n = 1; n <= kBleuMaxOrder; ++n) {
    const auto ref_counts = ref.count(n);
    for (const auto& [ngram, count] : hyp.count(n)) {
      // Clipping: an n-gram earns at most as many matches as the reference contains it.
      const auto it = ref_counts.find(ngram);
      if (it != ref_counts.end()) stats_[1 + n] += std::min(count, it->second);
      stats_[1 + kBleuMaxOrder + n] += count;
    }
  }
}

void BleuAccumulator::merge(const Stats& other) {
  for (size_t i = 0; i < stats_.size(); ++i) stats_[i] += other[i];
}

// Mirrors sacreBLEU's BLEU.compute_bleu() operation for operation, so results agree to the bit.
BleuScore BleuAccumulator::score_from_stats(const Stats& stats) {
  BleuScore out;
  out.sys_len = stats[0];
  out.ref_len = stats[1];
  const int64_t* correct = &stats[2];
  const int64_t* total = &stats[2 + kBleuMaxOrder];
  out.sys_len_ratio = out.ref_len ? static_cast<double>(out.sys_len) / out.ref_len : 0.0;
  if (out.sys_len < out.ref_len)
    out.bp = out.sys_len > 0 ? std::exp(1.0 - static_cast<double>(out.ref_len) / out.sys_len) : 0.0;

  bool any_match = false;
  for (int n = 0; n < kBleuMaxOrder; ++n) any_match |= correct[n] != 0;
  if (!any_match) return out;  // score 0, precisions 0

  // 'exp' smoothing (NIST mteval): the k-th order with no match gets precision 1 / (2^k total).
  double smooth_mteval = 1.0;
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    if (total[n] == 0) break;  // later precisions stay 0, which zeroes the score below
    if (correct[n] == 0) {
      smooth_mteval *= 2;
      out.precisions[n] = 100.0 / (smooth_mteval * static_cast<double>(total[n]));
    } else {
      out.precisions[n] = 100.0 * static_cast<double>(correct[n]) / static_cast<double>(total[n]);
    }
  }
  // Geometric mean of the precisions; sacreBLEU floors log(0) at -9999999999.
  double log_sum = 0.0;
  for (double p : out.precisions) log_sum += p == 0.0 ? -9999999999.0 : std::log(p);
  out.score = out.bp * std::exp(log_sum / kBleuMaxOrder);
  return out;
}

std::string BleuScore::to_string() const {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "BLEU = %.2f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld "
                "ref_len = %lld)",
                score, precisions[0], precisions[1], precisions[2], precisions[3], bp,
                sys_len_ratio, static_cast<long long>(sys_len), static_cast<long long>(ref_len));
  return buf;
}

BleuScore corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs) {
  TESSERA_CHECK(hyps.size() == refs.size(), "corpus_bleu: ", hyps.size(), " hypotheses but ",
                refs.size(), " references");
  BleuAccumulator acc;
  for (size_t i = 0; i < hyps.size(); ++i) acc.add(hyps[i], refs[i]);
  return acc.score();
}

}  // namespace tessera::eval
