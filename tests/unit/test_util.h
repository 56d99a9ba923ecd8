// Shared test helpers: random inputs from the test's replayable seed (test_seed.h) and central finite differences.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "core/tensor.h"
#include "test_seed.h"  // rng(): the running test's replayable generator

namespace tessera::testing {


inline Tensor random_tensor(const Shape& shape, DType dtype = DType::f64, double lo = -1, double hi = 1) {
  Tensor t = Tensor::empty(shape, DType::f64);
  std::uniform_real_distribution<double> u(lo, hi);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = u(rng());
  return dtype == DType::f64 ? t : t.to(dtype);
}

inline Tensor int_tensor(const std::vector<int32_t>& values) {
  Tensor t = Tensor::empty({static_cast<int64_t>(values.size())}, DType::i32);
  for (size_t i = 0; i < values.size(); ++i) t.data<int32_t>()[i] = values[i];
  return t;
}

inline double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += a.data<double>()[i] * b.data<double>()[i];
  return s;
}

// Compares `analytic` (dL/dx) with central differences of `loss` in x, element by element, with
// tolerance atol + rtol * |reference|.
inline void expect_gradient(const char* what, Tensor x, const Tensor& analytic,
                            const std::function<double()>& loss, double atol = 1e-7,
                            double rtol = 1e-5, double h = 1e-6) {
  ASSERT_EQ(x.shape(), analytic.shape()) << what;
  double* p = x.data<double>();
  int failures = 0;
  for (int64_t i = 0; i < x.numel() && failures < 5; ++i) {
    const double saved = p[i];
    p[i] = saved + h;
    const double up = loss();
    p[i] = saved - h;
    const double down = loss();
    p[i] = saved;
    const double numeric = (up - down) / (2 * h);
    const double got = analytic.data<double>()[i];
    if (std::abs(got - numeric) > atol + rtol * std::abs(numeric)) {
      ADD_FAILURE() << what << "[" << i << "]: analytic " << got << " vs finite difference " << numeric;
      ++failures;
    }
  }
}

}  // namespace tessera::testing
