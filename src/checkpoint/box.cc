#include "checkpoint/box.h"

#include <algorithm>
#include <cstring>
#include <sstream>
#include <vector>

namespace tessera::checkpoint {

std::string box_string(const Box& box) {
  std::ostringstream os;
  os << "[";
  for (size_t d = 0; d < box.start.size(); ++d)
    os << (d ? ", " : "") << box.start[d] << ":" << box.start[d] + box.extent[d];
  os << "]";
  return os.str();
}

std::optional<Box> intersect(const Box& a, const Box& b) {
  TESSERA_CHECK(a.start.size() == b.start.size(), "intersect: boxes ", box_string(a), " and ", box_string(b),
                " differ in rank");
  Box out{a.start, a.extent};
  for (size_t d = 0; d < a.start.size(); ++d) {
    const int64_t lo = std::max(a.start[d], b.start[d]);
    const int64_t hi = std::min(a.start[d] + a.extent[d], b.start[d] + b.extent[d]);
    if (hi <= lo) return std::nullopt;
    out.start[d] = lo;
    out.extent[d] = hi - lo;
  }
  return out;
}

namespace {

double load(const std::byte* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: { float x; std::memcpy(&x, p + 4 * i, 4); return x; }
    case DType::f64: { double x; std::memcpy(&x, p + 8 * i, 8); return x; }
    case DType::bf16: { uint16_t x; std::memcpy(&x, p + 2 * i, 2); return bf16_to_float(x); }
    case DType::i32: break;
  }
  return 0;
}

void store(std::byte* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: { const float x = static_cast<float>(v); std::memcpy(p + 4 * i, &x, 4); break; }
    case DType::f64: std::memcpy(p + 8 * i, &v, 8); break;
    case DType::bf16: { const uint16_t x = float_to_bf16(static_cast<float>(v)); std::memcpy(p + 2 * i, &x, 2); break; }
    case DType::i32: break;
  }
}

// Copies n contiguous elements, converting when the types differ.
void copy_run(const std::byte* src, DType st, std::byte* dst, DType dt, int64_t n) {
  if (st == dt) {
    std::memcpy(dst, src, n * dtype_size(st));
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(dst, dt, i, load(src, st, i));
}

// Row-major element strides of a box.
std::vector<int64_t> strides_of(const Shape& extent) {
  std::vector<int64_t> s(extent.size(), 1);
  for (size_t d = extent.size(); d-- > 1;) s[d - 1] = s[d] * extent[d];
  return s;
}

}  // namespace

void copy_box(const void* src, DType src_dtype, const Box& src_box, void* dst, DType dst_dtype, const Box& dst_box,
              const Box& region) {
  TESSERA_CHECK(src_dtype == dst_dtype || (src_dtype != DType::i32 && dst_dtype != DType::i32), "cannot convert ",
                dtype_name(src_dtype), " to ", dtype_name(dst_dtype));
  TESSERA_CHECK(intersect(region, src_box) == region && intersect(region, dst_box) == region, "copy_box: region ",
                box_string(region), " is not inside both ", box_string(src_box), " and ", box_string(dst_box));
  const size_t nd = region.extent.size();
  const auto* s = static_cast<const std::byte*>(src);
  auto* d = static_cast<std::byte*>(dst);
  if (nd == 0) {  // a scalar
    copy_run(s, src_dtype, d, dst_dtype, 1);
    return;
  }
  const std::vector<int64_t> ss = strides_of(src_box.extent), ds = strides_of(dst_box.extent);
  const int64_t run = region.extent[nd - 1];
  // Walk every index of the leading nd-1 dimensions; the last dimension is one contiguous run.
  std::vector<int64_t> idx(nd - 1, 0);
  while (true) {
    int64_t so = 0, dof = 0;
    for (size_t k = 0; k < nd; ++k) {
      const int64_t g = region.start[k] + (k + 1 < nd ? idx[k] : 0);
      so += (g - src_box.start[k]) * ss[k];
      dof += (g - dst_box.start[k]) * ds[k];
    }
    copy_run(s + so * dtype_size(src_dtype), src_dtype, d + dof * dtype_size(dst_dtype), dst_dtype, run);
    size_t k = nd - 1;
    while (k > 0 && ++idx[k - 1] == region.extent[k - 1]) idx[--k] = 0;
    if (k == 0) return;
  }
}

}  // namespace tessera::checkpoint
