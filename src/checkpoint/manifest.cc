#include "checkpoint/manifest.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace tessera::checkpoint {

using nlohmann::json;

// Pretty at the top level, one line per tensor: readable with `less`, and still plain JSON.
std::string Manifest::to_json() const {
  json shard_list = json::array();
  for (const ShardRecord& s : shards) shard_list.push_back({{"file", s.file}, {"bytes", s.bytes}, {"xxh3", s.xxh3}});
  const std::pair<const char*, json> fields[] = {
      {"format", "tessera-checkpoint"},
      {"version", version},
      {"step", step},
      {"optimizer_step", optimizer_step},
      {"writer", {{"tensor_parallel", tensor_parallel}, {"data_parallel", data_parallel}}},
      {"config", config},
      {"sampler_state", sampler_state},
      {"shards", shard_list},
  };
  std::string out = "{\n";
  for (const auto& [key, value] : fields) out += "  " + json(key).dump() + ": " + value.dump() + ",\n";
  out += "  \"tensors\": {";
  const char* sep = "\n";
  for (const auto& [name, record] : tensors) {
    json slices = json::array();
    for (const ShardSlice& s : record.slices)
      slices.push_back({{"file", s.file}, {"start", s.box.start}, {"extent", s.box.extent}, {"xxh3", s.xxh3}});
    out += sep + ("    " + json(name).dump()) + ": " +
           json{{"shape", record.shape}, {"dtype", record.dtype}, {"slices", slices}}.dump();
    sep = ",\n";
  }
  return out + "\n  }\n}\n";
}

Manifest Manifest::parse(const std::string& text, const std::filesystem::path& where) {
  Manifest m;
  try {
    const json j = json::parse(text);
    TESSERA_CHECK(j.at("format").get<std::string>() == "tessera-checkpoint", where, " is not a tessera manifest");
    m.version = j.at("version").get<int>();
    TESSERA_CHECK(m.version == 1 || m.version == kFormatVersion, where, " has format version ", m.version,
                  "; this build reads versions 1 and ", kFormatVersion);
    m.step = j.at("step").get<int64_t>();
    m.optimizer_step = j.at("optimizer_step").get<int64_t>();
    m.tensor_parallel = j.at("writer").at("tensor_parallel").get<int>();
    m.data_parallel = j.at("writer").at("data_parallel").get<int>();
    m.config = j.at("config").get<std::string>();
    m.sampler_state = j.at("sampler_state").get<std::string>();
    for (const json& s : j.at("shards")) {
      if (s.is_string()) m.shards.push_back({s.get<std::string>(), 0, ""});  // version 1: names only
      else m.shards.push_back({s.at("file").get<std::string>(), s.at("bytes").get<uint64_t>(), s.at("xxh3").get<std::string>()});
    }
    for (const auto& [name, t] : j.at("tensors").items()) {
      TensorRecord r;
      r.shape = t.at("shape").get<Shape>();
      r.dtype = t.value("dtype", "");
      for (const json& s : t.at("slices")) {
        ShardSlice slice{s.at("file").get<std::string>(), {s.at("start").get<Shape>(), s.at("extent").get<Shape>()},
                         s.value("xxh3", "")};
        TESSERA_CHECK(m.shard(slice.file) != nullptr, where, ": slice of ", name, " names ", slice.file,
                      " which is not among the shards");
        TESSERA_CHECK(slice.box.start.size() == r.shape.size() && slice.box.extent.size() == r.shape.size(), where,
                      ": slice of ", name, " in ", slice.file, " has the wrong rank for shape ", shape_string(r.shape));
        for (size_t d = 0; d < r.shape.size(); ++d)
          TESSERA_CHECK(slice.box.start[d] >= 0 && slice.box.extent[d] > 0 &&
                            slice.box.start[d] + slice.box.extent[d] <= r.shape[d],
                        where, ": slice ", box_string(slice.box), " of ", name, " in ", slice.file,
                        " lies outside its shape ", shape_string(r.shape));
        r.slices.push_back(std::move(slice));
      }
      m.tensors.emplace(name, std::move(r));
    }
  } catch (const json::exception& e) {
    TESSERA_FAIL("corrupt checkpoint manifest ", where, ": ", e.what());
  }
  return m;
}

const ShardRecord* Manifest::shard(const std::string& file) const {
  for (const ShardRecord& s : shards)
    if (s.file == file) return &s;
  return nullptr;
}

Manifest read_manifest(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / kManifestName;
  std::ifstream in(path, std::ios::binary);
  TESSERA_CHECK(in, "not a checkpoint: no ", kManifestName, " in ", dir);
  std::ostringstream text;
  text << in.rdbuf();
  return Manifest::parse(text.str(), path);
}

}  // namespace tessera::checkpoint
