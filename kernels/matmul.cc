// Matrix products: shape checks, then the BLAS (cpu/matmul_cpu.cc) or cuBLAS (cuda/matmul.cu).
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {
namespace {
struct GemmDims {
  int64_t m, n, k;
};
GemmDims gemm_dims(const char* op, const Shape& a, bool ta, const Shape& b, bool tb, const Shape& c) {
  const size_t r = a.size() - 2;  // index of the row dimension
  const int64_t m = ta ? a[r + 1] : a[r], ka = ta ? a[r] : a[r + 1];
  const int64_t kb = tb ? b[r + 1] : b[r], n = tb ? b[r] : b[r + 1];
  TESSERA_CHECK(ka == kb, op, ": inner dimensions differ: op(a) is ", m, "x", ka, ", op(b) is ", kb,
                "x", n, " (a ", shape_string(a), ", b ", shape_string(b), ")");
  TESSERA_CHECK(c[r] == m && c[r + 1] == n, op, ": output c has shape ", shape_string(c),
                ", expected ", m, "x", n);
  return {m, n, ka};
}

// The operand of a bf16 product: on a GPU a bf16 tensor that cuBLAS reads (tensor cores), on the
// CPU an f32 copy holding the same bf16 values for the f32 BLAS. Either way the product sums the
// same bf16 values in f32.
Tensor bf16_operand(const Tensor& t, const char* op, const char* name) {
  TESSERA_CHECK(t.dtype() == DType::f32, op, ": bf16 precision needs f32 operands, but '", name, "' is ",
                dtype_name(t.dtype()));
  if (t.device().is_cuda()) {
    Tensor half = Tensor::empty(t.shape(), DType::bf16, t.device());
    convert(t, half);
    return half;
  }
  Tensor rounded = Tensor::empty(t.shape(), DType::f32, t.device());
  cpu::round_to_bf16(t.data<float>(), rounded.data<float>(), t.numel());
  return rounded;
}
}  // namespace

void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double alpha,
            double beta, Precision precision) {
  check_operands("matmul", {{a, "a"}, {b, "b"}, {c, "c"}});
  check_ndim(a, 2, "matmul", "a");
  check_ndim(b, 2, "matmul", "b");
  check_ndim(c, 2, "matmul", "c");
  const GemmDims d = gemm_dims("matmul", a.shape(), trans_a, b.shape(), trans_b, c.shape());
  const bool bf16 = precision == Precision::bf16;
  const Tensor a_in = bf16 ? bf16_operand(a, "matmul", "a") : a, b_in = bf16 ? bf16_operand(b, "matmul", "b") : b;
#if defined(TESSERA_WITH_CUDA)
  if (a.device().is_cuda()) return cuda::matmul(a_in, trans_a, b_in, trans_b, c, alpha, beta);
#endif
  TESSERA_DISPATCH_FLOAT(a.dtype(), "matmul",
                         cpu::gemm<scalar_t>(trans_a, trans_b, d.m, d.n, d.k, alpha, a_in.data<scalar_t>(),
                                             b_in.data<scalar_t>(), beta, c.data<scalar_t>()));
}

namespace {
// Both batched products: b's matrices hold b_rows rows each and start every b.dim(1) * b.dim(2)
// elements (b_rows == b.dim(1): packed back to back).
void batched_product(const char* op, const Tensor& a, bool trans_a, const Tensor& b, int64_t b_rows, bool trans_b,
                     Tensor& c, double alpha, double beta, Precision precision) {
  check_operands(op, {{a, "a"}, {b, "b"}, {c, "c"}});
  check_ndim(a, 3, op, "a");
  check_ndim(b, 3, op, "b");
  check_ndim(c, 3, op, "c");
  TESSERA_CHECK(a.dim(0) == b.dim(0) && a.dim(0) == c.dim(0), op, ": batch sizes differ (a ",
                shape_string(a.shape()), ", b ", shape_string(b.shape()), ", c ", shape_string(c.shape()), ")");
  TESSERA_CHECK(b_rows >= 0 && b_rows <= b.dim(1), op, ": ", b_rows, " leading rows of b requested, but b ",
                shape_string(b.shape()), " holds ", b.dim(1));
  const Shape b_used = {b.dim(0), b_rows, b.dim(2)};
  const GemmDims d = gemm_dims(op, a.shape(), trans_a, b_used, trans_b, c.shape());
  const int64_t b_stride = b.dim(1) * b.dim(2);
  const bool bf16 = precision == Precision::bf16;
  const Tensor a_in = bf16 ? bf16_operand(a, op, "a") : a;
  const Tensor b_in = bf16 ? bf16_operand(b, op, "b") : b;
#if defined(TESSERA_WITH_CUDA)
  if (a.device().is_cuda()) return cuda::batched_matmul(a_in, trans_a, b_in, b_rows, trans_b, c, alpha, beta);
#endif
  TESSERA_DISPATCH_FLOAT(a.dtype(), op,
                         cpu::batched_gemm<scalar_t>(trans_a, trans_b, a.dim(0), d.m, d.n, d.k, alpha,
                                                     a_in.data<scalar_t>(), b_in.data<scalar_t>(), b_stride, beta,
                                                     c.data<scalar_t>()));
}
}  // namespace

void batched_matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c,
                    double alpha, double beta, Precision precision) {
  batched_product("batched_matmul", a, trans_a, b, b.ndim() == 3 ? b.dim(1) : 0, trans_b, c, alpha, beta, precision);
}

void batched_matmul_leading_rows(const Tensor& a, bool trans_a, const Tensor& b, int64_t b_rows, bool trans_b,
                                 Tensor& c, double alpha, double beta, Precision precision) {
  batched_product("batched_matmul_leading_rows", a, trans_a, b, b_rows, trans_b, c, alpha, beta, precision);
}

}  // namespace tessera::kernels
