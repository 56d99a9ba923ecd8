// Matrix products through OpenBLAS's cblas_{s,d}gemm (row-major).
#include <cblas.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/threads.h"

namespace tessera::kernels::cpu {

template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 const float* b, float beta, float* c) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
}

template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                  const double* b, double beta, double* c) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
}

template <typename T>
void batched_gemm(bool ta, bool tb, int64_t batch, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  const T* b, T beta, T* c) {
  SingleThreadedBlas guard;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < batch; ++i)
    gemm<T>(ta, tb, m, n, k, alpha, a + i * m * k, b + i * k * n, beta, c + i * m * n);
}

template void batched_gemm<float>(bool, bool, int64_t, int64_t, int64_t, int64_t, float, const float*,
                                  const float*, float, float*);
template void batched_gemm<double>(bool, bool, int64_t, int64_t, int64_t, int64_t, double, const double*,
                                   const double*, double, double*);

}  // namespace tessera::kernels::cpu
