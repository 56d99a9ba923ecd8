#include "kernels/threads.h"

#include <omp.h>

#include <thread>

#include "kernels/cpu/blas.h"
#include "kernels/ops.h"
#include "parallel/mpi_runtime.h"

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
  const int threads = static_cast<int>(std::thread::hardware_concurrency()) / parallel::launcher_local_ranks();
  return threads > 0 ? threads : 1;
}

}  // namespace tessera::kernels
