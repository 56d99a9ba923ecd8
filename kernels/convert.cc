// dst = src in another element type (f32, f64, bf16); bf16 rounds to nearest even.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {
namespace {
void check_storage_dtype(const Tensor& t, const char* name) {
  TESSERA_CHECK(t.defined(), "convert: tensor '", name, "' is undefined");
  TESSERA_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64 || t.dtype() == DType::bf16,
                "convert: tensor '", name, "' is ", dtype_name(t.dtype()), ", expected f32, f64 or bf16");
}

template <typename From>
void convert_from(const From* src, const Tensor& dst, int64_t n) {
  switch (dst.dtype()) {
    case DType::f32: cpu::convert(src, static_cast<float*>(dst.raw()), n); break;
    case DType::f64: cpu::convert(src, static_cast<double*>(dst.raw()), n); break;
    case DType::bf16: cpu::convert(src, static_cast<uint16_t*>(dst.raw()), n); break;
    default: TESSERA_FAIL("convert: unsupported dtype ", dtype_name(dst.dtype()));
  }
}
}  // namespace

void convert(const Tensor& src, Tensor& dst) {
  check_storage_dtype(src, "src");
  check_storage_dtype(dst, "dst");
  TESSERA_CHECK(dst.device() == src.device(), "convert: tensor 'dst' is on ", device_name(dst.device()),
                " but 'src' is on ", device_name(src.device()));
  check_shape(dst, src.shape(), "convert", "dst");
#if defined(TESSERA_WITH_CUDA)
  if (src.device().is_cuda()) return cuda::convert(src, dst);
#endif
  const int64_t n = src.numel();
  if (n == 0) return;
  switch (src.dtype()) {
    case DType::f32: convert_from(static_cast<const float*>(src.raw()), dst, n); break;
    case DType::f64: convert_from(static_cast<const double*>(src.raw()), dst, n); break;
    case DType::bf16: convert_from(static_cast<const uint16_t*>(src.raw()), dst, n); break;
    default: TESSERA_FAIL("convert: unsupported dtype ", dtype_name(src.dtype()));
  }
}

}  // namespace tessera::kernels
