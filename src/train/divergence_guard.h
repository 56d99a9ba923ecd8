// Stops a run whose loss has left the range a learning model can be in. A model that predicts
// the uniform distribution has a loss of ln V per token; a loss above `factor` x ln V for
// `patience` consecutive steps means the run diverged (too high a learning rate, bad data), and
// going on would only save checkpoints of a broken model.
#pragma once

#include <cstdint>

namespace tessera::train {

class DivergenceGuard {
 public:
  // factor 0 turns the guard off.
  DivergenceGuard(double factor, int64_t patience, int64_t vocab_size);
  // Throws tessera::Error naming the step, the loss and the limit once the loss has been above
  // the limit for `patience` steps in a row.
  void observe(int64_t step, double loss);
  double limit() const { return limit_; }

 private:
  double limit_;
  int64_t patience_;
  int64_t steps_above_ = 0;
};

}  // namespace tessera::train
