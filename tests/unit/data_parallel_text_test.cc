// Tests for reading a user's parallel text files: line-count mismatch, bad lines, round trip.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "test_seed.h"
#include "core/error.h"
#include "data/parallel_text.h"

namespace tessera::data {
namespace {

// A fresh directory per test, removed afterwards.
class DataParallelText : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tessera_parallel_text_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path write(const std::string& name, const std::string& bytes) {
    const auto path = dir_ / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(DataParallelText, ReadsAlignedLines) {
  const auto de = write("a.de", "Guten Morgen.\r\n  Wie   geht es?\nDanke.");
  const auto en = write("a.en", "Good morning.\nHow are you?\nThanks.\n");
  DropReport report;
  const ParallelText text = read_parallel_text(de, en, report);
  const std::vector<SentencePair> expected = {
      {"Guten Morgen.", "Good morning."}, {"Wie geht es?", "How are you?"}, {"Danke.", "Thanks."}};
  EXPECT_EQ(text.pairs, expected);
  EXPECT_TRUE(text.issues.empty());
  EXPECT_EQ(report.dropped(), 0u);
}

TEST_F(DataParallelText, MismatchedLineCountsNameBothFilesAndCounts) {
  const auto de = write("short.de", "eins\nzwei\n");
  const auto en = write("long.en", "one\ntwo\nthree\n");
  DropReport report;
  try {
    read_parallel_text(de, en, report);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(de.string()), std::string::npos) << what;
    EXPECT_NE(what.find(en.string()), std::string::npos) << what;
    EXPECT_NE(what.find("has 2 lines"), std::string::npos) << what;
    EXPECT_NE(what.find("has 3 lines"), std::string::npos) << what;
  }
}

TEST_F(DataParallelText, ReportsInvalidUtf8AndEmptyLinesWithFileAndLine) {
  const auto de = write("b.de", "gut\nH\xE4user\n\nauch gut\nnoch eins\n");
  const auto en = write("b.en", "good\nhouses\nempty source\nalso good\n   \n");
  DropReport report;
  const ParallelText text = read_parallel_text(de, en, report);
  EXPECT_EQ(text.pairs, (std::vector<SentencePair>{{"gut", "good"}, {"auch gut", "also good"}}));
  ASSERT_EQ(text.issues.size(), 3u);
  std::ostringstream os;
  for (const LineIssue& issue : text.issues) os << issue << "\n";
  EXPECT_EQ(os.str(), de.string() + ":2: invalid UTF-8\n" + de.string() + ":3: empty line\n" +
                          en.string() + ":5: empty line\n");
  EXPECT_EQ(report.count(DropReason::invalid_utf8), 1u);
  EXPECT_EQ(report.count(DropReason::empty_side), 2u);
}

TEST_F(DataParallelText, MissingFileIsNamed) {
  const auto en = write("c.en", "x\n");
  DropReport report;
  try {
    read_parallel_text(dir_ / "missing.de", en, report);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.de"), std::string::npos);
  }
}

TEST_F(DataParallelText, WriteThenReadRoundTrips) {
  std::mt19937 rng(static_cast<uint32_t>(::tessera::testing::test_seed()));
  std::vector<SentencePair> pairs;
  for (int i = 0; i < 100; ++i) {
    pairs.push_back({"Satz " + std::to_string(rng()) + " \u00E4\u00F6\u00FC",
                     "sentence " + std::to_string(rng())});
  }
  write_parallel_text(pairs, dir_ / "r.de", dir_ / "r.en");
  DropReport report;
  EXPECT_EQ(read_parallel_text(dir_ / "r.de", dir_ / "r.en", report).pairs, pairs);
}

}  // namespace
}  // namespace tessera::data
