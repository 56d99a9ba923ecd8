// tessera-fault-probe: a few all-reduces over the data-parallel group, with one rank made to
// misbehave, to show that a job with a missing or dead rank ends with a diagnostic instead of
// hanging. --skip-rank R makes rank R sleep through step 1 (its peers hit the deadline);
// --kill-rank R makes rank R die by SIGKILL at step 1.
#include <mpi.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/option_values.h"
#include "parallel/mpi_runtime.h"
#include "parallel/process_grid.h"

namespace po = boost::program_options;
using namespace tessera;
using namespace tessera::parallel;

namespace {

struct Options {
  double timeout_s = 5.0;
  int skip_rank = -1;
  int kill_rank = -1;
  int steps = 4;
  int chatter = 0;
  size_t count = 4096;
};

// Returns false when the program should exit without running (e.g. --help).
bool parse(int argc, char** argv, Options& o) {
  po::options_description desc("tessera-fault-probe options");
  desc.add_options()
      ("help,h", "print this help")
      ("collective-timeout", bound(o.timeout_s),
       "deadline of every collective, in seconds")
      ("timeout", po::value(&o.timeout_s), "same as --collective-timeout")
      ("skip-rank", bound(o.skip_rank),
       "this rank skips the all-reduce of step 1 and sleeps")
      ("kill-rank", bound(o.kill_rank),
       "this rank kills itself (SIGKILL) at step 1")
      ("steps", bound(o.steps), "number of all-reduces")
      ("chatter", bound(o.chatter), "first write this many long warning lines from two threads of every rank")
      ("count", bound(o.count), "f32 elements per all-reduce");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return false;
  }
  return true;
}

void run(const Options& o) {
  int world_size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  ProcessGrid grid(/*tp=*/1, /*dp=*/world_size, o.timeout_s);
  const int rank = grid.world_rank();
  log_set_rank(rank);
  if (o.chatter > 0) {
    // Long lines from every rank and two threads at once: each must reach the terminal whole.
    auto talk = [&](int thread) {
      for (int i = 0; i < o.chatter; ++i)
        TESSERA_LOG_WARN("chatter rank ", rank, " thread ", thread, " line ", i, " ", std::string(300, 'x'), " end");
    };
    std::thread other(talk, 1);
    talk(0);
    other.join();
  }
  for (int step = 0; step < o.steps; ++step) {
    if (step == 1 && rank == o.kill_rank) {
      std::fprintf(stderr, "tessera-fault-probe: rank %d kills itself at step %d\n", rank, step);
      std::raise(SIGKILL);
    }
    if (step == 1 && rank == o.skip_rank) {
      std::fprintf(stderr, "tessera-fault-probe: rank %d skips the all-reduce of step %d\n", rank,
                   step);
      std::this_thread::sleep_for(std::chrono::duration<double>(10 * o.timeout_s));
      return;
    }
    std::vector<float> buf(o.count, static_cast<float>(rank + step));
    grid.dp().all_reduce(std::span<float>(buf), ReduceOp::sum);
    const float want = static_cast<float>(world_size * (world_size - 1) / 2 + world_size * step);
    TESSERA_CHECK(buf[0] == want, "step ", step, ": all-reduce gave ", buf[0], ", want ", want);
  }
  if (rank == 0) std::printf("tessera-fault-probe: %d all-reduces completed\n", o.steps);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    if (!parse(argc, argv, options)) return 0;
  } catch (const std::exception& e) {
    write_stderr_line(std::string("tessera-fault-probe: error: ") + e.what());
    return 2;
  }
  return run_with_mpi("tessera-fault-probe", &argc, &argv, [&] {
    run(options);
    return 0;
  });
}
