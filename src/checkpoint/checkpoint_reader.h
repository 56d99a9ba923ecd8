// Reading any block of any tensor of a checkpoint: load_checkpoint reads each rank's slices with
// it, and the offline tools (tessera-ckpt convert, average, export) read what they need box by
// box, in whatever layout they write, from whatever layout wrote the checkpoint. Each shard file is verified (verify.h) once, when first
// needed, and stays mapped; the pages a read touched are handed back to the kernel afterwards, so
// reading a whole checkpoint keeps only the blocks in hand resident, not the files.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "checkpoint/box.h"
#include "checkpoint/manifest.h"
#include "checkpoint/safetensors.h"

namespace tessera::checkpoint {

class CheckpointReader {
 public:
  // `dir` is a checkpoint directory or a save root holding `latest` (resolve_checkpoint).
  explicit CheckpointReader(const std::filesystem::path& dir);

  // The checkpoint directory actually read.
  const std::filesystem::path& dir() const { return dir_; }
  const Manifest& manifest() const { return manifest_; }
  bool has(const std::string& key) const { return manifest_.tensors.count(key) != 0; }
  // The manifest's record of `key`; throws naming the checkpoint when it holds no such tensor.
  const TensorRecord& record(const std::string& key) const;

  // Block `box` of tensor `key` (in the unpadded global coordinates of the manifest) as a host
  // tensor of shape box.extent in `dtype` (f32, f64 or bf16, converted from what was saved).
  // Throws naming the tensor when the box lies outside it or the saved blocks do not cover it.
  Tensor read(const std::string& key, const Box& box, DType dtype);
  // The whole tensor.
  Tensor read(const std::string& key, DType dtype);

 private:
  const SafetensorsFile& shard(const std::string& file);

  std::filesystem::path dir_;
  Manifest manifest_;
  std::map<std::string, SafetensorsFile> files_;
};

}  // namespace tessera::checkpoint
