// Offline resharding (tessera-ckpt convert): a checkpoint rewritten for another tensor-parallel
// size and/or another dtype, on one process. Each output shard is read straight from the source
// blocks that overlap it (CheckpointReader) and written before the next is read, so memory holds
// one output shard at a time, whatever the model size. In f32 the values and moments are copied
// bit for bit; in bf16 each is rounded to nearest even (the loader widens it back to f32).
#pragma once

#include <filesystem>
#include <vector>

#include "core/dtype.h"

namespace tessera::checkpoint {

struct ConvertOptions {
  int tensor_parallel = 1;
  DType dtype = DType::f32;   // f32 or bf16
  bool weights_only = false;  // leave out Adam's moments (the output cannot resume training)
};

struct ConvertReport {
  std::filesystem::path source, out;  // the checkpoint directory read, and the one written
  int64_t step = 0;
  int source_tensor_parallel = 1;
  bool with_optimizer = false;  // moments copied (the source had them and not weights_only)
  int64_t tensors = 0, bytes = 0;  // written, over all shards (tensor data only)
};

// Reads the checkpoint `source` (a step directory or a save root with `latest`) and writes the
// converted checkpoint to `out` (through out.staging). Step, optimizer step, configuration and
// sampler state carry over; the optimizer step is -1 when no moments are written.
ConvertReport convert_checkpoint(const std::filesystem::path& source, const std::filesystem::path& out,
                                 const ConvertOptions& options);

}  // namespace tessera::checkpoint
