// How much memory a training run needs on each rank, estimated from the options before anything
// is allocated, so an absurd size (--encoder-layers 1000000, --batch-sentences 1000000000) fails at
// start-up with a message naming the option instead of running for minutes or dying in
// std::bad_alloc. The estimate is a lower bound: it counts the large buffers only.
#pragma once

#include <string>

#include "train/options.h"

namespace tessera::train {

struct MemoryEstimate {
  double parameters = 0;   // bytes of this rank's parameter shard (f32)
  double optimizer = 0;    // gradients and Adam's two moments: 3x the parameters
  double activations = 0;  // what forward keeps for backward, for one micro-batch, plus logits
  double total() const { return parameters + optimizer + activations; }
};

// Computed in double precision, so sizes that overflow int64 give a huge number, not a wrap.
MemoryEstimate estimate_rank_memory(const TrainOptions& o);

// Bytes one rank may use: the smaller of the machine's memory and the cgroup limit (a SLURM job's
// allocation), divided among the ranks on this node (as the launcher announces them).
double rank_memory_budget();

// Throws tessera::Error when the estimate exceeds `budget_bytes`, naming the option that is
// furthest above its default and the memory the run would need.
void check_memory_fits(const TrainOptions& o, double budget_bytes);

// "1.5 GiB", "3.2 TiB" and so on.
std::string format_bytes(double bytes);

}  // namespace tessera::train
