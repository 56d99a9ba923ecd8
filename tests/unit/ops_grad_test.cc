// Every op's backward against central finite differences in double precision, on fresh random
// inputs. Each check uses the scalar loss L = sum(w .* forward(x)) with random weights w, so the
// upstream gradient dy = w is itself random.
#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "test_util.h"

namespace tessera {
namespace {
using namespace tessera::testing;
namespace k = tessera::kernels;

TEST(OpsGrad, Matmul) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int64_t m = 5, n = 4, kk = 3;
      Tensor a = random_tensor(ta ? Shape{kk, m} : Shape{m, kk});
      Tensor b = random_tensor(tb ? Shape{n, kk} : Shape{kk, n});
      Tensor w = random_tensor({m, n});
      Tensor c = Tensor::empty({m, n}, DType::f64);
      auto loss = [&] { k::matmul(a, ta, b, tb, c); return dot(c, w); };
      // dA = dC op(B)^T (or its transpose), dB = op(A)^T dC (or its transpose).
      Tensor da = Tensor::empty(a.shape(), DType::f64), db = Tensor::empty(b.shape(), DType::f64);
      if (!ta) k::matmul(w, false, b, !tb, da); else k::matmul(b, tb, w, true, da);
      if (!tb) k::matmul(a, !ta, w, false, db); else k::matmul(w, true, a, ta, db);
      expect_gradient("matmul dA", a, da, loss);
      expect_gradient("matmul dB", b, db, loss);
    }
}

TEST(OpsGrad, MatmulAlphaBeta) {
  Tensor a = random_tensor({3, 4}), b = random_tensor({4, 2}), c = random_tensor({3, 2});
  Tensor c0 = c.clone();
  k::matmul(a, false, b, false, c, 0.5, 2.0);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 2; ++j) {
      double s = 0;
      for (int64_t q = 0; q < 4; ++q) s += a.data<double>()[i * 4 + q] * b.data<double>()[q * 2 + j];
      EXPECT_NEAR(c.data<double>()[i * 2 + j], 0.5 * s + 2.0 * c0.data<double>()[i * 2 + j], 1e-12);
    }
}

TEST(OpsGrad, BatchedMatmulMatchesLoopOfMatmul) {
  Tensor a = random_tensor({3, 4, 5}), b = random_tensor({3, 6, 5}), c = Tensor::empty({3, 4, 6}, DType::f64);
  k::batched_matmul(a, false, b, true, c);
  for (int64_t i = 0; i < 3; ++i) {
    Tensor ci = Tensor::empty({4, 6}, DType::f64);
    k::matmul(a.rows(i, i + 1).reshape({4, 5}), false, b.rows(i, i + 1).reshape({6, 5}), true, ci);
    for (int64_t j = 0; j < 24; ++j) EXPECT_NEAR(c.data<double>()[i * 24 + j], ci.data<double>()[j], 1e-12);
  }
}

TEST(OpsGrad, MaskedSoftmaxPaddingAndCausal) {
  const int64_t B = 2, H = 2, Sq = 3, Sk = 4;
  Tensor lens = int_tensor({4, 2});
  for (bool causal : {false, true}) {
    Tensor s = random_tensor({B, H, Sq, Sk}, DType::f64, -2, 2), w = random_tensor({B, H, Sq, Sk});
    Tensor p = Tensor::empty(s.shape(), DType::f64);
    const double scale = 0.7;
    auto loss = [&] { k::masked_softmax_forward(s, lens, causal, scale, p); return dot(p, w); };
    loss();
    // Masked entries are exactly zero and visible rows sum to one.
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < Sq; ++i) {
          double sum = 0;
          for (int64_t j = 0; j < Sk; ++j) {
            const double v = p.data<double>()[((b * H + h) * Sq + i) * Sk + j];
            const bool masked = j >= lens.data<int32_t>()[b] || (causal && j > i + (Sk - Sq));
            if (masked) EXPECT_EQ(v, 0.0);
            sum += v;
          }
          EXPECT_NEAR(sum, 1.0, 1e-12);
        }
    Tensor ds = Tensor::empty(s.shape(), DType::f64);
    k::masked_softmax_backward(p, w, scale, ds);
    expect_gradient(causal ? "softmax causal" : "softmax padding", s, ds, loss);
  }
}

TEST(OpsGrad, LayerNorm) {
  const int64_t rows = 7, cols = 6;
  Tensor x = random_tensor({rows, cols}, DType::f64, -3, 3), g = random_tensor({cols}), b = random_tensor({cols});
  Tensor w = random_tensor({rows, cols}), y = Tensor::empty({rows, cols}, DType::f64);
  Tensor mean = Tensor::empty({rows}, DType::f64), rstd = Tensor::empty({rows}, DType::f64);
  auto loss = [&] { k::layer_norm_forward(x, g, b, 1e-5, y, mean, rstd); return dot(y, w); };
  loss();
  Tensor dx = Tensor::empty(x.shape(), DType::f64), dg = Tensor::zeros({cols}, DType::f64),
         db = Tensor::zeros({cols}, DType::f64);
  k::layer_norm_backward(x, g, mean, rstd, w, dx, dg, db);
  expect_gradient("layer_norm dx", x, dx, loss);
  expect_gradient("layer_norm dgamma", g, dg, loss);
  expect_gradient("layer_norm dbeta", b, db, loss);
}

TEST(OpsGrad, BiasActivation) {
  for (k::Activation act : {k::Activation::relu, k::Activation::gelu}) {
    Tensor x = random_tensor({5, 8}, DType::f64, -2, 2), bias = random_tensor({8}), w = random_tensor({5, 8});
    Tensor pre = Tensor::empty(x.shape(), DType::f64), y = Tensor::empty(x.shape(), DType::f64);
    auto loss = [&] { pre.copy_from(x); k::bias_activation_forward(act, pre, bias, y); return dot(y, w); };
    loss();
    Tensor dpre = Tensor::empty(x.shape(), DType::f64), dbias = Tensor::zeros({8}, DType::f64);
    k::activation_backward(act, pre, w, dpre);
    k::bias_backward(dpre, dbias);
    expect_gradient(act == k::Activation::relu ? "relu dx" : "gelu dx", x, dpre, loss);
    expect_gradient("bias dbias", bias, dbias, loss);
  }
}

TEST(OpsGrad, DropoutWithResidual) {
  k::DropoutSite site;
  site.p = 0.3f;
  site.seed = rng()();
  site.step = 7;
  site.stream = k::dropout_stream(RngPurpose::dropout_residual, 3);
  site.rows_per_sentence = site.inner_rows = 4;
  Tensor x = random_tensor({8, 16}), r = random_tensor({8, 16}), w = random_tensor({8, 16});
  Tensor y = Tensor::empty(x.shape(), DType::f64);
  auto loss = [&] { k::dropout_forward(site, x, r, y); return dot(y, w); };
  loss();
  int64_t kept = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double v = y.data<double>()[i] - r.data<double>()[i];
    // The kernel keeps exactly the elements the shared mask definition keeps.
    EXPECT_EQ(v != 0, k::dropout_keep(site, i / 16, i % 16)) << "element " << i;
    if (v != 0) {
      ++kept;
      EXPECT_NEAR(v, x.data<double>()[i] / (1.0 - static_cast<double>(site.p)), 1e-12);
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, y.numel());
  Tensor dx = Tensor::empty(x.shape(), DType::f64);
  k::dropout_backward(site, w, dx);
  expect_gradient("dropout dx", x, dx, loss);
}

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

TEST(OpsGrad, EmbeddingVocabularySlice) {
  const int64_t vocab_rows = 5, d = 4, start = 3;
  Tensor table = random_tensor({vocab_rows, d}), w = random_tensor({6, d});
  Tensor ids = int_tensor({3, 7, 0, 4, 9, 3});  // 0 and 9 lie outside rows [3, 8)
  Tensor out = Tensor::empty({6, d}, DType::f64);
  const double scale = 2.0;
  auto loss = [&] { k::embedding_forward(ids, table, start, scale, out); return dot(out, w); };
  loss();
  for (int64_t c = 0; c < d; ++c) {
    EXPECT_EQ(out.data<double>()[2 * d + c], 0.0);
    EXPECT_EQ(out.data<double>()[1 * d + c], scale * table.data<double>()[4 * d + c]);
  }
  Tensor dt = Tensor::zeros(table.shape(), DType::f64);
  k::embedding_backward(ids, w, start, scale, dt);
  expect_gradient("embedding dtable", table, dt, loss);
}

TEST(OpsGrad, SinusoidalPositions) {
  const int64_t S = 5, d = 6;
  Tensor x = Tensor::zeros({2 * S, d}, DType::f64);
  k::add_positions(x, S, 3);
  for (int64_t r = 0; r < 2 * S; ++r)
    for (int64_t c = 0; c < d; ++c) {
      const double pos = r % S + 3, freq = std::pow(10000.0, -static_cast<double>(c - c % 2) / d);
      EXPECT_NEAR(x.data<double>()[r * d + c], c % 2 ? std::cos(pos * freq) : std::sin(pos * freq), 1e-12);
    }
}

TEST(OpsGrad, HeadsSplitMergeRoundTrip) {
  Tensor x = random_tensor({2, 3, 8}), y = Tensor::empty({2, 4, 3, 2}, DType::f64), back = Tensor::empty(x.shape(), DType::f64);
  k::split_heads(x, 4, y);
  EXPECT_EQ(y.data<double>()[((1 * 4 + 2) * 3 + 1) * 2 + 1], x.data<double>()[(1 * 3 + 1) * 8 + 2 * 2 + 1]);
  k::merge_heads(y, back);
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(back.data<double>()[i], x.data<double>()[i]);
}

// Label-smoothed cross-entropy through its three steps, on one rank's full (padded) vocabulary.
TEST(OpsGrad, CrossEntropyLabelSmoothing) {
  const int64_t n = 6, vocab = 7, cols = 8;  // one padded column
  Tensor z = random_tensor({n, cols}, DType::f64, -3, 3);
  Tensor targets = int_tensor({1, 6, 0, 3, 0, 2});  // target 0 is padding
  const double eps = 0.1, gscale = 0.37;
  Tensor mx = Tensor::empty({n}, DType::f64), sums = Tensor::empty({n, 3}, DType::f64);
  Tensor row_loss = Tensor::empty({n}, DType::f64), dz = Tensor::empty(z.shape(), DType::f64);
  auto loss = [&] {
    k::cross_entropy_row_max(z, vocab, mx);
    k::cross_entropy_row_sums(z, vocab, targets, 0, mx, sums);
    Tensor scratch = Tensor::empty(z.shape(), DType::f64);
    k::cross_entropy_loss_backward(z, vocab, targets, 0, mx, sums, eps, vocab, 0, gscale, row_loss, scratch);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += row_loss.data<double>()[i];
    return gscale * total;
  };
  loss();
  // Against the definition: (1-eps) * -log p_t + eps * mean_j(-log p_j).
  for (int64_t i = 0; i < n; ++i) {
    const int t = targets.data<int32_t>()[i];
    double mxv = -1e300, se = 0, mean_nll = 0;
    for (int64_t j = 0; j < vocab; ++j) mxv = std::max(mxv, z.data<double>()[i * cols + j]);
    for (int64_t j = 0; j < vocab; ++j) se += std::exp(z.data<double>()[i * cols + j] - mxv);
    const double log_z = mxv + std::log(se);
    for (int64_t j = 0; j < vocab; ++j) mean_nll += (log_z - z.data<double>()[i * cols + j]) / vocab;
    const double expected = t == 0 ? 0 : (1 - eps) * (log_z - z.data<double>()[i * cols + t]) + eps * mean_nll;
    EXPECT_NEAR(row_loss.data<double>()[i], expected, 1e-12);
  }
  k::cross_entropy_loss_backward(z, vocab, targets, 0, mx, sums, eps, vocab, 0, gscale, row_loss, dz);
  expect_gradient("cross_entropy dlogits", z, dz, loss);
}

TEST(OpsGrad, AdamMatchesScalarReference) {
  Tensor p = random_tensor({10}), g = random_tensor({10}), m = random_tensor({10}, DType::f64, 0, 0.1),
         v = random_tensor({10}, DType::f64, 0, 0.1);
  Tensor p0 = p.clone(), m0 = m.clone(), v0 = v.clone();
  k::adam_step(p, g, m, v, 1e-3, 0.9, 0.98, 1e-9, 3, 0.5);
  for (int64_t i = 0; i < 10; ++i) {
    const double gi = 0.5 * g.data<double>()[i];
    const double mi = 0.9 * m0.data<double>()[i] + 0.1 * gi, vi = 0.98 * v0.data<double>()[i] + 0.02 * gi * gi;
    const double expected = p0.data<double>()[i] - 1e-3 * (mi / (1 - std::pow(0.9, 3))) /
                                                      (std::sqrt(vi / (1 - std::pow(0.98, 3))) + 1e-9);
    EXPECT_NEAR(p.data<double>()[i], expected, 1e-14);
  }
}

TEST(OpsGrad, ErrorsNameTheTensor) {
  Tensor a = random_tensor({2, 3}), b = random_tensor({4, 2}), c = Tensor::empty({2, 2}, DType::f64);
  try {
    k::matmul(a, false, b, false, c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inner dimensions"), std::string::npos) << e.what();
  }
  Tensor g = random_tensor({5});
  Tensor y = Tensor::empty({2, 3}, DType::f64), mean = Tensor::empty({2}, DType::f64);
  EXPECT_THROW(k::layer_norm_forward(a, g, g, 1e-5, y, mean, mean), Error);
}

}  // namespace
}  // namespace tessera
