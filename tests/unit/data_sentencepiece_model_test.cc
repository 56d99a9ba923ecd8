// Tests for training a joint SentencePiece model and the encode/decode wrapper.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "test_seed.h"
#include "core/error.h"
#include "data/sentencepiece_model.h"

namespace tessera::data {
namespace {

class DataSentencePieceModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tessera_spm_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    seed_ = static_cast<uint32_t>(::tessera::testing::test_seed());
    std::mt19937 rng(seed_);
    // A made-up bilingual corpus: random sentences over a fixed German and English lexicon.
    const std::vector<std::string> lexicon = {
        "der", "die", "das", "Haus", "Häuser", "groß", "klein", "Straße", "über", "schön",
        "the", "house", "houses", "big", "small", "street", "over", "beautiful", "is", "are"};
    for (int i = 0; i < 3000; ++i) {
      std::string sentence;
      const int words = 2 + static_cast<int>(rng() % 10);
      for (int w = 0; w < words; ++w) sentence += (w ? " " : "") + lexicon[rng() % lexicon.size()];
      sentences_.push_back(sentence + (rng() % 2 ? "." : "?"));
    }
    options_.vocab_size = 60;
    options_.num_threads = 2;
    options_.seed = 7;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string read_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  std::filesystem::path dir_;
  unsigned seed_ = 0;
  std::vector<std::string> sentences_;
  SentencePieceOptions options_;
};

TEST_F(DataSentencePieceModel, TrainEncodeDecodeRoundTrip) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  const auto model_file = dir_ / "spm.model";
  train_sentencepiece(sentences_, model_file, options_);
  ASSERT_TRUE(std::filesystem::exists(model_file));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "spm.model.tmp"));

  const SentencePieceModel spm(model_file);
  EXPECT_EQ(spm.vocab_size(), options_.vocab_size);
  EXPECT_EQ(spm.piece(kPadId), "<pad>");
  EXPECT_EQ(spm.piece(kUnkId), "<unk>");
  EXPECT_EQ(spm.piece(kBosId), "<s>");
  EXPECT_EQ(spm.piece(kEosId), "</s>");
  for (std::size_t i = 0; i < sentences_.size(); i += 97) {
    const std::vector<std::int32_t> ids = spm.encode(sentences_[i]);
    ASSERT_FALSE(ids.empty());
    for (std::int32_t id : ids) {
      EXPECT_GT(id, kEosId) << "special id inside an encoded sentence";  // no pad/unk/bos/eos
      EXPECT_LT(id, spm.vocab_size());
    }
    EXPECT_EQ(spm.decode(ids), sentences_[i]);
  }
  // Padding decodes to nothing, so a padded sequence decodes like the unpadded one.
  std::vector<std::int32_t> padded = spm.encode(sentences_[0]);
  padded.insert(padded.end(), 3, kPadId);
  EXPECT_EQ(spm.decode(padded), sentences_[0]);
  EXPECT_THROW(spm.decode(std::vector<std::int32_t>{spm.vocab_size()}), Error);
}

TEST_F(DataSentencePieceModel, TrainingIsDeterministic) {
  train_sentencepiece(sentences_, dir_ / "a.model", options_);
  train_sentencepiece(sentences_, dir_ / "b.model", options_);
  EXPECT_EQ(read_bytes(dir_ / "a.model"), read_bytes(dir_ / "b.model"));
}

TEST_F(DataSentencePieceModel, ErrorsNameTheModelFile) {
  try {
    train_sentencepiece({}, dir_ / "none.model", options_);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("none.model"), std::string::npos);
  }
  std::ofstream(dir_ / "garbage.model") << "not a model";
  try {
    SentencePieceModel spm(dir_ / "garbage.model");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("garbage.model"), std::string::npos);
  }
}

}  // namespace
}  // namespace tessera::data
