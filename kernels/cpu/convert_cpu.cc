// Element type conversion among f32, f64 and bf16 (as uint16_t bits), one element at a time with
// convert_element (math.h): bf16 rounds to nearest even, exactly as Tensor::to does.
#include "kernels/cpu/cpu_ops.h"

namespace tessera::kernels::cpu {

template <typename To, typename From>
void convert(const From* src, To* dst, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] = convert_element<To>(src[i]);
}

void round_to_bf16(const float* src, float* dst, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] = float_from_bf16(bf16_from_float(src[i]));
}

#define INSTANTIATE_FROM(From)                                         \
  template void convert<float, From>(const From*, float*, int64_t);    \
  template void convert<double, From>(const From*, double*, int64_t);  \
  template void convert<uint16_t, From>(const From*, uint16_t*, int64_t);
INSTANTIATE_FROM(float)
INSTANTIATE_FROM(double)
INSTANTIATE_FROM(uint16_t)

}  // namespace tessera::kernels::cpu
