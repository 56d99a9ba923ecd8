// Int8 matrix products (kernels/int8_matmul.h) and int8 decoding (parallel/int8_quantization.h):
// the product equals a double-precision product of the quantised operands to f32 rounding (the
// integer sum is exact on every instruction set, kernels/int8_matmul.h says why), it stays within
// the quantisation error bound of the f32 product, the scales are per output channel (so a
// column-parallel shard quantises exactly as its slice of the whole matrix), zero rows and channels
// give scale 0 and exact zeros, and a trained model decodes in int8 nearly as in f32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "data/synthetic_task.h"
#include "kernels/int8_matmul.h"
#include "kernels/threads.h"
#include "model/batch.h"
#include "model/transformer.h"
#include "parallel/int8_quantization.h"
#include "parallel/process_grid.h"
#include "parallel/self_communicator.h"
#include "parallel/tensor_parallel_linear.h"
#include "test_util.h"
#include "trained_reversal_model.h"
#include "train/trainer.h"

namespace tessera {
namespace {
using namespace tessera::testing;
using kernels::Int8Weight;

constexpr double kF32Eps = 1.0 / (1 << 24);  // half an ulp of 1 in f32

// Element (k, n) of W for y = x W, whichever way the matrix holds it.
float weight_at(const Tensor& w, Int8Weight::Layout layout, int64_t k, int64_t n) {
  return layout == Int8Weight::Layout::in_out ? w.data<float>()[k * w.dim(1) + n] : w.data<float>()[n * w.dim(1) + k];
}

struct Case {
  int64_t m, k, n;
  Int8Weight::Layout layout;
};
const Case kCases[] = {{1, 1, 1, Int8Weight::Layout::in_out},     {7, 33, 5, Int8Weight::Layout::in_out},
                       {16, 256, 96, Int8Weight::Layout::in_out}, {5, 1024, 64, Int8Weight::Layout::in_out},
                       {3, 64, 130, Int8Weight::Layout::out_in},  {32, 256, 257, Int8Weight::Layout::out_in}};

// x [m, k] with rows of different ranges: symmetric, one-sided positive (a ReLU output), one-sided
// negative, and a few large values, so the zero points cover [0, 127].
Tensor activations(int64_t m, int64_t k) {
  Tensor x = random_tensor({m, k}, DType::f32, -2, 2);
  for (int64_t i = 0; i < m; ++i) {
    float* row = x.data<float>() + i * k;
    for (int64_t j = 0; j < k; ++j) {
      if (i % 4 == 1) row[j] = std::abs(row[j]);
      if (i % 4 == 2) row[j] = -std::abs(row[j]) * 0.1f;
      if (i % 4 == 3 && j % 17 == 0) row[j] *= 20;
    }
  }
  return x;
}

Tensor weight(const Case& c) {
  return random_tensor(c.layout == Int8Weight::Layout::in_out ? Shape{c.k, c.n} : Shape{c.n, c.k}, DType::f32, -0.3,
                       0.3);
}

TEST(Int8Matmul, EqualsADoubleProductOfTheQuantisedOperands) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(::testing::Message() << "m=" << c.m << " k=" << c.k << " n=" << c.n);
    const Tensor x = activations(c.m, c.k), w = weight(c), bias = random_tensor({c.n}, DType::f32);
    const Int8Weight qw(w, c.layout, "w");
    const kernels::Int8Rows qx = kernels::quantize_rows(x);
    Tensor y = Tensor::empty({c.m, c.n}, DType::f32);
    kernels::int8_matmul(x, qw, bias, y);
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        double sum = 0;  // exact: every term and partial sum is an integer below 2^53
        for (int64_t l = 0; l < c.k; ++l)
          sum += double(qx.values[i * c.k + l] - qx.zero_points[i]) * double(qw.values()[j * c.k + l]);
        const double product = sum * double(qx.scales[i]) * double(qw.scales()[j]);
        const double ref = product + bias.data<float>()[j];
        // The f32 pass rounds the integer sum, the scale product, their product and the bias sum:
        // four roundings of at most half an ulp each.
        const double tol = 4 * kF32Eps * (std::abs(product) + std::abs(ref)) + 1e-30;
        ASSERT_NEAR(y.data<float>()[i * c.n + j], ref, tol) << "y[" << i << "][" << j << "]";
      }
  }
}

// The bound. With x = sx (qx - zx) + ex and w = sw qw + ew, rounding to nearest gives
// |ex| <= sx / 2 and |ew| <= sw / 2 (the clamps move nothing further, see int8_matmul_cpu.cc), and
//   x w - x^ w^ = ex w + x ew - ex ew,  so  |y - y^| <= sum_k (sx/2 |w_k| + sw/2 |x_k| + sx sw / 4).
// The f32 arithmetic adds a few roundings of the result (and of x * (1/s) in the quantisers).
TEST(Int8Matmul, StaysWithinTheQuantisationBoundOfTheF32Product) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(::testing::Message() << "m=" << c.m << " k=" << c.k << " n=" << c.n);
    const Tensor x = activations(c.m, c.k), w = weight(c);
    const Int8Weight qw(w, c.layout, "w");
    const kernels::Int8Rows qx = kernels::quantize_rows(x);
    Tensor y = Tensor::empty({c.m, c.n}, DType::f32);
    kernels::int8_matmul(x, qw, Tensor(), y);
    double worst_fraction = 0;  // largest error as a fraction of its bound
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        double exact = 0, bound = 0, magnitude = 0;
        const double sx = qx.scales[i], sw = qw.scales()[j];
        for (int64_t l = 0; l < c.k; ++l) {
          const double xv = x.data<float>()[i * c.k + l], wv = weight_at(w, c.layout, l, j);
          exact += xv * wv;
          magnitude += std::abs(xv * wv);
          bound += sx / 2 * std::abs(wv) + sw / 2 * std::abs(xv) + sx * sw / 4;
        }
        const double err = std::abs(y.data<float>()[i * c.n + j] - exact);
        ASSERT_LE(err, bound * (1 + 1e-5) + 8 * kF32Eps * magnitude) << "y[" << i << "][" << j << "]";
        worst_fraction = std::max(worst_fraction, err / bound);
      }
    // The bound is what the errors approach, not a figure far above them (random signs make the
    // typical error sqrt(k) smaller, so only the small cases come near it).
    EXPECT_GT(worst_fraction, 0.0);
  }
}

TEST(Int8Weight, ScalesAreTheChannelMaximumOver127) {
  for (const Int8Weight::Layout layout : {Int8Weight::Layout::in_out, Int8Weight::Layout::out_in}) {
    const int64_t k = 40, n = 12;
    const Tensor w = random_tensor(layout == Int8Weight::Layout::in_out ? Shape{k, n} : Shape{n, k}, DType::f32);
    const Int8Weight q(w, layout, "w");
    ASSERT_EQ(q.in(), k);
    ASSERT_EQ(q.out(), n);
    for (int64_t j = 0; j < n; ++j) {
      float amax = 0;
      for (int64_t l = 0; l < k; ++l) amax = std::max(amax, std::abs(weight_at(w, layout, l, j)));
      EXPECT_EQ(q.scales()[j], amax / 127.0f) << "channel " << j;
      int32_t sum = 0, largest = 0;
      for (int64_t l = 0; l < k; ++l) {
        const int v = q.values()[j * k + l];
        sum += v;
        largest = std::max(largest, std::abs(v));
        EXPECT_LE(std::abs(weight_at(w, layout, l, j) - q.scales()[j] * v), q.scales()[j] * (0.5 + 1e-5))
            << "channel " << j << ", input " << l;
      }
      EXPECT_EQ(largest, 127) << "the channel's largest weight is +-127, channel " << j;
      EXPECT_EQ(q.channel_sums()[j], sum) << "channel " << j;
    }
  }
}

// Rank r of a column-parallel layer holds output channels [r n/tp, (r+1) n/tp): its quantised shard
// is exactly that slice of the whole matrix's quantisation.
TEST(Int8Weight, ColumnParallelShardsQuantiseAsTheirSliceOfTheWhole) {
  const int64_t k = 24, n = 16, tp = 4, local = n / tp;
  const Tensor w = random_tensor({k, n}, DType::f32);
  const Int8Weight whole(w, Int8Weight::Layout::in_out, "w");
  for (int64_t r = 0; r < tp; ++r) {
    Tensor shard = Tensor::empty({k, local}, DType::f32);
    for (int64_t l = 0; l < k; ++l)
      for (int64_t j = 0; j < local; ++j) shard.data<float>()[l * local + j] = w.data<float>()[l * n + r * local + j];
    const Int8Weight part(shard, Int8Weight::Layout::in_out, "w_r");
    for (int64_t j = 0; j < local; ++j) {
      EXPECT_EQ(part.scales()[j], whole.scales()[r * local + j]) << "rank " << r << ", channel " << j;
      for (int64_t l = 0; l < k; ++l)
        EXPECT_EQ(part.values()[j * k + l], whole.values()[(r * local + j) * k + l]) << "rank " << r;
    }
  }
}

TEST(Int8Matmul, ZeroRowsAndChannelsHaveScaleZeroAndGiveTheBias) {
  const int64_t m = 4, k = 16, n = 6;
  Tensor x = random_tensor({m, k}, DType::f32), w = random_tensor({k, n}, DType::f32);
  const Tensor bias = random_tensor({n}, DType::f32);
  for (int64_t l = 0; l < k; ++l) x.data<float>()[1 * k + l] = 0;  // row 1 of x
  for (int64_t l = 0; l < k; ++l) w.data<float>()[l * n + 4] = 0;  // channel 4 of W
  const Int8Weight qw(w, Int8Weight::Layout::in_out, "w");
  const kernels::Int8Rows qx = kernels::quantize_rows(x);
  EXPECT_EQ(qx.scales[1], 0.0f);
  EXPECT_EQ(qx.zero_points[1], 0);
  EXPECT_EQ(qw.scales()[4], 0.0f);
  EXPECT_EQ(qw.channel_sums()[4], 0);
  Tensor y = Tensor::empty({m, n}, DType::f32);
  kernels::int8_matmul(x, qw, bias, y);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const float got = y.data<float>()[i * n + j];
      ASSERT_TRUE(std::isfinite(got)) << "y[" << i << "][" << j << "]";
      if (i == 1 || j == 4) {
        EXPECT_EQ(got, bias.data<float>()[j]) << "y[" << i << "][" << j << "]";
      }
    }
}

TEST(Int8Matmul, RowsMapTheirRangeOntoZeroTo127) {
  const int64_t m = 8, k = 50;
  const Tensor x = activations(m, k);
  const kernels::Int8Rows q = kernels::quantize_rows(x);
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x.data<float>() + i * k;
    const float lo = std::min(0.0f, *std::min_element(row, row + k)), hi = std::max(0.0f, *std::max_element(row, row + k));
    EXPECT_FLOAT_EQ(q.scales[i], (hi - lo) / 127) << "row " << i;
    EXPECT_GE(q.zero_points[i], 0);
    EXPECT_LE(q.zero_points[i], 127);
    if (lo == 0) {
      EXPECT_EQ(q.zero_points[i], 0) << "a non-negative row starts at 0, row " << i;
    }
    if (hi == 0) {
      EXPECT_EQ(q.zero_points[i], 127) << "a non-positive row ends at 0, row " << i;
    }
    for (int64_t l = 0; l < k; ++l) {
      const int v = q.values[i * k + l];
      EXPECT_LE(v, 127) << "row " << i;  // 7 bits: vpmaddubsw's int16 pairs cannot saturate
      EXPECT_LE(std::abs(row[l] - q.scales[i] * (v - q.zero_points[i])), q.scales[i] * (0.5 + 1e-5)) << "row " << i;
    }
  }
}

TEST(Int8Matmul, ErrorsNameTheOperandAtFault) {
  const Tensor w = random_tensor({8, 4}, DType::f32);
  const Int8Weight qw(w, Int8Weight::Layout::in_out, "decoder.ffn.w1.weight");
  Tensor x = random_tensor({2, 6}, DType::f32), y = Tensor::empty({2, 4}, DType::f32);
  try {
    kernels::int8_matmul(x, qw, Tensor(), y);
    FAIL() << "a 2x6 input against an 8-feature weight was multiplied";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("decoder.ffn.w1.weight"), std::string::npos) << e.what();
  }
  Tensor bad = random_tensor({3, 8}, DType::f32);
  bad.data<float>()[2 * 8 + 5] = std::numeric_limits<float>::infinity();
  try {
    kernels::quantize_rows(bad, "h");
    FAIL() << "a row holding infinity was quantised";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 2 of tensor 'h'"), std::string::npos) << e.what();
  }
}

// A quantised layer runs its forward through int8_matmul (bias included) and refuses backward.
TEST(Int8Quantization, LayersOfAStoreQuantiseOnceAndRefuseBackward) {
  parallel::SelfCommunicator tp{"tp"};
  model::ParameterStore store, other;
  parallel::ColumnParallelLinear column(store, "col", 12, 8, tp);
  parallel::RowParallelLinear row(store, "row", 8, 12, tp);
  parallel::ColumnParallelLinear elsewhere(other, "elsewhere", 12, 8, tp);
  store.finalize(DType::f32, rng()());
  other.finalize(DType::f32, rng()());
  // Non-zero biases, so that the test sees them added.
  for (int id = 0; id < static_cast<int>(store.size()); ++id) store.value(id).copy_from(random_tensor(store.value(id).shape(), DType::f32));

  const parallel::Int8Summary summary = parallel::quantize_int8(store);
  EXPECT_EQ(summary.layers, 2);
  EXPECT_EQ(summary.weights, 12 * 8 + 8 * 12);
  EXPECT_TRUE(column.quantized());
  EXPECT_TRUE(row.quantized());
  EXPECT_FALSE(elsewhere.quantized()) << "another store's layer was quantised";

  const Tensor x = random_tensor({5, 12}, DType::f32);
  Tensor got = Tensor::empty({5, 8}, DType::f32), want = Tensor::empty({5, 8}, DType::f32);
  column.forward(x, got);
  kernels::int8_matmul(x, Int8Weight(store.value(store.find("col.weight")), Int8Weight::Layout::in_out, "col"),
                       store.value(store.find("col.bias")), want);
  for (int64_t i = 0; i < got.numel(); ++i) ASSERT_EQ(got.data<float>()[i], want.data<float>()[i]) << "element " << i;

  Tensor dx = Tensor::empty({5, 12}, DType::f32);
  EXPECT_THROW(column.backward(got, dx, false), Error);
}

// A small model trained in f32 on the reversal task decodes greedily in int8 nearly as in f32.
// Measured over OPENBLAS_CORETYPE = Haswell, Sandybridge, Nehalem, Prescott (one AVX2 machine), whose
// f32 training differs in rounding and so trains a different model:
//   f32 greedy token accuracy                       0.93 .. 0.99     asserted > 0.7
//   int8 greedy tokens equal to f32's (same place)  0.990 .. 1.000   asserted > 0.95
//   largest teacher-forced logit difference,
//   over the range of the f32 logits                0.049 .. 0.069   asserted < 0.15
// (the int8 sums themselves are exact everywhere; the margins absorb the models' differences).
TEST(Int8Quantization, TrainedModelDecodesAsInF32) {
  kernels::set_num_threads(1);
  testing::TrainedReversalModel m(/*seed=*/11, DType::f32, /*steps=*/600);
  const train::TrainOptions& o = m.options;
  const data::SyntheticTask& task = m.task;
  train::Trainer& trainer = *m.trainer;

  const auto held_out = task.pairs(data::kHeldOutSplit, 0, 128);
  const model::ModelConfig& cfg = o.model;
  const model::Batch batch = model::Batch::from_pairs(held_out, 0, held_out.size(), 0, cfg.pad_id, cfg.bos_id, cfg.eos_id);
  const int64_t max_len = task.max_len + 2;
  model::Transformer& net = trainer.model();
  const auto f32 = net.greedy_decode(batch.src, batch.src_lengths, max_len);
  const Tensor f32_logits = net.teacher_forced_logits(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_lengths);

  const parallel::Int8Summary summary = parallel::quantize_int8(trainer.store());
  // Per encoder layer q, k, v, out, ffn in, ffn out; per decoder layer twice the attention; and the
  // output projection.
  EXPECT_EQ(summary.layers, cfg.encoder_layers * 6 + cfg.decoder_layers * 10 + 1);
  const auto int8 = net.greedy_decode(batch.src, batch.src_lengths, max_len);
  const Tensor int8_logits = net.teacher_forced_logits(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_lengths);

  double same = 0, positions = 0, correct = 0, reference = 0;
  for (size_t i = 0; i < held_out.size(); ++i) {
    for (size_t j = 0; j < f32[i].size(); ++j) same += j < int8[i].size() && int8[i][j] == f32[i][j];
    positions += static_cast<double>(f32[i].size());
    for (size_t j = 0; j < held_out[i].tgt.size(); ++j) correct += j < f32[i].size() && f32[i][j] == held_out[i].tgt[j];
    reference += static_cast<double>(held_out[i].tgt.size());
  }
  const double accuracy = correct / reference, agreement = same / positions;
  EXPECT_GT(accuracy, 0.7) << "the f32 model did not learn the task: the comparison would say little";
  EXPECT_GT(agreement, 0.95) << "int8 greedy tokens equal to f32's at the same position";

  // Logits of real target positions and real vocabulary entries.
  double largest_diff = 0, lo = 0, hi = 0;
  const int64_t t = batch.tgt_in.dim(1), v = f32_logits.dim(1);
  for (int64_t b = 0; b < batch.src.dim(0); ++b)
    for (int64_t p = 0; p < batch.tgt_lengths.data<int32_t>()[b]; ++p)
      for (int64_t c = 0; c < cfg.vocab_size; ++c) {
        const double a = f32_logits.data<float>()[(b * t + p) * v + c], q = int8_logits.data<float>()[(b * t + p) * v + c];
        largest_diff = std::max(largest_diff, std::abs(a - q));
        lo = std::min(lo, a), hi = std::max(hi, a);
      }
  EXPECT_LT(largest_diff, 0.15 * (hi - lo)) << "largest logit difference " << largest_diff << " over a range of "
                                           << hi - lo;
  std::printf("int8 vs f32: f32 token accuracy %.4f, greedy agreement %.4f, largest logit difference %.4f of a "
              "range %.3f\n", accuracy, agreement, largest_diff, hi - lo);
}

}  // namespace
}  // namespace tessera
