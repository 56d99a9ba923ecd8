// BLEU against sacreBLEU: tests/fixtures/bleu/expected.json holds corpora with sacreBLEU's
// raw scores and 13a tokenisations (regenerate with tests/fixtures/bleu/make_fixtures.py).
#include "test_seed.h"
#include "eval/bleu.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"

#ifndef TESSERA_TEST_DATA_DIR
#define TESSERA_TEST_DATA_DIR "tests/fixtures"
#endif

namespace tessera::eval {
namespace {

using nlohmann::json;

const json& fixture() {
  static const json data = [] {
    const std::string path = std::string(TESSERA_TEST_DATA_DIR) + "/bleu/expected.json";
    std::ifstream in(path);
    if (!in) throw Error("cannot open BLEU fixture " + path);
    return json::parse(in);
  }();
  return data;
}

std::vector<std::string> strings(const json& array) {
  return array.get<std::vector<std::string>>();
}

constexpr double kTol = 1e-9;

TEST(Bleu, TokenizerMatchesSacrebleuOnSpecialCases) {
  const json& cases = fixture().at("tokenizer");
  ASSERT_FALSE(cases.empty());
  for (const json& c : cases) {
    const std::string line = c.at("line");
    EXPECT_EQ(tokenize_13a(line), c.at("tokens").get<std::string>()) << "line: " << line;
  }
}

TEST(Bleu, TokenizerMatchesSacrebleuOnCorpusLines) {
  for (const auto& [name, corpus] : fixture().at("corpora").items()) {
    for (const char* side : {"hyps", "refs"}) {
      const auto lines = strings(corpus.at(side));
      const auto tokens =
          strings(corpus.at(std::string(side) == "hyps" ? "hyp_tokens" : "ref_tokens"));
      ASSERT_EQ(lines.size(), tokens.size());
      for (size_t i = 0; i < lines.size(); ++i)
        EXPECT_EQ(tokenize_13a(lines[i]), tokens[i]) << name << " " << side << "[" << i << "]";
    }
  }
}

TEST(Bleu, CorpusScoresMatchSacrebleu) {
  for (const auto& [name, corpus] : fixture().at("corpora").items()) {
    SCOPED_TRACE("corpus " + name);
    const BleuScore s = corpus_bleu(strings(corpus.at("hyps")), strings(corpus.at("refs")));
    EXPECT_NEAR(s.score, corpus.at("score").get<double>(), kTol);
    for (int n = 0; n < kBleuMaxOrder; ++n)
      EXPECT_NEAR(s.precisions[n], corpus.at("precisions")[n].get<double>(), kTol)
          << "order " << n + 1;
    EXPECT_NEAR(s.bp, corpus.at("bp").get<double>(), kTol);
    EXPECT_NEAR(s.sys_len_ratio, corpus.at("ratio").get<double>(), kTol);
    EXPECT_EQ(s.sys_len, corpus.at("sys_len").get<int64_t>());
    EXPECT_EQ(s.ref_len, corpus.at("ref_len").get<int64_t>());
    EXPECT_EQ(s.to_string(), corpus.at("formatted").get<std::string>());
  }
}

TEST(Bleu, SufficientStatisticsMatchSacrebleu) {
  for (const auto& [name, corpus] : fixture().at("corpora").items()) {
    SCOPED_TRACE("corpus " + name);
    const auto hyps = strings(corpus.at("hyps"));
    const auto refs = strings(corpus.at("refs"));
    BleuAccumulator acc;
    for (size_t i = 0; i < hyps.size(); ++i) acc.add(hyps[i], refs[i]);
    for (int n = 0; n < kBleuMaxOrder; ++n) {
      EXPECT_EQ(acc.stats()[2 + n], corpus.at("counts")[n].get<int64_t>()) << "order " << n + 1;
      EXPECT_EQ(acc.stats()[2 + kBleuMaxOrder + n], corpus.at("totals")[n].get<int64_t>())
          << "order " << n + 1;
    }
  }
}

// Ranks each scoring a random shard and summing their statistics must reproduce the corpus score.
TEST(Bleu, ShardedStatisticsSumToCorpusScore) {
  const json& corpus = fixture().at("corpora").at("random");
  const auto hyps = strings(corpus.at("hyps"));
  const auto refs = strings(corpus.at("refs"));
  const unsigned seed = static_cast<uint32_t>(::tessera::testing::test_seed());
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick_rank(0, 2);

  std::vector<BleuAccumulator> ranks(3);
  for (size_t i = 0; i < hyps.size(); ++i) ranks[pick_rank(rng)].add(hyps[i], refs[i]);
  BleuAccumulator reduced;
  for (const auto& r : ranks) reduced.merge(r.stats());

  const BleuScore whole = corpus_bleu(hyps, refs);
  EXPECT_EQ(reduced.score().score, whole.score);
  EXPECT_NEAR(whole.score, corpus.at("score").get<double>(), kTol);
}

TEST(Bleu, MismatchedLengthsThrowNamingSizes) {
  try {
    corpus_bleu({"a", "b", "c"}, {"a", "b"});
    FAIL() << "expected tessera::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 hypotheses but 2 references"), std::string::npos)
        << e.what();
  }
}

TEST(Bleu, EmptyCorpusScoresZero) {
  const BleuScore s = corpus_bleu({}, {});
  EXPECT_EQ(s.score, 0.0);
  EXPECT_EQ(s.sys_len, 0);
  EXPECT_EQ(s.ref_len, 0);
  EXPECT_EQ(s.sys_len_ratio, 0.0);
}

}  // namespace
}  // namespace tessera::eval
