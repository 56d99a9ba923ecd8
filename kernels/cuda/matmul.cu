// Matrix products on the GPU through cuBLAS. cuBLAS is column-major and Tessera is row-major; a
// row-major m x n buffer read column-major is the n x m transpose, so we ask cuBLAS for
//   C^T = op(B)^T op(A)^T
// which it writes, column-major, into exactly the bytes of the row-major C = op(A) op(B).
// f32 goes through cublasSgemm, f64 (the finite-difference gradient tests) through cublasDgemm,
// and bf16 operands (mixed precision, kernels::Precision::bf16) through cublasGemmEx with an f32
// output and CUBLAS_COMPUTE_32F: bf16 products summed in f32 on the tensor cores (the cuBLAS
// documentation's cublasGemmEx table lists A/B CUDA_R_16BF with C CUDA_R_32F under COMPUTE_32F).
#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels::cuda {
namespace {

// One cuBLAS handle per thread, created on first use: a handle is bound to the device that is
// current when it is created and must not be shared between threads that use it at once.
class BlasHandle {
 public:
  BlasHandle() { CUBLAS_CHECK(cublasCreate(&handle_)); }
  ~BlasHandle() { (void)cublasDestroy(handle_); }
  BlasHandle(const BlasHandle&) = delete;
  BlasHandle& operator=(const BlasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

// This thread's handle, bound to the rank's stream so its products queue behind the kernels
// before them (setting the stream each call is cheap and survives a re-selected device).
cublasHandle_t blas_handle() {
  thread_local BlasHandle handle;
  CUBLAS_CHECK(cublasSetStream(handle.get(), stream()));
  return handle.get();
}

int as_int(int64_t v, const char* op) {
  TESSERA_CHECK(v <= INT_MAX, op, ": dimension ", v, " exceeds cuBLAS's 32-bit int");
  return static_cast<int>(v);
}

// The sizes of one row-major product c[m, n] = op(a)[m, k] op(b)[k, n], read from the last two
// dimensions of each operand, with the cuBLAS arguments of the transposed column-major call.
struct Gemm {
  int m, n, k;
  cublasOperation_t op_a, op_b;
  int lda, ldb, ldc;
};

// b_rows: the rows of each b matrix that take part (b.dim(-2) unless reading a cache's filled part).
Gemm plan(const Tensor& a, bool trans_a, const Tensor& b, int64_t b_rows, bool trans_b, const char* op) {
  Gemm g;
  g.m = as_int(trans_a ? a.dim(-1) : a.dim(-2), op);
  g.k = as_int(trans_a ? a.dim(-2) : a.dim(-1), op);
  g.n = as_int(trans_b ? b_rows : b.dim(-1), op);
  // A row-major matrix read column-major is already transposed, so a row-major operand that is
  // not transposed is passed as CUBLAS_OP_N and one that is as CUBLAS_OP_T.
  g.op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  g.op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  // Leading dimension = the row length of the stored (row-major) matrix; at least 1 for cuBLAS.
  g.lda = std::max(1, trans_a ? g.m : g.k);
  g.ldb = std::max(1, trans_b ? g.k : g.n);
  g.ldc = std::max(1, g.n);
  return g;
}

// The cuBLAS calls of each precision, under one name.
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta, float* c,
                    int ldc) {
  return cublasSgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const double* alpha, const double* a, int lda, const double* b, int ldb, const double* beta,
                    double* c, int ldc) {
  return cublasDgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
cublasStatus_t gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                    int k, const float* alpha, const float* a, int lda, long long sa, const float* b,
                                    int ldb, long long sb, const float* beta, float* c, int ldc, long long sc,
                                    int batch) {
  return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}
cublasStatus_t gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                    int k, const double* alpha, const double* a, int lda, long long sa,
                                    const double* b, int ldb, long long sb, const double* beta, double* c, int ldc,
                                    long long sc, int batch) {
  return cublasDgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}

template <typename T>
void matmul_typed(const Gemm& g, const Tensor& a, const Tensor& b, Tensor& c, double alpha, double beta) {
  const T ta = static_cast<T>(alpha), tb = static_cast<T>(beta);
  // Operands swapped (b first, then a) and sizes (n, m): the column-major product C^T.
  CUBLAS_CHECK(gemm(blas_handle(), g.op_b, g.op_a, g.n, g.m, g.k, &ta, b.data<T>(), g.ldb, a.data<T>(), g.lda, &tb,
                    c.data<T>(), g.ldc));
}

template <typename T>
void batched_matmul_typed(const Gemm& g, int batch, const Tensor& a, const Tensor& b, long long stride_b,
                          Tensor& c, double alpha, double beta) {
  const T ta = static_cast<T>(alpha), tb = static_cast<T>(beta);
  // a and c are packed back to back, so their strides are one matrix's element count; b's
  // matrices start every stride_b elements.
  const long long stride_a = static_cast<long long>(g.m) * g.k;
  const long long stride_c = static_cast<long long>(g.m) * g.n;
  CUBLAS_CHECK(gemm_strided_batched(blas_handle(), g.op_b, g.op_a, g.n, g.m, g.k, &ta, b.data<T>(), g.ldb, stride_b,
                                    a.data<T>(), g.lda, stride_a, &tb, c.data<T>(), g.ldc, stride_c, batch));
}

// bf16 a and b, f32 c, f32 alpha and beta (the scale type of CUBLAS_COMPUTE_32F).
void matmul_bf16(const Gemm& g, int batch, const Tensor& a, const Tensor& b, long long stride_b, Tensor& c,
                 double alpha, double beta) {
  TESSERA_CHECK(b.dtype() == DType::bf16 && c.dtype() == DType::f32, "matmul: bf16 operands need a bf16 'b' and an "
                "f32 'c', got ", dtype_name(b.dtype()), " and ", dtype_name(c.dtype()));
  const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
  if (batch == 0) {
    CUBLAS_CHECK(cublasGemmEx(blas_handle(), g.op_b, g.op_a, g.n, g.m, g.k, &fa, b.raw(), CUDA_R_16BF, g.ldb, a.raw(),
                              CUDA_R_16BF, g.lda, &fb, c.raw(), CUDA_R_32F, g.ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    return;
  }
  const long long stride_a = static_cast<long long>(g.m) * g.k;
  const long long stride_c = static_cast<long long>(g.m) * g.n;
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(blas_handle(), g.op_b, g.op_a, g.n, g.m, g.k, &fa, b.raw(), CUDA_R_16BF,
                                          g.ldb, stride_b, a.raw(), CUDA_R_16BF, g.lda, stride_a, &fb, c.raw(),
                                          CUDA_R_32F, g.ldc, stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double alpha,
            double beta) {
  const Gemm g = plan(a, trans_a, b, b.dim(-2), trans_b, "matmul");
  if (g.m == 0 || g.n == 0) return;
  if (a.dtype() == DType::bf16) return matmul_bf16(g, 0, a, b, 0, c, alpha, beta);
  TESSERA_DISPATCH_FLOAT(a.dtype(), "matmul", matmul_typed<scalar_t>(g, a, b, c, alpha, beta));
}

void batched_matmul(const Tensor& a, bool trans_a, const Tensor& b, int64_t b_rows, bool trans_b, Tensor& c,
                    double alpha, double beta) {
  const Gemm g = plan(a, trans_a, b, b_rows, trans_b, "batched_matmul");
  const int batch = as_int(a.dim(0), "batched_matmul");
  if (g.m == 0 || g.n == 0 || batch == 0) return;
  const long long stride_b = static_cast<long long>(b.dim(1)) * b.dim(2);
  if (a.dtype() == DType::bf16) return matmul_bf16(g, batch, a, b, stride_b, c, alpha, beta);
  TESSERA_DISPATCH_FLOAT(a.dtype(), "batched_matmul",
                         batched_matmul_typed<scalar_t>(g, batch, a, b, stride_b, c, alpha, beta));
}

}  // namespace tessera::kernels::cuda
