// The run loop of tessera-train, on every rank: set up the output directories, the model and the
// data; resume when asked; then step until --steps, a stop signal or --time-limit, with
// validation, checkpoints, metrics and straggler reports along the way. The app only parses
// options and reports errors.
//
// Every decision to stop is taken by all ranks together at a step boundary (the flags are reduced
// over the world), so they save the same step and leave the same way.
#pragma once

#include "train/options.h"

namespace tessera::train {

// Runs the training job of `o` on this rank (MPI is initialised). Returns the process exit code:
// 0 when --steps are done, kExitStoppedEarly (train/stop_signals.h) after a stop signal or at
// --time-limit before --steps, with the checkpoint of the step reached saved. Throws
// tessera::Error on failure.
int run_training(const TrainOptions& o);

}  // namespace tessera::train
