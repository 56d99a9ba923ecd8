// tessera-bench-checkpoint: what saving a checkpoint costs a training run, against the disk's
// limit. For one model (default: base) on one process it measures
//   1. the disk's write bandwidth for files of a shard's size (write + fsync + rename, the way a
//      shard is written), best of --repeats;
//   2. a synchronous save (snapshot, write with checksums, manifest, rename, `latest`): its time
//      and its bandwidth against (1);
//   3. the training stall per save, synchronous and with --async-save, as a share of the mean
//      step time, and the steps that ran while a background write was going on (the writer thread
//      shares the cores with training).
// Prints markdown tables (docs/performance.md, "Checkpoint saves").
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "checkpoint/atomic_file.h"
#include "checkpoint/checkpoint_saver.h"
#include "core/log.h"
#include "core/option_values.h"
#include "kernels/threads.h"
#include "parallel/mpi_runtime.h"
#include "parallel/process_grid.h"
#include "train/batch_source.h"
#include "train/options.h"
#include "train/trainer.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

struct Options {
  std::string config = "configs/base.cfg";
  std::string dir = "runs/bench-checkpoint";
  int64_t batch_sentences = 16, min_len = 20, max_len = 30;
  int steps = 4, repeats = 3, threads = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best time to write `bytes` bytes to a new file in `dir` and make it durable, as a shard is.
double disk_write_seconds(const fs::path& dir, size_t bytes, int repeats) {
  std::vector<char> block(size_t{8} << 20, 1);
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    checkpoint::AtomicFile f(dir / "bandwidth-probe");
    for (size_t done = 0; done < bytes; done += block.size()) f.write(block.data(), std::min(block.size(), bytes - done));
    f.commit();
    best = std::min(best, seconds_since(t0));
    fs::remove(dir / "bandwidth-probe");
  }
  return best;
}

int run(const Options& b) {
  parallel::ProcessGrid grid = parallel::ProcessGrid::single();
  kernels::set_num_threads(b.threads > 0 ? b.threads : kernels::default_threads_per_rank());
  std::ifstream in(b.config);
  TESSERA_CHECK(in, "--model-config: cannot open '", b.config, "'");
  std::stringstream text;
  text << in.rdbuf();
  train::TrainOptions o = train::parse_config_text(text.str(), b.config);
  o.task = "reverse";
  o.batch_sentences = b.batch_sentences;
  o.min_len = b.min_len;
  o.max_len = b.max_len;
  o.tensor_parallel = o.data_parallel = 1;
  const auto source = train::make_batch_source(o, 1);
  train::Trainer trainer(o, grid);
  fs::remove_all(b.dir);
  fs::create_directories(b.dir);

  auto step = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    trainer.train_step(source->next());
    return seconds_since(t0);
  };
  step();  // warm-up
  double step_s = 0;
  for (int i = 0; i < b.steps; ++i) step_s += step();
  step_s /= b.steps;

  const size_t state_bytes = trainer.store().values().bytes() * 3;  // values and both moments
  const double disk_s = disk_write_seconds(b.dir, state_bytes, b.repeats);

  double sync_s = 1e30;
  int64_t at = 1;
  {
    checkpoint::CheckpointSaver saver(fs::path(b.dir) / "sync", grid, {});
    for (int r = 0; r < b.repeats; ++r) {
      saver.save(trainer.store(), &trainer.optimizer(), {at++, o.dump(), "{}"});
      sync_s = std::min(sync_s, saver.last_stall_seconds());
    }
  }
  double async_stall = 1e30, async_write = 0, overlapped_step_s = 0;
  int overlapped_steps = 0;
  {
    checkpoint::CheckpointSaver saver(fs::path(b.dir) / "async", grid, {{}, true, 1800});
    for (int r = 0; r < b.repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      saver.save(trainer.store(), &trainer.optimizer(), {at++, o.dump(), "{}"});
      async_stall = std::min(async_stall, saver.last_stall_seconds());
      while (saver.in_flight()) {  // train while the shard is written, as tessera-train does
        overlapped_step_s += step();
        ++overlapped_steps;
        saver.poll();
      }
      async_write += seconds_since(t0);
    }
    async_write /= b.repeats;
  }
  const double mb = static_cast<double>(state_bytes) / 1e6;
  std::printf("\n## Checkpoint saves: %s (%lld parameters), one process, %d threads\n\n", b.config.c_str(),
              static_cast<long long>(trainer.store().values().numel()), kernels::num_threads());
  std::printf("| what | MB | seconds | MB/s | of disk bandwidth |\n|---|---|---|---|---|\n");
  std::printf("| disk: write + fsync + rename of one file of the same size (best of %d) | %.1f | %.3f | %.0f | 100%% |\n",
              b.repeats, mb, disk_s, mb / disk_s);
  std::printf("| synchronous save: values + Adam moments, checksums, manifest, rename, latest (best of %d) | %.1f | %.3f | %.0f | %.0f%% |\n",
              b.repeats, mb, sync_s, mb / sync_s, 100 * disk_s / sync_s);
  std::printf("\n| training step (batch of %lld sentences, %lld-%lld tokens) | seconds | stall per save | stall / step time |\n",
              static_cast<long long>(b.batch_sentences), static_cast<long long>(b.min_len),
              static_cast<long long>(b.max_len));
  std::printf("|---|---|---|---|\n");
  std::printf("| mean step, no save | %.3f | | |\n", step_s);
  std::printf("| synchronous save | | %.3f | %.1f%% |\n", sync_s, 100 * sync_s / step_s);
  std::printf("| --async-save (snapshot only) | | %.3f | %.1f%% |\n", async_stall, 100 * async_stall / step_s);
  if (overlapped_steps > 0)
    std::printf("| steps while a background write ran: %d, mean %.3f s (%+.1f%% against no save) | | | |\n",
                overlapped_steps, overlapped_step_s / overlapped_steps,
                100 * (overlapped_step_s / overlapped_steps / step_s - 1));
  std::printf("\nA background save took %.3f s from snapshot to commit on average.\n", async_write);
  fs::remove_all(b.dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options b;
  po::options_description desc("tessera-bench-checkpoint: checkpoint save time and training stall");
  desc.add_options()
      ("help,h", "print this help")
      ("model-config", bound(b.config), "config whose model is saved (default configs/base.cfg)")
      ("dir", bound(b.dir), "where to write (removed afterwards); put it on the file system under test")
      ("batch-sentences", bound(b.batch_sentences), "sentences per training step")
      ("min-len", bound(b.min_len), "shortest synthetic sentence")
      ("max-len", bound(b.max_len), "longest synthetic sentence")
      ("steps", bound(b.steps), "timed training steps for the mean step time")
      ("repeats", bound(b.repeats), "saves (and disk probes) per measurement")
      ("threads", bound(b.threads), "threads (0: all cores)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "tessera-bench-checkpoint: error: %s\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  return parallel::run_with_mpi("tessera-bench-checkpoint", &argc, &argv, [&] { return run(b); });
}
