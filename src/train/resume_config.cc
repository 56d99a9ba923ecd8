#include "train/resume_config.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "core/error.h"

namespace tessera::train {

namespace {

// "name = value" lines of a merged configuration; comments and blank lines skipped.
std::map<std::string, std::string> settings(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    out[line.substr(0, eq)] = line.substr(eq + 3);
  }
  return out;
}

}  // namespace

const std::vector<std::string>& model_defining_options() {
  static const std::vector<std::string> names = {"vocab-size",     "d-model",        "d-ff",   "heads",
                                                 "encoder-layers", "decoder-layers", "pre-ln", "activation"};
  return names;
}

std::vector<std::string> check_resume_config(const std::string& saved_config, const TrainOptions& current,
                                             const std::string& checkpoint) {
  if (saved_config.empty()) return {};
  const auto saved = settings(saved_config);
  const auto now = settings(current.dump());
  const auto& defining = model_defining_options();
  std::string mismatches;
  std::vector<std::string> changes;
  for (const auto& [name, value] : now) {
    const auto it = saved.find(name);
    if (it == saved.end() || it->second == value || name == "resume") continue;
    const std::string change = "--" + name + " " + it->second + " -> " + value;
    if (std::find(defining.begin(), defining.end(), name) != defining.end())
      mismatches += (mismatches.empty() ? "" : "; ") + change;
    else
      changes.push_back(change);
  }
  TESSERA_CHECK(mismatches.empty(), "--resume: checkpoint ", checkpoint, " is a different model: ", mismatches,
                " (the options that define the model must match the checkpoint's; start a new run instead)");
  return changes;
}

}  // namespace tessera::train
