// A tensor: a shape, an element type, a device, and a window into reference-counted contiguous
// storage. Views (parameters inside the flat parameter buffer, rows of a batch) share storage.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace tessera {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);

class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_;
  size_t bytes_;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu);
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? i + ndim() : i); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu; }
  size_t bytes() const { return numel() * dtype_size(dtype_); }

  // Elements the storage holds from this tensor's first element on: how far a view may grow.
  int64_t storage_elements() const {
    return storage_ ? static_cast<int64_t>(storage_->bytes() / dtype_size(dtype_)) - offset_ : 0;
  }
  // A view of `shape` starting `element_offset` elements into this tensor's window.
  Tensor view(int64_t element_offset, const Shape& shape) const;
  // The same elements with another shape of equal element count.
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) along dimension 0.
  Tensor rows(int64_t begin, int64_t end) const;

  void* raw() const { return static_cast<char*>(storage_->data()) + offset_ * dtype_size(dtype_); }
  template <typename T>
  T* data() const {
    TESSERA_CHECK(dtype_of<T>() == dtype_, "tensor holds ", dtype_name(dtype_), ", accessed as ",
                  dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw());
  }

  void zero_();
  // Element-wise copy from a tensor of the same shape and dtype (any devices).
  void copy_from(const Tensor& other);
  // Host copy converted to `dtype` (f32, f64 and bf16 convert among themselves).
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor clone() const;

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;
  Shape shape_;
  DType dtype_ = DType::f32;
};

// Copies `rows` runs of `run` elements from src to dst (same dtype and device): run i starts at
// element i * src_stride of src and i * dst_stride of dst. One call, whatever the number of runs.
void copy_strided(Tensor& dst, int64_t dst_stride, const Tensor& src, int64_t src_stride, int64_t run, int64_t rows);

// `t` itself when it already lives on `device`, else a copy there.
inline Tensor on_device(const Tensor& t, Device device) { return t.device() == device ? t : t.to(device); }

// bf16 is the top half of an f32, rounded to nearest even.
uint16_t float_to_bf16(float x);
float bf16_to_float(uint16_t x);

}  // namespace tessera
