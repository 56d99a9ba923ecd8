// What protects a run's work: divergence stops before a poisoned update or save, learning curves
// are checked and continued on resume, output directories are checked and locked at start-up,
// `latest` tolerates line endings, and a dataset with out-of-range token ids is refused at load.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "data/indexed_dataset.h"
#include "data/synthetic_task.h"
#include "parallel/process_grid.h"
#include "train/batch_source.h"
#include "train/divergence_guard.h"
#include "train/run_directory.h"
#include "train/trainer.h"
#include "test_util.h"

namespace tessera {
namespace {
namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("run_safety_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

train::TrainOptions small_options() {
  train::TrainOptions o;
  o.model.vocab_size = 16;
  o.model.d_model = 16;
  o.model.d_ff = 32;
  o.model.heads = 2;
  o.model.encoder_layers = 1;
  o.model.decoder_layers = 1;
  o.warmup = 4;
  o.batch_sentences = 8;
  o.seed = testing::rng()();
  return o;
}

std::vector<model::TokenPair> batch(const train::TrainOptions& o, int64_t step) {
  data::SyntheticTask task;
  task.vocab_size = o.model.vocab_size;
  task.seed = o.seed;
  return task.pairs(data::kTrainSplit, step * o.batch_sentences, o.batch_sentences);
}

bool all_finite(const Tensor& t) {
  const Tensor d = t.to(DType::f64);
  for (int64_t i = 0; i < d.numel(); ++i)
    if (!std::isfinite(d.data<double>()[i])) return false;
  return true;
}

// A NaN in one weight makes the loss and gradients NaN: the step stops with the step number and
// the first parameter with a non-finite gradient, and neither the weights nor Adam change.
TEST(Divergence, NonFiniteGradientStopsTheStepBeforeTheUpdate) {
  const train::TrainOptions o = small_options();
  parallel::ProcessGrid grid = parallel::ProcessGrid::single();
  train::Trainer trainer(o, grid);
  trainer.train_step(batch(o, 0));
  const int id = 3;  // any parameter: a NaN weight poisons the loss and every gradient
  Tensor w = trainer.store().value(id);
  w.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  const Tensor values = trainer.store().values().clone(), m = trainer.optimizer().first_moment().clone();
  const std::string error = error_of([&] { trainer.train_step(batch(o, 1)); });
  EXPECT_NE(error.find("step 2"), std::string::npos) << error;
  EXPECT_NE(error.find("not applied"), std::string::npos) << error;
  EXPECT_NE(error.find("first non-finite gradient"), std::string::npos) << error;
  EXPECT_EQ(trainer.optimizer().step(), 1);
  EXPECT_EQ(std::memcmp(values.raw(), trainer.store().values().raw(), static_cast<size_t>(values.numel()) * 4), 0);
  EXPECT_EQ(std::memcmp(m.raw(), trainer.optimizer().first_moment().raw(), static_cast<size_t>(m.numel()) * 4), 0);
}

// --lr-factor 1e9 on configs/tiny.cfg's run (seed 1, the reverse task): the gradients stay finite
// while the weights explode, until g^2 would overflow Adam's f32 second moment (seen at step 3,
// gradient norm 1.4e29 against the limit sqrt(FLT_MAX) = 1.8e19). The run stops before that
// update, so the moments never hold inf; and a checkpoint of poisoned state is refused, leaving
// no directory behind.
TEST(Divergence, HugeLearningRateStopsBeforeAdamsMomentsOverflow) {
  train::TrainOptions o;
  o.model.vocab_size = 32;
  o.model.d_model = 64;
  o.model.d_ff = 256;
  o.model.heads = 4;
  o.model.encoder_layers = o.model.decoder_layers = 2;
  o.warmup = 200;
  o.batch_sentences = 64;
  o.seed = 1;
  o.lr_factor = 1e9;
  parallel::ProcessGrid grid = parallel::ProcessGrid::single();
  train::Trainer trainer(o, grid);
  train::SyntheticBatchSource source(o);
  std::string error;
  for (int64_t s = 0; s < 20 && error.empty(); ++s) error = error_of([&] { trainer.train_step(source.next()); });
  ASSERT_FALSE(error.empty()) << "20 steps at --lr-factor 1e9 did not stop";
  EXPECT_NE(error.find("not applied"), std::string::npos) << error;
  EXPECT_TRUE(all_finite(trainer.optimizer().first_moment()));
  EXPECT_TRUE(all_finite(trainer.optimizer().second_moment()));

  trainer.optimizer().second_moment().data<float>()[5] = std::numeric_limits<float>::infinity();
  const fs::path root = fresh_dir("poisoned");
  const std::string refused = error_of([&] {
    checkpoint::save_checkpoint(root, trainer.store(), &trainer.optimizer(), grid, {9, o.dump(), ""});
  });
  EXPECT_NE(refused.find("holds inf or NaN"), std::string::npos) << refused;
  EXPECT_FALSE(fs::exists(checkpoint::step_directory(root, 9)));
  EXPECT_FALSE(fs::exists(root / "latest"));
}

TEST(Divergence, GuardStopsAfterTheLossStaysAboveTheLimit) {
  train::DivergenceGuard guard(2.0, 3, 100);  // limit 2 ln 100 = 9.21
  EXPECT_NEAR(guard.limit(), 2 * std::log(100.0), 1e-12);
  guard.observe(1, 50);
  guard.observe(2, 50);
  guard.observe(3, 5);  // back below: the count starts again
  guard.observe(4, 50);
  guard.observe(5, 50);
  const std::string error = error_of([&] { guard.observe(6, 50); });
  EXPECT_NE(error.find("step 6"), std::string::npos) << error;
  EXPECT_NE(error.find("--divergence-factor"), std::string::npos) << error;
  train::DivergenceGuard off(0, 1, 100);
  EXPECT_NO_THROW(off.observe(1, 1e30));
}

TEST(CurveFile, AFreshRunStartsANewFile) {
  const fs::path dir = fresh_dir("fresh");
  std::ofstream(dir / "train.tsv") << "step\tloss\n1\t3.0\n2\t2.0\n";
  train::CurveFile curve(dir / "train.tsv", "step\tloss", 0);
  curve.append("1\t4.5");
  EXPECT_EQ(read_text(dir / "train.tsv"), "step\tloss\n1\t4.5\n");
}

// Resumed at step 3: rows up to 3 stay, later rows (the interrupted run's redone future) and a
// row cut short by a crash go; new rows follow.
TEST(CurveFile, AResumedRunContinuesFromItsStep) {
  const fs::path dir = fresh_dir("resume");
  std::ofstream(dir / "train.tsv") << "step\tloss\tlr\n1\t3.0\t0.1\n2\t2.5\t0.2\n3\t2.0\t0.3\n4\t1.9\t0.4\n5\t1.8";
  train::CurveFile curve(dir / "train.tsv", "step\tloss\tlr", 3);
  curve.append("4\t1.95\t0.4");
  EXPECT_EQ(read_text(dir / "train.tsv"), "step\tloss\tlr\n1\t3.0\t0.1\n2\t2.5\t0.2\n3\t2.0\t0.3\n4\t1.95\t0.4\n");
}

// A full disk, simulated with RLIMIT_FSIZE (write(2) then fails with EFBIG): the append throws
// naming the file instead of leaving a curve cut mid-line behind a run that exits 0.
TEST(CurveFile, AFailedWriteNamesTheFile) {
  const fs::path dir = fresh_dir("full");
  train::CurveFile curve(dir / "train.tsv", "step\tloss", 0);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = static_cast<rlim_t>(fs::file_size(dir / "train.tsv") + 4);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string error = error_of([&] { curve.append("1\t3.14159265358979"); });
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_NE(error.find("train.tsv"), std::string::npos) << error;
}

TEST(RunDirectory, UnwritableDirectoriesFailAtStartUpNamingTheOption) {
  const fs::path dir = fresh_dir("unwritable");
  std::ofstream(dir / "a_file") << "x";
  const std::string file_shaped = error_of([&] { train::prepare_writable_directory(dir / "a_file", "--save-dir"); });
  EXPECT_NE(file_shaped.find("--save-dir"), std::string::npos) << file_shaped;
  EXPECT_NE(file_shaped.find("a_file"), std::string::npos) << file_shaped;
  const std::string below_file =
      error_of([&] { train::prepare_writable_directory(dir / "a_file" / "sub", "--out-dir"); });
  EXPECT_NE(below_file.find("--out-dir"), std::string::npos) << below_file;
  EXPECT_NO_THROW(train::prepare_writable_directory(dir / "new" / "nested", "--out-dir"));
  EXPECT_TRUE(fs::is_directory(dir / "new" / "nested"));
  EXPECT_TRUE(fs::is_empty(dir / "new" / "nested"));  // the probe file is gone
}

// flock locks belong to open file descriptions, so a second lock fails even in this process.
TEST(RunDirectory, ASecondOwnerIsRefusedNamingTheFirst) {
  const fs::path dir = fresh_dir("lock");
  {
    train::DirectoryLock first(dir, "--out-dir");
    const std::string error = error_of([&] { train::DirectoryLock second(dir, "--out-dir"); });
    EXPECT_NE(error.find("in use by another run"), std::string::npos) << error;
    EXPECT_NE(error.find("pid " + std::to_string(::getpid())), std::string::npos) << error;
  }
  EXPECT_NO_THROW(train::DirectoryLock again(dir, "--out-dir"));  // released with its holder
}

TEST(Checkpoint, LatestWithCrLfOrSpacesIsRead) {
  const train::TrainOptions o = small_options();
  parallel::ProcessGrid grid = parallel::ProcessGrid::single();
  train::Trainer trainer(o, grid);
  const fs::path root = fresh_dir("latest");
  const fs::path dir = checkpoint::save_checkpoint(root, trainer.store(), &trainer.optimizer(), grid, {4, o.dump(), ""});
  for (const char* text : {"step-00000004\r\n", "step-00000004\n\n", "  step-00000004 \r\n", "step-00000004"}) {
    std::ofstream(root / "latest", std::ios::trunc) << text;
    EXPECT_EQ(checkpoint::resolve_checkpoint(root), dir) << "latest holding '" << text << "'";
  }
}

TEST(Dataset, OutOfRangeTokenIdsAreAnErrorAtLoad) {
  const fs::path dir = fresh_dir("tokens");
  {
    data::IndexedDatasetWriter w(dir / "train");
    const std::vector<int32_t> ok = {4, 5, 6}, bad = {7, 40, 8};
    w.add(ok);
    w.add(bad);
    w.finish();
  }
  const data::IndexedDataset ds(dir / "train");
  EXPECT_NO_THROW(ds.check_token_ids(41));
  const std::string error = error_of([&] { ds.check_token_ids(32); });
  EXPECT_NE(error.find("train.bin"), std::string::npos) << error;
  EXPECT_NE(error.find("sequence 1"), std::string::npos) << error;
  EXPECT_NE(error.find("token id 40"), std::string::npos) << error;
  EXPECT_NE(error.find("position 1"), std::string::npos) << error;
  {
    data::IndexedDatasetWriter w(dir / "negative");
    const std::vector<int32_t> neg = {-1};
    w.add(neg);
    w.finish();
  }
  EXPECT_NE(error_of([&] { data::IndexedDataset(dir / "negative").check_token_ids(32); }).find("token id -1"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera
