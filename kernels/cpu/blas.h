// The CBLAS header and the "run single-threaded" call of whichever BLAS the build found
// (CMake's FindBLAS, BLA_VENDOR; see CMakeLists.txt). Tessera's own OpenMP pool splits large
// products into per-thread panels, so the BLAS must never start a pool of its own.
#pragma once

#if defined(TESSERA_BLAS_MKL)
#include <mkl.h>
#elif defined(TESSERA_BLAS_BLIS)
#include <blis.h>
#else
#include <cblas.h>
#endif

#if defined(TESSERA_BLAS_OPENBLAS)
extern "C" void openblas_set_num_threads(int num_threads);
#endif

namespace tessera::kernels::cpu {

// Makes the BLAS run every call on the calling thread. For a BLAS with no such call
// (TESSERA_BLAS_GENERIC), set its own environment variable (e.g. OMP_NUM_THREADS for a threaded
// reference BLAS) instead.
inline void blas_set_single_threaded() {
#if defined(TESSERA_BLAS_OPENBLAS)
  openblas_set_num_threads(1);
#elif defined(TESSERA_BLAS_MKL)
  mkl_set_num_threads(1);
#elif defined(TESSERA_BLAS_BLIS)
  bli_thread_set_num_threads(1);
#endif
}

}  // namespace tessera::kernels::cpu
