#include "checkpoint/verify.h"

#include <map>

#include "checkpoint/checksum.h"
#include "core/error.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

namespace {

// The manifest's record of the block of `key` that lives in `file`, or null.
const ShardSlice* slice_in(const Manifest& m, const std::string& key, const std::string& file) {
  const auto it = m.tensors.find(key);
  if (it == m.tensors.end()) return nullptr;
  for (const ShardSlice& s : it->second.slices)
    if (s.file == file) return &s;
  return nullptr;
}

// Why a file whose checksum differs from the manifest's is damaged: which tensors' bytes changed,
// or, when they all match, the header.
std::string damage(const fs::path& path, const Manifest& m, const ShardRecord& want, const FileChecksum& got) {
  std::string what = detail::concat("checkpoint shard ", path.string(), " is damaged: ");
  if (got.bytes != want.bytes)
    what += detail::concat("it has ", got.bytes, " bytes but the manifest says ", want.bytes, "; ");
  try {
    const SafetensorsFile f(path);
    std::string tensors;
    for (const auto& [key, e] : f.entries()) {
      const ShardSlice* s = slice_in(m, key, want.file);
      if (s == nullptr || s->xxh3.empty()) continue;
      const std::string sum = checksum(f.data(e), e.end - e.begin);
      if (sum != s->xxh3)
        tensors += detail::concat(tensors.empty() ? "" : ", ", "tensor ", key, " (xxh3 ", sum, ", manifest ", s->xxh3, ")");
    }
    if (!tensors.empty()) return what + "the bytes of " + tensors + " changed";
    return what + detail::concat("every tensor's bytes match the manifest, so its header changed (xxh3 of the file ",
                                 got.xxh3, ", manifest ", want.xxh3, ")");
  } catch (const std::exception& e) {
    return what + "it no longer parses (" + e.what() + ")";
  }
}

// The shard's own metadata must describe the checkpoint the manifest describes.
void check_metadata(const SafetensorsFile& f, const Manifest& m, const std::string& file) {
  const auto& meta = f.metadata();
  const auto step = meta.find("tessera.step");
  TESSERA_CHECK(step != meta.end() && step->second == std::to_string(m.step), "checkpoint shard ", f.path().string(),
                " says tessera.step = ", step == meta.end() ? std::string("(none)") : step->second,
                " but its manifest is for step ", m.step, " (a shard from another checkpoint?)");
  size_t index = 0;
  while (index < m.shards.size() && m.shards[index].file != file) ++index;
  const std::string want = std::to_string(index) + " of " + std::to_string(m.shards.size());
  const auto shard = meta.find("tessera.shard");
  TESSERA_CHECK(shard != meta.end() && shard->second == want, "checkpoint shard ", f.path().string(),
                " says tessera.shard = ", shard == meta.end() ? std::string("(none)") : shard->second,
                " but the manifest lists it as shard ", want, " (a shard from another layout?)");
}

}  // namespace

SafetensorsFile open_verified_shard(const fs::path& dir, const Manifest& m, const std::string& file) {
  const ShardRecord* record = m.shard(file);
  TESSERA_CHECK(record != nullptr, "checkpoint ", dir.string(), ": shard ", file, " is not listed in its manifest");
  const fs::path path = dir / file;
  if (!record->xxh3.empty()) {
    const FileChecksum got = checksum_file(path);
    TESSERA_CHECK(got.bytes == record->bytes && got.xxh3 == record->xxh3, damage(path, m, *record, got));
  }
  SafetensorsFile f(path);
  check_metadata(f, m, file);
  return f;
}

std::vector<std::string> verify_checkpoint(const fs::path& dir) {
  std::vector<std::string> problems;
  Manifest m;
  try {
    m = read_manifest(dir);
  } catch (const std::exception& e) {
    return {e.what()};
  }
  if (m.version < kFormatVersion)
    problems.push_back(detail::concat(dir.string(), ": format version ", m.version,
                                      " has no checksums; only the structure was checked"));
  std::map<std::string, SafetensorsFile> files;
  for (const ShardRecord& s : m.shards) {
    try {
      files.emplace(s.file, open_verified_shard(dir, m, s.file));
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
  }
  // Every block the manifest names is in its file, as described; nothing else is.
  std::map<std::string, int> named_in_file;
  for (const auto& [key, record] : m.tensors) {
    int64_t covered = 0;
    for (size_t i = 0; i < record.slices.size(); ++i) {
      const ShardSlice& s = record.slices[i];
      covered += s.box.numel();
      for (size_t j = 0; j < i; ++j)
        if (intersect(s.box, record.slices[j].box))
          problems.push_back(detail::concat(dir.string(), ": tensor ", key, " has overlapping blocks ",
                                            box_string(record.slices[j].box), " and ", box_string(s.box)));
      const auto f = files.find(s.file);
      if (f == files.end()) continue;  // already reported
      ++named_in_file[s.file];
      const auto e = f->second.entries().find(key);
      if (e == f->second.entries().end()) {
        problems.push_back(detail::concat(f->second.path().string(), " lacks tensor ", key, " named by the manifest"));
        continue;
      }
      if (e->second.shape != s.box.extent)
        problems.push_back(detail::concat(f->second.path().string(), " holds ", key, " with shape ",
                                          shape_string(e->second.shape), " but the manifest says ",
                                          shape_string(s.box.extent)));
      if (!record.dtype.empty() && safetensors_dtype(e->second.dtype) != record.dtype)
        problems.push_back(detail::concat(f->second.path().string(), " holds ", key, " as ",
                                          safetensors_dtype(e->second.dtype), " but the manifest says ", record.dtype));
    }
    if (covered != shape_numel(record.shape))
      problems.push_back(detail::concat(dir.string(), ": the blocks of tensor ", key, " hold ", covered,
                                        " elements but its shape ", shape_string(record.shape), " has ",
                                        shape_numel(record.shape)));
  }
  for (const auto& [file, f] : files)
    if (static_cast<size_t>(named_in_file[file]) != f.entries().size())
      problems.push_back(detail::concat(f.path().string(), " holds ", f.entries().size(), " tensors but the manifest names ",
                                        named_in_file[file], " in it"));
  return problems;
}

}  // namespace tessera::checkpoint
