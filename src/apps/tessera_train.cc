// tessera-train: trains the encoder-decoder on one process or under mpirun/srun with any
// (tensor-parallel, data-parallel) layout whose product is the world size. The run itself is
// train/training_run; this file parses the options and reports errors.
#include <iostream>
#include <optional>

#include "core/log.h"
#include "parallel/mpi_runtime.h"
#include "train/options.h"
#include "train/training_run.h"

using namespace tessera;

int main(int argc, char** argv) {
  const bool print = parallel::launcher_world_rank() == 0;
  std::optional<train::TrainOptions> options;
  try {
    options = train::parse_train_options(argc, argv, print);
  } catch (const std::exception& e) {
    if (print) write_stderr_line(std::string("tessera-train: error: ") + e.what());
    return 2;
  }
  if (!options) return 0;
  return parallel::run_with_mpi("tessera-train", &argc, &argv, [&] { return train::run_training(*options); });
}
