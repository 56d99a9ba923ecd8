// Int8 decoding (tessera-translate --quantize int8): every tensor-parallel linear layer and the
// vocabulary-parallel output projection of a parameter store, quantised once after the checkpoint
// loads (kernels/int8_matmul.h has the arithmetic).
//
// The layers sit deep inside the model (attention, feed-forward, the tied embedding), and the model
// does not walk them. Instead each layer enrols here, under its parameter store, when it is built,
// and leaves when it is destroyed; quantize_int8(store) then reaches all of them. Each rank
// quantises its own shard: a column-parallel shard holds whole output channels, so its scales are
// those of the full matrix; a row-parallel shard is quantised per output channel of its own rows,
// and its partial product is dequantised before the all-reduce sums the ranks.
#pragma once

#include <cstdint>
#include <functional>

#include "kernels/int8_matmul.h"
#include "model/parameters.h"

namespace tessera::parallel {

// A layer's place in the enrolment. Neither copyable nor movable: it holds the layer's callback,
// which points at the layer, so the layer it belongs to stays where it was built.
class Int8Enrolment {
 public:
  // `quantize` quantises the layer's weight and returns it.
  Int8Enrolment(const model::ParameterStore& store, std::function<const kernels::Int8Weight&()> quantize);
  ~Int8Enrolment();
  Int8Enrolment(const Int8Enrolment&) = delete;
  Int8Enrolment& operator=(const Int8Enrolment&) = delete;

  const model::ParameterStore& store() const { return *store_; }
  const kernels::Int8Weight& quantize() const { return quantize_(); }

 private:
  const model::ParameterStore* store_;
  std::function<const kernels::Int8Weight&()> quantize_;
};

struct Int8Summary {
  int layers = 0;             // weights quantised
  int64_t weights = 0;        // their elements
  int64_t int8_bytes = 0;     // what the int8 copies hold (values, scales, channel sums)
};

// Quantises every enrolled layer of `store` (a CPU store of f32 values, after the checkpoint has
// loaded); from then on their forward products run in int8 and their backward refuses.
Int8Summary quantize_int8(const model::ParameterStore& store);

}  // namespace tessera::parallel
