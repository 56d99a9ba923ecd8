// Training-loop properties on one process: determinism (on every device), the schedule, option
// validation, and a CUDA run that follows the CPU's loss curve.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <cstring>
#include <fstream>
#include <numeric>

#include "data/synthetic_task.h"
#include "parallel/process_grid.h"
#include "train/memory_estimate.h"
#include "train/options.h"
#include "train/schedule.h"
#include "train/trainer.h"
#include "devices.h"
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

std::vector<double> run_losses(const train::TrainOptions& o, int steps, DType dtype = DType::f32,
                               Device device = Device::cpu) {
  parallel::ProcessGrid grid = parallel::ProcessGrid::single();
  train::Trainer trainer(o, grid, dtype, device);
  data::SyntheticTask task;
  task.vocab_size = o.model.vocab_size;
  task.seed = o.seed;
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) losses.push_back(trainer.train_step(task.pairs(data::kTrainSplit, s * 16, 16)).loss);
  return losses;
}

// The training-loop tests below run on every device (a /cpu and a /cuda instance, devices.h).
class Training : public testing::DeviceTest {};
INSTANTIATE_DEVICE_TEST_SUITE(Training);

// Same binary, same machine, same device, same seed: the same run, bit for bit (f32, the training
// dtype). On a GPU this holds because no kernel sums in an order that depends on scheduling.
TEST_P(Training, SameSeedGivesBitIdenticalLossesFor50Steps) {
  const uint64_t seed = testing::rng()();
  const auto a = run_losses(small_options(seed), 50, DType::f32, device());
  const auto b = run_losses(small_options(seed), 50, DType::f32, device());
  for (int i = 0; i < 50; ++i) ASSERT_EQ(a[i], b[i]) << "step " << i + 1;
  const auto c = run_losses(small_options(seed + 1), 5, DType::f32, device());
  EXPECT_NE(a[0], c[0]);  // another seed is another run
}

// It learns: the mean loss of steps 41-50 is below that of steps 1-10 (still in warm-up, so by a
// few percent). Measured (f32, TESSERA_TEST_SEED 1-5, OPENBLAS_CORETYPE = SkylakeX, Haswell,
// Sandybridge, Nehalem): the ratio is 0.934 .. 0.957, and for one seed the kernels move it by at
// most 0.004; the assertion (below 0.98) leaves five times the whole measured spread. On CUDA the
// run differs from the CPU's only by f32 rounding and summation order (CudaTrainingFollowsTheCpuLossCurve
// bounds that at 3% of the late loss); the ratio there is not yet measured.
TEST_P(Training, LossFallsOverTheFirst50Steps) {
  const auto losses = run_losses(small_options(testing::rng()() % 5 + 1), 50, DType::f32, device());
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) first += losses[i], last += losses[40 + i];
  std::printf("mean loss steps 1-10 %.4f, steps 41-50 %.4f, ratio %.4f\n", first / 10, last / 10, last / first);
  EXPECT_LT(last / first, 0.98);
}

// Accumulating 4 micro-batches is the same step as one big batch: the same sums in another order.
// In f64 the order changes only the last bits (~1e-15 relative per step), so after 3 steps the
// two runs agree to 1e-9 on any CPU; in f32 they would drift by rounding, not by mistake.
TEST_P(Training, AccumulationMatchesOneBigBatch) {
  train::TrainOptions o = small_options(testing::rng()());
  parallel::ProcessGrid g1 = parallel::ProcessGrid::single(), g2 = parallel::ProcessGrid::single();
  train::Trainer whole(o, g1, DType::f64, device());
  o.accumulate = 4;
  train::Trainer parts(o, g2, DType::f64, device());
  data::SyntheticTask task;
  task.vocab_size = o.model.vocab_size;
  for (int s = 0; s < 3; ++s) {
    const auto batch = task.pairs(data::kTrainSplit, s * 16, 16);
    const auto a = whole.train_step(batch), b = parts.train_step(batch);
    EXPECT_NEAR(a.loss, b.loss, 1e-9 * std::abs(a.loss)) << "step " << s + 1;
    EXPECT_NEAR(a.grad_norm, b.grad_norm, 1e-9 * a.grad_norm) << "step " << s + 1;
  }
}

// The same f32 run (same seed, options and batches of the synthetic reverse task) on the CPU and
// on CUDA: the same math, so only f32 rounding and summation order differ. Step 1 starts from the
// same weights and dropout masks, so its loss agrees to 1e-4 relative; later the differences grow
// with training, so steps 21-30 are compared by their mean, to 3% relative.
TEST(Training, CudaTrainingFollowsTheCpuLossCurve) {
  const std::string why = testing::device_unavailable_reason(Device::cuda(0));
  if (!why.empty()) GTEST_SKIP() << "needs a GPU: " << why;
  const train::TrainOptions o = small_options(testing::rng()());
  const int steps = 30;
  const auto cpu = run_losses(o, steps, DType::f32, Device::cpu);
  const auto cuda = run_losses(o, steps, DType::f32, Device::cuda(0));
  auto curves = [&] {
    std::ostringstream out;
    out.precision(9);
    out << "step  cpu loss  cuda loss\n";
    for (int i = 0; i < steps; ++i) out << i + 1 << "  " << cpu[i] << "  " << cuda[i] << "\n";
    return out.str();
  };
  EXPECT_NEAR(cuda[0], cpu[0], 1e-4 * std::abs(cpu[0])) << "step 1\n" << curves();
  const double cpu_late = std::accumulate(cpu.begin() + 20, cpu.end(), 0.0) / 10;
  const double cuda_late = std::accumulate(cuda.begin() + 20, cuda.end(), 0.0) / 10;
  EXPECT_NEAR(cuda_late, cpu_late, 0.03 * std::abs(cpu_late)) << "mean loss of steps 21-30\n" << curves();
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

// Parses a command line that must parse.
train::TrainOptions parse_ok(std::vector<std::string> args) {
  args.insert(args.begin(), "tessera-train");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  const auto o = train::parse_train_options(static_cast<int>(argv.size()), argv.data(), false);
  EXPECT_TRUE(o.has_value());
  if (!o) return {};
  return *o;
}

std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// Three layered files and the command line: each later file overrides the earlier ones for the
// options it sets, leaves the others alone, and the command line overrides every file.
TEST(Configuration, LaterConfigFilesOverrideEarlierOnesAndTheCommandLineOverridesAll) {
  const std::string a = temp_file("layer_a.cfg", "d-model = 64\nheads = 4\nsteps = 10\nwarmup = 100\n");
  const std::string b = temp_file("layer_b.cfg", "d-model = 32\nsteps = 20\n");
  const std::string c = temp_file("layer_c.cfg", "steps = 30\nlr-factor = 0.5\n");
  const auto o = parse_ok({"--config", a, "--config", b, "--config", c, "--lr-factor", "2"});
  EXPECT_EQ(o.model.d_model, 32);  // b over a
  EXPECT_EQ(o.model.heads, 4);     // only a sets it
  EXPECT_EQ(o.steps, 30);          // c over b over a
  EXPECT_EQ(o.warmup, 100);        // only a sets it
  EXPECT_EQ(o.lr_factor, 2.0);     // the command line over c
  const auto reversed = parse_ok({"--config", c, "--config", b, "--config", a});
  EXPECT_EQ(reversed.model.d_model, 64);
  EXPECT_EQ(reversed.steps, 10);
  EXPECT_EQ(reversed.lr_factor, 0.5);
}

// The presets that train on a corpus keep sentences of ordinary length: base.cfg and big.cfg once
// inherited the synthetic tasks' --max-len 12, and the batcher dropped every longer sentence.
TEST(Configuration, CorpusPresetsKeepSentencesOfOrdinaryLength) {
  for (const char* name : {"small", "base", "big"}) {
    const std::string path = std::string(TESSERA_TEST_DATA_DIR) + "/../../configs/" + name + ".cfg";
    std::ifstream in(path);
    ASSERT_TRUE(in) << path;
    std::stringstream text;
    text << in.rdbuf();
    const train::TrainOptions o = train::parse_config_text(text.str(), path);
    ASSERT_EQ(o.task, "corpus") << path;
    EXPECT_TRUE(o.max_len == 0 || o.max_len >= 100) << path << " drops sentences longer than --max-len " << o.max_len;
  }
}

TEST(Configuration, ADirectoryIsNotAConfigFile) {
  const std::string dir = ::testing::TempDir() + "/a_config_dir";
  std::filesystem::create_directories(dir);
  const std::string error = parse_error({"--config", dir});
  EXPECT_NE(error.find(dir), std::string::npos) << error;
  EXPECT_NE(error.find("is a directory"), std::string::npos) << error;
}

// Every double and float option reads back bit for bit from --dump-config, and --help shows
// defaults as the shortest exact text.
TEST(Configuration, DoublesRoundTripExactlyThroughTheDumpAndHelp) {
  const auto o = parse_ok({"--lr-factor", "0.123456789012345678", "--adam-eps", "1e-9", "--label-smoothing", "0.1",
                           "--dropout", "0.3", "--collective-timeout", "2.5e-3"});
  const std::string dump = o.dump();
  EXPECT_NE(dump.find("label-smoothing = 0.1\n"), std::string::npos) << dump;
  EXPECT_NE(dump.find("dropout = 0.3\n"), std::string::npos) << dump;
  const auto again = parse_ok({"--config", temp_file("roundtrip.cfg", dump)});
  EXPECT_EQ(again.lr_factor, o.lr_factor);
  EXPECT_EQ(again.adam_eps, o.adam_eps);
  EXPECT_EQ(again.model.label_smoothing, o.model.label_smoothing);
  EXPECT_EQ(again.model.dropout, o.model.dropout);
  EXPECT_EQ(again.collective_timeout, o.collective_timeout);
  EXPECT_EQ(again.dump(), dump);

  std::ostringstream help;
  std::streambuf* saved = std::cout.rdbuf(help.rdbuf());
  std::vector<std::string> args = {"tessera-train", "--help"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  train::parse_train_options(static_cast<int>(argv.size()), argv.data(), true);
  std::cout.rdbuf(saved);
  EXPECT_NE(help.str().find("(=0.98)"), std::string::npos) << help.str();  // --adam-beta2
  EXPECT_NE(help.str().find("(=1e-09)"), std::string::npos) << help.str();  // --adam-eps
  EXPECT_EQ(help.str().find("9999999"), std::string::npos) << help.str();
  EXPECT_EQ(help.str().find("0000001"), std::string::npos) << help.str();
}

TEST(Configuration, SeedMustBeAnUnsignedNumber) {
  EXPECT_NE(parse_error({"--seed", "-1"}).find("--seed"), std::string::npos);
  EXPECT_NE(parse_error({"--seed", "12x"}).find("--seed"), std::string::npos);
  EXPECT_NE(parse_error({"--seed", "18446744073709551616"}).find("--seed"), std::string::npos);
  EXPECT_EQ(parse_ok({"--seed", "18446744073709551615"}).seed, 18446744073709551615ull);
  EXPECT_EQ(parse_ok({"--seed", "0"}).seed, 0u);
}

// Sizes that cannot fit stop at parse time, naming the option and the memory the run would need,
// before anything is allocated; the numbers are computed in double, so nothing overflows.
TEST(Configuration, AbsurdSizesFailFastNamingTheOptionAndTheMemory) {
  const auto start = std::chrono::steady_clock::now();
  const std::string layers = parse_error({"--encoder-layers", "1000000"});
  EXPECT_NE(layers.find("--encoder-layers 1000000"), std::string::npos) << layers;
  EXPECT_NE(layers.find("TiB"), std::string::npos) << layers;
  const std::string batch = parse_error({"--batch-sentences", "1000000000"});
  EXPECT_NE(batch.find("--batch-sentences"), std::string::npos) << batch;
  const std::string width = parse_error({"--d-model", "4000000000000", "--d-ff", "2048"});
  EXPECT_NE(width.find("--d-model"), std::string::npos) << width;
  EXPECT_EQ(width.find("-0"), std::string::npos) << width;  // no wrapped, negative byte count
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);

  // The estimate itself: a model that fits passes, the same model against a tiny budget names
  // the option furthest above its default.
  train::TrainOptions o;
  o.model.d_model = 64;
  o.model.d_ff = 64000;
  const train::MemoryEstimate e = train::estimate_rank_memory(o);
  EXPECT_GT(e.parameters, 4.0 * 64 * 64000 * 2 * 12);  // both FFN matrices of 12 layers, f32
  EXPECT_EQ(e.gradients + e.moments, 3 * e.parameters);  // f32 gradients and two moments
  EXPECT_NO_THROW(train::check_memory_fits(o, 2 * e.total()));
  try {
    train::check_memory_fits(o, e.total() / 2);
    ADD_FAILURE() << "a budget of half the estimate passed";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("--d-ff 64000"), std::string::npos) << err.what();
  }
}

}  // namespace
}  // namespace tessera
