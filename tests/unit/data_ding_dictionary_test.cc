// Tests for the Ding dictionary rules: annotations, synonyms, sub-entry alignment.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "data/ding_dictionary.h"

#ifndef TESSERA_TEST_DATA_DIR
#define TESSERA_TEST_DATA_DIR "tests/fixtures"
#endif

namespace tessera::data {
namespace {

TEST(DataDingDictionary, StripsEveryAnnotationKind) {
  EXPECT_EQ(strip_annotations("Aal {m} [cook.] <Aale> (Fisch)"), "Aal    ");
  EXPECT_EQ(first_synonym("Aal {m} [cook.] <Aale> (Fisch)"), "Aal");
}

TEST(DataDingDictionary, StripsNestedAndAdjacentAnnotations) {
  EXPECT_EQ(first_synonym("Horizont {m} (des [alten] Bodens {m})"), "Horizont");
  EXPECT_EQ(first_synonym("{f}[ugs.](x)Wort<y>"), "Wort");
  EXPECT_EQ(first_synonym("a (b (c) d) e"), "a e");
}

TEST(DataDingDictionary, KeepsStrayClosingBracketAndDropsUnclosedTail) {
  EXPECT_EQ(first_synonym("1) erstens"), "1) erstens");
  EXPECT_EQ(first_synonym("Wort (unvollständig"), "Wort");
}

TEST(DataDingDictionary, TakesFirstNonEmptySynonymAfterStripping) {
  EXPECT_EQ(first_synonym("Aalleiter {f}; Aaltreppe {f}; Aalpass {m}"), "Aalleiter");
  EXPECT_EQ(first_synonym("{n}; Ais {n}"), "Ais");
  // A ';' inside an annotation does not split synonyms.
  EXPECT_EQ(first_synonym("Bank (Sitz; Möbel) {f}; Sitzbank"), "Bank");
  EXPECT_EQ(first_synonym("{f}; [ugs.]"), "");
}

TEST(DataDingDictionary, AlignsSubEntriesOneToOne) {
  const DingLine line = parse_ding_line(
      "Aalsuppe {f} [cook.] | Aalsuppen {pl} | Eine Aalsuppe, bitte. :: eel soup | eel soups | "
      "An eel soup, please.");
  EXPECT_FALSE(line.is_comment);
  EXPECT_TRUE(line.drops.empty());
  ASSERT_EQ(line.pairs.size(), 3u);
  EXPECT_EQ(line.pairs[0], (SentencePair{"Aalsuppe", "eel soup"}));
  EXPECT_EQ(line.pairs[1], (SentencePair{"Aalsuppen", "eel soups"}));
  EXPECT_EQ(line.pairs[2], (SentencePair{"Eine Aalsuppe, bitte.", "An eel soup, please."}));
}

TEST(DataDingDictionary, DropsMisalignedLines) {
  DingLine line = parse_ding_line("Haus {n} | Häuser {pl} :: house");
  EXPECT_TRUE(line.pairs.empty());
  ASSERT_EQ(line.drops.size(), 1u);
  EXPECT_EQ(line.drops[0], DropReason::misaligned);

  line = parse_ding_line("no separator here");
  ASSERT_EQ(line.drops.size(), 1u);
  EXPECT_EQ(line.drops[0], DropReason::misaligned);
}

TEST(DataDingDictionary, DropsEmptySubEntryButKeepsItsNeighbours) {
  const DingLine line = parse_ding_line("Wort {n} | {pl} :: word | words");
  ASSERT_EQ(line.pairs.size(), 1u);
  EXPECT_EQ(line.pairs[0], (SentencePair{"Wort", "word"}));
  ASSERT_EQ(line.drops.size(), 1u);
  EXPECT_EQ(line.drops[0], DropReason::empty_side);
}

TEST(DataDingDictionary, SkipsCommentsAndRejectsInvalidUtf8) {
  EXPECT_TRUE(parse_ding_line("# Version :: devel").is_comment);
  EXPECT_TRUE(parse_ding_line("").is_comment);
  const DingLine bad = parse_ding_line("H\xE4user :: houses");  // Latin-1 ä
  ASSERT_EQ(bad.drops.size(), 1u);
  EXPECT_EQ(bad.drops[0], DropReason::invalid_utf8);
}

TEST(DataDingDictionary, ReadsFixtureFile) {
  const std::filesystem::path file =
      std::filesystem::path(TESSERA_TEST_DATA_DIR) / "data" / "ding_sample.txt";
  DropReport report;
  const std::vector<SentencePair> pairs = read_ding_dictionary(file, report);
  const std::vector<SentencePair> expected = {
      {"Aalleiter", "eel ladder"},
      {"Aalleitern", "eel ladders"},
      {"das A und O", "the nuts and bolts"},
      {"Aalmolche", "amphiuma salamanders"},
      {"Er kam gestern nicht zur Arbeit.", "He did not come to work yesterday."},
  };
  EXPECT_EQ(pairs, expected);
  EXPECT_EQ(report.count(DropReason::misaligned), 2u);  // soup: 3 German vs 2 English; house: 2 vs 1
  EXPECT_EQ(report.count(DropReason::empty_side), 1u);  // "{f} :: (nothing left)"
  EXPECT_EQ(report.dropped(), 3u);
}

TEST(DataDingDictionary, MissingFileNamesThePath) {
  DropReport report;
  try {
    read_ding_dictionary("/nonexistent/de-en", report);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/de-en"), std::string::npos);
  }
}

}  // namespace
}  // namespace tessera::data
