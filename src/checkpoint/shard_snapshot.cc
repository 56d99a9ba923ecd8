#include "checkpoint/shard_snapshot.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "checkpoint/shard_layout.h"
#include "core/allocator.h"
#include "kernels/ops.h"

namespace tessera::checkpoint {

namespace {

// The local tensor behind an entry: a parameter's value, or its block of a moment.
Tensor local_tensor(const model::ParameterStore& store, const train::Adam::Moments* moments, const ShardEntry& e) {
  const model::ParamInfo& p = store.info(e.param);
  if (e.role == Role::value) return store.value(e.param);
  return (e.role == Role::first_moment ? moments->m : moments->v).view(p.offset, p.local_shape);
}

// Test hook that stands for a slow shared file system: TESSERA_TEST_SLOW_SHARD_WRITE=SECONDS makes
// every shard write take that much longer (tests of --io-timeout and of background saves).
void simulate_slow_file_system() {
  const char* v = std::getenv("TESSERA_TEST_SLOW_SHARD_WRITE");
  if (v == nullptr || *v == '\0') return;
  std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(v)));
}

}  // namespace

ShardSnapshot snapshot_shard(const model::ParameterStore& store, const train::Adam::Moments* moments, int tp_rank,
                             int tp_size, int64_t step, bool copy) {
  ShardSnapshot shard{shard_name(tp_rank, tp_size), tp_rank, tp_size, step, {}, nullptr};
  std::vector<std::pair<std::string, Tensor>> sources;
  int64_t elements = 0;
  for (const ShardEntry& e : shard_entries(store, tp_rank, tp_size, moments != nullptr)) {
    Tensor t = local_tensor(store, moments, e);
    // The saved block starts at the slice's first row; only trailing padded rows are cut.
    if (!t.shape().empty() && e.box.extent[0] < t.dim(0)) t = t.rows(0, e.box.extent[0]);
    elements += t.numel();
    sources.emplace_back(e.key, t);
  }
  if (!copy && store.device().is_cpu()) {
    shard.tensors = std::move(sources);
    return shard;
  }
  // One host buffer for the whole shard, page-locked when the state is on a GPU.
  const Tensor buffer = Tensor::empty({elements}, store.dtype(), Device::cpu);
  Allocator& device = allocator_for(store.device());
  if (device.pin_host(buffer.raw(), buffer.bytes()))
    shard.pinned = std::shared_ptr<void>(buffer.raw(), [&device](void* p) { device.unpin_host(p); });
  int64_t offset = 0;
  for (const auto& [key, t] : sources) {
    Tensor host = buffer.view(offset, t.shape());
    host.copy_from(t);
    offset += t.numel();
    shard.tensors.emplace_back(key, host);
  }
  return shard;
}

void check_finite(const ShardSnapshot& shard, const std::filesystem::path& dir) {
  for (const auto& [name, t] : shard.tensors)
    TESSERA_CHECK(std::isfinite(kernels::sum_squares(t)), "refusing to save checkpoint ", dir.string(), ": tensor ",
                  name, " holds inf or NaN (the run diverged)");
}

SafetensorsWriter::Written write_shard(const std::filesystem::path& dir, const ShardSnapshot& shard) {
  simulate_slow_file_system();
  SafetensorsWriter writer;
  for (const auto& [name, t] : shard.tensors) writer.add(name, t);
  writer.set_metadata("tessera.step", std::to_string(shard.step));
  writer.set_metadata("tessera.shard", std::to_string(shard.tp_rank) + " of " + std::to_string(shard.tp_size));
  return writer.write(dir / shard.file);
}

}  // namespace tessera::checkpoint
