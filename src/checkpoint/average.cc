#include "checkpoint/average.h"

#include <cstdio>
#include <string>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_reader.h"
#include "checkpoint/model_layout.h"
#include "checkpoint/offline_writer.h"
#include "checkpoint/retention.h"
#include "checkpoint/shard_layout.h"
#include "core/error.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

std::vector<fs::path> newest_checkpoints(const fs::path& root, int64_t last) {
  TESSERA_CHECK(last >= 1, "--last: must be at least 1, got ", last);
  TESSERA_CHECK(fs::is_directory(root), "not a save directory: ", root.string());
  const std::vector<SavedCheckpoint> saved = list_checkpoints(root);
  TESSERA_CHECK(static_cast<int64_t>(saved.size()) >= last, "--last ", last, ": ", root.string(), " holds only ",
                saved.size(), " complete checkpoint", saved.size() == 1 ? "" : "s", " (step-<8 digits> with a ",
                kManifestName, ")");
  std::vector<fs::path> dirs;
  for (size_t i = saved.size() - static_cast<size_t>(last); i < saved.size(); ++i) dirs.push_back(saved[i].dir);
  return dirs;
}

fs::path default_average_directory(const fs::path& root, int64_t last, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "average-last-%lld-step-%08lld", static_cast<long long>(last),
                static_cast<long long>(step));
  return root / name;
}

AverageReport average_checkpoints(const std::vector<fs::path>& dirs, const fs::path& out) {
  TESSERA_CHECK(!dirs.empty(), "averaging needs at least one checkpoint");
  // The newest checkpoint defines the model; every other one must hold the same.
  const fs::path newest_dir = resolve_checkpoint(dirs.back());
  const Manifest newest = read_manifest(newest_dir);
  const train::TrainOptions trained = trained_options(newest, newest_dir);
  const model::ParameterStore store = declare_parameters(trained.model, 1);

  AverageReport report;
  report.out = out;
  report.step = newest.step;
  std::vector<std::vector<double>> sum(store.size());
  for (size_t id = 0; id < store.size(); ++id) {
    sum[id].assign(static_cast<size_t>(store.info(static_cast<int>(id)).numel()), 0.0);
    report.parameters += store.info(static_cast<int>(id)).numel();
  }
  for (const fs::path& dir : dirs) {
    CheckpointReader reader(dir);  // its shards are unmapped when the next checkpoint is read
    check_same_model(reader.manifest(), reader.dir(), store);
    for (size_t id = 0; id < store.size(); ++id) {
      const Tensor t = reader.read(store.info(static_cast<int>(id)).name, DType::f64);
      const double* v = t.data<double>();
      std::vector<double>& s = sum[id];
      for (size_t i = 0; i < s.size(); ++i) s[i] += v[i];
    }
    report.averaged.push_back(reader.dir());
    report.steps.push_back(reader.manifest().step);
  }

  Manifest m = describe_layout(store, 1, /*with_adam=*/false);
  m.step = newest.step;
  m.optimizer_step = -1;
  m.config = newest.config;
  m.sampler_state = newest.sampler_state;
  OfflineCheckpointWriter writer(out, std::move(m));
  // The mean of each parameter in f32, each sum freed as soon as its mean is taken.
  ShardSnapshot shard;
  shard.file = shard_name(0, 1);
  shard.step = newest.step;
  const double n = static_cast<double>(dirs.size());
  for (const ShardEntry& e : shard_entries(store, 0, 1, false)) {
    std::vector<double>& s = sum[static_cast<size_t>(e.param)];
    Tensor mean = Tensor::empty(e.box.extent, DType::f32);
    float* m32 = mean.data<float>();
    for (size_t i = 0; i < s.size(); ++i) m32[i] = static_cast<float>(s[i] / n);
    std::vector<double>().swap(s);
    shard.tensors.emplace_back(e.key, mean);
  }
  writer.write(shard);
  report.out = writer.commit();
  return report;
}

}  // namespace tessera::checkpoint
