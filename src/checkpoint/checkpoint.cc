#include "checkpoint/checkpoint.h"

#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "checkpoint/atomic_file.h"
#include "checkpoint/manifest.h"
#include "checkpoint/safetensors.h"
#include "kernels/ops.h"

namespace tessera::checkpoint {

namespace {

namespace fs = std::filesystem;

constexpr const char* kLatestName = "latest";

std::string shard_name(int tp_rank, int tp_size) {
  return "model-tp" + std::to_string(tp_rank) + "-of-" + std::to_string(tp_size) + ".safetensors";
}

// The global shape without vocabulary padding: rows past valid_rows exist only in a layout.
Shape unpadded_shape(const model::ParamInfo& p) {
  Shape s = p.global_shape;
  if (p.valid_rows >= 0) s.at(0) = p.valid_rows;
  return s;
}

// The box of the (padded) global tensor that partition slice `part` of `p` covers.
Box slice_box(const model::ParamInfo& p, int part) {
  Box b{Shape(p.local_shape.size(), 0), p.local_shape};
  if (!p.partition.is_replicated()) b.start[p.partition.dim] = part * p.local_shape[p.partition.dim];
  return b;
}

// The same box without padded rows; nullopt when the slice is all padding.
std::optional<Box> real_part(const model::ParamInfo& p, const Box& b) {
  const Shape shape = unpadded_shape(p);
  return intersect(b, Box{Shape(shape.size(), 0), shape});
}

// Every key a parameter is saved under: its value, and Adam's two moments when present.
struct Key {
  std::string name;
  int which;  // 0: value, 1: first moment, 2: second moment
};
std::vector<Key> keys_of(const std::string& name, bool with_adam) {
  if (!with_adam) return {{name, 0}};
  return {{name, 0}, {"adam.m/" + name, 1}, {"adam.v/" + name, 2}};
}

// The local tensor behind a key: a parameter's value, or its slice of Adam's moments in the
// store's layout (gathered from the data-parallel group when Adam is sharded: checkpoints do not
// depend on --shard-optimizer).
Tensor local_tensor(const model::ParameterStore& store, const train::Adam::Moments* moments, int id, int which) {
  const model::ParamInfo& p = store.info(id);
  if (which == 0) return store.value(id);
  return (which == 1 ? moments->m : moments->v).view(p.offset, p.local_shape);
}

// Runs `work`, returning what it threw (or nothing).
template <typename F>
std::exception_ptr attempt(F&& work) {
  try {
    work();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

// Every rank learns whether any rank failed; the failing rank rethrows its own error, the others
// report that one failed, so no rank goes on alone into a collective that will never complete.
void agree(parallel::Communicator& world, const std::exception_ptr& error, const std::string& what) {
  int32_t failed = error ? 1 : 0;
  world.all_reduce(&failed, 1, DType::i32, parallel::ReduceOp::max);
  if (error) std::rethrow_exception(error);
  TESSERA_CHECK(failed == 0, what, " failed on another rank (its own error says why)");
}

// The tensors of this rank's shard, by key: its slice of every parameter (and moment), without
// rows of vocabulary padding; replicated parameters only on tensor-parallel rank 0.
std::vector<std::pair<std::string, Tensor>> shard_tensors(const model::ParameterStore& store,
                                                          const train::Adam::Moments* moments,
                                                          const parallel::ProcessGrid& grid) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (size_t id = 0; id < store.size(); ++id) {
    const model::ParamInfo& p = store.info(static_cast<int>(id));
    if (p.partition.is_replicated() && grid.tp_rank() != 0) continue;  // tp rank 0 saves replicated ones
    const std::optional<Box> real = real_part(p, slice_box(p, p.partition.index));
    if (!real) continue;  // this rank's rows are all vocabulary padding
    for (const Key& k : keys_of(p.name, moments != nullptr)) {
      Tensor t = local_tensor(store, moments, static_cast<int>(id), k.which);
      if (!p.local_shape.empty() && real->extent[0] < p.local_shape[0]) t = t.rows(0, real->extent[0]);
      tensors.emplace_back(k.name, t);
    }
  }
  return tensors;
}

// A diverged run must not leave a checkpoint that resumes into the same inf or NaN: every tensor
// of the shard is checked before anything is written.
void check_finite(const fs::path& dir, const std::vector<std::pair<std::string, Tensor>>& tensors) {
  for (const auto& [name, t] : tensors)
    TESSERA_CHECK(std::isfinite(kernels::sum_squares(t)), "refusing to save checkpoint ", dir.string(), ": tensor ",
                  name, " holds inf or NaN (the run diverged)");
}

void write_shard(const fs::path& dir, const std::vector<std::pair<std::string, Tensor>>& tensors,
                 const parallel::ProcessGrid& grid, int64_t step) {
  SafetensorsWriter writer;
  for (const auto& [name, t] : tensors) writer.add(name, on_device(t, Device::cpu));
  writer.set_metadata("tessera.step", std::to_string(step));
  writer.set_metadata("tessera.shard", std::to_string(grid.tp_rank()) + " of " + std::to_string(grid.tp_size()));
  writer.write(dir / shard_name(grid.tp_rank(), grid.tp_size()));
}

// World rank 0 describes every shard without asking the others: slice r of a parameter split
// into tp parts lives in shard r, a replicated parameter in shard 0.
Manifest describe(const model::ParameterStore& store, const train::Adam* adam, const parallel::ProcessGrid& grid,
                  const CheckpointExtras& extras) {
  Manifest m;
  m.step = extras.step;
  m.optimizer_step = adam ? adam->step() : -1;
  m.tensor_parallel = grid.tp_size();
  m.data_parallel = grid.dp_size();
  m.config = extras.config;
  m.sampler_state = extras.sampler_state;
  for (int r = 0; r < grid.tp_size(); ++r) m.shards.push_back(shard_name(r, grid.tp_size()));
  for (const model::ParamInfo& p : store.params()) {
    TESSERA_CHECK(p.partition.is_replicated() || p.partition.parts == grid.tp_size(), "parameter ", p.name,
                  " is split into ", p.partition.parts, " parts but the tensor-parallel size is ", grid.tp_size());
    TensorRecord record{unpadded_shape(p), {}};
    const int parts = p.partition.is_replicated() ? 1 : p.partition.parts;
    for (int r = 0; r < parts; ++r)
      if (const auto real = real_part(p, slice_box(p, r))) record.slices.push_back({shard_name(r, grid.tp_size()), *real});
    for (const Key& k : keys_of(p.name, adam != nullptr)) m.tensors[k.name] = record;
  }
  return m;
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
    if (file == files.end()) file = files.emplace(s.file, SafetensorsFile(dir / s.file)).first;
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
    for (const Key& k : keys_of(p.name, adam != nullptr))
      load_tensor(resolved, m, files, k.name, p,
                  local_tensor(store, moments ? &*moments : nullptr, static_cast<int>(id), k.which));
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
  const fs::path dir = step_directory(root, extras.step);
  parallel::Communicator& world = grid.world();
  // 0. The first replica writes one shard per tensor-parallel rank (the others hold copies); its
  //    tensors are checked before the directory is touched.
  std::vector<std::pair<std::string, Tensor>> shard;
  std::exception_ptr error;
  // Sharded moments come together on every rank of the data-parallel group (a collective).
  std::optional<train::Adam::Moments> moments;
  error = attempt([&] {
    if (adam) moments = adam->store_layout_moments();
  });
  agree(world, error, "gathering the optimizer state of checkpoint " + dir.string());
  if (grid.dp_rank() == 0) error = attempt([&] {
    shard = shard_tensors(store, moments ? &*moments : nullptr, grid);
    check_finite(dir, shard);
  });
  agree(world, error, "checking the tensors of checkpoint " + dir.string());

  // 1. An empty directory: a stale manifest from an earlier save of this step must not describe
  //    the new shards while they are being written.
  if (world.rank() == 0) error = attempt([&] {
    fs::remove_all(dir);
    fs::create_directories(dir);
    sync_directory(root);
  });
  agree(world, error, "preparing checkpoint " + dir.string());

  // 2. The shards.
  if (grid.dp_rank() == 0) error = attempt([&] { write_shard(dir, shard, grid, extras.step); });
  agree(world, error, "writing a shard of checkpoint " + dir.string());

  // 3. Every shard is durable: the manifest makes the checkpoint exist, then `latest` points at it.
  if (world.rank() == 0) error = attempt([&] {
    write_file_atomically(dir / kManifestName, describe(store, adam, grid, extras).to_json());
    write_file_atomically(root / kLatestName, dir.filename().string() + "\n");
  });
  agree(world, error, "writing the manifest of checkpoint " + dir.string());
  return dir;
}

CheckpointInfo load_checkpoint(const fs::path& dir, model::ParameterStore& store, train::Adam* adam,
                               parallel::Communicator& world) {
  CheckpointInfo info;
  agree(world, attempt([&] { info = load_local(dir, store, adam); }), "loading checkpoint " + dir.string());
  return info;
}

}  // namespace tessera::checkpoint
