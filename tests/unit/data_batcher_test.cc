// Tests for token-count batching: the budget holds, every sentence is seen once per epoch,
// length bucketing pads far less than random batches, the order is a pure function of the seed,
// a saved sampler state resumes exactly, and the global batch does not depend on the dp layout.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "test_seed.h"
#include "core/error.h"
#include "data/token_batcher.h"
#include "train/trainer.h"

namespace tessera::data {
namespace {

constexpr int64_t kMaxLen = 80;

class BatcherTest : public ::testing::Test {
 protected:
  // A parallel dataset of random pairs: source lengths spread over 0..100 (some over kMaxLen),
  // target lengths near the source length, random ids.
  void SetUp() override {
    seed_ = static_cast<uint32_t>(::tessera::testing::test_seed());
    rng_.seed(seed_);
    dir_ = std::filesystem::temp_directory_path() /
           ("tessera_batcher_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    IndexedDatasetWriter src(source_prefix(dir_ / "train")), tgt(target_prefix(dir_ / "train"));
    std::uniform_int_distribution<int> src_len(0, 100), jitter(-5, 5), id(4, 31999);
    for (int i = 0; i < kSentences; ++i) {
      std::vector<int32_t> s(src_len(rng_)), t(std::max(0, static_cast<int>(s.size()) + jitter(rng_)));
      for (auto& x : s) x = id(rng_);
      for (auto& x : t) x = id(rng_);
      src.add(s);
      tgt.add(t);
    }
    src.finish();
    tgt.finish();
    data_ = std::make_unique<ParallelDataset>(dir_ / "train");
  }
  void TearDown() override {
    data_.reset();
    std::filesystem::remove_all(dir_);
  }

  TokenBatcherOptions options(int64_t min_sentences = 1, uint64_t seed = 7) const {
    return {.max_tokens = 2000, .max_len = kMaxLen, .min_sentences = min_sentences, .seed = seed};
  }

  // The next `n` batches' sentence indices.
  static std::vector<std::vector<int64_t>> take(Sampler& sampler, int64_t n) {
    std::vector<std::vector<int64_t>> out;
    for (int64_t k = 0; k < n; ++k) out.push_back(sampler.next_batch().indices);
    return out;
  }

  static constexpr int kSentences = 3000;
  unsigned seed_ = 0;
  std::mt19937 rng_;
  std::filesystem::path dir_;
  std::unique_ptr<ParallelDataset> data_;
};

TEST_F(BatcherTest, BatchesRespectTokenBudget) {
  SCOPED_TRACE("dataset seed " + std::to_string(seed_));
  for (const int64_t min_sentences : {1, 4}) {
    Sampler sampler(*data_, options(min_sentences));
    const TokenBatcher& batcher = sampler.batcher();
    const BatchStats& stats = batcher.stats();
    EXPECT_EQ(stats.batches, batcher.batches_per_epoch());
    EXPECT_NEAR(stats.mean_sentences(), static_cast<double>(stats.sentences) / stats.batches, 1e-12);
    for (int64_t k = 0; k < batcher.batches_per_epoch(); ++k) {
      const GlobalBatch batch = sampler.next_batch();
      EXPECT_LE(padded_tokens(batcher.lengths(), batch.indices), 2000);
      EXPECT_GE(static_cast<int64_t>(batch.indices.size()), min_sentences);
      // The pairs are the dataset's ids, without bos/eos.
      ASSERT_EQ(batch.pairs.size(), batch.indices.size());
      for (std::size_t i = 0; i < batch.pairs.size(); ++i) {
        const auto src = data_->source[batch.indices[i]];
        const auto tgt = data_->target[batch.indices[i]];
        EXPECT_TRUE(std::equal(src.begin(), src.end(), batch.pairs[i].src.begin(), batch.pairs[i].src.end()));
        EXPECT_TRUE(std::equal(tgt.begin(), tgt.end(), batch.pairs[i].tgt.begin(), batch.pairs[i].tgt.end()));
      }
    }
    std::printf("min_sentences %lld: %s\n", static_cast<long long>(min_sentences), stats.summary().c_str());
  }
}

TEST_F(BatcherTest, EverySentenceOncePerEpochExceptSkipped) {
  SCOPED_TRACE("dataset seed " + std::to_string(seed_));
  Sampler sampler(*data_, options(4));
  const TokenBatcher& batcher = sampler.batcher();
  const SentenceLengths& lengths = batcher.lengths();

  // Sentences the filter must skip, counted independently: a side over kMaxLen ids, or 4 copies over budget.
  int64_t expected_too_long = 0;
  for (std::size_t i = 0; i < lengths.size(); ++i)
    if (lengths.src[i] - 1 > kMaxLen || lengths.tgt[i] - 1 > kMaxLen || 4 * (lengths.src[i] + lengths.tgt[i]) > 2000)
      ++expected_too_long;
  EXPECT_GT(expected_too_long, 0);  // the data does exercise the filter
  EXPECT_EQ(batcher.stats().skipped_too_long, expected_too_long);

  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<int> seen(kSentences, 0);
    for (const auto& batch : take(sampler, batcher.batches_per_epoch()))
      for (const int64_t i : batch) ++seen[i];
    int64_t once = 0;
    for (std::size_t i = 0; i < seen.size(); ++i) {
      ASSERT_LE(seen[i], 1) << "sentence " << i << " twice in epoch " << epoch;
      once += seen[i];
      const bool too_long = lengths.src[i] - 1 > kMaxLen || lengths.tgt[i] - 1 > kMaxLen;
      if (too_long) {
        EXPECT_EQ(seen[i], 0) << "sentence " << i << " is over --max-len";
      }
    }
    EXPECT_EQ(once, batcher.stats().sentences);
    EXPECT_EQ(once + batcher.stats().skipped_too_long + batcher.stats().skipped_undersized, kSentences);
    EXPECT_EQ(sampler.state().epoch, epoch + 1);
    EXPECT_EQ(sampler.state().cursor, 0);
  }
}

TEST_F(BatcherTest, BucketingPadsFarLessThanRandomBatches) {
  SCOPED_TRACE("dataset seed " + std::to_string(seed_));
  const TokenBatcher batcher(SentenceLengths::of(*data_), options());
  // The same sentences in a random order, cut under the same budget.
  std::vector<int64_t> shuffled;
  for (const auto& batch : batcher.batches()) shuffled.insert(shuffled.end(), batch.begin(), batch.end());
  std::shuffle(shuffled.begin(), shuffled.end(), rng_);
  const BatchStats random = measure_batches(batcher.lengths(), cut_batches(batcher.lengths(), shuffled, 2000));
  const BatchStats bucketed = batcher.stats();
  std::printf("padding: bucketed %.3f (%.1f sentences/batch), random %.3f (%.1f sentences/batch)\n",
              bucketed.padding_rate(), bucketed.mean_sentences(), random.padding_rate(), random.mean_sentences());
  EXPECT_EQ(random.sentences, bucketed.sentences);
  EXPECT_LT(bucketed.padding_rate(), 0.5 * random.padding_rate());
  EXPECT_LT(bucketed.batches, random.batches);  // less padding, so more sentences fit per batch
}

TEST_F(BatcherTest, SameSeedSameSequenceOtherSeedAnother) {
  SCOPED_TRACE("dataset seed " + std::to_string(seed_));
  Sampler a(*data_, options(1, 7)), b(*data_, options(1, 7)), c(*data_, options(1, 8));
  const int64_t n = a.batcher().batches_per_epoch() * 3 / 2;  // into the second epoch
  const auto seq_a = take(a, n);
  EXPECT_EQ(seq_a, take(b, n));
  EXPECT_NE(seq_a, take(c, n));
  // Each epoch visits the batches in a new order.
  EXPECT_NE(a.batcher().epoch_order(0), a.batcher().epoch_order(1));
  std::vector<int64_t> sorted = a.batcher().epoch_order(1);
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> ids(sorted.size());
  std::iota(ids.begin(), ids.end(), int64_t{0});
  EXPECT_EQ(sorted, ids);  // a permutation
}

TEST_F(BatcherTest, RestoredStateContinuesAcrossEpochBoundary) {
  SCOPED_TRACE("dataset seed " + std::to_string(seed_));
  Sampler original(*data_, options(2));
  const int64_t per_epoch = original.batcher().batches_per_epoch();
  std::uniform_int_distribution<int64_t> where(1, per_epoch - 1);
  const int64_t done = per_epoch + where(rng_);  // mid-way through epoch 1
  take(original, done);
  const std::string saved = to_json_string(original.state());
  const auto expected = take(original, per_epoch + 3);  // runs into epoch 2

  Sampler resumed(*data_, options(2));
  resumed.restore(sampler_state_from_json(saved));
  EXPECT_EQ(resumed.state().epoch, 1);
  EXPECT_EQ(resumed.state().cursor, done - per_epoch);
  EXPECT_EQ(take(resumed, per_epoch + 3), expected);
  EXPECT_EQ(resumed.state(), original.state());

  // A state from another seed, or one past the epoch, is refused by name.
  Sampler other(*data_, options(2, 99));
  EXPECT_THROW(other.restore(sampler_state_from_json(saved)), Error);
  EXPECT_THROW(resumed.restore({7, 0, per_epoch}), Error);
  EXPECT_THROW(sampler_state_from_json("{\"seed\": 1}"), Error);
}

TEST(BatcherPlan, DropsBatchesUnderMinSentences) {
  // Ten (10, 10) pairs cut into two batches of 5 under a budget of 100; a (30, 15) pair passes the
  // filter (2 * 45 <= 100) but, last in length order, sits alone in a batch and is dropped for
  // min_sentences 2; a (45, 40) pair could not fit twice and is skipped; a 90-id source is over max_len.
  SentenceLengths lengths;
  for (int i = 0; i < 10; ++i) lengths.src.push_back(10), lengths.tgt.push_back(10);
  for (const auto& [s, t] : {std::pair{30, 15}, std::pair{45, 40}, std::pair{91, 5}})
    lengths.src.push_back(s), lengths.tgt.push_back(t);
  const TokenBatcherOptions strict{.max_tokens = 100, .max_len = 80, .min_sentences = 2, .seed = 3};
  const TokenBatcher batcher(lengths, strict);
  EXPECT_EQ(batcher.batches_per_epoch(), 2);
  EXPECT_EQ(batcher.stats().skipped_undersized, 1);
  EXPECT_EQ(batcher.stats().skipped_too_long, 2);
  EXPECT_EQ(batcher.stats().padding_rate(), 0.0);
  for (const auto& batch : batcher.batches()) EXPECT_EQ(batch.size(), 5u);

  TokenBatcherOptions lenient = strict;
  lenient.min_sentences = 1;
  const TokenBatcher kept(lengths, lenient);
  EXPECT_EQ(kept.batches_per_epoch(), 4);  // (30, 15) and (45, 40) each alone
  EXPECT_EQ(kept.stats().skipped_undersized, 0);
  EXPECT_EQ(kept.stats().skipped_too_long, 1);  // only the max_len one
}

TEST(BatcherState, RoundTripsThroughJson) {
  const SamplerState state{0xFEDCBA9876543210ull, 12345, 678};
  const std::string text = to_json_string(state);
  EXPECT_NE(text.find("\"cursor\""), std::string::npos) << text;
  EXPECT_EQ(sampler_state_from_json(text), state);
}

TEST_F(BatcherTest, GlobalBatchIsIndependentOfDataParallelLayout) {
  SCOPED_TRACE("dataset seed " + std::to_string(seed_));
  // Two ranks build their samplers independently from the same options (no rank goes in) and get
  // the same global batches; slicing those for dp = 1, 2, 4 concatenates back to the global batch.
  Sampler rank0(*data_, options(4)), rank3(*data_, options(4));
  for (int64_t step = 0; step < rank0.batcher().batches_per_epoch() + 5; ++step) {
    const GlobalBatch global = rank0.next_batch();
    const GlobalBatch other = rank3.next_batch();
    ASSERT_EQ(global.indices, other.indices) << "step " << step;
    for (const int dp : {1, 2, 4}) {
      std::vector<int64_t> joined;
      std::vector<model::TokenPair> joined_pairs;
      for (int r = 0; r < dp; ++r) {
        const auto [begin, end] = train::slice_of(global.pairs.size(), dp, r);
        EXPECT_GE(end - begin, 1u) << "dp " << dp << " rank " << r << " got no sentence";
        joined.insert(joined.end(), global.indices.begin() + begin, global.indices.begin() + end);
        joined_pairs.insert(joined_pairs.end(), global.pairs.begin() + begin, global.pairs.begin() + end);
      }
      EXPECT_EQ(joined, global.indices) << "dp " << dp;
      ASSERT_EQ(joined_pairs.size(), global.pairs.size());
      for (std::size_t i = 0; i < joined_pairs.size(); ++i) {
        EXPECT_EQ(joined_pairs[i].src, global.pairs[i].src);
        EXPECT_EQ(joined_pairs[i].tgt, global.pairs[i].tgt);
      }
    }
  }
}

TEST_F(BatcherTest, EvaluationBatchesCoverDataInOrder) {
  SCOPED_TRACE("dataset seed " + std::to_string(seed_));
  const SentenceLengths lengths = SentenceLengths::of(*data_);
  const auto ranges = evaluation_batches(lengths, 32, 1500);
  std::size_t next = 0;
  for (const auto& [begin, end] : ranges) {
    ASSERT_EQ(begin, next);  // contiguous, in order, nothing skipped
    ASSERT_LT(begin, end);
    EXPECT_LE(end - begin, 32u);
    std::vector<int64_t> batch(end - begin);
    std::iota(batch.begin(), batch.end(), static_cast<int64_t>(begin));
    if (end - begin > 1) {  // one long sentence may stand alone over the budget
      EXPECT_LE(padded_tokens(lengths, batch), 1500);
    }
    next = end;
  }
  EXPECT_EQ(next, lengths.size());
}

}  // namespace
}  // namespace tessera::data
