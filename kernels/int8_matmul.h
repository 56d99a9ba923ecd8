// Int8 matrix products for decoding (tessera-translate --quantize int8): y = x W (+ b) with W
// quantised once, per output channel, and x quantised per row on every call; the products are
// summed exactly in int32 (oneDNN, kernels/cpu/int8_matmul_cpu.cc) and dequantised in one f32 pass.
//
//   weights      w[k][n] ~ sw[n] qw[n][k],  sw[n] = max_k |w[k][n]| / 127,  qw = round(w / sw) in [-127, 127]
//   activations  x[m][k] ~ sx[m] (qx[m][k] - zx[m]),  qx in [0, 127]: the row's range [lo, hi]
//                (widened to hold 0) maps onto [0, 127], sx = (hi - lo) / 127, zx = round(-lo / sx)
//   product      y[m][n] = sx[m] sw[n] (sum_k qx qw - zx[m] sum_k qw[n][k]) + b[n]
//
// Why 7-bit unsigned activations, not s8 or full u8: CPUs without VNNI (AVX2, AVX-512 before
// Cascade Lake) multiply u8 by s8 with vpmaddubsw, which adds pairs of products into a saturating
// int16, and 2 * 255 * 127 > 32767. With qx <= 127, 2 * 127 * 127 = 32258 fits, so the int32 sum is
// exact on every instruction set oneDNN dispatches to (VNNI and AMX sum in int32 anyway). Signed
// activations are no way out: oneDNN shifts s8 into u8 by +128 and then saturates even for
// |qx| <= 63 (measured on AVX2). The zero point keeps the one-sided rows (the ReLU output that the
// second FFN layer reads) at 127 steps over their range; a symmetric row pays one bit against s8.
//
// A channel (or row) of zeros has scale 0 and quantises to zeros: nothing divides by it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera::kernels {

// A weight matrix quantised per output channel, held channel-major: qw[n][k] for output n.
class Int8Weight {
 public:
  // How the f32 matrix holds W of y = x W: [in, out] (the linear layers), or [out, in] (the
  // embedding table E, whose output projection is h E^T).
  enum class Layout { in_out, out_in };

  // Quantises `w` (f32, on the CPU); `name` names it in errors.
  Int8Weight(const Tensor& w, Layout layout, std::string name);

  int64_t in() const { return in_; }
  int64_t out() const { return out_; }
  const std::string& name() const { return name_; }
  const std::vector<int8_t>& values() const { return values_; }         // qw [out, in]
  const std::vector<float>& scales() const { return scales_; }          // sw [out]
  const std::vector<int32_t>& channel_sums() const { return sums_; }    // sum_k qw[n][k], [out]
  // Bytes held: the int8 values, the scales and the channel sums.
  int64_t bytes() const;

 private:
  int64_t in_ = 0, out_ = 0;
  std::string name_;
  std::vector<int8_t> values_;
  std::vector<float> scales_;
  std::vector<int32_t> sums_;
};

// Rows of x quantised to 7-bit unsigned integers with a zero point, as above.
struct Int8Rows {
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> values;        // qx [rows, cols], each in [0, 127]
  std::vector<float> scales;          // sx [rows]
  std::vector<int32_t> zero_points;   // zx [rows], in [0, 127]
};

// Quantises x [M, K] (f32, on the CPU) row by row; `name` names it in errors.
Int8Rows quantize_rows(const Tensor& x, const char* name = "x");

// y [M, out] = x [M, in] W (+ bias [out] when defined), with x quantised by quantize_rows and the
// sum exact in int32. CPU only: a tensor on a GPU is an error.
void int8_matmul(const Tensor& x, const Int8Weight& w, const Tensor& bias, Tensor& y);

}  // namespace tessera::kernels
