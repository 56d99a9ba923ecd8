// Helpers shared by the op dispatchers in kernels/*.cc: argument checks that name the tensor at
// fault, and the switch from a runtime dtype to a template instantiation (CPU and CUDA).
#pragma once

#include <initializer_list>

#include "core/error.h"
#include "core/tensor.h"
#include "kernels/math.h"  // DropoutSite

#if defined(TESSERA_WITH_CUDA)
#include "kernels/cuda/cuda_ops.h"
#endif

namespace tessera::kernels {

inline void check_shape(const Tensor& t, const Shape& expected, const char* op, const char* name) {
  TESSERA_CHECK(t.defined(), op, ": tensor '", name, "' is undefined");
  TESSERA_CHECK(t.shape() == expected, op, ": tensor '", name, "' has shape ", shape_string(t.shape()),
                ", expected ", shape_string(expected));
}
inline void check_dtype(const Tensor& t, DType dtype, const char* op, const char* name) {
  TESSERA_CHECK(t.dtype() == dtype, op, ": tensor '", name, "' is ", dtype_name(t.dtype()),
                ", expected ", dtype_name(dtype));
}
inline void check_ndim(const Tensor& t, int ndim, const char* op, const char* name) {
  TESSERA_CHECK(t.defined() && t.ndim() == ndim, op, ": tensor '", name, "' must be ", ndim,
                "-D, got shape ", shape_string(t.shape()));
}
inline void check_min_ndim(const Tensor& t, int ndim, const char* op, const char* name) {
  TESSERA_CHECK(t.defined() && t.ndim() >= ndim, op, ": tensor '", name, "' must be at least ", ndim,
                "-D, got shape ", shape_string(t.shape()));
}

// A dropout site's probability in [0, 1) and its row layout, for every op that draws a mask.
inline void check_dropout_site(const DropoutSite& site, const char* op) {
  TESSERA_CHECK(site.p >= 0 && site.p < 1, op, ": dropout probability ", site.p, " outside [0, 1)");
  TESSERA_CHECK(site.rows_per_sentence > 0 && site.inner_rows > 0, op, ": dropout site has no rows per sentence");
}

// Rows of `t` seen as [rows, last dimension]: the product of all but its last dimension. (Not
// numel / dim(-1), which divides by zero when the last dimension is empty.)
inline int64_t rows_of(const Tensor& t) {
  int64_t rows = 1;
  for (int i = 0; i + 1 < t.ndim(); ++i) rows *= t.dim(i);
  return rows;
}

// An operand as ops.h names it: floating (f32 or f64), index (i32), or optional (floating, may be undefined).
struct Operand {
  enum Kind { floating, index, optional };
  const Tensor& tensor;
  const char* name;
  Kind kind = floating;
};
// Every operand defined and on the first one's device; floating ones of the first's dtype, index ones i32.
inline void check_operands(const char* op, std::initializer_list<Operand> operands) {
  const Operand& first = *operands.begin();
  for (const Operand& o : operands) {
    const Tensor& t = o.tensor;
    if (o.kind == Operand::optional && !t.defined()) continue;
    TESSERA_CHECK(t.defined(), op, ": tensor '", o.name, "' is undefined");
    TESSERA_CHECK(t.device() == first.tensor.device(), op, ": tensor '", o.name, "' is on ", device_name(t.device()),
                  " but '", first.name, "' is on ", device_name(first.tensor.device()));
    if (o.kind == Operand::index) {
      check_dtype(t, DType::i32, op, o.name);
    } else if (&o == &first) {
      TESSERA_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, op, ": tensor '", o.name, "' is ",
                    dtype_name(t.dtype()), ", expected f32 or f64");
    } else {
      TESSERA_CHECK(t.dtype() == first.tensor.dtype(), op, ": tensor '", o.name, "' is ", dtype_name(t.dtype()),
                    " but '", first.name, "' is ", dtype_name(first.tensor.dtype()));
    }
  }
}

}  // namespace tessera::kernels

// Runs the statement with `scalar_t` bound to the C++ type of a floating dtype.
#define TESSERA_DISPATCH_FLOAT(dtype, op, ...)                                               \
  do {                                                                                       \
    switch (dtype) {                                                                         \
      case ::tessera::DType::f32: { using scalar_t = float; __VA_ARGS__; break; }            \
      case ::tessera::DType::f64: { using scalar_t = double; __VA_ARGS__; break; }           \
      default: TESSERA_FAIL(op, ": unsupported dtype ", ::tessera::dtype_name(dtype));       \
    }                                                                                        \
  } while (0)
