// Int8 matrix products: shape and device checks, then the CPU implementation
// (cpu/int8_matmul_cpu.cc). There is no GPU implementation: decoding in int8 is a CPU option.
#include "kernels/int8_matmul.h"

#include "kernels/cpu/int8_matmul_cpu.h"
#include "kernels/dispatch.h"

namespace tessera::kernels {
namespace {
// 127 * 127 * 2 * 65536 < 2^31: the int32 sum and its zero-point correction cannot overflow.
constexpr int64_t kMaxInFeatures = 65536;

void check_host_f32(const Tensor& t, const char* op, const std::string& name) {
  TESSERA_CHECK(t.defined(), op, ": tensor '", name, "' is undefined");
  TESSERA_CHECK(!t.device().is_cuda(), op, ": tensor '", name, "' is on ", device_name(t.device()),
                "; int8 products run on the CPU only");
  TESSERA_CHECK(t.dtype() == DType::f32, op, ": tensor '", name, "' is ", dtype_name(t.dtype()),
                ", expected f32");
}
}  // namespace

Int8Weight::Int8Weight(const Tensor& w, Layout layout, std::string name) : name_(std::move(name)) {
  check_host_f32(w, "Int8Weight", name_);
  TESSERA_CHECK(w.ndim() == 2, "Int8Weight: tensor '", name_, "' must be 2-D, got shape ", shape_string(w.shape()));
  const bool in_out = layout == Layout::in_out;
  in_ = in_out ? w.dim(0) : w.dim(1);
  out_ = in_out ? w.dim(1) : w.dim(0);
  TESSERA_CHECK(in_ <= kMaxInFeatures, "Int8Weight: tensor '", name_, "' has ", in_, " input features; int8 products ",
                "sum at most ", kMaxInFeatures, " in int32");
  values_.resize(in_ * out_);
  scales_.resize(out_);
  sums_.resize(out_);
  cpu::quantize_weight_channels(w.data<float>(), in_, out_, in_out, values_.data(), scales_.data(), sums_.data());
}

int64_t Int8Weight::bytes() const {
  return static_cast<int64_t>(values_.size() * sizeof(int8_t) + scales_.size() * sizeof(float) +
                              sums_.size() * sizeof(int32_t));
}

Int8Rows quantize_rows(const Tensor& x, const char* name) {
  check_host_f32(x, "quantize_rows", name);
  check_ndim(x, 2, "quantize_rows", name);
  Int8Rows q;
  q.rows = x.dim(0);
  q.cols = x.dim(1);
  q.values.resize(q.rows * q.cols);
  q.scales.resize(q.rows);
  q.zero_points.resize(q.rows);
  const int64_t bad = cpu::quantize_rows_u7(x.data<float>(), q.rows, q.cols, q.values.data(), q.scales.data(),
                                            q.zero_points.data());
  TESSERA_CHECK(bad < 0, "quantize_rows: row ", bad, " of tensor '", name, "' holds a value that is not finite");
  return q;
}

void int8_matmul(const Tensor& x, const Int8Weight& w, const Tensor& bias, Tensor& y) {
  const char* op = "int8_matmul";
  check_host_f32(x, op, "x");
  check_host_f32(y, op, "y");
  check_ndim(x, 2, op, "x");
  TESSERA_CHECK(x.dim(1) == w.in(), op, ": x has shape ", shape_string(x.shape()), " but weight '", w.name(),
                "' takes ", w.in(), " input features");
  check_shape(y, {x.dim(0), w.out()}, op, "y");
  if (bias.defined()) {
    check_host_f32(bias, op, "bias");
    check_shape(bias, {w.out()}, op, "bias");
  }
  const Int8Rows q = quantize_rows(x, "x");
  std::vector<int32_t> sums(q.rows * w.out());
  cpu::int8_gemm(q.rows, w.out(), w.in(), q.values.data(), w.values().data(), sums.data());
  cpu::dequantize(sums.data(), q.rows, w.out(), q.scales.data(), q.zero_points.data(), w.scales().data(),
                  w.channel_sums().data(), bias.defined() ? bias.data<float>() : nullptr, y.data<float>());
}

}  // namespace tessera::kernels
