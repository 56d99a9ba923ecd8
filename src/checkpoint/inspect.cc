#include "checkpoint/inspect.h"

#include <iomanip>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/manifest.h"
#include "checkpoint/safetensors.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

// A tensor's dtype: the manifest's, or for version 1 the first shard's header.
std::string dtype_of(const fs::path& dir, const std::string& key, const TensorRecord& r,
                     std::map<std::string, SafetensorsFile>& headers) {
  if (!r.dtype.empty() || r.slices.empty()) return r.dtype;
  const std::string& file = r.slices.front().file;
  auto it = headers.find(file);
  if (it == headers.end()) it = headers.emplace(file, SafetensorsFile(dir / file)).first;
  return safetensors_dtype(it->second.entry(key).dtype);
}

std::string shape_text(const ordered_json& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i].get<int64_t>());
  return s + "]";
}

}  // namespace

ordered_json inspect_checkpoint(const fs::path& dir) {
  const fs::path resolved = resolve_checkpoint(dir);
  const Manifest m = read_manifest(resolved);
  ordered_json shards = ordered_json::array();
  int64_t shard_bytes = 0;
  for (const ShardRecord& s : m.shards) {
    shards.push_back({{"file", s.file}, {"bytes", s.bytes}, {"xxh3", s.xxh3}});
    shard_bytes += static_cast<int64_t>(s.bytes);
  }
  std::map<std::string, SafetensorsFile> headers;
  ordered_json tensors = ordered_json::array();
  int64_t parameters = 0, value_bytes = 0, moment_bytes = 0;
  // Values first, then the first and second moments, each in name order.
  std::vector<std::pair<const std::string*, const TensorRecord*>> ordered;
  for (const char* prefix : {"", "adam.m/", "adam.v/"})
    for (const auto& [key, r] : m.tensors)
      if (*prefix ? key.starts_with(prefix) : !key.starts_with("adam.")) ordered.emplace_back(&key, &r);
  for (const auto& [key_ptr, r_ptr] : ordered) {
    const std::string& key = *key_ptr;
    const TensorRecord& r = *r_ptr;
    const std::string dtype = dtype_of(resolved, key, r, headers);
    const int64_t bytes = shape_numel(r.shape) * static_cast<int64_t>(dtype_size(dtype_from_safetensors(dtype, key)));
    ordered_json blocks = ordered_json::array();
    for (const ShardSlice& s : r.slices)
      blocks.push_back({{"file", s.file}, {"start", s.box.start}, {"extent", s.box.extent},
                        {"box", box_string(s.box)}, {"xxh3", s.xxh3}});
    tensors.push_back({{"name", key}, {"shape", r.shape}, {"dtype", dtype}, {"bytes", bytes}, {"blocks", blocks}});
    if (key.starts_with("adam.")) {
      moment_bytes += bytes;
    } else {
      parameters += shape_numel(r.shape);
      value_bytes += bytes;
    }
  }
  return {
      {"dir", resolved.string()},
      {"format", "tessera-checkpoint"},
      {"version", m.version},
      {"step", m.step},
      {"optimizer_step", m.optimizer_step},
      {"writer", {{"tensor_parallel", m.tensor_parallel}, {"data_parallel", m.data_parallel}}},
      {"config", m.config},
      {"sampler_state", m.sampler_state},
      {"shards", shards},
      {"tensors", tensors},
      {"totals",
       {{"parameters", parameters},
        {"value_bytes", value_bytes},
        {"moment_bytes", moment_bytes},
        {"tensor_bytes", value_bytes + moment_bytes},
        {"tensors", tensors.size()},
        {"shard_bytes", shard_bytes}}},
  };
}

void print_inspection(std::ostream& out, const ordered_json& info) {
  const int64_t optimizer_step = info["optimizer_step"].get<int64_t>();
  out << "checkpoint      " << info["dir"].get<std::string>() << "\n"
      << "format          " << info["format"].get<std::string>() << " version " << info["version"] << "\n"
      << "step            " << info["step"] << "\n"
      << "optimizer step  "
      << (optimizer_step >= 0 ? std::to_string(optimizer_step) + " (Adam moments saved)" : "-1 (no optimizer state)")
      << "\n"
      << "written by      tp " << info["writer"]["tensor_parallel"] << " x dp " << info["writer"]["data_parallel"]
      << "\n"
      << "sampler state   " << info["sampler_state"].get<std::string>() << "\n\nconfig:\n";
  std::istringstream config(info["config"].get<std::string>());
  for (std::string line; std::getline(config, line);) out << "  " << line << "\n";

  out << "\nshards (" << info["shards"].size() << "):\n";
  for (const auto& s : info["shards"])
    out << "  " << s["file"].get<std::string>() << "  " << s["bytes"] << " bytes  xxh3 "
        << (s["xxh3"].get<std::string>().empty() ? "(none: version 1)" : s["xxh3"].get<std::string>()) << "\n";

  out << "\ntensors (" << info["tensors"].size() << "):\n";
  for (const auto& t : info["tensors"]) {
    out << "  " << t["name"].get<std::string>() << "  " << shape_text(t["shape"]) << "  " << t["dtype"].get<std::string>()
        << "  " << t["bytes"] << " bytes\n";
    for (const auto& b : t["blocks"])
      out << "      " << b["file"].get<std::string>() << "  " << b["box"].get<std::string>() << "  xxh3 "
          << (b["xxh3"].get<std::string>().empty() ? "(none)" : b["xxh3"].get<std::string>()) << "\n";
  }
  const auto& totals = info["totals"];
  out << "\ntotal: " << totals["parameters"] << " parameters (" << totals["value_bytes"] << " bytes of values, "
      << totals["moment_bytes"] << " bytes of Adam moments), " << totals["tensors"] << " tensors, "
      << totals["shard_bytes"] << " bytes in " << info["shards"].size() << " shard files\n";
}

}  // namespace tessera::checkpoint
