// The CUDA backend through the op dispatchers, in f32 as training runs it, against a plain host
// reference in double precision: matrix products in all four transpose combinations with alpha and
// beta, batched products, and bias + activation forward and backward on shapes large enough that
// the grid-stride loops take more than one lap. (Every op's gradient, in f64 on every device, is
// in ops_grad_test.cc; f32 CUDA against the CPU for the other training ops in ops_device_test.cc.)
// Skips, saying why, where the backend is not built or no GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "devices.h"
#include "kernels/math.h"
#include "kernels/ops.h"
#include "test_util.h"

namespace tessera::kernels {
namespace {

constexpr Device kCuda = Device::cuda(0);

class CudaBackend : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = ::tessera::testing::device_unavailable_reason(kCuda);
    if (!why.empty()) GTEST_SKIP() << why;
  }

  // A host f32 tensor of uniform values in [lo, hi) from the test's replayable seed.
  static Tensor random(const Shape& shape, double lo = -1.0, double hi = 1.0) {
    return ::tessera::testing::random_tensor(shape, DType::f32, lo, hi);
  }
};

// |got - want| <= atol + rtol * |want| for every element.
void expect_close(const Tensor& got_host, const std::vector<double>& want, double atol, double rtol,
                  const char* what) {
  ASSERT_EQ(got_host.numel(), static_cast<int64_t>(want.size())) << what;
  const float* g = got_host.data<float>();
  int reported = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double tol = atol + rtol * std::abs(want[i]);
    if (!(std::abs(g[i] - want[i]) <= tol) && reported++ < 5)
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", expected " << want[i]
                    << " (tolerance " << tol << ")";
  }
}

// c = alpha * op(a) op(b) + beta * c for one row-major product, in double; beta == 0 does not
// read c (BLAS convention), so c may hold anything then.
std::vector<double> reference_gemm(const float* a, bool ta, const float* b, bool tb, const float* c,
                                   int64_t m, int64_t n, int64_t k, double alpha, double beta) {
  std::vector<double> out(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p)
        s += double(ta ? a[p * m + i] : a[i * k + p]) * double(tb ? b[j * k + p] : b[p * n + j]);
      out[i * n + j] = alpha * s + (beta == 0 ? 0.0 : beta * c[i * n + j]);
    }
  return out;
}

// Distinct m, n, k so that any mix-up of dimensions or transposes changes the result.
constexpr int64_t kM = 13, kN = 29, kK = 37;
// f32 accumulation error grows with the length of the dot product.
constexpr double kGemmAtol = 1e-5 * kK, kGemmRtol = 1e-5;

TEST_F(CudaBackend, MatmulMatchesHostReferenceForAllTransposesAlphaAndBeta) {
  struct Scalars { double alpha, beta; };
  for (const Scalars s : {Scalars{1.0, 0.0}, Scalars{0.5, 1.5}, Scalars{-2.0, 1.0}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "trans_a " << ta << ", trans_b " << tb << ", alpha "
                                        << s.alpha << ", beta " << s.beta);
        const Tensor a = random(ta ? Shape{kK, kM} : Shape{kM, kK});
        const Tensor b = random(tb ? Shape{kN, kK} : Shape{kK, kN});
        Tensor c = random({kM, kN});
        // With beta == 0 the old c must not be read: NaN there would otherwise leak through.
        if (s.beta == 0)
          for (int64_t i = 0; i < c.numel(); ++i) c.data<float>()[i] = std::numeric_limits<float>::quiet_NaN();
        const auto want = reference_gemm(a.data<float>(), ta, b.data<float>(), tb, c.data<float>(),
                                         kM, kN, kK, s.alpha, s.beta);
        Tensor dc = c.to(kCuda);
        matmul(a.to(kCuda), ta, b.to(kCuda), tb, dc, s.alpha, s.beta);
        expect_close(dc.to(Device::cpu), want, kGemmAtol, kGemmRtol, "matmul");
      }
}

TEST_F(CudaBackend, BatchedMatmulMatchesHostReferencePerProduct) {
  constexpr int64_t batch = 5;
  const double alpha = 0.75, beta = 0.5;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "trans_a " << ta << ", trans_b " << tb);
      const Tensor a = random(ta ? Shape{batch, kK, kM} : Shape{batch, kM, kK});
      const Tensor b = random(tb ? Shape{batch, kN, kK} : Shape{batch, kK, kN});
      const Tensor c = random({batch, kM, kN});
      std::vector<double> want;
      for (int64_t i = 0; i < batch; ++i) {
        const auto one = reference_gemm(a.data<float>() + i * kM * kK, ta, b.data<float>() + i * kK * kN, tb,
                                        c.data<float>() + i * kM * kN, kM, kN, kK, alpha, beta);
        want.insert(want.end(), one.begin(), one.end());
      }
      Tensor dc = c.to(kCuda);
      batched_matmul(a.to(kCuda), ta, b.to(kCuda), tb, dc, alpha, beta);
      expect_close(dc.to(Device::cpu), want, kGemmAtol, kGemmRtol, "batched_matmul");
    }
}

double host_activation(Activation act, double x) { return act == Activation::relu ? relu(x) : gelu(x); }
double host_activation_grad(Activation act, double x) {
  return act == Activation::relu ? relu_grad(x) : gelu_grad(x);
}

// A small odd shape, and one large enough that the grid-stride loop takes more than one lap.
const Shape kActivationShapes[] = {{7, 53}, {1100, 1000}};

TEST_F(CudaBackend, BiasActivationForwardMatchesHostReference) {
  for (const Activation act : {Activation::relu, Activation::gelu})
    for (const Shape& shape : kActivationShapes) {
      SCOPED_TRACE(::testing::Message() << (act == Activation::relu ? "relu" : "gelu") << " on "
                                      << shape_string(shape));
      const Tensor pre = random(shape, -3.0, 3.0);
      const Tensor bias = random({shape[1]});
      std::vector<double> want_pre(pre.numel()), want_y(pre.numel());
      for (int64_t i = 0; i < pre.numel(); ++i) {
        // The sum is rounded to f32 as the device rounds it, then the activation runs in double.
        const float p = pre.data<float>()[i] + bias.data<float>()[i % shape[1]];
        want_pre[i] = p;
        want_y[i] = host_activation(act, p);
      }
      Tensor dpre = pre.to(kCuda);
      Tensor dy = Tensor::empty(shape, DType::f32, kCuda);
      bias_activation_forward(act, dpre, bias.to(kCuda), dy);
      expect_close(dpre.to(Device::cpu), want_pre, 0.0, 0.0, "pre + bias");
      expect_close(dy.to(Device::cpu), want_y, 1e-6, 1e-5, "activation");
    }
}

TEST_F(CudaBackend, ActivationBackwardMatchesHostReferenceAlsoInPlace) {
  for (const Activation act : {Activation::relu, Activation::gelu})
    for (const Shape& shape : kActivationShapes) {
      SCOPED_TRACE(::testing::Message() << (act == Activation::relu ? "relu" : "gelu") << " on "
                                      << shape_string(shape));
      const Tensor pre = random(shape, -3.0, 3.0);
      const Tensor dy = random(shape);
      std::vector<double> want(pre.numel());
      for (int64_t i = 0; i < pre.numel(); ++i)
        want[i] = double(dy.data<float>()[i]) * host_activation_grad(act, pre.data<float>()[i]);
      const Tensor d_pre = pre.to(kCuda);
      Tensor d_dy = dy.to(kCuda);
      Tensor d_dpre = Tensor::empty(shape, DType::f32, kCuda);
      activation_backward(act, d_pre, d_dy, d_dpre);
      expect_close(d_dpre.to(Device::cpu), want, 1e-6, 1e-5, "dpre");
      // dpre may be dy itself.
      activation_backward(act, d_pre, d_dy, d_dy);
      expect_close(d_dy.to(Device::cpu), want, 1e-6, 1e-5, "dpre in place of dy");
    }
}

}  // namespace
}  // namespace tessera::kernels
