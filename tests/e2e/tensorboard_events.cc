// Writes, into the directory it is given (emptied first), the event files of a run killed
// mid-record and resumed from its checkpoint at step 3, for TensorBoard's own loader to read
// (tensorboard.cmake holds what it must see):
//   killed run:  train/loss 1:7 2:6 3:5 4:4 5:3, valid/loss 4:6.5, then step 6 cut off mid-record
//   resumed run: start_session(3), train/loss 4:16 5:15 6:14 7:13, valid/loss 6:9.25
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "train/tensorboard_writer.h"

namespace fs = std::filesystem;
using tessera::train::TensorBoardWriter;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const fs::path dir = argv[1];
  try {
    fs::remove_all(dir);
    fs::path killed;
    {
      TensorBoardWriter w(dir);
      killed = w.path();
      for (int step = 1; step <= 6; ++step) {
        w.add_scalar("train/loss", step, 8 - step, 1e9 + step);
        if (step == 4) w.add_scalar("valid/loss", step, 6.5, 1e9 + step);
      }
    }
    fs::resize_file(killed, fs::file_size(killed) - 5);  // the kill: step 6's record is partial

    TensorBoardWriter resumed(dir);
    resumed.start_session(3, 2e9);
    for (int step = 4; step <= 7; ++step) {
      resumed.add_scalar("train/loss", step, 20 - step, 2e9 + step);
      if (step == 6) resumed.add_scalar("valid/loss", step, 9.25, 2e9 + step);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tensorboard_events: %s\n", e.what());
    return 1;
  }
  return 0;
}
