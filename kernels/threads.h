// How many threads this rank uses for BLAS and its own loops (--threads).
#pragma once

namespace tessera::kernels {

// Cores on this node divided among the ranks on this node (OMPI_COMM_WORLD_LOCAL_SIZE), at least 1.
int default_threads_per_rank();

}  // namespace tessera::kernels
