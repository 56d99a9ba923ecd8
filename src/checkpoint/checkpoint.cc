#include "checkpoint/checkpoint.h"

#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "checkpoint/agreement.h"
#include "checkpoint/checkpoint_saver.h"
#include "checkpoint/manifest.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/shard_layout.h"
#include "checkpoint/verify.h"

namespace tessera::checkpoint {

namespace {

namespace fs = std::filesystem;

constexpr const char* kLatestName = "latest";

// The local tensor behind a key: a parameter's value, or its slice of Adam's moments in the
// store's layout.
Tensor local_tensor(const model::ParameterStore& store, const train::Adam::Moments* moments, int id, Role role) {
  const model::ParamInfo& p = store.info(id);
  if (role == Role::value) return store.value(id);
  return (role == Role::first_moment ? moments->m : moments->v).view(p.offset, p.local_shape);
}

// Fills `dst` (this rank's slice `local` of tensor `key`, padded rows included) from whichever
// saved slices overlap it, opening shard files on first use.
void load_tensor(const fs::path& dir, const Manifest& m, std::map<std::string, SafetensorsFile>& files,
                 const std::string& key, const model::ParamInfo& p, Tensor dst) {
  const auto it = m.tensors.find(key);
  TESSERA_CHECK(it != m.tensors.end(), "parameter ", key, " is missing from checkpoint ", dir);
  const TensorRecord& record = it->second;
  TESSERA_CHECK(record.shape == unpadded_shape(p), "parameter ", key, " has global shape ", shape_string(record.shape),
                " in checkpoint ", dir, " but ", shape_string(unpadded_shape(p)), " in the model");
  const Box local = slice_box(p, p.partition.index);
  Tensor host = Tensor::zeros(p.local_shape, dst.dtype());  // padded rows stay zero
  int64_t copied = 0;
  for (const ShardSlice& s : record.slices) {
    const std::optional<Box> overlap = intersect(local, s.box);
    if (!overlap) continue;
    auto file = files.find(s.file);
    if (file == files.end()) file = files.emplace(s.file, open_verified_shard(dir, m, s.file)).first;
    const SafetensorsFile::Entry& e = file->second.entry(key);
    TESSERA_CHECK(e.shape == s.box.extent, "shard ", file->second.path(), " holds ", key, " with shape ",
                  shape_string(e.shape), " but the manifest says ", shape_string(s.box.extent));
    copy_box(file->second.data(e), e.dtype, s.box, host.raw(), host.dtype(), local, *overlap);
    copied += overlap->numel();
  }
  const std::optional<Box> needed = real_part(p, local);
  TESSERA_CHECK(copied == (needed ? needed->numel() : 0), "checkpoint ", dir, " does not cover ", key, " slice ",
                box_string(local), ": its slices supply ", copied, " elements");
  dst.copy_from(host);
}

CheckpointInfo load_local(const fs::path& dir, model::ParameterStore& store, train::Adam* adam) {
  const fs::path resolved = resolve_checkpoint(dir);
  const Manifest m = read_manifest(resolved);
  TESSERA_CHECK(adam == nullptr || m.optimizer_step >= 0, "checkpoint ", resolved,
                " holds no optimizer state; load it without the optimizer to start a new one");
  for (const auto& [key, record] : m.tensors)
    TESSERA_CHECK(key.starts_with("adam.") || store.find(key) >= 0, "checkpoint ", resolved, " holds tensor ", key,
                  " that the model does not have");
  std::map<std::string, SafetensorsFile> files;
  // Moments load in the store's layout: straight into Adam's, or, sharded, into full-size
  // temporaries of which Adam keeps its part.
  std::optional<train::Adam::Moments> moments;
  if (adam)
    moments = adam->sharded() ? train::Adam::Moments{Tensor::zeros(store.values().shape(), store.dtype(), store.device()),
                                                     Tensor::zeros(store.values().shape(), store.dtype(), store.device())}
                              : adam->store_layout_moments();
  for (size_t id = 0; id < store.size(); ++id) {
    const model::ParamInfo& p = store.info(static_cast<int>(id));
    for (Role role : roles(adam != nullptr))
      load_tensor(resolved, m, files, key_of(p.name, role), p,
                  local_tensor(store, moments ? &*moments : nullptr, static_cast<int>(id), role));
  }
  if (adam) {
    adam->load_store_layout_moments(*moments);
    adam->set_step(m.optimizer_step);
  }
  return {resolved, m.step, m.config, m.sampler_state, m.tensor_parallel, m.data_parallel};
}

}  // namespace

fs::path step_directory(const fs::path& root, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  return root / name;
}

fs::path resolve_checkpoint(const fs::path& dir) {
  if (fs::exists(dir / kManifestName)) return dir;
  std::ifstream latest(dir / kLatestName);
  std::string name;
  if (latest && std::getline(latest, name)) {
    // Written as "step-N\n"; an edited file may end in CR LF or spaces.
    const size_t end = name.find_last_not_of(" \t\r\n");
    name.erase(end == std::string::npos ? 0 : end + 1);
    const size_t begin = name.find_first_not_of(" \t");
    name.erase(0, begin == std::string::npos ? name.size() : begin);
  }
  if (!name.empty()) {
    const fs::path target = dir / name;
    TESSERA_CHECK(fs::exists(target / kManifestName), "not a checkpoint: no ", kManifestName, " in ", target,
                  " (named by ", dir / kLatestName, ")");
    return target;
  }
  TESSERA_FAIL("not a checkpoint: no ", kManifestName, " in ", dir);
}

fs::path save_checkpoint(const fs::path& root, const model::ParameterStore& store, const train::Adam* adam,
                         const parallel::ProcessGrid& grid, const CheckpointExtras& extras) {
  CheckpointSaver saver(root, grid);
  saver.save(store, adam, extras);
  return saver.last_committed();
}

CheckpointInfo load_checkpoint(const fs::path& dir, model::ParameterStore& store, train::Adam* adam,
                               parallel::Communicator& world, double io_timeout_s) {
  CheckpointInfo info;
  agree_after_io(world, attempt([&] { info = load_local(dir, store, adam); }), "loading checkpoint " + dir.string(),
                 io_timeout_s);
  return info;
}

}  // namespace tessera::checkpoint
