// Checkpoint averaging (Vaswani et al. 2017, section 6.1: "averaging the last 5 checkpoints"):
// the element-wise mean of the parameter values of several checkpoints of one run, written as a
// checkpoint without optimizer state.
//
// Streaming: the sum is kept in f64, one buffer per parameter, and the checkpoints are read one
// after the other, tensor by tensor, each block straight from its verified shard (whatever layout
// wrote it - a resumed run may have changed the tensor-parallel size). Memory stays at the f64
// sum (two f32 copies of the model) plus one tensor, whatever the number of checkpoints; the mean
// is rounded to f32 tensor by tensor as the sum is freed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace tessera::checkpoint {

struct AverageReport {
  std::vector<std::filesystem::path> averaged;  // the checkpoint directories, oldest first
  std::vector<int64_t> steps;                   // their steps
  std::filesystem::path out;
  int64_t step = 0;        // the newest step: the output's step
  int64_t parameters = 0;  // elements averaged per checkpoint
};

// Averages the checkpoints `dirs` (oldest first) into `out`, a tp 1, f32 checkpoint with the
// newest one's step, configuration and sampler state, and optimizer step -1. Every checkpoint
// must hold the model of the newest one's configuration (error naming the one that does not).
AverageReport average_checkpoints(const std::vector<std::filesystem::path>& dirs, const std::filesystem::path& out);

// The newest `last` complete checkpoints of the save root `root` (list_checkpoints), oldest first;
// throws naming --last when the root holds fewer.
std::vector<std::filesystem::path> newest_checkpoints(const std::filesystem::path& root, int64_t last);

// "<root>/average-last-<N>-step-<newest step as 8 digits>": outside the step-* pattern, so
// retention never prunes it and `latest` never names it.
std::filesystem::path default_average_directory(const std::filesystem::path& root, int64_t last, int64_t step);

}  // namespace tessera::checkpoint
