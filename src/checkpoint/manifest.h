// manifest.json: the table of contents of a checkpoint, written last. It names every tensor with
// its global shape and the slices that make it up (which shard file, which box), plus the step,
// the merged configuration and the data sampler's state. docs/checkpoint-format.md is the schema.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/box.h"

namespace tessera::checkpoint {

// Version 2 added checksums and byte sizes; version 1 checkpoints still load (unverified).
inline constexpr int kFormatVersion = 2;
inline constexpr const char* kManifestName = "manifest.json";

// A block of a tensor held by one shard file, under the tensor's own name.
struct ShardSlice {
  std::string file;  // relative to the checkpoint directory
  Box box;
  std::string xxh3;  // checksum of the block's bytes in the file ("" in version 1)
};

struct TensorRecord {
  Shape shape;  // global and unpadded: vocabulary padding is a property of a layout, never saved
  std::string dtype;               // safetensors dtype of every slice ("F32"; "" in version 1)
  std::vector<ShardSlice> slices;  // disjoint; together they cover the whole tensor
};

// One shard file as written: its length and the checksum of all its bytes, header included.
struct ShardRecord {
  std::string file;
  uint64_t bytes = 0;
  std::string xxh3;  // "" in version 1
};

struct Manifest {
  int version = kFormatVersion;
  int64_t step = 0;
  int64_t optimizer_step = -1;  // Adam's step count; -1 when no optimizer state was saved
  int tensor_parallel = 1, data_parallel = 1;  // the layout that wrote it (informational)
  std::string config;         // the merged configuration text (TrainOptions::dump())
  std::string sampler_state;  // opaque JSON text, handed back unchanged
  std::vector<ShardRecord> shards;
  // Parameter values under their names; Adam moments under "adam.m/<name>" and "adam.v/<name>".
  std::map<std::string, TensorRecord> tensors;

  std::string to_json() const;
  // The record of shard `file`, or null.
  const ShardRecord* shard(const std::string& file) const;
  // Parses and validates manifest text; errors name `where`.
  static Manifest parse(const std::string& text, const std::filesystem::path& where);
};

// Reads dir/manifest.json; throws "not a checkpoint: no manifest.json in DIR" when it is absent.
Manifest read_manifest(const std::filesystem::path& dir);

}  // namespace tessera::checkpoint
