// How much memory a training run needs on each rank, estimated from the options before anything
// is allocated. Two uses:
//   - at start-up, an absurd size (--encoder-layers 1000000, --batch-sentences 1000000000) fails
//     with a message naming the option instead of running for minutes or dying in std::bad_alloc;
//   - `tessera-bench --memory` prints the per-GPU table of docs/performance.md, so a user can size
//     a job (base / big, fp32 / bf16, with and without ZeRO-1).
// The estimate counts the large buffers only (it is a lower bound): the parameter, gradient and
// moment buffers exactly, and the activations that forward keeps for backward as the model code
// keeps them (src/model/*.cc, parallel/tensor_parallel_linear.cc), for the largest micro-batch the
// options allow. Not counted: the allocators' slack (rounding, cached free blocks), small tensors
// (lengths, ids, per-row statistics of the loss), short-lived temporaries inside one sublayer's
// backward, communication buffers and the process itself (libraries, MPI, BLAS workspaces).
#pragma once

#include <string>

#include "train/options.h"

namespace tessera::train {

// The padded shape of one micro-batch on one rank (every rank of a tensor-parallel group sees the
// same micro-batch). Sentences are a real number so the estimate is linear in the token budget.
struct MicroBatchShape {
  double sentences = 0;
  double source_len = 0, target_len = 0;  // padded positions: ids + eos (source), bos + ids (target)
  double tokens() const { return sentences * (source_len + target_len); }
};

// The largest micro-batch the options allow on one rank: for a corpus, --max-tokens padded tokens
// per global batch cut into --data-parallel x --accumulate slices, with the longest sentences
// --max-len allows (the worst batch of a length-bucketed plan: attention grows with the length);
// for a synthetic task, --batch-sentences of --max-len tokens cut the same way.
MicroBatchShape largest_micro_batch(const TrainOptions& o);

struct MemoryEstimate {
  double parameters = 0;     // fp32 master copy of this rank's tensor-parallel shard, 4 B per element
  double gradients = 0;      // fp32, the same layout as the parameters (ZeRO-1 keeps them whole)
  double moments = 0;        // Adam's m and v, fp32, 8 B per element; 1/dp of them with --shard-optimizer
  double bf16_operands = 0;  // --precision bf16: the rounded copies of the largest product's two operands
  double activations = 0;    // kept by forward for backward for one micro-batch, plus logits and their gradient
  double total() const { return parameters + gradients + moments + bf16_operands + activations; }
};

// Computed in double precision, so sizes that overflow int64 give a huge number, not a wrap.
// Uses o.model, o.tensor_parallel, o.data_parallel, o.precision, o.shard_optimizer and o.device
// (a bf16 operand is 2 B on a GPU, a rounded f32 copy of 4 B on the CPU).
MemoryEstimate estimate_rank_memory(const TrainOptions& o, const MicroBatchShape& batch);
MemoryEstimate estimate_rank_memory(const TrainOptions& o);  // for largest_micro_batch(o)

// Elements of this rank's parameter shard: split tensors divided by --tensor-parallel (the
// vocabulary padded to a multiple of it), replicated ones (layer norms, biases after a reduction)
// whole.
double rank_parameter_count(const model::ModelConfig& m, int tensor_parallel);

// Bytes one rank may use: the smaller of the machine's memory and the cgroup limit (a SLURM job's
// allocation), divided among the ranks on this node (as the launcher announces them).
double rank_memory_budget();

// Throws tessera::Error when the estimate exceeds `budget_bytes`, naming the option that is
// furthest above its default and the memory the run would need.
void check_memory_fits(const TrainOptions& o, double budget_bytes);

// "1.5 GiB", "3.2 TiB" and so on.
std::string format_bytes(double bytes);

}  // namespace tessera::train
