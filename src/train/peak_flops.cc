#include "train/peak_flops.h"

#include <algorithm>
#include <chrono>

namespace tessera::train {

double measure_matmul_peak(Device device, kernels::Precision precision) {
  constexpr int64_t n = 1024;
  const Tensor a = Tensor::zeros({n, n}, DType::f32, device), b = Tensor::zeros({n, n}, DType::f32, device);
  Tensor c = Tensor::zeros({n, n}, DType::f32, device);
  // Reading one element back waits for the device, so the clock covers the product.
  const auto wait = [&] { (void)c.rows(0, 1).to(Device::cpu); };
  kernels::matmul(a, false, b, false, c, 1.0, 0.0, precision);  // warm-up: threads, caches, clocks
  wait();
  double best = 1e30;
  for (int rep = 0; rep < 4; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    kernels::matmul(a, false, b, false, c, 1.0, 0.0, precision);
    wait();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return 2.0 * n * n * n / best;
}

}  // namespace tessera::train
