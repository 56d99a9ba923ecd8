// Ops checked against a plain host reference on every device (a /cpu and a /cuda instance of each
// test, devices.h): the reductions and conversions that the gradient tests of ops_grad_test.cc do
// not reach, and the elementwise ops. Then, where a GPU is present, the key training ops in f32
// on CUDA against the same op on the CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "devices.h"
#include "kernels/ops.h"
#include "test_util.h"

namespace tessera {
namespace {
using namespace tessera::testing;
namespace k = tessera::kernels;

const char* dtype_label(DType t) { return t == DType::f32 ? "f32" : t == DType::f64 ? "f64" : "bf16"; }

float float_from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
uint32_t bits_of(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}
const uint16_t* bf16_data(const Tensor& t) { return static_cast<const uint16_t*>(t.raw()); }

// A host tensor of `values` in `dtype` (f32 or f64).
Tensor tensor_of(const std::vector<double>& values, DType dtype) {
  Tensor t = Tensor::empty({static_cast<int64_t>(values.size())}, DType::f64);
  std::copy(values.begin(), values.end(), t.data<double>());
  return dtype == DType::f64 ? t : t.to(dtype);
}

class Ops : public DeviceTest {};
INSTANTIATE_DEVICE_TEST_SUITE(Ops);

// ---- elementwise -----------------------------------------------------------------------------

// add, axpy, scale, add_bias and bias_backward against the same arithmetic in double on the
// host, on a shape wider than one block of threads with an odd width. f64 allows only the
// rounding of a fused multiply-add or of another summation order; f32 one f32 rounding.
TEST_P(Ops, ElementwiseMatchHostReference) {
  const int64_t rows = 37, cols = 129;
  for (DType dtype : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_label(dtype));
    const double tol = dtype == DType::f64 ? 1e-15 : 1e-6;
    const Tensor a = random_tensor({rows, cols}, dtype), b = random_tensor({rows, cols}, dtype);
    const Tensor bias = random_tensor({cols}, dtype), dbias0 = random_tensor({cols}, dtype);
    const std::vector<double> av = as_doubles(a), bv = as_doubles(b), biasv = as_doubles(bias);
    const double alpha = -0.625, factor = 1.75;  // exact in binary, so the reference is exact
    std::vector<double> sum(av.size()), axpy(av.size()), scaled(av.size()), biased(av.size());
    std::vector<double> dbias = as_doubles(dbias0);
    for (int64_t i = 0; i < rows * cols; ++i) {
      sum[i] = av[i] + bv[i];
      axpy[i] = bv[i] + alpha * av[i];
      scaled[i] = factor * av[i];
      biased[i] = av[i] + biasv[i % cols];
      dbias[i % cols] += av[i];
    }
    auto want = [&](const std::vector<double>& v, const Shape& shape) { return tensor_of(v, DType::f64).reshape(shape); };

    Tensor o = Tensor::empty({rows, cols}, dtype, device());
    k::add(on_device(a), on_device(b), o);
    expect_near("add", on_host(o), want(sum, {rows, cols}), 0, tol);

    Tensor y = on_device(b);
    k::axpy(alpha, on_device(a), y);
    expect_near("axpy", on_host(y), want(axpy, {rows, cols}), tol, tol);

    Tensor x = on_device(a);
    k::scale(x, factor);
    expect_near("scale", on_host(x), want(scaled, {rows, cols}), 0, tol);

    Tensor xb = on_device(a);
    k::add_bias(xb, on_device(bias));
    expect_near("add_bias", on_host(xb), want(biased, {rows, cols}), 0, tol);

    // bias_backward adds into dbias; rows are summed in any order.
    Tensor db = on_device(dbias0);
    k::bias_backward(on_device(a), db);
    expect_near("bias_backward", on_host(db), want(dbias, {cols}), rows * tol, tol);
  }
}

// ---- sum_squares_segments --------------------------------------------------------------------

// Each segment's sum of squares against a double loop over it: the whole buffer, an empty
// segment, single elements at both ends, and segments that cross many blocks. An f32 buffer is
// summed in double too, so both dtypes allow only the summation order.
TEST_P(Ops, SumSquaresSegmentsMatchDoubleReference) {
  const int64_t n = 5003;
  const std::vector<int64_t> bounds = {0, n, 7, 7, 3, 17, 17, 4099, n - 1, n, 0, 1, 4099, n};
  for (DType dtype : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_label(dtype));
    const Tensor x = random_tensor({n}, dtype, -2, 2);
    const std::vector<double> xv = as_doubles(x);
    const std::vector<double> got = k::sum_squares_segments(on_device(x), bounds);
    ASSERT_EQ(got.size(), bounds.size() / 2);
    for (size_t s = 0; s < got.size(); ++s) {
      double want = 0;
      for (int64_t i = bounds[2 * s]; i < bounds[2 * s + 1]; ++i) want += xv[i] * xv[i];
      EXPECT_NEAR(got[s], want, 1e-12 * want) << "segment [" << bounds[2 * s] << ", " << bounds[2 * s + 1] << ")";
    }
    EXPECT_EQ(got[1], 0.0) << "the empty segment";
    EXPECT_TRUE(k::sum_squares_segments(on_device(x), {}).empty());
  }
}

// ---- convert ---------------------------------------------------------------------------------

// f32 -> f64 is exact; f64 -> f32 rounds to nearest, so it is exact on values an f32 holds and
// equals the host's rounding elsewhere.
TEST_P(Ops, ConvertBetweenF32AndF64) {
  const int64_t n = 1031;
  const Tensor f32 = random_tensor({n}, DType::f32, -3, 3);
  Tensor wide = Tensor::empty({n}, DType::f64, device());
  k::convert(on_device(f32), wide);
  const Tensor wide_h = on_host(wide);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(wide_h.data<double>()[i], static_cast<double>(f32.data<float>()[i])) << "f32 -> f64, element " << i;

  Tensor back = Tensor::empty({n}, DType::f32, device());
  k::convert(wide, back);
  const Tensor back_h = on_host(back);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(bits_of(back_h.data<float>()[i]), bits_of(f32.data<float>()[i])) << "f64 -> f32 of an f32 value, element " << i;

  const Tensor f64 = random_tensor({n}, DType::f64, -3, 3);
  Tensor narrow = Tensor::empty({n}, DType::f32, device());
  k::convert(on_device(f64), narrow);
  const Tensor narrow_h = on_host(narrow);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(bits_of(narrow_h.data<float>()[i]), bits_of(static_cast<float>(f64.data<double>()[i])))
        << "f64 -> f32, element " << i << " = " << f64.data<double>()[i];
}

// To bf16 rounds to nearest even, bit for bit as float_to_bf16 (core/tensor.h) on the host:
// random values, exact ties both ways, one either side of a tie, subnormals, overflow to infinity,
// infinities and signed zero. A NaN stays a NaN, also one whose payload lies only in the bits
// that are dropped (rounding it as a number would give infinity). bf16 back to f32 and f64 is
// exact.
TEST_P(Ops, ConvertToBf16RoundsToNearestEven) {
  const uint32_t special_bits[] = {
      0x3F808000u,  // 1 + 2^-8: a tie between 0x3F80 (even) and 0x3F81, rounds down
      0x3F818000u,  // a tie between 0x3F81 and 0x3F82 (even), rounds up
      0xBF808000u,  // the first tie, negative
      0x3F807FFFu,  // just below a tie: down
      0x3F808001u,  // just above a tie: up
      0x00000001u,  // the smallest subnormal: to zero
      0x00018000u,  // a subnormal tie, rounds up to the even 0x0002
      0x7F7FFFFFu,  // the largest float: rounds up to infinity
      0x7F800000u, 0xFF800000u,  // infinities
      0x80000000u,  // -0
  };
  const uint32_t nan_bits[] = {0x7FC00000u, 0x7F800001u, 0xFFFFFFFFu, 0x7FBFFFFFu};
  const int64_t n_random = 997;
  std::vector<double> values;
  const Tensor random = random_tensor({n_random}, DType::f32, -100, 100);
  for (int64_t i = 0; i < n_random; ++i) values.push_back(random.data<float>()[i]);
  for (uint32_t b : special_bits) values.push_back(float_from_bits(b));
  const size_t first_nan = values.size();
  for (uint32_t b : nan_bits) values.push_back(float_from_bits(b));
  const int64_t n = static_cast<int64_t>(values.size());

  // From f32, and from f64 holding the same (f32) values: no double rounding can differ.
  Tensor src32 = Tensor::empty({n}, DType::f32);
  for (int64_t i = 0; i < n; ++i) src32.data<float>()[i] = static_cast<float>(values[i]);
  for (int64_t i = 0; i < static_cast<int64_t>(std::size(nan_bits)); ++i)  // keep the NaN payloads
    std::memcpy(src32.data<float>() + first_nan + i, &nan_bits[i], 4);
  for (DType from : {DType::f32, DType::f64}) {
    SCOPED_TRACE(std::string("from ") + dtype_label(from));
    Tensor src = src32;
    if (from == DType::f64) {
      src = Tensor::empty({n}, DType::f64);
      for (int64_t i = 0; i < n; ++i) src.data<double>()[i] = static_cast<double>(src32.data<float>()[i]);
    }
    Tensor dst = Tensor::empty({n}, DType::bf16, device());
    k::convert(on_device(src), dst);
    const Tensor got = on_host(dst);
    for (int64_t i = 0; i < n; ++i) {
      const float f = src32.data<float>()[i];
      const uint16_t b = bf16_data(got)[i];
      if (std::isnan(f)) {
        EXPECT_TRUE(std::isnan(bf16_to_float(b)))
            << "NaN 0x" << std::hex << bits_of(f) << " became 0x" << b << std::dec;
        if (from == DType::f32) {
          EXPECT_EQ(b >> 15, bits_of(f) >> 31) << "the sign of NaN 0x" << std::hex << bits_of(f);
        }
      } else {
        EXPECT_EQ(b, float_to_bf16(f)) << "element " << i << ": " << f << " (0x" << std::hex << bits_of(f) << ")";
      }
    }
  }

  // Back from bf16: exact.
  Tensor bf = Tensor::empty({n}, DType::bf16);
  for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(bf.raw())[i] = float_to_bf16(src32.data<float>()[i]);
  const Tensor bf_d = on_device(bf);
  Tensor to32 = Tensor::empty({n}, DType::f32, device()), to64 = Tensor::empty({n}, DType::f64, device());
  k::convert(bf_d, to32);
  k::convert(bf_d, to64);
  const Tensor h32 = on_host(to32), h64 = on_host(to64);
  for (int64_t i = 0; i < n; ++i) {
    const float want = bf16_to_float(bf16_data(bf)[i]);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(h32.data<float>()[i]) && std::isnan(h64.data<double>()[i])) << "element " << i;
    } else {
      EXPECT_EQ(bits_of(h32.data<float>()[i]), bits_of(want)) << "bf16 -> f32, element " << i;
      EXPECT_EQ(h64.data<double>()[i], static_cast<double>(want)) << "bf16 -> f64, element " << i;
    }
  }
}

// ---- token_stats -----------------------------------------------------------------------------

// Loss sum (in double), tokens and correct predictions over the rows whose target is not pad_id,
// against a host loop. Pad rows carry a loss and sometimes predicted == target (= pad_id), so
// counting them would show. Many rows, so the device reduction spans blocks; and all-pad rows.
// bf16 products: both operands rounded to bf16, products summed in f32 into an f32 c. Checked
// against the f64 product of the rounded operands (sums of exact bf16 x bf16 products, so only
// the f32 summation rounds: 1e-5 of the sum of |terms|), for plain, transposed and batched
// operands; and against the f32 product, which must differ (the rounding is really applied: the
// largest difference measured is 6e-4 of the sum of |terms|, asserted above 1e-4).
float round_to_bf16(float x) {
  return float_from_bits(static_cast<uint32_t>(k::bf16_from_float(x)) << 16);
}

TEST_P(Ops, Bf16MatmulSumsRoundedOperandsInF32) {
  const int64_t batch = 3, m = 37, n = 29, kk = 300;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE(std::string("trans_a ") + (ta ? "yes" : "no") + ", trans_b " + (tb ? "yes" : "no"));
      const Tensor a = random_tensor(ta ? Shape{batch, kk, m} : Shape{batch, m, kk}, DType::f32);
      const Tensor b = random_tensor(tb ? Shape{batch, n, kk} : Shape{batch, kk, n}, DType::f32);
      Tensor c = on_device(Tensor::zeros({batch, m, n}, DType::f32)), c32 = on_device(Tensor::zeros({batch, m, n}, DType::f32));
      k::batched_matmul(on_device(a), ta, on_device(b), tb, c, 1.0, 0.0, k::Precision::bf16);
      k::batched_matmul(on_device(a), ta, on_device(b), tb, c32, 1.0, 0.0, k::Precision::fp32);
      Tensor c2 = on_device(Tensor::zeros({m, n}, DType::f32));  // the 2-D product of batch entry 1
      k::matmul(on_device(a).view(a.numel() / batch, {a.dim(1), a.dim(2)}), ta,
                on_device(b).view(b.numel() / batch, {b.dim(1), b.dim(2)}), tb, c2, 1.0, 0.0, k::Precision::bf16);
      const Tensor got = c.to(Device::cpu), got32 = c32.to(Device::cpu), got2 = c2.to(Device::cpu);
      const float* pa = a.data<float>();
      const float* pb = b.data<float>();
      double max_change = 0;
      for (int64_t i = 0; i < batch; ++i)
        for (int64_t r = 0; r < m; ++r)
          for (int64_t col = 0; col < n; ++col) {
            double want = 0, size = 0;
            for (int64_t x = 0; x < kk; ++x) {
              const float av = pa[i * m * kk + (ta ? x * m + r : r * kk + x)];
              const float bv = pb[i * kk * n + (tb ? col * kk + x : x * n + col)];
              const double term = static_cast<double>(round_to_bf16(av)) * round_to_bf16(bv);
              want += term;
              size += std::abs(term);
            }
            const int64_t at = (i * m + r) * n + col;
            ASSERT_NEAR(got.data<float>()[at], want, 1e-5 * size) << "batch " << i << " element " << r << "," << col;
            if (i == 1) {
              ASSERT_NEAR(got2.data<float>()[r * n + col], want, 1e-5 * size) << "2-D, element " << r << "," << col;
            }
            max_change = std::max(max_change, std::abs(got32.data<float>()[at] - want) / size);
          }
      EXPECT_GT(max_change, 1e-4) << "the bf16 product equals the f32 one: operands were not rounded";
    }
  }
}

TEST_P(Ops, Bf16MatmulRejectsDoubleOperands) {
  Tensor a = on_device(Tensor::zeros({2, 2}, DType::f64)), c = on_device(Tensor::zeros({2, 2}, DType::f64));
  try {
    k::matmul(a, false, a, false, c, 1.0, 0.0, k::Precision::bf16);
    ADD_FAILURE() << "a bf16 product of f64 operands did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bf16 precision needs f32 operands, but 'a' is f64"), std::string::npos)
        << e.what();
  }
}

TEST_P(Ops, TokenStatsExcludePadRows) {
  const int32_t pad_id = 1;
  const int64_t n = 1031;
  std::uniform_int_distribution<int32_t> token(0, 7);
  std::vector<int32_t> targets(n), predicted(n);
  for (int64_t i = 0; i < n; ++i) {
    targets[i] = token(rng());
    predicted[i] = token(rng()) < 4 ? targets[i] : token(rng());
  }
  // At least one pad row that "predicts" the pad, one correct and one wrong real row.
  targets[0] = predicted[0] = pad_id;
  targets[1] = predicted[1] = 5;
  targets[2] = 5, predicted[2] = 6;
  for (DType dtype : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_label(dtype));
    const Tensor row_loss = random_tensor({n}, dtype, 0.1, 5);
    const std::vector<double> lv = as_doubles(row_loss);
    double loss_sum = 0;
    int64_t tokens = 0, correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (targets[i] == pad_id) continue;
      loss_sum += lv[i];
      ++tokens;
      correct += predicted[i] == targets[i];
    }
    ASSERT_GT(tokens, 0);
    ASSERT_LT(tokens, n);
    const k::TokenStats got =
        k::token_stats(on_device(row_loss), on_device(int_tensor(predicted)), on_device(int_tensor(targets)), pad_id);
    EXPECT_NEAR(got.loss_sum, loss_sum, 1e-12 * loss_sum);
    EXPECT_EQ(got.tokens, tokens);
    EXPECT_EQ(got.correct, correct);

    const k::TokenStats none = k::token_stats(on_device(random_tensor({3}, dtype, 0.1, 5)),
                                              on_device(int_tensor({pad_id, 2, pad_id})),
                                              on_device(int_tensor({pad_id, pad_id, pad_id})), pad_id);
    EXPECT_EQ(none.loss_sum, 0.0);
    EXPECT_EQ(none.tokens, 0);
    EXPECT_EQ(none.correct, 0);
  }
}

// ---- row_topk --------------------------------------------------------------------------------

// The k largest real logits of each row against a stable sort of the real columns (so ties go to
// the lower id). Logits take few distinct values, so ties are common; padded columns hold the
// largest values of all, so a kernel that read them would show; ids are offset by vocab_start;
// slots past the real columns hold -inf and id -1.
TEST_P(Ops, RowTopkMatchesSortReference) {
  struct Case { int64_t rows, cols, real_cols, vocab_start, k; };
  const Case cases[] = {
      {5, 9, 7, 100, 1}, {5, 9, 7, 100, 3}, {5, 9, 7, 100, 7}, {5, 9, 7, 100, 9},
      {3, 40, 40, 0, 40}, {4, 1003, 1000, 2000, 8}, {2, 1003, 1000, 0, 1000},
  };
  for (DType dtype : {DType::f64, DType::f32})
    for (const Case& c : cases) {
      SCOPED_TRACE(::testing::Message() << dtype_label(dtype) << ", " << c.rows << "x" << c.cols << ", real "
                                        << c.real_cols << ", vocab_start " << c.vocab_start << ", k " << c.k);
      const Tensor u = random_tensor({c.rows, c.cols}, DType::f64, -1, 1);
      Tensor z = Tensor::empty({c.rows, c.cols}, DType::f64);
      for (int64_t i = 0; i < z.numel(); ++i)
        z.data<double>()[i] = i % c.cols >= c.real_cols ? 10.0 : std::floor(u.data<double>()[i] * 4) / 4 + 0.125;
      const Tensor logits = z.to(dtype);
      const std::vector<double> zv = as_doubles(logits);
      Tensor values = Tensor::empty({c.rows, c.k}, dtype, device());
      Tensor ids = Tensor::empty({c.rows, c.k}, DType::i32, device());
      k::row_topk(on_device(logits), c.real_cols, c.vocab_start, c.k, values, ids);
      const std::vector<double> got_values = as_doubles(on_host(values));
      const Tensor got_ids = on_host(ids);
      int failures = 0;
      for (int64_t r = 0; r < c.rows && failures < 5; ++r) {
        std::vector<int64_t> order(c.real_cols);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t a, int64_t b) { return zv[r * c.cols + a] > zv[r * c.cols + b]; });
        for (int64_t s = 0; s < c.k; ++s) {
          const double want_value = s < c.real_cols ? zv[r * c.cols + order[s]] : -std::numeric_limits<double>::infinity();
          const int64_t want_id = s < c.real_cols ? order[s] + c.vocab_start : -1;
          const double got_value = got_values[r * c.k + s];
          const int32_t got_id = got_ids.data<int32_t>()[r * c.k + s];
          if (got_value != want_value || got_id != want_id) {
            ADD_FAILURE() << "row " << r << ", slot " << s << ": (" << got_value << ", id " << got_id
                          << "), expected (" << want_value << ", id " << want_id << ")";
            ++failures;
          }
        }
      }
    }
}

// ---- CUDA against the CPU, in f32 ------------------------------------------------------------

// Rows whose last dimension is empty ([3, 0]): every row op returns without touching memory
// (it used to divide the element count by the empty dimension and die of SIGFPE).
// A cache preallocated to `capacity` positions and filled up to `rows`, read in place: the product
// over its leading rows equals the product over a packed copy of them, bit for bit (the same
// sums in the same order), for K^T (scores) and V (context), in f32 and f64.
TEST_P(Ops, LeadingRowsProductReadsTheFilledPartOfACache) {
  const int64_t batch = 6, sq = 3, capacity = 11, filled = 7, dk = 5;
  for (DType dt : {DType::f32, DType::f64}) {
    for (bool tb : {true, false}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + (tb ? " keys (b transposed)" : " values"));
      const Tensor cache = random_tensor({batch, capacity, dk}, dt);
      Tensor packed = Tensor::empty({batch, filled, dk}, dt);
      copy_strided(packed, filled * dk, cache, capacity * dk, filled * dk, batch);
      const Tensor a = random_tensor(tb ? Shape{batch, sq, dk} : Shape{batch, sq, filled}, dt);
      const Shape out = tb ? Shape{batch, sq, filled} : Shape{batch, sq, dk};
      Tensor got = on_device(Tensor::zeros(out, dt)), want = on_device(Tensor::zeros(out, dt));
      k::batched_matmul_leading_rows(on_device(a), false, on_device(cache), filled, tb, got);
      k::batched_matmul(on_device(a), false, on_device(packed), tb, want);
      const Tensor g = got.to(Device::cpu), w = want.to(Device::cpu);
      ASSERT_EQ(0, std::memcmp(g.raw(), w.raw(), g.numel() * dtype_size(dt)));
    }
  }
  Tensor c = on_device(Tensor::zeros({batch, sq, capacity + 1}, DType::f32));
  EXPECT_THROW(k::batched_matmul_leading_rows(on_device(random_tensor({batch, sq, dk}, DType::f32)), false,
                                              on_device(random_tensor({batch, capacity, dk}, DType::f32)),
                                              capacity + 1, true, c),
               Error);
}

// Queries against a cache preallocated to `capacity` positions and filled up to sk, read in place:
// cached_attention equals softmax(scale q.k + mask) v written out in f64 over the filled positions,
// with padding (key lengths below, at and above sk, and 0: a row that sees nothing gets zeros) and
// the causal mask (query i of sq sees keys up to i + sk - sq), for one and for several queries.
TEST_P(Ops, CachedAttentionIsTheMaskedSoftmaxOfTheFilledPositionsTimesTheirValues) {
  const int64_t batch = 4, heads = 2, capacity = 9, sk = 6, dk = 5;
  const std::vector<int32_t> key_lengths = {6, 3, 0, 8};
  const double scale = 0.7;
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t sq : {1, 3}) {
      for (bool causal : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " sq " + std::to_string(sq) + (causal ? " causal" : ""));
        const Tensor q = random_tensor({batch, heads, sq, dk}, dt), k = random_tensor({batch, heads, capacity, dk}, dt),
                     v = random_tensor({batch, heads, capacity, dk}, dt);
        Tensor lengths = Tensor::empty({batch}, DType::i32);
        std::copy(key_lengths.begin(), key_lengths.end(), lengths.data<int32_t>());
        Tensor ctx = on_device(Tensor::zeros({batch, heads, sq, dk}, dt));
        k::cached_attention(on_device(q), on_device(k), on_device(v), sk, on_device(lengths), causal, scale, ctx);
        const Tensor got = ctx.to(Device::cpu).to(DType::f64), q64 = q.to(DType::f64), k64 = k.to(DType::f64),
                     v64 = v.to(DType::f64);
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t h = 0; h < heads; ++h)
            for (int64_t i = 0; i < sq; ++i) {
              int64_t visible = std::min<int64_t>(key_lengths[b], sk);
              if (causal) visible = std::min(visible, i + sk - sq + 1);
              const double* qi = q64.data<double>() + ((b * heads + h) * sq + i) * dk;
              const double* keys = k64.data<double>() + (b * heads + h) * capacity * dk;
              const double* values = v64.data<double>() + (b * heads + h) * capacity * dk;
              std::vector<double> p(visible);
              double mx = -INFINITY, sum = 0;
              for (int64_t j = 0; j < visible; ++j) {
                p[j] = 0;
                for (int64_t d = 0; d < dk; ++d) p[j] += qi[d] * keys[j * dk + d];
                mx = std::max(mx, p[j]);
              }
              for (double& x : p) sum += x = std::exp(scale * (x - mx));
              for (int64_t d = 0; d < dk; ++d) {
                double want = 0;
                for (int64_t j = 0; j < visible; ++j) want += p[j] / sum * values[j * dk + d];
                EXPECT_NEAR(got.data<double>()[((b * heads + h) * sq + i) * dk + d], want,
                            dt == DType::f32 ? 1e-5 : 1e-12)
                    << "row " << b << " head " << h << " query " << i << " column " << d;
              }
            }
      }
    }
  }
  Tensor ctx = on_device(Tensor::zeros({batch, heads, 1, dk}, DType::f32));
  Tensor lengths = on_device(Tensor::zeros({batch}, DType::i32));
  const Tensor q = on_device(random_tensor({batch, heads, 1, dk}, DType::f32));
  const Tensor cache = on_device(random_tensor({batch, heads, capacity, dk}, DType::f32));
  EXPECT_THROW(k::cached_attention(q, cache, cache, capacity + 1, lengths, false, scale, ctx), Error);
  EXPECT_THROW(k::cached_attention(q, cache, cache.rows(0, 2), sk, lengths, false, scale, ctx), Error);
}

// Products of a few rows (a decoding step's: on the CPU in f32 oneDNN's sgemm takes most of them,
// OpenBLAS the rest) against the same product in f64: b transposed or not, b narrow and wide
// (panels on 2 threads), alpha and beta, rows on both sides of every path's bounds.
TEST_P(Ops, ProductsOfAFewRowsMatchTheF64Product) {
  struct Dims {
    int64_t n, k;
  };
  for (int64_t m : {1, 2, 3, 8, 23, 24, 64, 65}) {
    for (Dims d : {Dims{5, 7}, Dims{256, 64}, Dims{300, 40}, Dims{1024, 256}}) {
      for (bool tb : {false, true}) {
        SCOPED_TRACE("m " + std::to_string(m) + " n " + std::to_string(d.n) + " k " + std::to_string(d.k) +
                     (tb ? " b transposed" : ""));
        const Tensor a = random_tensor({m, d.k}, DType::f32), b = random_tensor(tb ? Shape{d.n, d.k} : Shape{d.k, d.n}, DType::f32);
        const Tensor c0 = random_tensor({m, d.n}, DType::f32);
        Tensor c = on_device(c0.clone()), c64 = c0.to(DType::f64);
        k::matmul(on_device(a), false, on_device(b), tb, c, 0.5, 1.0);
        k::matmul(a.to(DType::f64), false, b.to(DType::f64), tb, c64, 0.5, 1.0);
        const Tensor got = c.to(Device::cpu).to(DType::f64);
        for (int64_t i = 0; i < got.numel(); ++i)
          ASSERT_NEAR(got.data<double>()[i], c64.data<double>()[i], 1e-6 * static_cast<double>(d.k)) << "element " << i;
      }
    }
  }
}

TEST_P(Ops, EmptyLastDimensionIsANoOp) {
  const Shape empty{3, 0};
  auto zeros = [&](const Shape& shape) { return on_device(Tensor::zeros(shape, DType::f64)); };
  Tensor x = zeros(empty), y = zeros(empty), bias = zeros({0}), mean = zeros({3}), rstd = zeros({3});
  Tensor dx = zeros(empty), dgamma = zeros({0}), dbeta = zeros({0});
  k::DropoutSite site;
  site.p = 0.5f;
  EXPECT_NO_THROW(k::add_bias(x, bias));
  EXPECT_NO_THROW(k::bias_backward(x, bias));
  EXPECT_NO_THROW(k::bias_activation_forward(k::Activation::relu, x, bias, y));
  EXPECT_NO_THROW(k::dropout_forward(site, x, Tensor(), y));
  EXPECT_NO_THROW(k::dropout_backward(site, x, dx));
  EXPECT_NO_THROW(k::masked_softmax_backward(x, y, 1.0, dx));
  EXPECT_NO_THROW(k::layer_norm_forward(x, bias, bias, 1e-5, y, mean, rstd));
  EXPECT_NO_THROW(k::layer_norm_backward(x, bias, mean, rstd, y, dx, dgamma, dbeta));
}

// The ops training spends its time in, in f32 (as training runs them), on CUDA and on the CPU from
// the same inputs. Both backends compute the same functions (kernels/math.h); they differ only in
// the order of f32 sums and in the rounding of exp, log and division, which the tolerances allow.
// Dropout masks must agree bit for bit. One instance: comparing the CPU to itself says nothing.
class CudaMatchesCpu : public ::testing::Test {
 protected:
  static constexpr Device kCuda = Device::cuda(0);
  void SetUp() override {
    const std::string why = device_unavailable_reason(kCuda);
    if (!why.empty()) GTEST_SKIP() << "compares CUDA to the CPU: " << why;
  }
  static Tensor cuda(const Tensor& host) { return host.to(kCuda); }
  static Tensor host(const Tensor& t) { return t.to(Device::cpu); }
  static Tensor empty(const Shape& shape, Device device, DType dtype = DType::f32) {
    return Tensor::empty(shape, dtype, device);
  }
};

// Exactly where `want` is zero, and nowhere else, `got` is zero (masked probabilities, dropped
// elements).
void expect_same_zeros(const char* what, const Tensor& got, const Tensor& want) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = as_doubles(got), w = as_doubles(want);
  int64_t differ = 0, first = -1;
  for (size_t i = 0; i < g.size(); ++i)
    if ((g[i] == 0) != (w[i] == 0) && differ++ == 0) first = static_cast<int64_t>(i);
  EXPECT_EQ(differ, 0) << what << ": zero on one backend only at " << differ << " elements, the first " << first
                       << " (cuda " << (first >= 0 ? g[first] : 0) << ", cpu " << (first >= 0 ? w[first] : 0) << ")";
}

TEST_F(CudaMatchesCpu, MaskedSoftmax) {
  const int64_t B = 3, H = 4, Sq = 17, Sk = 33;
  const Tensor lens = int_tensor({33, 20, 0});  // the last sentence sees no key: all zero
  const double scale = 0.125;
  for (bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "padding only");
    const Tensor s = random_tensor({B, H, Sq, Sk}, DType::f32, -8, 8), dp = random_tensor({B, H, Sq, Sk}, DType::f32);
    Tensor p = empty(s.shape(), Device::cpu), ds = empty(s.shape(), Device::cpu);
    k::masked_softmax_forward(s, lens, causal, scale, p);
    k::masked_softmax_backward(p, dp, scale, ds);
    Tensor p_d = empty(s.shape(), kCuda), ds_d = cuda(dp);
    k::masked_softmax_forward(cuda(s), cuda(lens), causal, scale, p_d);
    k::masked_softmax_backward(p_d, ds_d, scale, ds_d);  // in place of dprobs
    expect_near("probs", host(p_d), p, 1e-7, 1e-5);
    expect_same_zeros("probs", host(p_d), p);
    expect_near("dscores", host(ds_d), ds, 1e-7, 1e-4);
  }
}

TEST_F(CudaMatchesCpu, LayerNorm) {
  const int64_t rows = 67, cols = 300;  // wider than a warp, not a multiple of one
  const Tensor x = random_tensor({rows, cols}, DType::f32, -2, 4), g = random_tensor({cols}, DType::f32),
               b = random_tensor({cols}, DType::f32), dy = random_tensor({rows, cols}, DType::f32),
               dg0 = random_tensor({cols}, DType::f32), db0 = random_tensor({cols}, DType::f32);
  Tensor y = empty(x.shape(), Device::cpu), mean = empty({rows}, Device::cpu), rstd = empty({rows}, Device::cpu);
  Tensor dx = empty(x.shape(), Device::cpu), dg = dg0.clone(), db = db0.clone();
  k::layer_norm_forward(x, g, b, 1e-5, y, mean, rstd);
  k::layer_norm_backward(x, g, mean, rstd, dy, dx, dg, db);
  Tensor y_d = empty(x.shape(), kCuda), mean_d = empty({rows}, kCuda), rstd_d = empty({rows}, kCuda);
  Tensor dx_d = empty(x.shape(), kCuda), dg_d = cuda(dg0), db_d = cuda(db0);
  const Tensor x_d = cuda(x), g_d = cuda(g);
  k::layer_norm_forward(x_d, g_d, cuda(b), 1e-5, y_d, mean_d, rstd_d);
  k::layer_norm_backward(x_d, g_d, mean_d, rstd_d, cuda(dy), dx_d, dg_d, db_d);
  expect_near("mean", host(mean_d), mean, 1e-6, 1e-6);
  expect_near("rstd", host(rstd_d), rstd, 0, 1e-5);
  expect_near("y", host(y_d), y, 1e-5, 1e-5);
  expect_near("dx", host(dx_d), dx, 1e-5, 1e-4);
  // dgamma and dbeta sum over the 67 rows.
  expect_near("dgamma", host(dg_d), dg, 1e-4, 1e-5);
  expect_near("dbeta", host(db_d), db, 1e-4, 1e-5);
}

// Row max, sums, loss and gradient of label-smoothed cross-entropy over a 1000-token vocabulary
// padded to 1024 columns, with pad rows; and the greedy prediction.
TEST_F(CudaMatchesCpu, CrossEntropy) {
  const int64_t n = 40, vocab = 1000, cols = 1024;
  const int32_t pad_id = 3;
  const double eps = 0.1, gscale = 1.0 / 37;
  const Tensor z = random_tensor({n, cols}, DType::f32, -6, 6);
  std::uniform_int_distribution<int32_t> token(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& v : t) v = token(rng());
  t[5] = t[11] = pad_id;
  const Tensor targets = int_tensor(t);

  Tensor mx = empty({n}, Device::cpu), sums = empty({n, 3}, Device::cpu), loss = empty({n}, Device::cpu),
         dz = empty(z.shape(), Device::cpu), best = empty({n}, Device::cpu), best_id = empty({n}, Device::cpu, DType::i32);
  k::cross_entropy_row_max(z, vocab, mx);
  k::cross_entropy_row_sums(z, vocab, targets, 0, mx, sums);
  k::cross_entropy_loss_backward(z, vocab, targets, 0, mx, sums, eps, vocab, pad_id, gscale, loss, dz);
  k::row_argmax(z, vocab, 0, best, best_id);

  const Tensor targets_d = cuda(targets);
  Tensor z_d = cuda(z), mx_d = empty({n}, kCuda), sums_d = empty({n, 3}, kCuda), loss_d = empty({n}, kCuda),
         best_d = empty({n}, kCuda), best_id_d = empty({n}, kCuda, DType::i32);
  k::cross_entropy_row_max(z_d, vocab, mx_d);
  k::cross_entropy_row_sums(z_d, vocab, targets_d, 0, mx_d, sums_d);
  k::row_argmax(z_d, vocab, 0, best_d, best_id_d);
  k::cross_entropy_loss_backward(z_d, vocab, targets_d, 0, mx_d, sums_d, eps, vocab, pad_id, gscale, loss_d,
                                 z_d);  // dlogits in place of the logits, as training runs it

  expect_near("row max", host(mx_d), mx, 0, 0);
  // f32 sums over 1000 columns in another order: 1e-6 per column.
  expect_near("row sums", host(sums_d), sums, 1e-6 * vocab, 1e-5);
  expect_near("row loss", host(loss_d), loss, 1e-5, 1e-5);
  expect_same_zeros("row loss", host(loss_d), loss);  // exactly the pad rows
  expect_near("dlogits", host(z_d), dz, 1e-8, 1e-4);
  expect_near("argmax value", host(best_d), best, 0, 0);
  expect_near("argmax id", host(best_id_d), best_id, 0, 0);
}

TEST_F(CudaMatchesCpu, Adam) {
  const int64_t n = 10007;
  Tensor p = random_tensor({n}, DType::f32), m = random_tensor({n}, DType::f32, -0.1, 0.1),
         v = random_tensor({n}, DType::f32, 0, 0.01);
  Tensor p_d = cuda(p), m_d = cuda(m), v_d = cuda(v);
  for (int64_t step = 1; step <= 3; ++step) {
    const Tensor g = random_tensor({n}, DType::f32, -4, 4);
    k::adam_step(p, g, m, v, 1e-3, 0.9, 0.98, 1e-8, step, 0.5);
    k::adam_step(p_d, cuda(g), m_d, v_d, 1e-3, 0.9, 0.98, 1e-8, step, 0.5);
  }
  expect_near("param", host(p_d), p, 1e-6, 1e-6);
  expect_near("m", host(m_d), m, 1e-7, 1e-5);
  expect_near("v", host(v_d), v, 1e-9, 1e-5);
}

// Forward without and with a residual, and backward, for an activation site (rows of sentences)
// and an attention site (heads of one rank's shard, columns not a multiple of four).
TEST_F(CudaMatchesCpu, DropoutMasksAreBitIdentical) {
  struct Case { const char* what; int64_t rows, cols; k::DropoutSite site; };
  k::DropoutSite activation;
  activation.p = 0.1f;
  activation.seed = rng()();
  activation.step = 11;
  activation.stream = k::dropout_stream(RngPurpose::dropout_residual, 2);
  activation.sentence_offset = 3;
  activation.rows_per_sentence = activation.inner_rows = 16;
  k::DropoutSite attention;
  attention.p = 0.3f;
  attention.seed = rng()();
  attention.step = 4;
  attention.stream = k::dropout_stream(RngPurpose::dropout_attention, 5);
  attention.sentence_offset = 5;
  attention.head_offset = 2;
  attention.rows_per_sentence = 3 * 17;  // 3 heads of 17 positions
  attention.inner_rows = 17;
  const Case cases[] = {{"activation", 512, 1030, activation}, {"attention", 2 * 3 * 17, 17, attention}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const Tensor x = random_tensor({c.rows, c.cols}, DType::f32), r = random_tensor({c.rows, c.cols}, DType::f32),
                 dy = random_tensor({c.rows, c.cols}, DType::f32);
    Tensor y = empty(x.shape(), Device::cpu), yr = empty(x.shape(), Device::cpu), dx = empty(x.shape(), Device::cpu);
    k::dropout_forward(c.site, x, Tensor(), y);
    k::dropout_forward(c.site, x, r, yr);
    k::dropout_backward(c.site, dy, dx);
    const Tensor x_d = cuda(x);
    Tensor y_d = empty(x.shape(), kCuda), yr_d = empty(x.shape(), kCuda), dx_d = cuda(dy);
    k::dropout_forward(c.site, x_d, Tensor(), y_d);
    k::dropout_forward(c.site, x_d, cuda(r), yr_d);
    k::dropout_backward(c.site, dx_d, dx_d);  // in place of dy
    // Inputs are never zero, so an output is zero exactly where the element was dropped.
    expect_same_zeros("forward mask", host(y_d), y);
    expect_same_zeros("backward mask", host(dx_d), dx);
    const std::vector<double> kept = as_doubles(y);
    const int64_t n_kept = std::count_if(kept.begin(), kept.end(), [](double v) { return v != 0; });
    EXPECT_GT(n_kept, 0);
    EXPECT_LT(n_kept, x.numel());
    // x / (1 - p) may round differently by one ulp.
    expect_near("forward", host(y_d), y, 0, 1e-6);
    expect_near("forward with residual", host(yr_d), yr, 1e-6, 1e-6);
    expect_near("backward", host(dx_d), dx, 0, 1e-6);
  }
}

}  // namespace
}  // namespace tessera
