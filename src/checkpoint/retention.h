// Which checkpoints a long run keeps: the newest --keep-last N, every step that is a multiple of
// --keep-every K (kept for good, e.g. for averaging or for going back), and always the one `latest`
// names. Pruning runs only after a new checkpoint is durable and `latest` points at it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace tessera::checkpoint {

struct RetentionPolicy {
  int64_t keep_last = 0;   // 0: keep every checkpoint
  int64_t keep_every = 0;  // 0: no step is kept for being a multiple
};

struct SavedCheckpoint {
  int64_t step = 0;
  std::filesystem::path dir;
};

// The complete checkpoints in `root` (directories named step-<8 digits> holding a manifest), in
// increasing step order. Anything else (staging directories, averages, files) is not listed.
std::vector<SavedCheckpoint> list_checkpoints(const std::filesystem::path& root);

// The steps of `saved` (increasing) that the policy lets go; never `latest_step`.
std::vector<int64_t> steps_to_prune(const std::vector<int64_t>& saved, const RetentionPolicy& policy,
                                    int64_t latest_step);

}  // namespace tessera::checkpoint
