// The learning rate of Vaswani et al. 5.3: lr = factor * d_model^-0.5 * min(step^-0.5,
// step * warmup^-1.5) — linear warm-up for `warmup` steps, then decay with 1/sqrt(step).
#pragma once

#include <cmath>
#include <cstdint>

namespace tessera::train {

inline double noam_learning_rate(int64_t step, int64_t d_model, int64_t warmup, double factor) {
  const double s = static_cast<double>(step < 1 ? 1 : step), w = static_cast<double>(warmup);
  return factor / std::sqrt(static_cast<double>(d_model)) * std::min(1.0 / std::sqrt(s), s / (w * std::sqrt(w)));
}

}  // namespace tessera::train
