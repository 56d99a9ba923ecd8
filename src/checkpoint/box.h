// Rectangular blocks of a global tensor, and copying the overlap of two of them. Resharding is
// just this: every rank's slice and every saved slice is a Box in global coordinates, and loading
// copies each overlap from where it was saved to where it is needed.
#pragma once

#include <optional>
#include <string>

#include "core/tensor.h"

namespace tessera::checkpoint {

struct Box {
  Shape start, extent;  // per dimension, in global element coordinates
  int64_t numel() const { return shape_numel(extent); }
  bool operator==(const Box&) const = default;
};

std::string box_string(const Box& box);  // "[0:4, 8:16]" (begin:end per dimension)

// The common part of two boxes of the same rank; nullopt when it is empty.
std::optional<Box> intersect(const Box& a, const Box& b);

// Copies the elements of `region` from `src`, which holds box `src_box` row-major in
// `src_dtype`, into `dst`, which holds `dst_box` row-major in `dst_dtype`. `region` must lie in
// both. Floating types (f32, f64, bf16) convert among themselves; i32 copies only to i32.
void copy_box(const void* src, DType src_dtype, const Box& src_box, void* dst, DType dst_dtype, const Box& dst_box,
              const Box& region);

}  // namespace tessera::checkpoint
