#include "kernels/threads.h"

#include <omp.h>

#include <cstdlib>
#include <thread>

#include "kernels/cpu/blas.h"
#include "kernels/ops.h"

namespace tessera::kernels {
namespace {
int g_threads = 1;
}

// OpenMP's threads do all the work, matrix products included (kernels/cpu/matmul_cpu.cc cuts them
// into per-thread panels); the BLAS stays single-threaded so its pool never competes with OpenMP's.
void set_num_threads(int threads) {
  g_threads = threads < 1 ? 1 : threads;
  omp_set_num_threads(g_threads);
  cpu::blas_set_single_threaded();
}

int num_threads() { return g_threads; }

int default_threads_per_rank() {
  const unsigned cores = std::thread::hardware_concurrency();
  int local_ranks = 1;
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE", "MPI_LOCALNRANKS"}) {
    if (const char* v = std::getenv(var)) {
      local_ranks = std::atoi(v);
      break;
    }
  }
  const int threads = static_cast<int>(cores) / (local_ranks > 0 ? local_ranks : 1);
  return threads > 0 ? threads : 1;
}

}  // namespace tessera::kernels
