// What a forward pass needs to know about the step it belongs to.
#pragma once

#include <cstdint>

#include "kernels/math.h"

namespace tessera::model {

struct StepContext {
  bool training = true;          // dropout on?
  uint64_t seed = 0;             // the run's seed
  uint32_t step = 0;             // optimizer step (keys the dropout streams)
  int64_t sentence_offset = 0;   // global index of this slice's first sentence (set from the batch)

  // The dropout site of an activation [B*S, width] with S positions per sentence.
  kernels::DropoutSite activation_site(float p, RngPurpose purpose, uint32_t site, int64_t seq_len) const {
    kernels::DropoutSite s;
    s.p = training ? p : 0.0f;
    s.seed = seed;
    s.step = step;
    s.stream = kernels::dropout_stream(purpose, site);
    s.sentence_offset = sentence_offset;
    s.rows_per_sentence = seq_len;
    s.inner_rows = seq_len;
    return s;
  }
};

}  // namespace tessera::model
