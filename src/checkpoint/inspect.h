// What a checkpoint holds, from its manifest (tessera-ckpt inspect): step, optimizer step, the
// layout that wrote it, format version, configuration, every shard file with its size and
// checksum, every tensor with shape, dtype, size and blocks, and totals. Nothing is verified here
// (verify.h does that); shard files are opened only for a version 1 checkpoint, whose manifest
// does not record dtypes.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>

namespace tessera::checkpoint {

// The description as JSON: {"dir", "format", "version", "step", "optimizer_step", "writer":
// {"tensor_parallel", "data_parallel"}, "config", "sampler_state", "shards": [{"file", "bytes",
// "xxh3"}], "tensors": [{"name", "shape", "dtype", "bytes", "blocks": [{"file", "start", "extent",
// "box", "xxh3"}]}], "totals": {"parameters", "value_bytes", "moment_bytes", "tensor_bytes",
// "tensors", "shard_bytes"}}.
nlohmann::ordered_json inspect_checkpoint(const std::filesystem::path& dir);

// The same for people.
void print_inspection(std::ostream& out, const nlohmann::ordered_json& info);

}  // namespace tessera::checkpoint
