#include "kernels/cpu/int8_matmul_cpu.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <utility>

#include "core/error.h"

namespace tessera::kernels::cpu {

void quantize_weight_channels(const float* w, int64_t in, int64_t out, bool in_out, int8_t* q, float* s,
                              int32_t* sums) {
  // Element k of channel n: w[k][n] in an [in, out] matrix, w[n][k] in an [out, in] one.
  const int64_t k_stride = in_out ? out : 1, n_stride = in_out ? 1 : in;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < out; ++n) {
    const float* wn = w + n * n_stride;
    float amax = 0;
    for (int64_t k = 0; k < in; ++k) amax = std::max(amax, std::abs(wn[k * k_stride]));
    const float scale = amax / 127.0f;
    const float inv = scale > 0 ? 1.0f / scale : 0.0f;  // a channel of zeros quantises to zeros
    int32_t sum = 0;
    for (int64_t k = 0; k < in; ++k) {
      const int32_t v = static_cast<int32_t>(std::clamp(std::nearbyint(wn[k * k_stride] * inv), -127.0f, 127.0f));
      q[n * in + k] = static_cast<int8_t>(v);
      sum += v;
    }
    s[n] = scale;
    sums[n] = sum;
  }
}

int64_t quantize_rows_u7(const float* x, int64_t rows, int64_t cols, uint8_t* q, float* s, int32_t* z) {
  int64_t bad_row = -1;
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < rows; ++m) {
    const float* xm = x + m * cols;
    float lo = 0, hi = 0;  // the range always holds 0, so 0 is exactly the zero point
    for (int64_t k = 0; k < cols; ++k) lo = std::min(lo, xm[k]), hi = std::max(hi, xm[k]);
    const float scale = (hi - lo) / 127.0f;
    if (!std::isfinite(scale) || std::isnan(lo) || std::isnan(hi)) {
#pragma omp critical(tessera_int8_bad_row)
      bad_row = bad_row < 0 ? m : std::min(bad_row, m);
      continue;
    }
    const float inv = scale > 0 ? 1.0f / scale : 0.0f;  // a row of zeros quantises to zeros
    const float zero = std::nearbyint(-lo * inv);
    // round(x / s) + z lies in [-0.5, 127.5] before rounding, so the clamp moves nothing by more
    // than half a step.
    for (int64_t k = 0; k < cols; ++k)
      q[m * cols + k] = static_cast<uint8_t>(std::clamp(std::nearbyint(xm[k] * inv) + zero, 0.0f, 127.0f));
    s[m] = scale;
    z[m] = static_cast<int32_t>(zero);
  }
  return bad_row;
}

namespace {
// One CPU engine and stream, and one matmul primitive per (k, n): the rows m are a run-time
// dimension, so a layer's primitive serves every batch size.
struct OneDnn {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<std::pair<int64_t, int64_t>, dnnl::matmul> products;
  std::mutex mutex;
};

OneDnn& onednn() {
  static OneDnn instance;
  return instance;
}

using dnnl::memory;
using dt = memory::data_type;

dnnl::matmul& product(OneDnn& d, int64_t k, int64_t n) {
  auto it = d.products.find({k, n});
  if (it != d.products.end()) return it->second;
  const memory::desc a({DNNL_RUNTIME_DIM_VAL, k}, dt::u8, {k, 1});
  const memory::desc b({k, n}, dt::s8, {1, k});  // b^T: [k, n] read from b [n, k]
  const memory::desc c({DNNL_RUNTIME_DIM_VAL, n}, dt::s32, {n, 1});
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), d.engine);
  return d.products.emplace(std::pair{k, n}, dnnl::matmul(pd)).first->second;
}
}  // namespace

void int8_gemm(int64_t m, int64_t n, int64_t k, const uint8_t* a, const int8_t* b_nk, int32_t* c) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    std::fill(c, c + m * n, 0);
    return;
  }
  try {
    OneDnn& d = onednn();
    std::lock_guard lock(d.mutex);
    dnnl::matmul& mm = product(d, k, n);
    memory a_mem({{m, k}, dt::u8, {k, 1}}, d.engine, const_cast<uint8_t*>(a));
    memory b_mem({{k, n}, dt::s8, {1, k}}, d.engine, const_cast<int8_t*>(b_nk));
    memory c_mem({{m, n}, dt::s32, {n, 1}}, d.engine, c);
    mm.execute(d.stream, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
    d.stream.wait();
  } catch (const dnnl::error& e) {
    TESSERA_FAIL("int8_matmul: oneDNN failed on a ", m, "x", k, " by ", k, "x", n, " u8 x s8 product: ", e.what(),
                 " (status ", static_cast<int>(e.status), ")");
  }
}

void dequantize(const int32_t* c, int64_t m, int64_t n, const float* sx, const int32_t* zx, const float* sw,
                const int32_t* sums, const float* bias, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < m; ++i) {
    const int32_t* ci = c + i * n;
    float* yi = y + i * n;
    const float si = sx[i];
    const int32_t zi = zx[i];
    if (bias != nullptr) {
      for (int64_t j = 0; j < n; ++j) yi[j] = static_cast<float>(ci[j] - zi * sums[j]) * (si * sw[j]) + bias[j];
    } else {
      for (int64_t j = 0; j < n; ++j) yi[j] = static_cast<float>(ci[j] - zi * sums[j]) * (si * sw[j]);
    }
  }
}

}  // namespace tessera::kernels::cpu
