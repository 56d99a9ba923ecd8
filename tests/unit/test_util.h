// Shared test helpers: random inputs from the test's replayable seed (test_seed.h), central finite
// differences, and element-wise comparison with a tolerance scaled by the value. Every helper here
// reads host tensors; a test on a device copies its results back first (devices.h: on_host).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "test_seed.h"  // rng(): the running test's replayable generator

namespace tessera::testing {

// A host tensor of values uniform in [lo, hi), drawn in double from the test's seed, then
// converted to `dtype`.
inline Tensor random_tensor(const Shape& shape, DType dtype = DType::f64, double lo = -1, double hi = 1) {
  Tensor t = Tensor::empty(shape, DType::f64);
  std::uniform_real_distribution<double> u(lo, hi);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = u(rng());
  return dtype == DType::f64 ? t : t.to(dtype);
}

// A host i32 tensor holding `values`.
inline Tensor int_tensor(const std::vector<int32_t>& values) {
  Tensor t = Tensor::empty({static_cast<int64_t>(values.size())}, DType::i32);
  for (size_t i = 0; i < values.size(); ++i) t.data<int32_t>()[i] = values[i];
  return t;
}

// The elements of a host f32, f64, bf16 or i32 tensor, as doubles.
inline std::vector<double> as_doubles(const Tensor& t) {
  TESSERA_CHECK(t.device().is_cpu(), "as_doubles reads host tensors; copy this one from ",
                device_name(t.device()), " first");
  const Tensor d = t.dtype() == DType::f64 ? t : t.to(DType::f64);
  const double* p = d.data<double>();
  return std::vector<double>(p, p + d.numel());
}

// sum_i a[i] * b[i] of two host f64 tensors.
inline double dot(const Tensor& a, const Tensor& b) {
  TESSERA_CHECK(a.device().is_cpu() && b.device().is_cpu(), "dot reads host tensors");
  TESSERA_CHECK(a.numel() == b.numel(), "dot of ", shape_string(a.shape()), " and ", shape_string(b.shape()));
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += a.data<double>()[i] * b.data<double>()[i];
  return s;
}

// a - b of two host f64 tensors of one shape (what an op that accumulates added).
inline Tensor minus(const Tensor& a, const Tensor& b) {
  TESSERA_CHECK(a.device().is_cpu() && b.device().is_cpu() && a.shape() == b.shape(), "minus of ",
                shape_string(a.shape()), " and ", shape_string(b.shape()));
  Tensor out = Tensor::empty(a.shape(), DType::f64);
  for (int64_t i = 0; i < a.numel(); ++i) out.data<double>()[i] = a.data<double>()[i] - b.data<double>()[i];
  return out;
}

// |got - want| <= atol + rtol * |want| for every element of two host tensors of one shape (f32,
// f64, bf16 or i32, read as doubles). NaN matches only NaN; infinities only themselves. Reports
// the first five elements that differ.
inline void expect_near(const char* what, const Tensor& got, const Tensor& want, double atol, double rtol) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = as_doubles(got), w = as_doubles(want);
  int failures = 0;
  for (size_t i = 0; i < g.size() && failures < 5; ++i) {
    const bool same_special = (std::isnan(g[i]) && std::isnan(w[i])) || (std::isinf(w[i]) && g[i] == w[i]);
    if (same_special || std::abs(g[i] - w[i]) <= atol + rtol * std::abs(w[i])) continue;
    ADD_FAILURE() << what << "[" << i << "]: " << g[i] << ", expected " << w[i] << " (tolerance "
                  << atol + rtol * std::abs(w[i]) << ")";
    ++failures;
  }
}

// Compares `analytic` (dL/dx) with central differences of `loss` in x, element by element, with
// tolerance atol + rtol * |reference|. x and analytic are host f64 tensors; expect_gradient
// perturbs x in place, one element at a time, and calls loss() after each change, so a loss that
// runs on a device copies x there on every call (`Tensor xd = on_device(x); ...`).
inline void expect_gradient(const char* what, Tensor x, const Tensor& analytic,
                            const std::function<double()>& loss, double atol = 1e-7,
                            double rtol = 1e-5, double h = 1e-6) {
  ASSERT_TRUE(x.device().is_cpu() && analytic.device().is_cpu())
      << what << ": expect_gradient perturbs and reads host tensors (x on " << device_name(x.device())
      << ", analytic on " << device_name(analytic.device()) << ")";
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
