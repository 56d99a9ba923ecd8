// Tests for paragraph extraction from LibreOffice help pages and alignment by id.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "data/libreoffice_help.h"

#ifndef TESSERA_TEST_DATA_DIR
#define TESSERA_TEST_DATA_DIR "tests/fixtures"
#endif

namespace tessera::data {
namespace {

const std::filesystem::path kHelpRoot = std::filesystem::path(TESSERA_TEST_DATA_DIR) / "data" / "help";

TEST(DataLibreOfficeHelp, UnescapesEntities) {
  EXPECT_EQ(unescape_html_entities("a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&#39; &#x41;"),
            "a & b <c> \"d\" 'e' A");
  EXPECT_EQ(unescape_html_entities("&#8364;&nbsp;5"), "\u20AC\u00A05");
  // Unknown or malformed references stay as written.
  EXPECT_EQ(unescape_html_entities("AT&T; &bogus; & ; &#xZZ;"), "AT&T; &bogus; & ; &#xZZ;");
}

TEST(DataLibreOfficeHelp, ExtractsParagraphsWithIdsOnly) {
  const std::string html =
      "<p dir=\"auto\">no id</p>"
      "<h1 id=\"hd_1\">Titel</h1>"
      "<p id=\"par_2\" class=\"paragraph\">Ein <span class=\"emph\">fetter</span>\n  Text.</p>"
      "<div id=\"x\">not a paragraph</div>";
  const std::vector<HelpParagraph> paragraphs = extract_help_paragraphs(html);
  ASSERT_EQ(paragraphs.size(), 2u);
  EXPECT_EQ(paragraphs[0].id, "hd_1");
  EXPECT_EQ(paragraphs[0].text, "Titel");
  EXPECT_EQ(paragraphs[1].id, "par_2");
  EXPECT_EQ(paragraphs[1].text, "Ein fetter Text.");
}

TEST(DataLibreOfficeHelp, KeepsOnlyTheDefaultVariantOfSwitchedText) {
  const std::string html =
      "<p id=\"p\">Choose <span class=\"switchinline\"><span hidden=\"true\" id=\"MAC_1\" "
      "class=\"MAC\"><span class=\"emph\">Preferences</span></span><span hidden=\"true\" "
      "id=\"default_1\"><span class=\"emph\">Tools - Options</span></span></span>.</p>";
  const auto paragraphs = extract_help_paragraphs(html);
  ASSERT_EQ(paragraphs.size(), 1u);
  EXPECT_EQ(paragraphs[0].text, "Choose Tools - Options.");
}

TEST(DataLibreOfficeHelp, LineBreaksSeparateWordsAndInlineTagsDoNot) {
  const auto paragraphs =
      extract_help_paragraphs("<p id=\"p\">eins<br>zwei <b>dr</b>ei&lt;b&gt;</p>");
  ASSERT_EQ(paragraphs.size(), 1u);
  EXPECT_EQ(paragraphs[0].text, "eins zwei drei<b>");  // the escaped tag is text, not markup
}

TEST(DataLibreOfficeHelp, RepeatedIdKeepsItsFirstText) {
  const auto paragraphs = extract_help_paragraphs(
      R"(<h1 id="hd_id1">Erweitert</h1><p id="par_id2">A</p><p id="par_id2">B</p>)");
  ASSERT_EQ(paragraphs.size(), 2u);  // the repeated id keeps its first text
  EXPECT_EQ(paragraphs[1].text, "A");
}

TEST(DataLibreOfficeHelp, AlignsPagesById) {
  const std::vector<HelpParagraph> de = {{"a", "Eins"}, {"b", "Zwei"}, {"c", ""}, {"d", "Nur hier"}, {"e", ""}};
  const std::vector<HelpParagraph> en = {{"b", "Two"}, {"a", "One"}, {"c", ""}, {"e", "Only text here"}, {"f", "Extra"}};
  DropReport report;
  const std::vector<SentencePair> pairs = align_help_pages(de, en, report);
  const std::vector<SentencePair> expected = {{"Eins", "One"}, {"Zwei", "Two"}};
  EXPECT_EQ(pairs, expected);                              // in source order
  EXPECT_EQ(report.count(DropReason::misaligned), 2u);     // "d" and "f"
  EXPECT_EQ(report.count(DropReason::empty_side), 1u);     // "e"
  EXPECT_EQ(report.dropped(), 3u);                         // "c" is empty on both sides: skipped
}

TEST(DataLibreOfficeHelp, AlignsFixtureTrees) {
  DropReport report;
  HelpTreeStats stats;
  const std::vector<SentencePair> pairs =
      align_help_trees(kHelpRoot / "de", kHelpRoot / "en-US", report, &stats);
  EXPECT_EQ(stats.pages_aligned, 1u);
  EXPECT_EQ(stats.pages_only_one_side, 0u);
  const std::vector<SentencePair> expected = {
      {"Erweitert", "Advanced"},
      {"Legt die Einstellungen für Java-Anwendungen fest & mehr.",
       "Sets the support options for Java applications & more."},
      {"Wählen Sie Extras – Optionen… – Erweitert.", "Choose Tools - Options - Advanced."},
      {"Geben Sie <Dateiname> und \"Text\" ein. Zweite Zeile.",
       "Enter <file name> and \"text\". Second line."},
  };
  EXPECT_EQ(pairs, expected);
  EXPECT_EQ(report.count(DropReason::misaligned), 2u);  // par_id6 (de only), par_id8 (en only)
  EXPECT_EQ(report.count(DropReason::empty_side), 1u);  // par_id7 has no English text
}

TEST(DataLibreOfficeHelp, MissingTreeNamesTheDirectory) {
  DropReport report;
  try {
    align_help_trees(kHelpRoot / "fr", kHelpRoot / "en-US", report);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fr"), std::string::npos);
  }
}

}  // namespace
}  // namespace tessera::data
