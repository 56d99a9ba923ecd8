// Where a rank computes. `--device cpu` is the host; `--device cuda` gives each rank one GPU,
// chosen from its rank among the ranks on its node (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)),
// so mpirun, srun and mpirun inside a batch job agree. It must run before any other CUDA call.
#pragma once

#include <string>
#include <string_view>

#include "core/dtype.h"

namespace tessera::parallel {

// "cpu" or "cuda"; anything else is an error naming --device.
DeviceKind parse_device_kind(std::string_view text);

// This process's rank among the processes on its node, their number, and the node's name.
struct NodePlacement {
  int local_rank = 0;
  int local_ranks = 1;
  std::string host;
};
// From MPI once init_mpi has run (node_ranks; no communication), else a single process.
NodePlacement node_placement();

// Chooses this rank's device: the host, or the GPU of its local rank. For cuda, throws with a
// clear message when the build has no CUDA backend, no GPU is visible, the node has more ranks
// than visible GPUs, or the GPU's architecture is not built for. Logs the choice.
Device select_compute_device(std::string_view kind_text);

}  // namespace tessera::parallel
