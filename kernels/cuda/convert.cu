// Element type conversion among f32, f64 and bf16 (its bits, uint16_t) as a grid-stride loop of
// convert_element (math.h): bf16 rounds to nearest even, bit for bit as on the CPU.
#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {
namespace {

template <typename To, typename From>
__global__ void convert_kernel(const From* src, To* dst, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) dst[i] = convert_element<To>(src[i]);
}

template <typename To, typename From>
void launch_convert(const From* src, void* dst, int64_t n) {
  convert_kernel<To, From><<<blocks_for(n), kThreads, 0, stream()>>>(src, static_cast<To*>(dst), n);
  check_launch("convert");
}

template <typename From>
void convert_from(const From* src, Tensor& dst, int64_t n) {
  switch (dst.dtype()) {
    case DType::f32: return launch_convert<float>(src, dst.raw(), n);
    case DType::f64: return launch_convert<double>(src, dst.raw(), n);
    case DType::bf16: return launch_convert<uint16_t>(src, dst.raw(), n);
    default: TESSERA_FAIL("convert: unsupported dtype ", dtype_name(dst.dtype()));
  }
}

}  // namespace

void convert(const Tensor& src, Tensor& dst) {
  const int64_t n = src.numel();
  if (n == 0) return;
  if (src.dtype() == dst.dtype()) {
    CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), src.bytes(), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  switch (src.dtype()) {
    case DType::f32: return convert_from(static_cast<const float*>(src.raw()), dst, n);
    case DType::f64: return convert_from(static_cast<const double*>(src.raw()), dst, n);
    case DType::bf16: return convert_from(static_cast<const uint16_t*>(src.raw()), dst, n);
    default: TESSERA_FAIL("convert: unsupported dtype ", dtype_name(src.dtype()));
  }
}

}  // namespace tessera::kernels::cuda
