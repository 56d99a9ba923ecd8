// Matrix products through the BLAS's cblas_{s,d}gemm (row-major; OpenBLAS by default), and
// oneDNN's dnnl_sgemm for f32 products of a few rows (a decoding step's).
//
// One pool of threads does all the work: OpenMP's. OpenBLAS runs single-threaded, and a large
// product is cut into one panel of C per OpenMP thread (rows of C when it is at least as tall as
// it is wide, else columns), each a single-threaded gemm over the full inner dimension. With
// OpenBLAS's own thread pool next to OpenMP's, the two pools spin-wait on the same cores and a
// 2-core training step ran several times slower than with either pool alone.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>

#include "core/error.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/cpu_ops.h"

namespace tessera::kernels::cpu {
namespace {

// Below this many multiply-adds a product runs on the calling thread alone.
constexpr int64_t kParallelMinMacs = int64_t{96} * 96 * 96;
// Panels are multiples of this many rows or columns (the micro-kernels' tile width).
constexpr int64_t kPanelAlign = 16;

void blas_single_threaded_once() {
  static const bool once = [] {
    blas_set_single_threaded();
    return true;
  }();
  (void)once;
}

// An f32 product of at most this many rows goes through oneDNN. OpenBLAS packs all of b (the
// weights) on every call, which for the 2-64 rows of a decoding step cost about half as much as
// the multiply-adds; oneDNN reads b in place at these sizes (measured on one EPYC core: 0.75-0.9x
// OpenBLAS's time at 8-64 rows, 0.2-0.5x at 2-6; above 64 rows it packs as well and is no faster).
constexpr int64_t kOneDnnMaxRows = 64;

// Whether oneDNN takes the product. Except: b not transposed, with rows longer than 256 floats,
// below 24 rows, where oneDNN walks b's rows at a stride of 2-4 KiB that maps them onto the same L1
// sets (measured 1.2-2x OpenBLAS's time at 8-16 rows against b of 512 and 1024 columns).
bool onednn_takes(bool ta, bool tb, int64_t m, int64_t ldb) {
  return !ta && m >= 2 && m <= kOneDnnMaxRows && (tb || ldb <= 256 || m >= 24);
}

// c [m, n] (leading dimension ldc) = alpha op(a) op(b) + beta c, with explicit leading dimensions.
// A single row goes through gemv: gemm would first pack all of b for one row of products (the
// weights, when a decoder is down to its last sentence; the cached keys of one attention query),
// which took 4-5 times as long here.
void blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (onednn_takes(ta, tb, m, ldb) && k > 0) {
    const dnnl_status_t status = dnnl_sgemm('N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    TESSERA_CHECK(status == dnnl_success, "matmul: oneDNN's sgemm failed (status ", static_cast<int>(status), ") on a ",
                  m, "x", k, " by ", k, "x", n, " product", tb ? " (b transposed)" : "");
    return;
  }
  if (m == 1 && k > 0) {
    // beta = 0 overwrites c, whatever it held (NaN included), as gemm does.
    if (beta == 0.0f) std::fill(c, c + n, 0.0f);
    cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, tb ? n : k, tb ? k : n, alpha, b, ldb, a,
                ta ? lda : 1, beta, c, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda,
              b, ldb, beta, c, ldc);
}
void blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda,
              b, ldb, beta, c, ldc);
}

// The whole product on this thread.
template <typename T>
void gemm_serial(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b, T beta,
                 T* c) {
  blas(ta, tb, m, n, k, alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
}

// Rows [i0, i1) of c, or columns [j0, j1): op(a) rows i are row i of a (or its column i when
// transposed); op(b) columns j are column j of b (or its row j when transposed).
template <typename T>
void gemm_rows(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b, T beta, T* c,
               int64_t i0, int64_t i1) {
  blas(ta, tb, i1 - i0, n, k, alpha, ta ? a + i0 : a + i0 * k, ta ? m : k, b, tb ? k : n, beta, c + i0 * n, n);
}
template <typename T>
void gemm_cols(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b, T beta, T* c,
               int64_t j0, int64_t j1) {
  blas(ta, tb, m, j1 - j0, k, alpha, a, ta ? m : k, tb ? b + j0 * k : b + j0, tb ? k : n, beta, c + j0, n);
}

}  // namespace

template <typename T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b, T beta, T* c) {
  blas_single_threaded_once();
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int64_t extent = std::max(m, n);
  const int64_t panels = std::min<int64_t>(threads, extent / kPanelAlign);
  if (panels < 2 || m * n * k < kParallelMinMacs) return gemm_serial(ta, tb, m, n, k, alpha, a, b, beta, c);
  const bool by_rows = m >= n;
#pragma omp parallel for num_threads(panels) schedule(static)
  for (int64_t p = 0; p < panels; ++p) {
    // Panel p's share of the extent, cut at multiples of kPanelAlign.
    const int64_t tiles = (extent + kPanelAlign - 1) / kPanelAlign;
    const int64_t lo = std::min(extent, tiles * p / panels * kPanelAlign);
    const int64_t hi = std::min(extent, tiles * (p + 1) / panels * kPanelAlign);
    if (lo == hi) continue;
    if (by_rows) gemm_rows(ta, tb, m, n, k, alpha, a, b, beta, c, lo, hi);
    else gemm_cols(ta, tb, m, n, k, alpha, a, b, beta, c, lo, hi);
  }
}

template <typename T>
void batched_gemm(bool ta, bool tb, int64_t batch, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  const T* b, int64_t b_stride, T beta, T* c) {
  blas_single_threaded_once();
#pragma omp parallel for schedule(static) if (batch * m * n * k >= kParallelMinMacs)
  for (int64_t i = 0; i < batch; ++i)
    gemm_serial<T>(ta, tb, m, n, k, alpha, a + i * m * k, b + i * b_stride, beta, c + i * m * n);
}

#define INSTANTIATE(T)                                                                                  \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, const T*, T, T*);           \
  template void batched_gemm<T>(bool, bool, int64_t, int64_t, int64_t, int64_t, T, const T*, const T*, int64_t, \
                                T, T*);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
