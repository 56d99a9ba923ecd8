// Tests for UTF-8 validation, whitespace normalisation, length limits and the DropReport.
#include <gtest/gtest.h>

#include <random>
#include <sstream>
#include <string>

#include "test_seed.h"
#include "data/text_cleaning.h"

namespace tessera::data {
namespace {

TEST(DataTextCleaning, AcceptsWellFormedUtf8) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ASCII"));
  EXPECT_TRUE(is_valid_utf8("Gr\u00FC\u00DFe \u2013 \u20AC \U0001F600"));
}

TEST(DataTextCleaning, RejectsMalformedUtf8) {
  EXPECT_FALSE(is_valid_utf8("\x80"));               // stray continuation byte
  EXPECT_FALSE(is_valid_utf8("Gr\xC3"));             // truncated 2-byte sequence
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));           // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));       // overlong 3-byte form
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));       // UTF-16 surrogate U+D800
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));   // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("caf\xE9"));            // Latin-1, not UTF-8
}

TEST(DataTextCleaning, RandomBytesNeverCrashAndNormalisingKeepsValidity) {
  std::mt19937 rng(static_cast<uint32_t>(::tessera::testing::test_seed()));
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text(rng() % 12, '\0');
    for (char& c : text) c = static_cast<char>(rng() & 0xFF);
    if (is_valid_utf8(text)) {
      // Normalising valid text keeps it valid.
      EXPECT_TRUE(is_valid_utf8(normalize_whitespace(text)));
    }
  }
}

TEST(DataTextCleaning, NormalizesWhitespace) {
  EXPECT_EQ(normalize_whitespace("  a \t b\n\nc  "), "a b c");
  EXPECT_EQ(normalize_whitespace("a\u00A0\u00A0b\u2009c\u3000d"), "a b c d");
  EXPECT_EQ(normalize_whitespace("\uFEFFzero\u200Bwidth"), "zerowidth");
  EXPECT_EQ(normalize_whitespace("   "), "");
}

TEST(DataTextCleaning, CountsCodePoints) {
  EXPECT_EQ(utf8_length("Gr\u00FC\u00DFe"), 5u);
  EXPECT_EQ(utf8_length("\U0001F600"), 1u);
}

TEST(DataTextCleaning, CleanPairReportsTheRightReason) {
  const CleaningOptions options{10};
  std::string s = " Haus ", t = "house\t";
  EXPECT_EQ(clean_pair(s, t, options), std::nullopt);
  EXPECT_EQ(s, "Haus");
  EXPECT_EQ(t, "house");

  s = "Haus", t = "  ";
  EXPECT_EQ(clean_pair(s, t, options), DropReason::empty_side);
  s = "H\xFFus", t = "house";
  EXPECT_EQ(clean_pair(s, t, options), DropReason::invalid_utf8);
  // Ten umlauts are 20 bytes but 10 code points: the limit counts characters, not bytes.
  s = "\u00FC\u00FC\u00FC\u00FC\u00FC\u00FC\u00FC\u00FC\u00FC\u00FC", t = "ten";
  EXPECT_EQ(clean_pair(s, t, options), std::nullopt);
  s = "elf Zeichen", t = "x";
  EXPECT_EQ(clean_pair(s, t, options), DropReason::too_long);
}

TEST(DataTextCleaning, CleanPairsKeepsOrderAndCounts) {
  std::vector<SentencePair> pairs = {
      {"eins", "one"}, {"", "two"}, {"drei", "three"}, {"vier\xC3", "four"}, {"fünf", "five"}};
  DropReport report;
  clean_pairs(pairs, CleaningOptions{}, report);
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[0].source, "eins");
  EXPECT_EQ(pairs[1].source, "drei");
  EXPECT_EQ(pairs[2].source, "fünf");
  EXPECT_EQ(report.count(DropReason::empty_side), 1u);
  EXPECT_EQ(report.count(DropReason::invalid_utf8), 1u);
  EXPECT_EQ(report.dropped(), 2u);
  EXPECT_EQ(report.kept(), 3u);
}

TEST(DataTextCleaning, ReportNamesAndTable) {
  EXPECT_EQ(drop_reason_name(DropReason::empty_side), "empty_side");
  EXPECT_EQ(drop_reason_name(DropReason::invalid_utf8), "invalid_utf8");
  EXPECT_EQ(drop_reason_name(DropReason::too_long), "too_long");
  EXPECT_EQ(drop_reason_name(DropReason::misaligned), "misaligned");
  EXPECT_EQ(drop_reason_name(DropReason::duplicate), "duplicate");

  DropReport a, b;
  a.add(DropReason::misaligned, 3);
  b.add(DropReason::misaligned);
  b.add(DropReason::duplicate, 2);
  b.add_kept(7);
  a.merge(b);
  EXPECT_EQ(a.count(DropReason::misaligned), 4u);
  EXPECT_EQ(a.dropped(), 6u);
  std::ostringstream os;
  a.print_table(os, "test source");
  const std::string table = os.str();
  EXPECT_NE(table.find("test source"), std::string::npos);
  EXPECT_NE(table.find("misaligned"), std::string::npos);
  EXPECT_NE(table.find("dropped total"), std::string::npos);
  EXPECT_NE(table.find(" 7\n"), std::string::npos);
}

}  // namespace
}  // namespace tessera::data
