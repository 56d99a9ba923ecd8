#include "data/libreoffice_help.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"

namespace tessera::data {

namespace {

// One parsed markup tag: `<span hidden="true" id="MAC_1">` -> name "span", attributes text.
struct Tag {
  std::string_view name;
  std::string_view attributes;
  bool closing = false;
  std::size_t end = 0;  // index just past the '>'
};

// Parses the tag that starts at html[pos] == '<'. Returns false when no '>' follows.
bool parse_tag(std::string_view html, std::size_t pos, Tag& tag) {
  const std::size_t close = html.find('>', pos);
  if (close == std::string_view::npos) return false;
  std::string_view inside = html.substr(pos + 1, close - pos - 1);
  tag.closing = !inside.empty() && inside.front() == '/';
  if (tag.closing) inside.remove_prefix(1);
  std::size_t name_end = 0;
  while (name_end < inside.size() && (std::isalnum(static_cast<unsigned char>(inside[name_end])) ||
                                      inside[name_end] == '!')) {
    ++name_end;
  }
  tag.name = inside.substr(0, name_end);
  tag.attributes = inside.substr(name_end);
  tag.end = close + 1;
  return true;
}

// The value of attribute `name` in a tag's attribute text, or "" when it is absent.
std::string_view attribute(std::string_view attributes, std::string_view name) {
  for (std::size_t pos = attributes.find(name); pos != std::string_view::npos;
       pos = attributes.find(name, pos + 1)) {
    const bool starts_word = pos == 0 || std::isspace(static_cast<unsigned char>(attributes[pos - 1]));
    const std::size_t eq = pos + name.size();
    if (!starts_word || eq + 1 >= attributes.size() || attributes[eq] != '=') continue;
    const char quote = attributes[eq + 1];
    if (quote != '"' && quote != '\'') continue;
    const std::size_t value_end = attributes.find(quote, eq + 2);
    if (value_end == std::string_view::npos) return {};
    return attributes.substr(eq + 2, value_end - eq - 2);
  }
  return {};
}

bool is_paragraph_tag(std::string_view name) {
  return name == "p" || (name.size() == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6');
}

// Tags that separate words when removed (line breaks, cells, blocks); inline tags such as
// <span> and <a> are removed without leaving a space, so "<b>Ab</b>c" stays one word.
bool separates_words(std::string_view name) {
  static const std::set<std::string_view> kBlock = {"br", "img", "p", "div", "li", "ul", "ol",
                                                    "td", "th", "tr", "table", "h1", "h2",
                                                    "h3", "h4", "h5", "h6", "pre"};
  return kBlock.count(name) > 0;
}

// A platform or application variant hidden by default and revealed by the help viewer's
// script (<span hidden="true" id="MACtextshared..." class="MAC">); the "default..." variant
// is the one we keep.
bool is_hidden_variant(const Tag& tag) {
  if (tag.closing || tag.name != "span" || tag.attributes.find("hidden") == std::string_view::npos)
    return false;
  return !attribute(tag.attributes, "id").starts_with("default");
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// The inner markup of one paragraph reduced to plain text (not yet unescaped or normalised).
std::string strip_tags(std::string_view inner) {
  std::string text;
  int hidden_depth = 0;  // >0 while inside a hidden variant span (counts nested spans)
  std::size_t pos = 0;
  while (pos < inner.size()) {
    const std::size_t lt = inner.find('<', pos);
    if (hidden_depth == 0) text.append(inner.substr(pos, lt - pos));
    if (lt == std::string_view::npos) break;
    if (inner.substr(lt, 4) == "<!--") {
      const std::size_t end = inner.find("-->", lt + 4);
      pos = end == std::string_view::npos ? inner.size() : end + 3;
      continue;
    }
    Tag tag;
    if (!parse_tag(inner, lt, tag)) break;  // a '<' without '>' ends the paragraph text
    pos = tag.end;
    if (hidden_depth > 0) {
      if (tag.name == "span") hidden_depth += tag.closing ? -1 : 1;
      continue;
    }
    if (is_hidden_variant(tag)) {
      hidden_depth = 1;
    } else if (separates_words(tag.name)) {
      text.push_back(' ');
    }
  }
  return text;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  TESSERA_CHECK(in, "cannot open help page ", path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Relative paths of all *.html pages under `root`, sorted.
std::vector<std::string> html_pages(const std::filesystem::path& root) {
  TESSERA_CHECK(std::filesystem::is_directory(root), "help directory ", root.string(),
                " does not exist");
  std::vector<std::string> pages;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.is_regular_file() && entry.path().extension() == ".html")
      pages.push_back(entry.path().lexically_relative(root).generic_string());
  }
  std::sort(pages.begin(), pages.end());
  return pages;
}

}  // namespace

std::string unescape_html_entities(std::string_view text) {
  static const std::unordered_map<std::string_view, std::string_view> kNamed = {
      {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}, {"nbsp", "\u00A0"}};
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t amp = text.find('&', pos);
    out.append(text.substr(pos, amp - pos));
    if (amp == std::string_view::npos) break;
    const std::size_t semi = text.find(';', amp + 1);
    // References are short; a ';' far away belongs to the text, not to this '&'.
    if (semi == std::string_view::npos || semi - amp > 10) {
      out.push_back('&');
      pos = amp + 1;
      continue;
    }
    const std::string_view name = text.substr(amp + 1, semi - amp - 1);
    bool replaced = false;
    if (name.size() >= 2 && name[0] == '#') {
      const bool hex = name[1] == 'x' || name[1] == 'X';
      const std::string digits(name.substr(hex ? 2 : 1));
      char* end = nullptr;
      const unsigned long cp = digits.empty() ? 0 : std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
      if (!digits.empty() && *end == '\0' && cp > 0 && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF)) {
        append_utf8(out, static_cast<char32_t>(cp));
        replaced = true;
      }
    } else if (auto it = kNamed.find(name); it != kNamed.end()) {
      out.append(it->second);
      replaced = true;
    }
    if (replaced) {
      pos = semi + 1;
    } else {
      out.push_back('&');
      pos = amp + 1;
    }
  }
  return out;
}

std::vector<HelpParagraph> extract_help_paragraphs(std::string_view html) {
  std::vector<HelpParagraph> paragraphs;
  std::unordered_set<std::string> seen_ids;
  std::size_t pos = 0;
  while ((pos = html.find('<', pos)) != std::string_view::npos) {
    if (html.substr(pos, 4) == "<!--") {
      const std::size_t end = html.find("-->", pos + 4);
      if (end == std::string_view::npos) break;
      pos = end + 3;
      continue;
    }
    Tag tag;
    if (!parse_tag(html, pos, tag)) break;
    pos = tag.end;
    if (tag.closing || !is_paragraph_tag(tag.name)) continue;
    const std::string_view id = attribute(tag.attributes, "id");
    if (id.empty()) continue;
    // Paragraphs do not nest, so the content runs to the next matching close tag.
    const std::string close = "</" + std::string(tag.name) + ">";
    const std::size_t close_pos = html.find(close, pos);
    if (close_pos == std::string_view::npos) break;
    const std::string_view inner = html.substr(pos, close_pos - pos);
    pos = close_pos + close.size();
    if (!seen_ids.insert(std::string(id)).second) continue;
    std::string text = unescape_html_entities(strip_tags(inner));
    // Invalid UTF-8 is left as it is, for the cleaning step to count and drop.
    if (is_valid_utf8(text)) text = normalize_whitespace(text);
    paragraphs.push_back({std::string(id), std::move(text)});
  }
  return paragraphs;
}

std::vector<SentencePair> align_help_pages(const std::vector<HelpParagraph>& source,
                                           const std::vector<HelpParagraph>& target,
                                           DropReport& report) {
  std::unordered_map<std::string_view, const HelpParagraph*> target_by_id;
  for (const HelpParagraph& p : target) target_by_id.emplace(p.id, &p);
  std::vector<SentencePair> pairs;
  std::size_t matched = 0;
  for (const HelpParagraph& s : source) {
    auto it = target_by_id.find(s.id);
    if (it == target_by_id.end()) {
      report.add(DropReason::misaligned);
      continue;
    }
    ++matched;
    const HelpParagraph& t = *it->second;
    if (s.text.empty() && t.text.empty()) continue;  // image-only paragraph: nothing to translate
    if (s.text.empty() || t.text.empty()) {
      report.add(DropReason::empty_side);
      continue;
    }
    pairs.push_back({s.text, t.text});
  }
  report.add(DropReason::misaligned, target.size() - matched);  // target paragraphs never matched
  return pairs;
}

std::vector<SentencePair> align_help_trees(const std::filesystem::path& source_root,
                                           const std::filesystem::path& target_root,
                                           DropReport& report, HelpTreeStats* stats) {
  const std::vector<std::string> source_pages = html_pages(source_root);
  const std::vector<std::string> target_pages = html_pages(target_root);
  std::vector<std::string> common;
  std::set_intersection(source_pages.begin(), source_pages.end(), target_pages.begin(),
                        target_pages.end(), std::back_inserter(common));
  if (stats != nullptr) {
    stats->pages_aligned = common.size();
    stats->pages_only_one_side = source_pages.size() + target_pages.size() - 2 * common.size();
  }
  std::vector<SentencePair> pairs;
  for (const std::string& page : common) {
    const std::vector<HelpParagraph> source =
        extract_help_paragraphs(read_file(source_root / page));
    const std::vector<HelpParagraph> target =
        extract_help_paragraphs(read_file(target_root / page));
    std::vector<SentencePair> page_pairs = align_help_pages(source, target, report);
    std::move(page_pairs.begin(), page_pairs.end(), std::back_inserter(pairs));
  }
  return pairs;
}

}  // namespace tessera::data
