#include "train/divergence_guard.h"

#include <cmath>

#include "core/error.h"

namespace tessera::train {

DivergenceGuard::DivergenceGuard(double factor, int64_t patience, int64_t vocab_size)
    : limit_(factor > 0 ? factor * std::log(static_cast<double>(vocab_size)) : INFINITY), patience_(patience) {}

void DivergenceGuard::observe(int64_t step, double loss) {
  steps_above_ = loss > limit_ ? steps_above_ + 1 : 0;
  TESSERA_CHECK(steps_above_ < patience_, "the run diverged: the training loss has been above ", limit_,
                " (--divergence-factor x ln V) for ", steps_above_, " steps (--divergence-steps), ", loss,
                " at step ", step, "; lower --lr-factor, raise --warmup or set --clip-norm, and resume from an "
                "earlier checkpoint");
}

}  // namespace tessera::train
