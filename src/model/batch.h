// One slice of a global batch: right-padded token ids and their lengths.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace tessera::model {

struct Batch {
  Tensor src;          // [B, S] i32 source ids, padded with pad_id
  Tensor src_lengths;  // [B] i32
  Tensor tgt_in;       // [B, T] i32 decoder input: bos y1 .. yn
  Tensor tgt_out;      // [B, T] i32 decoder target: y1 .. yn eos
  Tensor tgt_lengths;  // [B] i32 (n + 1)
  int64_t sentence_offset = 0;  // global index of this slice's first sentence in the global batch

  int64_t size() const { return src.defined() ? src.dim(0) : 0; }
  int64_t target_tokens() const;  // sum of tgt_lengths
  int64_t source_tokens() const;  // sum of src_lengths
};

}  // namespace tessera::model
