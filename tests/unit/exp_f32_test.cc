// kernels::exp_f32, the exp that the softmax and cross-entropy formulas of kernels/math.h use for
// f32 on both backends: its error against the library's double exp over the whole range it
// claims, and its ends (underflow to 0, overflow to +inf, NaN).
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>

#include "kernels/math.h"

namespace tessera::kernels {
namespace {

// |exp_f32(x) - exp(x)| in units of the f32 spacing at exp(x).
double ulps_off(float x) {
  const double exact = std::exp(static_cast<double>(x));
  const double ulp = std::ldexp(1.0, std::ilogb(exact) - 23);
  return std::fabs(static_cast<double>(exp_f32(x)) - exact) / ulp;
}

TEST(ExpF32, WithinTwoUlpsOverTheNormalRange) {
  // Every 2^-10 from the underflow bound to the overflow bound: 180k points, crossing every
  // reduction interval k ln 2 +- ln 2 / 2 many times.
  double worst = 0;
  float worst_x = 0;
  for (double x = -87.33; x <= 88.37; x += 1.0 / 1024) {
    const double off = ulps_off(static_cast<float>(x));
    if (off > worst) worst = off, worst_x = static_cast<float>(x);
  }
  EXPECT_LE(worst, 2.0) << "at x = " << worst_x;
  // Where the softmax and cross-entropy callers live (x <= 0), densely near 0.
  for (float x = -1.0f; x <= 0.0f; x += 1e-5f) ASSERT_LE(ulps_off(x), 2.0) << "x = " << x;
}

TEST(ExpF32, ExactAtZero) {
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
  EXPECT_EQ(exp_f32(-0.0f), 1.0f);
}

TEST(ExpF32, UnderflowsToZeroAndOverflowsToInfinity) {
  EXPECT_EQ(exp_f32(-87.4f), 0.0f);
  EXPECT_EQ(exp_f32(-1000.0f), 0.0f);
  EXPECT_EQ(exp_f32(-std::numeric_limits<float>::infinity()), 0.0f);  // a masked score
  EXPECT_GT(exp_f32(-87.3f), 0.0f);
  EXPECT_GE(exp_f32(-87.3f), FLT_MIN);
  EXPECT_TRUE(std::isinf(exp_f32(88.4f)));
  EXPECT_TRUE(std::isinf(exp_f32(std::numeric_limits<float>::infinity())));
  EXPECT_TRUE(std::isfinite(exp_f32(88.37f)));
}

TEST(ExpF32, NanStaysNan) { EXPECT_TRUE(std::isnan(exp_f32(std::numeric_limits<float>::quiet_NaN()))); }

TEST(ExpF32, ExpOfPicksTheLibraryExpForDoubles) {
  for (double x : {-700.0, -1.5, 0.25, 3.0}) EXPECT_EQ(exp_of(x), std::exp(x));
  EXPECT_EQ(exp_of(0.5f), exp_f32(0.5f));
}

}  // namespace
}  // namespace tessera::kernels
