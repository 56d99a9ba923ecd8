// One slice of a global batch: right-padded token ids and their lengths.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace tessera::model {

// One sentence pair as token ids, without bos/eos.
struct TokenPair {
  std::vector<int32_t> src, tgt;
};

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

  // The same batch on `device` (this one when it is already there). Counts read the host copy.
  Batch to(Device device) const;

  // Pads pairs[begin, end) into a batch: src = x1..xm eos; tgt_in = bos y1..yn; tgt_out = y1..yn eos.
  static Batch from_pairs(const std::vector<TokenPair>& pairs, size_t begin, size_t end, int64_t sentence_offset,
                          int32_t pad_id, int32_t bos_id, int32_t eos_id);
};

}  // namespace tessera::model
