// LibreOffice help pages (Debian packages libreoffice-help-de and libreoffice-help-en-us) as a
// parallel corpus.
//
// Both packages ship the same tree of HTML pages under usr/share/libreoffice/help/<lang>/
// (de/text/shared/optionen/java.html <-> en-US/text/shared/optionen/java.html), and every
// translatable paragraph or heading carries the same id in both languages
// (<p id="par_id481564381734366">, <h2 id="hd_id3149398">). Pairing paragraphs by
// (relative path, id) gives translation pairs without any sentence alignment heuristics.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "data/sentence_pair.h"
#include "data/text_cleaning.h"

namespace tessera::data {

struct HelpParagraph {
  std::string id;    // the element's id attribute, e.g. "par_id481564381734366"
  std::string text;  // tags stripped, entities unescaped, whitespace normalised
};

// Extracts the text of every <p>, <h1>..<h6> element that has an id, in document order.
// Markup is removed; `<span hidden="true" id="MAC...">`-style platform/application variants
// are dropped and only the `default...` variant is kept, so that "Tools - Options" appears
// once rather than once per platform. Paragraphs without text (an image only) are kept with
// empty text so that ids stay comparable; when an id repeats inside a page (embedded
// sections) only its first occurrence is kept.
std::vector<HelpParagraph> extract_help_paragraphs(std::string_view html);

// Replaces &amp; &lt; &gt; &quot; &apos; &nbsp; and numeric (&#39; &#x27;) references by the
// characters they stand for; an unknown or malformed reference is kept as written.
std::string unescape_html_entities(std::string_view text);

// Pairs the paragraphs of one page in two languages by id, in the source page's order. Each
// paragraph present in only one of the two pages counts as one `misaligned` drop, a pair with
// exactly one empty side as `empty_side`; pairs empty on both sides are skipped silently.
std::vector<SentencePair> align_help_pages(const std::vector<HelpParagraph>& source,
                                           const std::vector<HelpParagraph>& target,
                                           DropReport& report);

struct HelpTreeStats {
  std::size_t pages_aligned = 0;        // pages present in both trees
  std::size_t pages_only_one_side = 0;  // pages present in one tree only (skipped)
};

// Walks `source_root` (e.g. .../help/de) for *.html pages, pairs each with the page at the
// same relative path under `target_root` (e.g. .../help/en-US), and aligns their paragraphs.
// Pages are visited in sorted path order, so the output does not depend on directory order.
std::vector<SentencePair> align_help_trees(const std::filesystem::path& source_root,
                                           const std::filesystem::path& target_root,
                                           DropReport& report, HelpTreeStats* stats = nullptr);

}  // namespace tessera::data
