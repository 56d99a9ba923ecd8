#include "checkpoint/offline_writer.h"

#include <algorithm>
#include <set>

#include "checkpoint/atomic_file.h"
#include "checkpoint/shard_layout.h"
#include "core/error.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

OfflineCheckpointWriter::OfflineCheckpointWriter(fs::path out, Manifest manifest)
    : out_(std::move(out)), staging_(out_.string() + ".staging"), manifest_(std::move(manifest)) {
  TESSERA_CHECK(!out_.filename().empty(), "--out: '", out_.string(), "' does not name a directory");
  // OUT is replaced whole: only ever a checkpoint, never a directory that holds something else.
  TESSERA_CHECK(!fs::exists(out_) || fs::exists(out_ / kManifestName), "--out: ", out_.string(),
                " exists and is not a checkpoint (no ", kManifestName, "); refusing to replace it");
  std::error_code ec;
  fs::remove_all(staging_, ec);
  TESSERA_CHECK(!ec, "cannot remove ", staging_.string(), " (left by an interrupted write): ", ec.message());
  fs::create_directories(staging_, ec);
  TESSERA_CHECK(!ec, "--out: cannot create ", staging_.string(), ": ", ec.message());
}

OfflineCheckpointWriter::~OfflineCheckpointWriter() {
  if (committed_) return;
  std::error_code ignored;
  fs::remove_all(staging_, ignored);
}

void OfflineCheckpointWriter::write(const ShardSnapshot& shard) {
  TESSERA_CHECK(manifest_.shard(shard.file) != nullptr, "shard ", shard.file, " is not part of the layout of ",
                out_.string());
  TESSERA_CHECK(std::find(written_.begin(), written_.end(), shard.file) == written_.end(), "shard ", shard.file,
                " of ", out_.string(), " written twice");
  std::set<std::string> expected;
  for (const auto& [key, record] : manifest_.tensors)
    for (const ShardSlice& s : record.slices)
      if (s.file == shard.file) expected.insert(key);
  for (const auto& [key, t] : shard.tensors) {
    TESSERA_CHECK(expected.erase(key) == 1, "shard ", shard.file, " of ", out_.string(), " holds ", key,
                  " which the manifest does not place there");
    manifest_.tensors.at(key).dtype = safetensors_dtype(t.dtype());
  }
  TESSERA_CHECK(expected.empty(), "shard ", shard.file, " of ", out_.string(), " lacks ", *expected.begin());
  record_written_shard(manifest_, shard.file, write_shard(staging_, shard));
  written_.push_back(shard.file);
}

fs::path OfflineCheckpointWriter::commit() {
  for (const ShardRecord& s : manifest_.shards)
    TESSERA_CHECK(std::find(written_.begin(), written_.end(), s.file) != written_.end(), "shard ", s.file, " of ",
                  out_.string(), " was never written");
  write_file_atomically(staging_ / kManifestName, manifest_.to_json());
  install_directory(staging_, out_);
  committed_ = true;
  return out_;
}

}  // namespace tessera::checkpoint
