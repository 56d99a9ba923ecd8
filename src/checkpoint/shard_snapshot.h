// A rank's shard of a checkpoint taken out of the training state: host tensors that stay valid
// while training goes on (for a background write), or views of the live state when the write
// happens before the next step (the CPU store saved synchronously needs no copy).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/safetensors.h"
#include "model/parameters.h"
#include "train/optimizer.h"

namespace tessera::checkpoint {

struct ShardSnapshot {
  std::string file;  // shard_name(tp_rank, tp_size)
  int tp_rank = 0, tp_size = 1;
  int64_t step = 0;
  std::vector<std::pair<std::string, Tensor>> tensors;  // host tensors in shard_entries() order
  // Copies of a GPU's state live in one page-locked host buffer (fast device-to-host copies);
  // unpinned when the snapshot goes, before its memory is freed (members die in reverse order).
  std::shared_ptr<void> pinned;
};

// Shard `tp_rank` of this rank's state: its values, and the moments (in the store's layout) when
// `moments` is not null. `copy`: host copies independent of the store (in pinned memory when the
// store is on a GPU); otherwise views where the store is on the host.
ShardSnapshot snapshot_shard(const model::ParameterStore& store, const train::Adam::Moments* moments, int tp_rank,
                             int tp_size, int64_t step, bool copy);

// A diverged run must not leave a checkpoint that resumes into the same inf or NaN: throws naming
// the first tensor that holds one.
void check_finite(const ShardSnapshot& shard, const std::filesystem::path& dir);

// Writes dir/<shard.file> atomically, with the step and the shard's position in its metadata;
// returns its size and checksums. The I/O only: safe on a background thread.
SafetensorsWriter::Written write_shard(const std::filesystem::path& dir, const ShardSnapshot& shard);

}  // namespace tessera::checkpoint
