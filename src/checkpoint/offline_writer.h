// Writing a checkpoint from one process, outside a run (tessera-ckpt convert and average): shard
// by shard into OUT.staging, then the manifest with every shard's size and checksums, then the
// directory moves into place as OUT in one step (install_directory). Whatever names OUT sees a
// complete checkpoint - the one before, or the new one - at every instant, and an interrupted
// write leaves at most OUT.staging behind.
#pragma once

#include <filesystem>

#include "checkpoint/manifest.h"
#include "checkpoint/shard_snapshot.h"

namespace tessera::checkpoint {

class OfflineCheckpointWriter {
 public:
  // `manifest` describes the layout (describe_layout) with step, optimizer step, config and
  // sampler state filled in; the writer fills in sizes, checksums and each tensor's dtype as
  // written. Creates OUT.staging, removing one an interrupted write left. OUT may exist only as a
  // checkpoint (it is replaced whole); anything else there is an error naming --out.
  OfflineCheckpointWriter(std::filesystem::path out, Manifest manifest);
  // Removes the staging directory unless commit() ran.
  ~OfflineCheckpointWriter();
  OfflineCheckpointWriter(const OfflineCheckpointWriter&) = delete;
  OfflineCheckpointWriter& operator=(const OfflineCheckpointWriter&) = delete;

  // Writes one shard (its tensors in any floating dtype); the manifest must list its file, and
  // the shard must hold exactly the tensors the manifest places in it.
  void write(const ShardSnapshot& shard);
  // Once every shard is written: the manifest, then OUT takes the staging directory's place.
  // Returns OUT.
  std::filesystem::path commit();

  const Manifest& manifest() const { return manifest_; }

 private:
  std::filesystem::path out_, staging_;
  Manifest manifest_;
  std::vector<std::string> written_;
  bool committed_ = false;
};

}  // namespace tessera::checkpoint
