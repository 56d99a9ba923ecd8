// The PyTorch eager anchor of tessera-bench's step table: tools/bench_torch_step.py, run as a
// child process, times a training step of the same model (torch.nn.Transformer mapped onto
// Tessera's by tools/load_into_pytorch.py) on a batch of the same sentence lengths, at the same
// thread count. Tessera itself never needs Python: without python3 or torch the anchor is skipped
// and says why.
#pragma once

#include <string>
#include <vector>

#include "model/batch.h"
#include "model/config.h"

namespace tessera::train {

struct TorchAnchor {
  bool ran = false;
  double best_s = 0, mean_s = 0;  // step times
  double tokens = 0;              // source + target tokens per step (EOS and BOS included)
  double tokens_per_s = 0;        // over the best step, as tessera-bench reports its own
  std::string torch_version;
  std::string why_not;            // when !ran: the reason, for the table's note
};

// Runs the script for `model` on `batch` (one sentence per pair: source length + 1, target
// length + 1 tokens) with torch.set_num_threads(threads), `steps` timed steps after
// `warmup_steps`. The script is tools/bench_torch_step.py under the working directory or under
// the parent of the executable's directory (a build directory in the repository).
TorchAnchor time_torch_step(const model::ModelConfig& model, const std::vector<model::TokenPair>& batch, int threads,
                            int steps, int warmup_steps);

}  // namespace tessera::train
