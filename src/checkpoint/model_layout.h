// The model a checkpoint holds, as offline tools see it: the options it was trained with (the
// merged configuration in its manifest), and its parameters declared - named and shaped, never
// allocated - in any tensor-parallel layout. Tensor-parallel rank 0's declaration is enough to
// describe every shard of the layout (shard_layout.h computes rank r's blocks from it).
#pragma once

#include <filesystem>

#include "checkpoint/manifest.h"
#include "model/parameters.h"
#include "train/options.h"

namespace tessera::checkpoint {

// The options in the manifest's configuration; throws naming `dir` when it has none or it does
// not parse.
train::TrainOptions trained_options(const Manifest& manifest, const std::filesystem::path& dir);

// The parameters model::Transformer declares for `cfg` on rank 0 of a `tensor_parallel`-way
// layout (over a parallel::LayoutCommunicator), in declaration order; the store is not finalized.
// Throws naming --tensor-parallel when the layout does not divide the model.
model::ParameterStore declare_parameters(const model::ModelConfig& cfg, int tensor_parallel);

// Throws naming `dir` unless the checkpoint holds exactly the values `store` declares, each with
// the same unpadded global shape (moments, "adam.*", are not checked here).
void check_same_model(const Manifest& manifest, const std::filesystem::path& dir, const model::ParameterStore& store);

}  // namespace tessera::checkpoint
