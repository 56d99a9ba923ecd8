#include "data/ding_dictionary.h"

#include <fstream>

#include "core/error.h"

namespace tessera::data {

namespace {

char closing_bracket(char open) {
  switch (open) {
    case '{': return '}';
    case '[': return ']';
    case '<': return '>';
    case '(': return ')';
    default: return '\0';
  }
}

}  // namespace

std::string strip_annotations(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  // Stack of the closing brackets we are waiting for; text is kept only at depth zero.
  std::string expected;
  for (char c : text) {
    if (char close = closing_bracket(c); close != '\0') {
      expected.push_back(close);
    } else if (!expected.empty() && c == expected.back()) {
      expected.pop_back();
    } else if (expected.empty()) {
      out.push_back(c);
    }
  }
  return out;
}

std::vector<std::string_view> split_on(std::string_view text, std::string_view separator) {
  std::vector<std::string_view> pieces;
  std::size_t start = 0;
  for (std::size_t pos; (pos = text.find(separator, start)) != std::string_view::npos;
       start = pos + separator.size()) {
    pieces.push_back(text.substr(start, pos - start));
  }
  pieces.push_back(text.substr(start));
  return pieces;
}

std::string first_synonym(std::string_view sub_entry) {
  // Annotations go first: they may themselves contain ';' ("(a; b)").
  const std::string stripped = strip_annotations(sub_entry);
  for (std::string_view synonym : split_on(stripped, ";")) {
    std::string text = normalize_whitespace(synonym);
    if (!text.empty()) return text;
  }
  return {};
}

DingLine parse_ding_line(std::string_view line) {
  DingLine result;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty() || line.front() == '#') {
    result.is_comment = true;
    return result;
  }
  if (!is_valid_utf8(line)) {
    result.drops.push_back(DropReason::invalid_utf8);
    return result;
  }
  const std::vector<std::string_view> sides = split_on(line, " :: ");
  if (sides.size() != 2) {
    result.drops.push_back(DropReason::misaligned);
    return result;
  }
  const std::vector<std::string_view> german = split_on(sides[0], " | ");
  const std::vector<std::string_view> english = split_on(sides[1], " | ");
  if (german.size() != english.size()) {
    result.drops.push_back(DropReason::misaligned);
    return result;
  }
  for (std::size_t i = 0; i < german.size(); ++i) {
    SentencePair pair{first_synonym(german[i]), first_synonym(english[i])};
    if (pair.source.empty() || pair.target.empty()) {
      result.drops.push_back(DropReason::empty_side);
    } else {
      result.pairs.push_back(std::move(pair));
    }
  }
  return result;
}

std::vector<SentencePair> read_ding_dictionary(const std::filesystem::path& path,
                                               DropReport& report) {
  std::ifstream in(path, std::ios::binary);
  TESSERA_CHECK(in, "cannot open the Ding dictionary ", path.string(),
                " (install it with: apt-get install trans-de-en)");
  std::vector<SentencePair> pairs;
  std::string line;
  while (std::getline(in, line)) {
    DingLine parsed = parse_ding_line(line);
    for (DropReason reason : parsed.drops) report.add(reason);
    for (SentencePair& pair : parsed.pairs) pairs.push_back(std::move(pair));
  }
  TESSERA_CHECK(in.eof(), "error while reading ", path.string());
  return pairs;
}

}  // namespace tessera::data
