// Exporting a checkpoint's model as one safetensors file (tessera-ckpt export), for other tools:
// every parameter value of the full model (tensor-parallel size 1, vocabulary unpadded), under
// Tessera's own names and in Tessera's orientation (a linear layer's weight is [in, out], y = x W
// + b), f32 or bf16. The model's configuration goes into the file's __metadata__ (key
// "tessera.config", JSON text) and into a JSON file beside it. docs/checkpoint-format.md
// ("Export: names for PyTorch") maps every name onto torch.nn.Transformer, and
// tools/load_into_pytorch.py does it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "checkpoint/manifest.h"
#include "core/dtype.h"
#include "train/options.h"

namespace tessera::checkpoint {

// Bumped whenever an exported name or orientation changes.
inline constexpr int kExportNamingVersion = 1;

struct ExportReport {
  std::filesystem::path source, file, config_file;
  int64_t step = 0;
  int64_t tensors = 0, parameters = 0, bytes = 0;  // bytes: the file's length
};

// The exported configuration: the model's hyper-parameters, the step, and what an importer needs
// to rebuild the computation (naming scheme, weight orientation, embedding scale, positions, ...).
nlohmann::ordered_json export_config(const train::TrainOptions& trained, int64_t step);

// FILE with its extension replaced by ".json".
std::filesystem::path export_config_path(const std::filesystem::path& file);

// Writes `file` (atomically) and export_config_path(file) from the checkpoint `source` (a step
// directory or a save root). dtype: f32 or bf16.
ExportReport export_safetensors(const std::filesystem::path& source, const std::filesystem::path& file, DType dtype);

}  // namespace tessera::checkpoint
