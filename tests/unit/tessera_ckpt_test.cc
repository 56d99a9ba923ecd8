// tessera-ckpt's library on one process: resharding (convert) bit for bit in every layout and in
// bf16 within its rounding, averaging equal to the mean of the loaded stores, export holding every
// parameter under its name, and the errors that name what is wrong. Checkpoints are made from
// random values (not training), vocabulary 29 so that tp 2 and 4 pad it; every layout is loaded
// in this one process through a parallel::LayoutCommunicator.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/average.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_reader.h"
#include "checkpoint/convert.h"
#include "checkpoint/export.h"
#include "checkpoint/inspect.h"
#include "checkpoint/manifest.h"
#include "checkpoint/retention.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/verify.h"
#include "kernels/threads.h"
#include "model/transformer.h"
#include "parallel/layout_communicator.h"
#include "parallel/process_grid.h"
#include "parallel/self_communicator.h"
#include "train/optimizer.h"
#include "train/options.h"
#include "file_test_util.h"
#include "test_util.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

using testing::contains;
using testing::error_of;

// A scratch directory per test, removed when it ends.
class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("tessera-ckpt-tool-") {}
};

// Small, with a vocabulary of 29: padded to 30 rows at tp 2 and 32 at tp 4.
train::TrainOptions small_options() {
  train::TrainOptions o;
  o.model.vocab_size = 29;
  o.model.d_model = 16;
  o.model.d_ff = 32;
  o.model.heads = 4;
  o.model.encoder_layers = 1;
  o.model.decoder_layers = 2;
  return o;
}

// One tensor-parallel rank's model: parameters, Adam, and the group it was declared over.
struct RankState {
  std::unique_ptr<parallel::LayoutCommunicator> tp;
  model::ParameterStore store;
  std::unique_ptr<model::Transformer> net;
  std::unique_ptr<train::Adam> adam;

  RankState(const model::ModelConfig& cfg, int rank, int size)
      : tp(std::make_unique<parallel::LayoutCommunicator>(rank, size)) {
    kernels::set_num_threads(1);  // tiny models: more threads only spin on a shared machine
    net = std::make_unique<model::Transformer>(cfg, store, *tp);
    store.finalize(DType::f32, 1);
    adam = std::make_unique<train::Adam>(store, train::AdamConfig{});
  }
};

// Fills values and both moments with random numbers (moments positive, as Adam's v is).
void randomize(RankState& s) {
  for (Tensor* t : {const_cast<Tensor*>(&s.store.values()), &s.adam->first_moment(), &s.adam->second_moment()}) {
    const Tensor r = testing::random_tensor(t->shape(), DType::f32, t == &s.adam->second_moment() ? 0 : -1, 1);
    t->copy_from(r);
  }
  // Padded embedding rows hold zeros in every layout; at tp 1 there are none.
}

// Writes a tp 1 checkpoint of random state at `step` into root/step-<step>.
fs::path save_random(const fs::path& root, const train::TrainOptions& o, int64_t step) {
  RankState s(o.model, 0, 1);
  randomize(s);
  s.adam->set_step(step + 3);
  const parallel::ProcessGrid grid = parallel::ProcessGrid::single();
  return checkpoint::save_checkpoint(root, s.store, s.adam.get(), grid,
                                     {step, o.dump(), "{\"position\": " + std::to_string(step) + "}"});
}

// Rank `rank` of a `size`-way layout loaded from `dir` (with the optimizer unless weights_only).
std::unique_ptr<RankState> load(const fs::path& dir, const model::ModelConfig& cfg, int rank, int size,
                                bool weights_only = false) {
  auto s = std::make_unique<RankState>(cfg, rank, size);
  parallel::SelfCommunicator world;
  checkpoint::load_checkpoint(dir, s->store, weights_only ? nullptr : s->adam.get(), world);
  return s;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const std::vector<int> kLayouts = {1, 2, 4};

// --- the layout communicator ---------------------------------------------------------------

TEST(LayoutCommunicator, ReportsItsRankAndRefusesEveryCollective) {
  parallel::LayoutCommunicator tp(2, 4);
  EXPECT_EQ(tp.rank(), 2);
  EXPECT_EQ(tp.size(), 4);
  EXPECT_EQ(tp.group_name(), "tp");
  float x = 1;
  EXPECT_TRUE(contains(error_of([&] { tp.all_reduce(&x, 1, DType::f32, parallel::ReduceOp::sum); }),
                       "only lays out parameters"));
  EXPECT_TRUE(contains(error_of([&] { tp.all_gather(&x, &x, 1, DType::f32); }), "all_gather"));
  EXPECT_TRUE(contains(error_of([&] { tp.broadcast(&x, 1, DType::f32, 0); }), "rank 2 of 4"));
  EXPECT_TRUE(contains(error_of([&] { tp.barrier(); }), "barrier"));
  EXPECT_TRUE(contains(error_of([] { parallel::LayoutCommunicator(4, 4); }), "rank 4 of 4"));
}

// --- convert -------------------------------------------------------------------------------

TEST(CkptConvert, Tp1ToTp2ToTp4ToTp1LoadsBitForBitInEveryLayout) {
  TempDir tmp;
  const train::TrainOptions o = small_options();
  const fs::path source = save_random(tmp.path() / "run", o, 40);
  const fs::path tp2 = tmp.path() / "tp2", tp4 = tmp.path() / "tp4", back = tmp.path() / "back";
  checkpoint::convert_checkpoint(tmp.path() / "run", tp2, {2, DType::f32, false});  // a root: follows `latest`
  checkpoint::convert_checkpoint(tp2, tp4, {4, DType::f32, false});
  const checkpoint::ConvertReport r = checkpoint::convert_checkpoint(tp4, back, {1, DType::f32, false});
  EXPECT_EQ(r.source_tensor_parallel, 4);
  EXPECT_TRUE(r.with_optimizer);

  const checkpoint::Manifest src = checkpoint::read_manifest(source);
  for (const fs::path& dir : {tp2, tp4, back}) {
    SCOPED_TRACE(dir.string());
    EXPECT_TRUE(checkpoint::verify_checkpoint(dir).empty());
    EXPECT_FALSE(fs::exists(dir.string() + ".staging"));
    const checkpoint::Manifest m = checkpoint::read_manifest(dir);
    EXPECT_EQ(m.step, src.step);
    EXPECT_EQ(m.optimizer_step, src.optimizer_step);
    EXPECT_EQ(m.config, src.config);
    EXPECT_EQ(m.sampler_state, src.sampler_state);
    for (int tp : kLayouts)
      for (int rank = 0; rank < tp; ++rank) {
        SCOPED_TRACE("loaded as rank " + std::to_string(rank) + " of " + std::to_string(tp));
        const auto want = load(source, o.model, rank, tp), got = load(dir, o.model, rank, tp);
        EXPECT_TRUE(same_bytes(got->store.values(), want->store.values()));
        EXPECT_TRUE(same_bytes(got->adam->first_moment(), want->adam->first_moment()));
        EXPECT_TRUE(same_bytes(got->adam->second_moment(), want->adam->second_moment()));
        EXPECT_EQ(got->adam->step(), want->adam->step());
      }
  }
  EXPECT_EQ(checkpoint::read_manifest(tp4).tensor_parallel, 4);
  // Back at tp 1 the shard is the very file save_checkpoint wrote: same tensors, order and metadata.
  EXPECT_EQ(read_file(back / "model-tp0-of-1.safetensors"), read_file(source / "model-tp0-of-1.safetensors"));
}

TEST(CkptConvert, Bf16StoresBf16AndLoadsAsTheSourceRoundedToNearestEven) {
  TempDir tmp;
  const train::TrainOptions o = small_options();
  const fs::path source = save_random(tmp.path() / "run", o, 10), out = tmp.path() / "bf16";
  checkpoint::convert_checkpoint(source, out, {2, DType::bf16, false});
  EXPECT_TRUE(checkpoint::verify_checkpoint(out).empty());
  const checkpoint::Manifest m = checkpoint::read_manifest(out);
  for (const auto& [key, record] : m.tensors) EXPECT_EQ(record.dtype, "BF16") << key;
  for (const checkpoint::ShardRecord& s : m.shards) {
    const checkpoint::SafetensorsFile f(out / s.file);
    for (const auto& [key, e] : f.entries()) EXPECT_EQ(e.dtype, DType::bf16) << key << " in " << s.file;
  }
  auto rounded = [](const Tensor& t) {
    Tensor r = t.clone();
    float* p = r.data<float>();
    for (int64_t i = 0; i < r.numel(); ++i) p[i] = bf16_to_float(float_to_bf16(p[i]));
    return r;
  };
  for (int tp : {1, 2})
    for (int rank = 0; rank < tp; ++rank) {
      const auto want = load(source, o.model, rank, tp), got = load(out, o.model, rank, tp);
      EXPECT_TRUE(same_bytes(got->store.values(), rounded(want->store.values())));
      EXPECT_TRUE(same_bytes(got->adam->second_moment(), rounded(want->adam->second_moment())));
      // Not the same as f32: rounding changed something (random values are not bf16 numbers).
      EXPECT_FALSE(same_bytes(got->store.values(), want->store.values()));
      testing::expect_near("bf16 values", got->store.values(), want->store.values(), 0, 1.0 / 256);
    }
}

TEST(CkptConvert, WeightsOnlyLeavesOutTheOptimizer) {
  TempDir tmp;
  const train::TrainOptions o = small_options();
  const fs::path source = save_random(tmp.path() / "run", o, 10), out = tmp.path() / "weights";
  const checkpoint::ConvertReport r = checkpoint::convert_checkpoint(source, out, {2, DType::f32, true});
  EXPECT_FALSE(r.with_optimizer);
  const checkpoint::Manifest m = checkpoint::read_manifest(out);
  EXPECT_EQ(m.optimizer_step, -1);
  for (const auto& [key, record] : m.tensors) EXPECT_FALSE(key.starts_with("adam.")) << key;
  EXPECT_TRUE(contains(error_of([&] { load(out, o.model, 0, 1); }), "holds no optimizer state"));
  EXPECT_TRUE(same_bytes(load(out, o.model, 1, 2, true)->store.values(),
                         load(source, o.model, 1, 2, true)->store.values()));
}

TEST(CkptConvert, ErrorsNameWhatIsWrong) {
  TempDir tmp;
  const train::TrainOptions o = small_options();
  const fs::path source = save_random(tmp.path() / "run", o, 10);
  EXPECT_TRUE(contains(error_of([&] { checkpoint::convert_checkpoint(source, tmp.path() / "x", {3, DType::f32, false}); }),
                       "--tensor-parallel: 3 ranks do not divide --heads = 4"));
  EXPECT_TRUE(contains(error_of([&] { checkpoint::convert_checkpoint(tmp.path() / "none", tmp.path() / "x", {}); }),
                       "not a checkpoint"));
  // An --out that holds anything but a checkpoint is never replaced.
  fs::create_directories(tmp.path() / "precious");
  std::ofstream(tmp.path() / "precious" / "notes.txt") << "keep me\n";
  EXPECT_TRUE(contains(error_of([&] { checkpoint::convert_checkpoint(source, tmp.path() / "precious", {}); }),
                       "exists and is not a checkpoint"));
  EXPECT_TRUE(fs::exists(tmp.path() / "precious" / "notes.txt"));
  // A shard whose bytes changed stops the conversion, naming the file; nothing is left behind.
  {
    std::fstream f(source / "model-tp0-of-1.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x7f');
  }
  const std::string e = error_of([&] { checkpoint::convert_checkpoint(source, tmp.path() / "x", {2, DType::f32, false}); });
  EXPECT_TRUE(contains(e, "model-tp0-of-1.safetensors is damaged")) << e;
  EXPECT_FALSE(fs::exists(tmp.path() / "x"));
  EXPECT_FALSE(fs::exists(tmp.path() / "x.staging"));
}

// --- average -------------------------------------------------------------------------------

TEST(CkptAverage, EqualsTheMeanOfTheLoadedStoresWhateverTheLayouts) {
  TempDir tmp;
  const train::TrainOptions o = small_options();
  const fs::path root = tmp.path() / "run";
  for (int64_t step : {10, 20, 30, 40}) save_random(root, o, step);
  // A resumed run changed the layout: step 30 was written by tp 2, step 20 by tp 4.
  checkpoint::convert_checkpoint(checkpoint::step_directory(root, 30), checkpoint::step_directory(root, 30),
                                 {2, DType::f32, false});
  checkpoint::convert_checkpoint(checkpoint::step_directory(root, 20), checkpoint::step_directory(root, 20),
                                 {4, DType::f32, true});
  const std::string latest_before = read_file(root / "latest");

  const std::vector<fs::path> dirs = checkpoint::newest_checkpoints(root, 3);
  ASSERT_EQ(dirs.size(), 3u);
  const fs::path out = checkpoint::default_average_directory(root, 3, 40);
  EXPECT_EQ(out.filename(), "average-last-3-step-00000040");
  const checkpoint::AverageReport r = checkpoint::average_checkpoints(dirs, out);
  EXPECT_EQ(r.steps, (std::vector<int64_t>{20, 30, 40}));
  EXPECT_EQ(r.step, 40);
  EXPECT_EQ(r.parameters, o.model.parameter_count(1));
  EXPECT_TRUE(checkpoint::verify_checkpoint(out).empty());

  // Independently: load each checkpoint at tp 1, sum in f64, divide, round to f32.
  const Shape shape = load(dirs[0], o.model, 0, 1, true)->store.values().shape();
  std::vector<double> sum(static_cast<size_t>(shape_numel(shape)), 0.0);
  for (const fs::path& d : dirs) {
    const auto s = load(d, o.model, 0, 1, true);
    const float* v = s->store.values().data<float>();
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += v[i];
  }
  Tensor mean = Tensor::empty(shape, DType::f32);
  for (size_t i = 0; i < sum.size(); ++i) mean.data<float>()[i] = static_cast<float>(sum[i] / 3.0);
  EXPECT_TRUE(same_bytes(load(out, o.model, 0, 1, true)->store.values(), mean));

  const checkpoint::Manifest m = checkpoint::read_manifest(out);
  EXPECT_EQ(m.step, 40);
  EXPECT_EQ(m.optimizer_step, -1);
  EXPECT_EQ(m.config, checkpoint::read_manifest(checkpoint::step_directory(root, 40)).config);
  // Not a step directory: retention never prunes it and `latest` still names step 40.
  EXPECT_EQ(checkpoint::list_checkpoints(root).size(), 4u);
  EXPECT_EQ(read_file(root / "latest"), latest_before);

  // --last 1 is the newest checkpoint's values, bit for bit.
  const fs::path one = checkpoint::default_average_directory(root, 1, 40);
  checkpoint::average_checkpoints(checkpoint::newest_checkpoints(root, 1), one);
  EXPECT_TRUE(same_bytes(load(one, o.model, 0, 1, true)->store.values(),
                         load(checkpoint::step_directory(root, 40), o.model, 0, 1, true)->store.values()));
  // Not the same as the mean of three (the test can fail).
  EXPECT_FALSE(same_bytes(load(one, o.model, 0, 1, true)->store.values(), mean));
}

TEST(CkptAverage, ErrorsNameWhatIsWrong) {
  TempDir tmp;
  const fs::path root = tmp.path() / "run";
  train::TrainOptions o = small_options();
  save_random(root, o, 10);
  EXPECT_TRUE(contains(error_of([&] { checkpoint::newest_checkpoints(root, 2); }),
                       "--last 2: " + root.string() + " holds only 1 complete checkpoint"));
  EXPECT_TRUE(contains(error_of([&] { checkpoint::newest_checkpoints(root, 0); }), "--last: must be at least 1"));
  o.model.d_ff = 64;  // another model
  save_random(root, o, 20);
  const std::string e = error_of([&] {
    checkpoint::average_checkpoints(checkpoint::newest_checkpoints(root, 2), tmp.path() / "avg");
  });
  EXPECT_TRUE(contains(e, "checkpoint " + checkpoint::step_directory(root, 10).string())) << e;
  EXPECT_TRUE(contains(e, "ffn.w1")) << e;
  EXPECT_FALSE(fs::exists(tmp.path() / "avg"));
}

// --- export and inspect --------------------------------------------------------------------

TEST(CkptExport, HoldsEveryParameterUnderItsNameWithTheConfig) {
  TempDir tmp;
  const train::TrainOptions o = small_options();
  const fs::path source = save_random(tmp.path() / "run", o, 10), tp4 = tmp.path() / "tp4";
  checkpoint::convert_checkpoint(source, tp4, {4, DType::f32, false});
  const fs::path file = tmp.path() / "model.safetensors";
  const checkpoint::ExportReport r = checkpoint::export_safetensors(tp4, file, DType::f32);
  EXPECT_EQ(r.parameters, o.model.parameter_count(1));
  EXPECT_EQ(r.config_file, tmp.path() / "model.json");

  const auto want = load(source, o.model, 0, 1, true);
  const checkpoint::SafetensorsFile f(file);
  EXPECT_EQ(f.entries().size(), want->store.size());
  for (const model::ParamInfo& p : want->store.params()) {
    SCOPED_TRACE(p.name);
    ASSERT_EQ(f.entries().count(p.name), 1u);
    EXPECT_EQ(f.entry(p.name).shape, p.global_shape);  // tp 1: unpadded
    EXPECT_TRUE(same_bytes(f.read(p.name), want->store.value(want->store.find(p.name))));
  }
  EXPECT_EQ(f.entry("embedding").shape, (Shape{29, 16}));
  EXPECT_EQ(f.entry("encoder.0.ffn.w1.weight").shape, (Shape{16, 32}));  // [in, out]
  const auto config = nlohmann::json::parse(f.metadata().at("tessera.config"));
  EXPECT_EQ(config.at("d_model"), 16);
  EXPECT_EQ(config.at("d_ff"), 32);
  EXPECT_EQ(config.at("vocab_size"), 29);
  EXPECT_EQ(config.at("decoder_layers"), 2);
  EXPECT_EQ(config.at("step"), 10);
  EXPECT_EQ(config.at("naming_scheme_version"), checkpoint::kExportNamingVersion);
  EXPECT_EQ(nlohmann::json::parse(read_file(r.config_file)), config);

  const fs::path half = tmp.path() / "half.safetensors";
  checkpoint::export_safetensors(source, half, DType::bf16);
  const checkpoint::SafetensorsFile h(half);
  for (const auto& [name, e] : h.entries()) EXPECT_EQ(e.dtype, DType::bf16) << name;
}

TEST(CkptInspect, CountsTheParametersAndNamesEveryBlock) {
  TempDir tmp;
  const train::TrainOptions o = small_options();
  const fs::path source = save_random(tmp.path() / "run", o, 10), tp2 = tmp.path() / "tp2";
  checkpoint::convert_checkpoint(source, tp2, {2, DType::f32, false});
  const auto info = checkpoint::inspect_checkpoint(tp2);
  EXPECT_EQ(info["step"], 10);
  EXPECT_EQ(info["writer"]["tensor_parallel"], 2);
  EXPECT_EQ(info["totals"]["parameters"], o.model.parameter_count(1));
  EXPECT_EQ(info["totals"]["moment_bytes"], 2 * 4 * o.model.parameter_count(1));
  for (const auto& t : info["tensors"])
    if (t["name"] == "embedding") {
      ASSERT_EQ(t["blocks"].size(), 2u);
      EXPECT_EQ(t["blocks"][0]["box"], "[0:15, 0:16]");
      EXPECT_EQ(t["blocks"][1]["box"], "[15:29, 0:16]");
    }
  std::ostringstream text;
  checkpoint::print_inspection(text, info);
  EXPECT_TRUE(contains(text.str(), "written by      tp 2 x dp 1")) << text.str();
  EXPECT_TRUE(contains(text.str(), "embedding  [29, 16]  F32  1856 bytes")) << text.str();
}

}  // namespace
}  // namespace tessera
