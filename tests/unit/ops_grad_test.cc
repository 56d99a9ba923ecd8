// Every op's backward against central finite differences in double precision, on fresh random
// inputs, on every device (devices.h: a /cpu and a /cuda instance of each test). Each check uses
// the scalar loss L = sum(w .* forward(x)) with random weights w, so the upstream gradient dy = w
// is itself random. Inputs are drawn on the host from the test's seed and copied to the device
// under test; every op call gets device tensors, and results are read back to the host. The
// finite differences perturb the host copy of x, so each loss evaluation copies x to the device.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "devices.h"
#include "kernels/ops.h"
#include "test_util.h"

namespace tessera {
namespace {
using namespace tessera::testing;
namespace k = tessera::kernels;

class OpsGrad : public DeviceTest {
 protected:
  // An uninitialised f64 tensor on the device under test (an op's output).
  Tensor out(const Shape& shape) const { return Tensor::empty(shape, DType::f64, device()); }
};
INSTANTIATE_DEVICE_TEST_SUITE(OpsGrad);

TEST_P(OpsGrad, Matmul) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "trans_a " << ta << ", trans_b " << tb);
      const int64_t m = 5, n = 4, kk = 3;
      Tensor a = random_tensor(ta ? Shape{kk, m} : Shape{m, kk});
      Tensor b = random_tensor(tb ? Shape{n, kk} : Shape{kk, n});
      Tensor w = random_tensor({m, n});
      Tensor c = out({m, n});
      auto loss = [&] { k::matmul(on_device(a), ta, on_device(b), tb, c); return dot(on_host(c), w); };
      // dA = dC op(B)^T (or its transpose), dB = op(A)^T dC (or its transpose).
      const Tensor ad = on_device(a), bd = on_device(b), wd = on_device(w);
      Tensor da = out(a.shape()), db = out(b.shape());
      if (!ta) k::matmul(wd, false, bd, !tb, da); else k::matmul(bd, tb, wd, true, da);
      if (!tb) k::matmul(ad, !ta, wd, false, db); else k::matmul(wd, true, ad, ta, db);
      expect_gradient("matmul dA", a, on_host(da), loss);
      expect_gradient("matmul dB", b, on_host(db), loss);
    }
}

TEST_P(OpsGrad, MatmulAlphaBeta) {
  Tensor a = random_tensor({3, 4}), b = random_tensor({4, 2}), c0 = random_tensor({3, 2});
  Tensor c = on_device(c0);
  k::matmul(on_device(a), false, on_device(b), false, c, 0.5, 2.0);
  const Tensor got = on_host(c);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 2; ++j) {
      double s = 0;
      for (int64_t q = 0; q < 4; ++q) s += a.data<double>()[i * 4 + q] * b.data<double>()[q * 2 + j];
      EXPECT_NEAR(got.data<double>()[i * 2 + j], 0.5 * s + 2.0 * c0.data<double>()[i * 2 + j], 1e-12);
    }
}

TEST_P(OpsGrad, BatchedMatmulMatchesLoopOfMatmul) {
  const Tensor a = on_device(random_tensor({3, 4, 5})), b = on_device(random_tensor({3, 6, 5}));
  Tensor c = out({3, 4, 6});
  k::batched_matmul(a, false, b, true, c);
  const Tensor got = on_host(c);
  for (int64_t i = 0; i < 3; ++i) {
    Tensor ci = out({4, 6});
    k::matmul(a.rows(i, i + 1).reshape({4, 5}), false, b.rows(i, i + 1).reshape({6, 5}), true, ci);
    const Tensor want = on_host(ci);
    for (int64_t j = 0; j < 24; ++j) EXPECT_NEAR(got.data<double>()[i * 24 + j], want.data<double>()[j], 1e-12);
  }
}

TEST_P(OpsGrad, MaskedSoftmaxPaddingAndCausal) {
  const int64_t B = 2, H = 2, Sq = 3, Sk = 4;
  const Tensor lens = int_tensor({4, 2}), lens_d = on_device(lens);
  for (bool causal : {false, true}) {
    Tensor s = random_tensor({B, H, Sq, Sk}, DType::f64, -2, 2), w = random_tensor({B, H, Sq, Sk});
    Tensor p = out(s.shape());
    const double scale = 0.7;
    auto loss = [&] { k::masked_softmax_forward(on_device(s), lens_d, causal, scale, p); return dot(on_host(p), w); };
    loss();
    // Masked entries are exactly zero and visible rows sum to one.
    const Tensor probs = on_host(p);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < Sq; ++i) {
          double sum = 0;
          for (int64_t j = 0; j < Sk; ++j) {
            const double v = probs.data<double>()[((b * H + h) * Sq + i) * Sk + j];
            const bool masked = j >= lens.data<int32_t>()[b] || (causal && j > i + (Sk - Sq));
            if (masked) {
              EXPECT_EQ(v, 0.0);
            }
            sum += v;
          }
          EXPECT_NEAR(sum, 1.0, 1e-12);
        }
    Tensor ds = out(s.shape());
    k::masked_softmax_backward(p, on_device(w), scale, ds);
    expect_gradient(causal ? "softmax causal" : "softmax padding", s, on_host(ds), loss);
  }
}

TEST_P(OpsGrad, LayerNorm) {
  const int64_t rows = 7, cols = 6;
  Tensor x = random_tensor({rows, cols}, DType::f64, -3, 3), g = random_tensor({cols}), b = random_tensor({cols});
  Tensor w = random_tensor({rows, cols});
  Tensor y = out({rows, cols}), mean = out({rows}), rstd = out({rows});
  auto loss = [&] {
    k::layer_norm_forward(on_device(x), on_device(g), on_device(b), 1e-5, y, mean, rstd);
    return dot(on_host(y), w);
  };
  loss();
  // dgamma and dbeta accumulate: start them from random values and check what was added.
  const Tensor dg0 = random_tensor({cols}), db0 = random_tensor({cols});
  Tensor dx = out(x.shape()), dg = on_device(dg0), db = on_device(db0);
  k::layer_norm_backward(on_device(x), on_device(g), mean, rstd, on_device(w), dx, dg, db);
  expect_gradient("layer_norm dx", x, on_host(dx), loss);
  expect_gradient("layer_norm dgamma", g, minus(on_host(dg), dg0), loss);
  expect_gradient("layer_norm dbeta", b, minus(on_host(db), db0), loss);
}

TEST_P(OpsGrad, BiasActivation) {
  for (k::Activation act : {k::Activation::relu, k::Activation::gelu}) {
    SCOPED_TRACE(act == k::Activation::relu ? "relu" : "gelu");
    Tensor x = random_tensor({5, 8}, DType::f64, -2, 2), bias = random_tensor({8}), w = random_tensor({5, 8});
    Tensor pre = out(x.shape()), y = out(x.shape());
    auto loss = [&] {
      pre.copy_from(x);
      k::bias_activation_forward(act, pre, on_device(bias), y);
      return dot(on_host(y), w);
    };
    loss();
    const Tensor dbias0 = random_tensor({8});
    Tensor dpre = out(x.shape()), dbias = on_device(dbias0);
    k::activation_backward(act, pre, on_device(w), dpre);
    k::bias_backward(dpre, dbias);
    expect_gradient(act == k::Activation::relu ? "relu dx" : "gelu dx", x, on_host(dpre), loss);
    expect_gradient("bias dbias", bias, minus(on_host(dbias), dbias0), loss);
  }
}

TEST_P(OpsGrad, DropoutWithResidual) {
  k::DropoutSite site;
  site.p = 0.3f;
  site.seed = rng()();
  site.step = 7;
  site.stream = k::dropout_stream(RngPurpose::dropout_residual, 3);
  site.rows_per_sentence = site.inner_rows = 4;
  Tensor x = random_tensor({8, 16}), r = random_tensor({8, 16}), w = random_tensor({8, 16});
  const Tensor rd = on_device(r);
  Tensor y = out(x.shape());
  auto loss = [&] { k::dropout_forward(site, on_device(x), rd, y); return dot(on_host(y), w); };
  loss();
  const Tensor yh = on_host(y);
  int64_t kept = 0;
  for (int64_t i = 0; i < yh.numel(); ++i) {
    const double v = yh.data<double>()[i] - r.data<double>()[i];
    // The kernel keeps exactly the elements the shared mask definition keeps.
    EXPECT_EQ(v != 0, k::dropout_keep(site, i / 16, i % 16)) << "element " << i;
    if (v != 0) {
      ++kept;
      EXPECT_NEAR(v, x.data<double>()[i] / (1.0 - static_cast<double>(site.p)), 1e-12);
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, yh.numel());
  Tensor dx = out(x.shape());
  k::dropout_backward(site, on_device(w), dx);
  expect_gradient("dropout dx", x, on_host(dx), loss);
}

// The mask definition itself (kernels/math.h), which both backends call: a host function.
TEST(OpsGrad, DropoutKeepRateAndLayoutInvariance) {
  k::DropoutSite site;
  site.p = 0.25f;
  site.seed = rng()();
  site.stream = k::dropout_stream(RngPurpose::dropout_attention, 1);
  site.rows_per_sentence = 4 * 16;  // 4 heads of 16 positions
  site.inner_rows = 16;
  int64_t kept = 0, total = 0;
  for (int64_t r = 0; r < 8 * 64; ++r)
    for (int64_t c = 0; c < 64; ++c, ++total) kept += k::dropout_keep(site, r, c);
  EXPECT_NEAR(static_cast<double>(kept) / total, 0.75, 0.01);
  // A rank holding heads 2..3 of sentences 5.. sees the same mask as the full tensor.
  k::DropoutSite shard = site;
  shard.sentence_offset = 5;
  shard.head_offset = 2;
  shard.rows_per_sentence = 2 * 16;
  for (int64_t r = 0; r < 2 * 32; ++r)
    for (int64_t c = 0; c < 64; ++c) {
      const int64_t s = r / 32, h = (r % 32) / 16, q = r % 16;
      const int64_t full_row = (5 + s) * 64 + (2 + h) * 16 + q;
      ASSERT_EQ(k::dropout_keep(shard, r, c), k::dropout_keep(site, full_row, c)) << r << "," << c;
    }
}

TEST_P(OpsGrad, EmbeddingVocabularySlice) {
  const int64_t vocab_rows = 5, d = 4, start = 3;
  Tensor table = random_tensor({vocab_rows, d}), w = random_tensor({6, d});
  const Tensor ids = on_device(int_tensor({3, 7, 0, 4, 9, 3}));  // 0 and 9 lie outside rows [3, 8)
  Tensor o = out({6, d});
  const double scale = 2.0;
  auto loss = [&] { k::embedding_forward(ids, on_device(table), start, scale, o); return dot(on_host(o), w); };
  loss();
  const Tensor oh = on_host(o);
  for (int64_t c = 0; c < d; ++c) {
    EXPECT_EQ(oh.data<double>()[2 * d + c], 0.0);
    EXPECT_EQ(oh.data<double>()[1 * d + c], scale * table.data<double>()[4 * d + c]);
  }
  // dtable accumulates: start it from random values and check what was added.
  const Tensor dt0 = random_tensor(table.shape());
  Tensor dt = on_device(dt0);
  k::embedding_backward(ids, on_device(w), start, scale, dt);
  expect_gradient("embedding dtable", table, minus(on_host(dt), dt0), loss);
}

TEST_P(OpsGrad, SinusoidalPositions) {
  const int64_t S = 5, d = 6;
  const Tensor x0 = random_tensor({2 * S, d});
  Tensor x = on_device(x0);
  k::add_positions(x, S, 3);
  const Tensor added = minus(on_host(x), x0);
  for (int64_t r = 0; r < 2 * S; ++r)
    for (int64_t c = 0; c < d; ++c) {
      const double pos = r % S + 3, freq = std::pow(10000.0, -static_cast<double>(c - c % 2) / d);
      EXPECT_NEAR(added.data<double>()[r * d + c], c % 2 ? std::cos(pos * freq) : std::sin(pos * freq), 1e-12);
    }
}

TEST_P(OpsGrad, HeadsSplitMergeRoundTrip) {
  const Tensor x = random_tensor({2, 3, 8});
  Tensor y = out({2, 4, 3, 2}), back = out(x.shape());
  k::split_heads(on_device(x), 4, y);
  EXPECT_EQ(on_host(y).data<double>()[((1 * 4 + 2) * 3 + 1) * 2 + 1], x.data<double>()[(1 * 3 + 1) * 8 + 2 * 2 + 1]);
  k::merge_heads(y, back);
  const Tensor bh = on_host(back);
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(bh.data<double>()[i], x.data<double>()[i]);
}

// Label-smoothed cross-entropy through its three steps, on one rank's full (padded) vocabulary.
TEST_P(OpsGrad, CrossEntropyLabelSmoothing) {
  const int64_t n = 6, vocab = 7, cols = 8;  // one padded column
  Tensor z = random_tensor({n, cols}, DType::f64, -3, 3);
  const Tensor targets = int_tensor({1, 6, 0, 3, 0, 2});  // target 0 is padding
  const Tensor targets_d = on_device(targets);
  const double eps = 0.1, gscale = 0.37;
  Tensor mx = out({n}), sums = out({n, 3}), row_loss = out({n}), dz = out(z.shape());
  auto loss = [&] {
    const Tensor zd = on_device(z);
    k::cross_entropy_row_max(zd, vocab, mx);
    k::cross_entropy_row_sums(zd, vocab, targets_d, 0, mx, sums);
    Tensor scratch = out(z.shape());
    k::cross_entropy_loss_backward(zd, vocab, targets_d, 0, mx, sums, eps, vocab, 0, gscale, row_loss, scratch);
    const Tensor rl = on_host(row_loss);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += rl.data<double>()[i];
    return gscale * total;
  };
  loss();
  // Against the definition: (1-eps) * -log p_t + eps * mean_j(-log p_j).
  const Tensor rl = on_host(row_loss);
  for (int64_t i = 0; i < n; ++i) {
    const int t = targets.data<int32_t>()[i];
    double mxv = -1e300, se = 0, mean_nll = 0;
    for (int64_t j = 0; j < vocab; ++j) mxv = std::max(mxv, z.data<double>()[i * cols + j]);
    for (int64_t j = 0; j < vocab; ++j) se += std::exp(z.data<double>()[i * cols + j] - mxv);
    const double log_z = mxv + std::log(se);
    for (int64_t j = 0; j < vocab; ++j) mean_nll += (log_z - z.data<double>()[i * cols + j]) / vocab;
    const double expected = t == 0 ? 0 : (1 - eps) * (log_z - z.data<double>()[i * cols + t]) + eps * mean_nll;
    EXPECT_NEAR(rl.data<double>()[i], expected, 1e-12);
  }
  k::cross_entropy_loss_backward(on_device(z), vocab, targets_d, 0, mx, sums, eps, vocab, 0, gscale, row_loss, dz);
  expect_gradient("cross_entropy dlogits", z, on_host(dz), loss);
}

TEST_P(OpsGrad, AdamMatchesScalarReference) {
  const Tensor p0 = random_tensor({10}), g = random_tensor({10}), m0 = random_tensor({10}, DType::f64, 0, 0.1),
               v0 = random_tensor({10}, DType::f64, 0, 0.1);
  Tensor p = on_device(p0), m = on_device(m0), v = on_device(v0);
  k::adam_step(p, on_device(g), m, v, 1e-3, 0.9, 0.98, 1e-9, 3, 0.5);
  const Tensor ph = on_host(p), mh = on_host(m), vh = on_host(v);
  for (int64_t i = 0; i < 10; ++i) {
    const double gi = 0.5 * g.data<double>()[i];
    const double mi = 0.9 * m0.data<double>()[i] + 0.1 * gi, vi = 0.98 * v0.data<double>()[i] + 0.02 * gi * gi;
    const double expected = p0.data<double>()[i] - 1e-3 * (mi / (1 - std::pow(0.9, 3))) /
                                                      (std::sqrt(vi / (1 - std::pow(0.98, 3))) + 1e-9);
    EXPECT_NEAR(ph.data<double>()[i], expected, 1e-14);
    EXPECT_NEAR(mh.data<double>()[i], mi, 1e-15);
    EXPECT_NEAR(vh.data<double>()[i], vi, 1e-15);
  }
}

TEST_P(OpsGrad, ErrorsNameTheTensor) {
  const Tensor a = on_device(random_tensor({2, 3})), b = on_device(random_tensor({4, 2}));
  Tensor c = out({2, 2});
  try {
    k::matmul(a, false, b, false, c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inner dimensions"), std::string::npos) << e.what();
  }
  const Tensor g = on_device(random_tensor({5}));
  Tensor y = out({2, 3}), mean = out({2});
  try {
    k::layer_norm_forward(a, g, g, 1e-5, y, mean, mean);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'gamma'"), std::string::npos) << e.what();
  }
  // Operands on two devices: the error names both tensors and both devices. (The cpu instance
  // has no second device; kernel_operands_test covers this without a GPU.)
  if (device().is_cpu()) return;
  const Tensor b_host = random_tensor({2, 3});
  Tensor sum = out({2, 3});
  try {
    k::add(a, b_host, sum);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const std::string& part : {std::string("'a'"), std::string("'b'"), device_name(device()), std::string("cpu")})
      EXPECT_NE(what.find(part), std::string::npos) << "\"" << what << "\" does not say " << part;
  }
}

}  // namespace
}  // namespace tessera
