// Training-loop properties on one process: determinism, the schedule, option validation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "data/synthetic_task.h"
#include "parallel/process_grid.h"
#include "train/options.h"
#include "train/schedule.h"
#include "train/trainer.h"
#include "test_util.h"

namespace tessera {
namespace {

train::TrainOptions small_options(uint64_t seed) {
  train::TrainOptions o;
  o.model.vocab_size = 24;
  o.model.d_model = 32;
  o.model.d_ff = 64;
  o.model.heads = 4;
  o.model.encoder_layers = 2;
  o.model.decoder_layers = 2;
  o.model.dropout = 0.1f;
  o.model.attention_dropout = 0.1f;
  o.warmup = 20;
  o.batch_sentences = 16;
  o.clip_norm = 1.0;
  o.seed = seed;
  return o;
}

std::vector<double> run_losses(const train::TrainOptions& o, int steps) {
  parallel::ProcessGrid grid = parallel::ProcessGrid::single();
  train::Trainer trainer(o, grid);
  data::SyntheticTask task;
  task.vocab_size = o.model.vocab_size;
  task.seed = o.seed;
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) losses.push_back(trainer.train_step(task.pairs(data::kTrainSplit, s * 16, 16)).loss);
  return losses;
}

TEST(Training, SameSeedGivesBitIdenticalLossesFor50Steps) {
  const uint64_t seed = testing::rng()();
  const auto a = run_losses(small_options(seed), 50), b = run_losses(small_options(seed), 50);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(a[i], b[i]) << "step " << i + 1;
  EXPECT_LT(a.back(), a.front());  // and it learns
  const auto c = run_losses(small_options(seed + 1), 5);
  EXPECT_NE(a[0], c[0]);  // another seed is another run
}

TEST(Training, AccumulationMatchesOneBigBatch) {
  train::TrainOptions o = small_options(testing::rng()());
  parallel::ProcessGrid g1 = parallel::ProcessGrid::single(), g2 = parallel::ProcessGrid::single();
  train::Trainer whole(o, g1);
  o.accumulate = 4;
  train::Trainer parts(o, g2);
  data::SyntheticTask task;
  task.vocab_size = o.model.vocab_size;
  for (int s = 0; s < 3; ++s) {
    const auto batch = task.pairs(data::kTrainSplit, s * 16, 16);
    const auto a = whole.train_step(batch), b = parts.train_step(batch);
    EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::abs(a.loss)) << "step " << s + 1;
    EXPECT_NEAR(a.grad_norm, b.grad_norm, 1e-4 * a.grad_norm) << "step " << s + 1;
  }
}

TEST(Training, NoamScheduleWarmsUpThenDecays) {
  const double peak = train::noam_learning_rate(4000, 512, 4000, 1.0);
  EXPECT_NEAR(peak, std::pow(512.0, -0.5) * std::pow(4000.0, -0.5), 1e-15);
  EXPECT_NEAR(train::noam_learning_rate(2000, 512, 4000, 1.0), peak / 2, 1e-12);
  EXPECT_NEAR(train::noam_learning_rate(16000, 512, 4000, 1.0), peak / 2, 1e-12);
}

// Parses a command line; returns the error message, or "" when it parsed.
std::string parse_error(std::vector<std::string> args) {
  args.insert(args.begin(), "tessera-train");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  try {
    train::parse_train_options(static_cast<int>(argv.size()), argv.data(), false);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Training, BadConfigurationNamesTheOption) {
  EXPECT_NE(parse_error({"--heads", "6", "--d-model", "64"}).find("--heads"), std::string::npos);
  EXPECT_NE(parse_error({"--no-such-option", "1"}).find("no-such-option"), std::string::npos);
  EXPECT_NE(parse_error({"--dropout", "-0.1"}).find("--dropout"), std::string::npos);
  EXPECT_NE(parse_error({"--config", "/nonexistent/tiny.cfg"}).find("/nonexistent/tiny.cfg"), std::string::npos);
  EXPECT_NE(parse_error({"--tensor-parallel", "3"}).find("--tensor-parallel"), std::string::npos);
  EXPECT_NE(parse_error({"--steps", "ten"}).find("steps"), std::string::npos);
  EXPECT_EQ(parse_error({"--heads", "4", "--d-model", "64"}), "");
}

TEST(Training, ConfigFilesAndCommandLineMerge) {
  const std::string path = ::testing::TempDir() + "/merge.cfg";
  {
    std::ofstream f(path);
    f << "d-model = 128\nheads = 4\nsteps = 77\n";
  }
  std::vector<std::string> args = {"tessera-train", "--config", path, "--steps", "5"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  const auto o = train::parse_train_options(static_cast<int>(argv.size()), argv.data(), false);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->model.d_model, 128);
  EXPECT_EQ(o->steps, 5);  // the command line wins
  // The dump is itself a config file that reproduces the options.
  const std::string dumped = ::testing::TempDir() + "/dumped.cfg";
  std::ofstream(dumped) << o->dump();
  std::vector<std::string> args2 = {"tessera-train", "--config", dumped};
  std::vector<char*> argv2;
  for (auto& a : args2) argv2.push_back(a.data());
  const auto o2 = train::parse_train_options(static_cast<int>(argv2.size()), argv2.data(), false);
  ASSERT_TRUE(o2.has_value());
  EXPECT_EQ(o2->dump(), o->dump());
}

}  // namespace
}  // namespace tessera
