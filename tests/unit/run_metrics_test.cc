// What a run reports about itself: the straggler rule, the model FLOPs of a step, the resumable
// metrics.jsonl and the ETA's format.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/flop_count.h"
#include "train/run_directory.h"
#include "train/run_metrics.h"
#include "train/straggler_report.h"

namespace tessera {
namespace {
namespace fs = std::filesystem;

TEST(Straggler, TheSlowestRankIsNamedOnlyAboveTheThreshold) {
  // Median of {1.0, 1.1, 0.9, 1.3} is 1.05; rank 3 is 23.8% above it.
  const std::vector<double> times = {1.0, 1.1, 0.9, 1.3};
  const auto s = train::find_straggler(times, 20);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->rank, 3);
  EXPECT_DOUBLE_EQ(s->seconds, 1.3);
  EXPECT_DOUBLE_EQ(s->median_seconds, 1.05);
  EXPECT_NEAR(s->percent_slower, 100 * (1.3 / 1.05 - 1), 1e-12);
  EXPECT_FALSE(train::find_straggler(times, 25).has_value());
}

TEST(Straggler, OddCountsTakeTheMiddleAndOneRankHasNoStraggler) {
  const auto s = train::find_straggler({2.0, 1.0, 1.0}, 50);  // median 1.0, rank 0 is 100% above
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->rank, 0);
  EXPECT_FALSE(train::find_straggler({5.0}, 1).has_value());
  EXPECT_FALSE(train::find_straggler({1.0, 1.0, 1.0, 1.0}, 1).has_value());
}

TEST(FlopCount, OneTokenPairCountedProductByProduct) {
  // d_model 2, d_ff 4, vocabulary 3, one layer each side, 2 heads; a source of 1 token + eos and a
  // target of 0 tokens (+ bos/eos): s = 2, t = 1. Multiply-adds of each forward product:
  model::ModelConfig c;
  c.d_model = 2, c.d_ff = 4, c.heads = 2, c.vocab_size = 3, c.encoder_layers = 1, c.decoder_layers = 1;
  const double s = 2, t = 1, d = 2, ff = 4, v = 3;
  const double encoder = 4 * (s * d * d)        // Q, K, V, output projections: [s, d] x [d, d]
                         + 2 * (s * s * d)      // QK^T and PV summed over heads
                         + s * d * ff + s * ff * d;
  const double decoder = 4 * (t * d * d) + 2 * (t * t * d)  // self-attention
                         + 2 * (t * d * d) + 2 * (s * d * d)  // cross Q, output / cross K, V
                         + 2 * (t * s * d) + t * d * ff + t * ff * d;
  const double logits = t * d * v;
  const double forward_flops = 2 * (encoder + decoder + logits);
  EXPECT_DOUBLE_EQ(model::forward_flops(c, s, t), forward_flops);
  const std::vector<model::TokenPair> batch = {{{5}, {}}, {{5}, {}}};
  EXPECT_DOUBLE_EQ(model::training_flops(c, batch), 2 * 3 * forward_flops);
}

TEST(MetricsFile, AResumedRunKeepsTheRecordsUpToItsStepAndDropsACutLine) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("metrics_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path file = dir / "metrics.jsonl";
  {
    std::ofstream out(file);
    out << R"({"event":"start","step":0})" << "\n"
        << R"({"event":"step","step":10,"loss":3.5})" << "\n"
        << R"({"event":"note"})" << "\n"
        << R"({"event":"step","step":20,"loss":3.1})" << "\n"
        << R"({"event":"step","step":30,"lo)";  // killed mid-write
  }
  {
    train::CurveFile jsonl = train::CurveFile::json_lines(file, 10);
    jsonl.append(R"({"event":"start","step":10})");
  }
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "{\"event\":\"start\",\"step\":0}\n{\"event\":\"step\",\"step\":10,\"loss\":3.5}\n"
                        "{\"event\":\"note\"}\n{\"event\":\"start\",\"step\":10}\n");
  // A fresh run starts the file anew.
  { train::CurveFile fresh = train::CurveFile::json_lines(file, 0); }
  EXPECT_EQ(fs::file_size(file), 0u);
  fs::remove_all(dir);
}

TEST(RunMetrics, DurationsReadLikeAClock) {
  EXPECT_EQ(train::format_duration(42.4), "42s");
  EXPECT_EQ(train::format_duration(185), "3m05s");
  EXPECT_EQ(train::format_duration(3725), "1h02m");
  EXPECT_EQ(train::format_duration(-3), "0s");
}

}  // namespace
}  // namespace tessera
