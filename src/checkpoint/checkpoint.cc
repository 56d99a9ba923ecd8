#include "checkpoint/checkpoint.h"

#include <cstdio>
#include <fstream>
#include <optional>

#include "checkpoint/agreement.h"
#include "checkpoint/checkpoint_reader.h"
#include "checkpoint/checkpoint_saver.h"
#include "checkpoint/manifest.h"
#include "checkpoint/shard_layout.h"

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

// Fills `dst` (this rank's slice of tensor `key`, padded rows included): the slice's real rows
// from whichever saved blocks overlap them, its padded rows with zeros.
void load_tensor(CheckpointReader& reader, const std::string& key, const model::ParamInfo& p, Tensor dst) {
  TESSERA_CHECK(reader.has(key), "parameter ", key, " is missing from checkpoint ", reader.dir());
  const TensorRecord& record = reader.record(key);
  TESSERA_CHECK(record.shape == unpadded_shape(p), "parameter ", key, " has global shape ", shape_string(record.shape),
                " in checkpoint ", reader.dir(), " but ", shape_string(unpadded_shape(p)), " in the model");
  Tensor host = Tensor::zeros(p.local_shape, dst.dtype());
  if (const std::optional<Box> real = real_part(p, slice_box(p, p.partition.index))) {
    const Tensor block = reader.read(key, *real, dst.dtype());
    // Padding is only ever trailing rows, so the real part is the slice's leading rows.
    (p.local_shape.empty() ? host : host.rows(0, real->extent[0])).copy_from(block);
  }
  dst.copy_from(host);
}

CheckpointInfo load_local(const fs::path& dir, model::ParameterStore& store, train::Adam* adam) {
  CheckpointReader reader(dir);
  const fs::path& resolved = reader.dir();
  const Manifest& m = reader.manifest();
  TESSERA_CHECK(adam == nullptr || m.optimizer_step >= 0, "checkpoint ", resolved,
                " holds no optimizer state; load it without the optimizer to start a new one");
  for (const auto& [key, record] : m.tensors)
    TESSERA_CHECK(key.starts_with("adam.") || store.find(key) >= 0, "checkpoint ", resolved, " holds tensor ", key,
                  " that the model does not have");
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
      load_tensor(reader, key_of(p.name, role), p,
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
