// Tests for the indexed binary dataset: round trip through mmap, and clear errors for damage.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "test_seed.h"
#include "core/error.h"
#include "data/indexed_dataset.h"

namespace tessera::data {
namespace {

class DataIndexedDataset : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tessera_indexed_dataset_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    seed_ = static_cast<uint32_t>(::tessera::testing::test_seed());
    rng_.seed(seed_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Random sequences of random length (including empty ones) with random token ids.
  std::vector<std::vector<std::int32_t>> random_sequences(std::size_t n) {
    std::vector<std::vector<std::int32_t>> sequences(n);
    for (auto& s : sequences) {
      s.resize(rng_() % 40);
      for (auto& t : s) t = static_cast<std::int32_t>(rng_() % 32000);
    }
    return sequences;
  }

  void write(const std::filesystem::path& prefix,
             const std::vector<std::vector<std::int32_t>>& sequences) {
    IndexedDatasetWriter writer(prefix);
    for (const auto& s : sequences) writer.add(s);
    writer.finish();
  }

  // Runs `open` and checks that it throws an Error whose message contains every fragment.
  template <typename F>
  void expect_error(F open, std::initializer_list<std::string> fragments) {
    try {
      open();
      FAIL() << "expected an error";
    } catch (const Error& e) {
      for (const std::string& f : fragments)
        EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  }

  std::filesystem::path dir_;
  unsigned seed_ = 0;
  std::mt19937 rng_;
};

TEST_F(DataIndexedDataset, RoundTripThroughMmap) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  const auto sequences = random_sequences(500);
  const auto prefix = dir_ / "train.src";
  write(prefix, sequences);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "train.src.bin"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "train.src.idx"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "train.src.bin.tmp"));

  const IndexedDataset dataset(prefix);
  ASSERT_EQ(dataset.size(), sequences.size());
  std::size_t tokens = 0;
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    const auto view = dataset[i];
    ASSERT_EQ(dataset.length(i), sequences[i].size());
    EXPECT_TRUE(std::equal(view.begin(), view.end(), sequences[i].begin(), sequences[i].end()))
        << "sequence " << i;
    tokens += sequences[i].size();
  }
  EXPECT_EQ(dataset.num_tokens(), tokens);
  EXPECT_EQ(std::filesystem::file_size(dir_ / "train.src.bin"), tokens * 4);
  EXPECT_THROW(dataset[sequences.size()], Error);
}

TEST_F(DataIndexedDataset, EmptyDatasetRoundTrips) {
  write(dir_ / "empty", {});
  const IndexedDataset dataset(dir_ / "empty");
  EXPECT_EQ(dataset.size(), 0u);
  EXPECT_EQ(dataset.num_tokens(), 0u);
}

TEST_F(DataIndexedDataset, UnfinishedWriterLeavesNothingBehind) {
  {
    IndexedDatasetWriter writer(dir_ / "partial");
    writer.add(random_sequences(1)[0]);
  }  // destroyed without finish(), as when an exception unwinds
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(DataIndexedDataset, TruncatedIndexIsReportedWithItsFileName) {
  const auto prefix = dir_ / "d";
  write(prefix, random_sequences(20));
  const auto idx = index_file(prefix);
  std::filesystem::resize_file(idx, std::filesystem::file_size(idx) - 8);
  expect_error([&] { IndexedDataset{prefix}; }, {idx.string(), "truncated", "20 sequences"});
  std::filesystem::resize_file(idx, 10);
  expect_error([&] { IndexedDataset{prefix}; }, {idx.string(), "header"});
}

TEST_F(DataIndexedDataset, BadMagicAndVersionAreReported) {
  const auto prefix = dir_ / "d";
  write(prefix, random_sequences(5));
  const auto idx = index_file(prefix);
  std::fstream f(idx, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(8);
  const std::uint32_t version = 99;
  f.write(reinterpret_cast<const char*>(&version), 4);
  f.flush();
  expect_error([&] { IndexedDataset{prefix}; }, {idx.string(), "version 99"});
  f.seekp(0);
  f.write("NOTANIDX", 8);
  f.close();
  expect_error([&] { IndexedDataset{prefix}; }, {idx.string(), "bad magic"});
}

TEST_F(DataIndexedDataset, TruncatedDataFileIsReportedWithBothNames) {
  const auto prefix = dir_ / "d";
  auto sequences = random_sequences(30);
  sequences[0].assign(10, 7);  // at least some tokens to cut
  write(prefix, sequences);
  const auto bin = data_file(prefix);
  std::filesystem::resize_file(bin, std::filesystem::file_size(bin) - 4);
  expect_error([&] { IndexedDataset{prefix}; }, {bin.string(), index_file(prefix).string(), "truncated"});
}

TEST_F(DataIndexedDataset, CorruptOffsetsAreReported) {
  const auto prefix = dir_ / "d";
  write(prefix, {{1, 2, 3}, {4, 5}, {6}});
  const auto idx = index_file(prefix);
  std::fstream f(idx, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(kIndexHeaderBytes + 8);  // offsets [0, 3, 5, 6]: set offsets[1] = 6 > offsets[2]
  const std::uint64_t bad = 6;
  f.write(reinterpret_cast<const char*>(&bad), 8);
  f.close();
  expect_error([&] { IndexedDataset{prefix}; }, {idx.string(), "offsets decrease"});
}

TEST_F(DataIndexedDataset, ParallelDatasetChecksEqualCounts) {
  const auto prefix = dir_ / "train";
  const auto src = random_sequences(12);
  write(source_prefix(prefix), src);
  write(target_prefix(prefix), random_sequences(12));
  const ParallelDataset parallel(prefix);
  EXPECT_EQ(parallel.size(), 12u);
  EXPECT_TRUE(std::equal(parallel.source[3].begin(), parallel.source[3].end(), src[3].begin(), src[3].end()));

  write(target_prefix(prefix), random_sequences(11));
  expect_error([&] { ParallelDataset{prefix}; },
               {index_file(source_prefix(prefix)).string(), index_file(target_prefix(prefix)).string(),
                "12", "11"});
}

}  // namespace
}  // namespace tessera::data
