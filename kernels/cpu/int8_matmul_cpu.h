// The CPU implementation of kernels/int8_matmul.h: the quantisation passes, the int32 product
// through oneDNN, and the dequantisation pass. Shapes are checked by the caller.
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {

// Per output channel n: s[n] = max_k |w| / 127, q[n][k] = round(w / s[n]), sums[n] = sum_k q[n][k].
// w is [in, out] when in_out, else [out, in]; q is always [out, in].
void quantize_weight_channels(const float* w, int64_t in, int64_t out, bool in_out, int8_t* q, float* s,
                              int32_t* sums);

// Per row m of x [rows, cols]: the range [lo, hi] (widened to hold 0) onto [0, 127]: s[m] = (hi - lo)
// / 127, z[m] = round(-lo / s[m]), q = clamp(round(x / s[m]) + z[m], 0, 127). Returns the first row
// whose values are not all finite, or -1.
int64_t quantize_rows_u7(const float* x, int64_t rows, int64_t cols, uint8_t* q, float* s, int32_t* z);

// c [m, n] = a [m, k] b^T with b held [n, k]: u8 x s8 summed in int32 by oneDNN's matmul.
void int8_gemm(int64_t m, int64_t n, int64_t k, const uint8_t* a, const int8_t* b_nk, int32_t* c);

// y[i][j] = sx[i] sw[j] (c[i][j] - zx[i] sums[j]) (+ bias[j] when bias is not null), y [m, n].
void dequantize(const int32_t* c, int64_t m, int64_t n, const float* sx, const int32_t* zx, const float* sw,
                const int32_t* sums, const float* bias, float* y);

}  // namespace tessera::kernels::cpu
