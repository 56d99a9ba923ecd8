// The fused sublayer output path (kernels/ops.h, "residual + dropout + layer norm, fused") on every
// device: its gradients against central finite differences in double precision, and its results
// against the unfused sequence it replaces (dropout_forward, layer_norm_forward / backward, axpy,
// dropout_backward), which it must reproduce bit for bit in f32 and f64.
#include <gtest/gtest.h>

#include "devices.h"
#include "kernels/ops.h"
#include "test_util.h"

namespace tessera {
namespace {
using namespace tessera::testing;
namespace k = tessera::kernels;

class OpsFusedResidual : public DeviceTest {
 protected:
  Tensor out(const Shape& shape, DType dtype = DType::f64) const { return Tensor::empty(shape, dtype, device()); }
  // A residual-dropout site of p = 0.3 over sentences of 3 positions (rows 0-2 are sentence 4).
  k::DropoutSite site() const {
    k::DropoutSite s;
    s.p = 0.3f;
    s.seed = rng()();
    s.step = 11;
    s.stream = k::dropout_stream(RngPurpose::dropout_residual, 5);
    s.sentence_offset = 4;
    s.rows_per_sentence = s.inner_rows = 3;
    return s;
  }
  // Bit-for-bit equality of two tensors read back to the host.
  static void expect_identical(const char* what, const Tensor& got, const Tensor& want) {
    expect_near(what, on_host(got), on_host(want), 0.0, 0.0);
  }
};
INSTANTIATE_DEVICE_TEST_SUITE(OpsFusedResidual);


// L = <w, LN(s)> + <w_sum, s> with s = r + Dropout(x): dL/ds = LN'(w) + w_sum is the op's dx with
// dresidual = w_sum, dL/dx = mask * dL/ds its dx_dropped, dL/dr = dL/ds.
TEST_P(OpsFusedResidual, GradientsMatchFiniteDifferences) {
  const int64_t rows = 6, cols = 10;  // cols not a multiple of 4: a Philox block serves a partial group
  const k::DropoutSite s = site();
  Tensor x = random_tensor({rows, cols}, DType::f64, -2, 2), r = random_tensor({rows, cols}, DType::f64, -2, 2);
  Tensor g = random_tensor({cols}), b = random_tensor({cols});
  const Tensor w = random_tensor({rows, cols}), w_sum = random_tensor({rows, cols});
  Tensor sum = out({rows, cols}), y = out({rows, cols}), mean = out({rows}), rstd = out({rows});
  auto loss = [&] {
    k::dropout_add_layer_norm_forward(s, on_device(x), on_device(r), on_device(g), on_device(b), 1e-5, sum, y, mean,
                                      rstd);
    return dot(on_host(y), w) + dot(on_host(sum), w_sum);
  };
  loss();
  const Tensor dg0 = random_tensor({cols}), db0 = random_tensor({cols});
  Tensor dsum = out({rows, cols}), dx = out({rows, cols}), dg = on_device(dg0), db = on_device(db0);
  k::layer_norm_add_dropout_backward(s, sum, on_device(g), mean, rstd, on_device(w), on_device(w_sum), dsum, dx, dg,
                                     db);
  expect_gradient("fused dx (dropped)", x, on_host(dx), loss);
  expect_gradient("fused dresidual", r, on_host(dsum), loss);
  expect_gradient("fused dgamma", g, minus(on_host(dg), dg0), loss);
  expect_gradient("fused dbeta", b, minus(on_host(db), db0), loss);
  // The mask really drops: some elements of x have no gradient, some do.
  int64_t dropped = 0;
  const Tensor dxh = on_host(dx);
  for (int64_t i = 0; i < dxh.numel(); ++i) dropped += dxh.data<double>()[i] == 0.0;
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, dxh.numel());
}

TEST_P(OpsFusedResidual, ForwardEqualsDropoutThenLayerNorm) {
  for (DType dtype : {DType::f32, DType::f64}) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t rows = 37, cols = 70;
    const k::DropoutSite s = site();
    const Tensor x = on_device(random_tensor({rows, cols}, dtype, -3, 3)), r = on_device(random_tensor({rows, cols}, dtype));
    const Tensor g = on_device(random_tensor({cols}, dtype)), b = on_device(random_tensor({cols}, dtype));
    Tensor sum = out({rows, cols}, dtype), y = out({rows, cols}, dtype), mean = out({rows}, dtype), rstd = out({rows}, dtype);
    k::dropout_add_layer_norm_forward(s, x, r, g, b, 1e-6, sum, y, mean, rstd);
    Tensor sum_ref = out({rows, cols}, dtype), y_ref = out({rows, cols}, dtype), mean_ref = out({rows}, dtype),
           rstd_ref = out({rows}, dtype);
    k::dropout_forward(s, x, r, sum_ref);
    k::layer_norm_forward(sum_ref, g, b, 1e-6, y_ref, mean_ref, rstd_ref);
    expect_identical("sum", sum, sum_ref);
    expect_identical("y", y, y_ref);
    expect_identical("mean", mean, mean_ref);
    expect_identical("rstd", rstd, rstd_ref);
  }
}

// The three uses in model/residual.cc: post-LN (LN', then Dropout'), pre-LN (LN' + the skip
// connection's gradient) and the two pre-LN residuals chained (LN' + skip, then Dropout').
TEST_P(OpsFusedResidual, BackwardEqualsUnfusedSequence) {
  for (DType dtype : {DType::f32, DType::f64})
    for (const bool add : {false, true})
      for (const bool drop : {false, true}) {
        SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << (add ? ", + dresidual" : "")
                                          << (drop ? ", dropout" : ""));
        const int64_t rows = 37, cols = 70;
        const k::DropoutSite s = site();
        const Tensor x = on_device(random_tensor({rows, cols}, dtype, -3, 3));
        const Tensor g = on_device(random_tensor({cols}, dtype)), b = on_device(random_tensor({cols}, dtype));
        Tensor y = out({rows, cols}, dtype), mean = out({rows}, dtype), rstd = out({rows}, dtype);
        k::layer_norm_forward(x, g, b, 1e-6, y, mean, rstd);
        const Tensor dy = on_device(random_tensor({rows, cols}, dtype));
        const Tensor dres = add ? on_device(random_tensor({rows, cols}, dtype)) : Tensor();
        const Tensor dg0 = random_tensor({cols}, dtype), db0 = random_tensor({cols}, dtype);

        Tensor dx = out({rows, cols}, dtype), dropped = drop ? out({rows, cols}, dtype) : Tensor();
        Tensor dg = on_device(dg0), db = on_device(db0);
        k::layer_norm_add_dropout_backward(s, x, g, mean, rstd, dy, dres, dx, dropped, dg, db);

        Tensor dx_ref = out({rows, cols}, dtype), dg_ref = on_device(dg0), db_ref = on_device(db0);
        k::layer_norm_backward(x, g, mean, rstd, dy, dx_ref, dg_ref, db_ref);
        if (add) k::axpy(1.0, dres, dx_ref);
        expect_identical("dx", dx, dx_ref);
        expect_identical("dgamma", dg, dg_ref);
        expect_identical("dbeta", db, db_ref);
        if (drop) {
          Tensor dropped_ref = out({rows, cols}, dtype);
          k::dropout_backward(s, dx_ref, dropped_ref);
          expect_identical("dx_dropped", dropped, dropped_ref);
        }
      }
}

// dx may overwrite dy (the pre-LN residual reuses the incoming gradient's memory).
TEST_P(OpsFusedResidual, BackwardInPlace) {
  const int64_t rows = 9, cols = 33;
  const Tensor x = on_device(random_tensor({rows, cols}, DType::f64, -3, 3));
  const Tensor g = on_device(random_tensor({cols})), b = on_device(random_tensor({cols}));
  Tensor y = out({rows, cols}), mean = out({rows}), rstd = out({rows});
  k::layer_norm_forward(x, g, b, 1e-6, y, mean, rstd);
  const Tensor dy_host = random_tensor({rows, cols}), dres = on_device(random_tensor({rows, cols}));
  Tensor dy = on_device(dy_host), dx = out({rows, cols}), none;
  Tensor dg = on_device(Tensor::zeros({cols}, DType::f64)), db = on_device(Tensor::zeros({cols}, DType::f64));
  k::layer_norm_add_dropout_backward(site(), x, g, mean, rstd, dy, dres, dx, none, dg, db);
  k::layer_norm_add_dropout_backward(site(), x, g, mean, rstd, dy, dres, dy, none, dg, db);
  expect_identical("in place dx", dy, dx);
}

}  // namespace
}  // namespace tessera
