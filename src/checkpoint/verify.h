// Trusting a checkpoint's bytes. Every shard file is checked against the manifest before a byte of
// it is used: its length, the XXH3 checksum of the whole file (header included), and the step and
// shard position in its own metadata. A mismatch names the file and then what differs: the tensor
// whose bytes changed (each block has its own checksum in the manifest), or the header.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/manifest.h"
#include "checkpoint/safetensors.h"

namespace tessera::checkpoint {

// Opens shard `file` of the checkpoint in `dir` once it has passed every check above; throws a
// tessera::Error naming the file otherwise. Version 1 checkpoints carry no checksums: only the
// metadata is checked.
SafetensorsFile open_verified_shard(const std::filesystem::path& dir, const Manifest& manifest,
                                    const std::string& file);

// Everything that can be checked without a model, one problem per line (empty: sound): the
// manifest parses; every shard passes open_verified_shard; every block the manifest names is in
// its file with that shape and dtype, and the file holds nothing else; the blocks of every tensor
// are disjoint and cover it exactly once.
std::vector<std::string> verify_checkpoint(const std::filesystem::path& dir);

}  // namespace tessera::checkpoint
