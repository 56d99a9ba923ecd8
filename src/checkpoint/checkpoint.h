// Saving and loading training state: parameters, Adam's moments and step, the merged
// configuration and the data sampler's position.
//
// A run's checkpoints live under one root directory:
//   ROOT/step-00001000/{model-tp0-of-2.safetensors, model-tp1-of-2.safetensors, manifest.json}
//   ROOT/latest            one line naming the newest complete checkpoint ("step-00001000")
// The replica with dp_rank 0 writes one shard per tensor-parallel rank into a staging directory,
// then world rank 0 writes the manifest (with every shard's and tensor's checksum) and moves the
// directory into place, then updates `latest` (checkpoint_saver.h). A directory without a manifest
// is not a checkpoint, so a crash mid-save never yields something loadable. Loading works in any
// (tp, dp) layout: each rank reads only the bytes of the saved slices that overlap its own.
#pragma once

#include <filesystem>
#include <string>

#include "model/parameters.h"
#include "parallel/communicator.h"
#include "parallel/process_grid.h"
#include "train/optimizer.h"

namespace tessera::checkpoint {

struct CheckpointExtras {
  int64_t step = 0;
  std::string config;         // TrainOptions::dump()
  std::string sampler_state;  // opaque JSON text from the data sampler
};

struct CheckpointInfo {
  std::filesystem::path dir;  // the checkpoint directory actually read
  int64_t step = 0;
  std::string config;
  std::string sampler_state;
  int tensor_parallel = 1, data_parallel = 1;  // the layout that wrote it
};

// Writes ROOT/step-<step as 8 digits> (atomically replacing any earlier save of that step) and
// then points ROOT/latest at it; returns the checkpoint directory. Collective over grid.world():
// every rank calls it, and every rank throws if any rank failed. `adam` may be null (weights
// only). A training run uses a CheckpointSaver (checkpoint_saver.h) for retention and async saves.
std::filesystem::path save_checkpoint(const std::filesystem::path& root, const model::ParameterStore& store,
                                      const train::Adam* adam, const parallel::ProcessGrid& grid,
                                      const CheckpointExtras& extras);

// Loads into `store` (and `adam`, when not null: moments and step) from `dir`, which is either a
// checkpoint directory or a root holding `latest`. Padded vocabulary rows of this layout are set
// to zero. Every shard file read is verified first (verify.h: size, checksum, metadata).
// Collective over `world`: every rank throws if any rank failed, and a rank's own error names the
// file, tensor or shape at fault. Ranks wait for each other's reading under io_timeout_s.
CheckpointInfo load_checkpoint(const std::filesystem::path& dir, model::ParameterStore& store, train::Adam* adam,
                               parallel::Communicator& world, double io_timeout_s = 1800);

// The checkpoint directory `dir` denotes: dir itself when it holds a manifest, else the target of
// dir/latest. Throws "not a checkpoint: no manifest.json in DIR" otherwise.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& dir);

// ROOT/step-<step as 8 digits> (fixed width, so names sort by step).
std::filesystem::path step_directory(const std::filesystem::path& root, int64_t step);

}  // namespace tessera::checkpoint
