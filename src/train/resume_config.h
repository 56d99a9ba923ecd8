// What may change when a run is resumed. A checkpoint holds the merged configuration it was
// trained with (TrainOptions::dump()). The options that define the model - what its parameters
// compute - must be the same in the resuming run: with other --heads or --activation the shapes
// can still fit and the run would silently continue as a different model. Every other option
// (learning rate, steps, batch, layout, save policy, dropout) may change, and each change is
// reported so the log says how the resumed run differs.
#pragma once

#include <string>
#include <vector>

#include "train/options.h"

namespace tessera::train {

// The options that define the model: "vocab-size", "d-model", "d-ff", "heads", ...
const std::vector<std::string>& model_defining_options();

// Throws tessera::Error naming `checkpoint` and every model-defining option whose value differs
// (both values); returns one line per other option that changed ("lr-factor: 1 -> 2"). An empty
// saved configuration (a checkpoint written without one) checks nothing.
std::vector<std::string> check_resume_config(const std::string& saved_config, const TrainOptions& current,
                                             const std::string& checkpoint);

}  // namespace tessera::train
