#include "core/tensor.h"

#include <cstring>
#include <sstream>

#include "core/allocator.h"
#include "kernels/math.h"

namespace tessera {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const Shape& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

Storage::Storage(size_t bytes, Device device)
    : data_(allocator_for(device).allocate(bytes)), bytes_(bytes), device_(device) {}

Storage::~Storage() { allocator_for(device_).deallocate(data_); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) TESSERA_CHECK(d >= 0, "negative dimension in shape ", shape_string(shape));
  Tensor t;
  t.storage_ = std::make_shared<Storage>(std::max<size_t>(1, shape_numel(shape) * dtype_size(dtype)), device);
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::view(int64_t element_offset, const Shape& shape) const {
  TESSERA_CHECK(defined(), "view of an undefined tensor");
  const int64_t end = offset_ + element_offset + shape_numel(shape);
  TESSERA_CHECK(element_offset >= 0 && end * static_cast<int64_t>(dtype_size(dtype_)) <=
                                           static_cast<int64_t>(storage_->bytes()),
                "view ", shape_string(shape), " at offset ", element_offset,
                " runs past the storage of a tensor of shape ", shape_string(shape_));
  Tensor t = *this;
  t.offset_ = offset_ + element_offset;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  TESSERA_CHECK(shape_numel(shape) == numel(), "cannot reshape ", shape_string(shape_), " to ",
                shape_string(shape));
  return view(0, shape);
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  TESSERA_CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= dim(0), "rows [", begin, ", ",
                end, ") out of range for shape ", shape_string(shape_));
  Shape s = shape_;
  s[0] = end - begin;
  return view(begin * (numel() / std::max<int64_t>(1, dim(0))), s);
}

void Tensor::zero_() {
  if (numel() > 0) allocator_for(device()).zero(raw(), bytes());
}

void Tensor::copy_from(const Tensor& other) {
  TESSERA_CHECK(other.shape_ == shape_ && other.dtype_ == dtype_, "copy_from: ",
                shape_string(other.shape_), " ", dtype_name(other.dtype_), " into ",
                shape_string(shape_), " ", dtype_name(dtype_));
  if (numel() == 0) return;
  const Device via = device().is_cpu() ? other.device() : device();
  allocator_for(via).copy(raw(), device(), other.raw(), other.device(), bytes());
}

// The rounding lives in kernels/math.h, shared with the dtype conversion kernels of both backends.
void copy_strided(Tensor& dst, int64_t dst_stride, const Tensor& src, int64_t src_stride, int64_t run, int64_t rows) {
  TESSERA_CHECK(dst.dtype() == src.dtype() && dst.device() == src.device(), "copy_strided: ", dtype_name(src.dtype()),
                " on ", device_name(src.device()), " into ", dtype_name(dst.dtype()), " on ", device_name(dst.device()));
  if (run == 0 || rows == 0) return;
  TESSERA_CHECK(run > 0 && rows > 0 && run <= src_stride && run <= dst_stride &&
                    (rows - 1) * src_stride + run <= src.numel() && (rows - 1) * dst_stride + run <= dst.numel(),
                "copy_strided: ", rows, " runs of ", run, " elements at strides ", src_stride, " -> ", dst_stride,
                " do not fit tensors of shapes ", shape_string(src.shape()), " -> ", shape_string(dst.shape()));
  const size_t e = dtype_size(src.dtype());
  allocator_for(src.device()).copy_rows(dst.raw(), dst_stride * e, src.raw(), src_stride * e, run * e, rows);
}

uint16_t float_to_bf16(float x) { return kernels::bf16_from_float(x); }
float bf16_to_float(uint16_t x) { return kernels::float_from_bf16(x); }

namespace {
double load_as_double(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::bf16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::i32: return static_cast<const int32_t*>(p)[i];
  }
  return 0;
}
void store_from_double(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::f64: static_cast<double*>(p)[i] = v; break;
    case DType::bf16: static_cast<uint16_t*>(p)[i] = float_to_bf16(static_cast<float>(v)); break;
    case DType::i32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
  }
}
}  // namespace

Tensor Tensor::to(DType dtype) const {
  TESSERA_CHECK(device().is_cpu(), "Tensor::to(dtype) converts host tensors; on ", device_name(device()),
                " use kernels::convert");
  Tensor out = empty(shape_, dtype);
  const int64_t n = numel();
  for (int64_t i = 0; i < n; ++i) store_from_double(out.raw(), dtype, i, load_as_double(raw(), dtype_, i));
  return out;
}

Tensor Tensor::to(Device device) const {
  Tensor out = empty(shape_, dtype_, device);
  out.copy_from(*this);
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_, device());
  out.copy_from(*this);
  return out;
}

}  // namespace tessera
