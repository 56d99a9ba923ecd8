#include "checkpoint/retention.h"

#include <algorithm>
#include <string>

#include "checkpoint/manifest.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

std::vector<SavedCheckpoint> list_checkpoints(const fs::path& root) {
  std::vector<SavedCheckpoint> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != 13 || !name.starts_with("step-") ||
        !std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    if (!fs::exists(entry.path() / kManifestName)) continue;
    found.push_back({std::stoll(name.substr(5)), entry.path()});
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return found;
}

std::vector<int64_t> steps_to_prune(const std::vector<int64_t>& saved, const RetentionPolicy& policy,
                                    int64_t latest_step) {
  if (policy.keep_last <= 0) return {};
  std::vector<int64_t> prune;
  const size_t newest = saved.size() > static_cast<size_t>(policy.keep_last) ? saved.size() - policy.keep_last : 0;
  for (size_t i = 0; i < newest; ++i) {
    const int64_t step = saved[i];
    if (step == latest_step) continue;
    if (policy.keep_every > 0 && step % policy.keep_every == 0) continue;
    prune.push_back(step);
  }
  return prune;
}

}  // namespace tessera::checkpoint
