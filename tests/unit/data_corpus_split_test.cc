// Tests for de-duplication, the full-sentence rule and the deterministic train/dev/test split.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>

#include "test_seed.h"
#include "core/error.h"
#include "data/corpus_split.h"

namespace tessera::data {
namespace {

// A random corpus: some full sentences, some dictionary-like fragments, some repeats.
std::vector<SentencePair> random_corpus(std::mt19937& rng, std::size_t n) {
  static const char* kWords[] = {"der", "Hund", "sieht", "eine", "Katze", "im", "Garten", "heute"};
  std::vector<SentencePair> pairs;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t words = 1 + rng() % 7;
    std::string de, en;
    for (std::size_t w = 0; w < words; ++w) {
      de += (w ? " " : "") + std::string(kWords[rng() % 8]);
      en += (w ? " " : "") + std::string("w") + std::to_string(rng() % 50);
    }
    de += " " + std::to_string(i);  // make most sources distinct
    en += " " + std::to_string(i);
    if (rng() % 2) {
      de += ".";
      en += ".";
    }
    pairs.push_back({de, en});
  }
  return pairs;
}

TEST(DataCorpusSplit, FullSentenceRule) {
  EXPECT_TRUE(is_full_sentence("Er kam gestern nicht."));
  EXPECT_TRUE(is_full_sentence("Kommst du heute mit?"));
  EXPECT_TRUE(is_full_sentence("Er sagte: \u201EKomm her!\u201C"));
  EXPECT_TRUE(is_full_sentence("Click OK to close (the dialog.)"));
  EXPECT_FALSE(is_full_sentence("Er kam nicht"));     // no final mark
  EXPECT_FALSE(is_full_sentence("Komm her!"));        // fewer than 4 words
  EXPECT_FALSE(is_full_sentence("Wählen Sie dann Format..."));  // elided fragment
  EXPECT_TRUE(is_full_sentence_pair({"Das ist ein Test.", "This is a test."}));
  EXPECT_FALSE(is_full_sentence_pair({"Das ist ein Test.", "Test"}));
}

TEST(DataCorpusSplit, HashIsStableAndSeeded) {
  EXPECT_EQ(sentence_hash("Hallo Welt", 1), sentence_hash("Hallo Welt", 1));
  EXPECT_NE(sentence_hash("Hallo Welt", 1), sentence_hash("Hallo Welt", 2));
  EXPECT_NE(sentence_hash("Hallo Welt", 1), sentence_hash("Hallo Welt.", 1));
  // A pinned value: the split of a published corpus must not change between builds or
  // platforms, so the hash is part of the data format.
  EXPECT_EQ(sentence_hash("Er kam gestern nicht.", 1), 11029399959094379729ULL);
}

TEST(DataCorpusSplit, DeduplicatesExactPairsAndRepeatedSources) {
  std::vector<SentencePair> pairs = {{"Bank", "bank"},  {"Haus", "house"}, {"Bank", "bank"},
                                     {"Bank", "bench"}, {"Tür", "door"},   {"Haus", "house"}};
  std::vector<SentencePair> by_pair = pairs;
  DropReport report;
  DedupStats stats = deduplicate(by_pair, /*by_source=*/false, report);
  EXPECT_EQ(stats.exact_pairs, 2u);
  EXPECT_EQ(stats.same_source, 0u);
  EXPECT_EQ(by_pair, (std::vector<SentencePair>{{"Bank", "bank"}, {"Haus", "house"}, {"Bank", "bench"}, {"Tür", "door"}}));

  DropReport report2;
  stats = deduplicate(pairs, /*by_source=*/true, report2);
  EXPECT_EQ(stats.exact_pairs, 2u);
  EXPECT_EQ(stats.same_source, 1u);
  EXPECT_EQ(pairs, (std::vector<SentencePair>{{"Bank", "bank"}, {"Haus", "house"}, {"Tür", "door"}}));
  EXPECT_EQ(report2.count(DropReason::duplicate), 3u);
}

TEST(DataCorpusSplit, SplitHoldsOutFullSentencesDisjointFromTrain) {
  std::mt19937 rng(static_cast<uint32_t>(::tessera::testing::test_seed()));
  std::vector<SentencePair> corpus = random_corpus(rng, 3000);
  // Repeat some sources with other targets: held-out sources must still never reach train.
  for (std::size_t i = 0; i < 300; ++i) corpus.push_back({corpus[i].source, "other " + std::to_string(i)});
  const SplitOptions options{50, 70, rng()};
  const CorpusSplit split = split_corpus(corpus, options);

  EXPECT_EQ(split.dev.size(), 50u);
  EXPECT_EQ(split.test.size(), 70u);
  std::set<std::string> held_out;
  for (const auto* part : {&split.dev, &split.test}) {
    for (const SentencePair& p : *part) {
      EXPECT_TRUE(is_full_sentence_pair(p)) << p.source;
      EXPECT_TRUE(held_out.insert(p.source).second) << "source in dev and test: " << p.source;
    }
  }
  for (const SentencePair& p : split.train) EXPECT_EQ(held_out.count(p.source), 0u) << p.source;
  EXPECT_EQ(split.train.size() + split.dev.size() + split.test.size() + split.removed_from_train,
            corpus.size());
}

TEST(DataCorpusSplit, SplitDependsOnContentNotOrder) {
  std::mt19937 rng(static_cast<uint32_t>(::tessera::testing::test_seed()));
  std::vector<SentencePair> corpus = random_corpus(rng, 2000);
  const SplitOptions options{40, 40, rng()};
  const CorpusSplit a = split_corpus(corpus, options);
  std::shuffle(corpus.begin(), corpus.end(), rng);
  const CorpusSplit b = split_corpus(corpus, options);
  EXPECT_EQ(a.dev, b.dev);
  EXPECT_EQ(a.test, b.test);
  EXPECT_EQ(a.train.size(), b.train.size());

  // Another seed picks other sentences.
  const CorpusSplit c = split_corpus(corpus, SplitOptions{40, 40, options.seed + 1});
  EXPECT_NE(a.dev, c.dev);
}

TEST(DataCorpusSplit, RefusesTooFewFullSentences) {
  const std::vector<SentencePair> corpus = {{"Das ist ein Satz.", "This is a sentence."},
                                            {"Haus", "house"}};
  try {
    split_corpus(corpus, SplitOptions{1, 1, 1});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only 1 full-sentence pairs"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera::data
