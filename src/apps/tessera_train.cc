// tessera-train: trains the encoder-decoder on one process or under mpirun/srun with any
// (tensor-parallel, data-parallel) layout whose product is the world size.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/log.h"
#include "data/synthetic_task.h"
#include "kernels/ops.h"
#include "kernels/threads.h"
#include "parallel/mpi_runtime.h"
#include "parallel/process_grid.h"
#include "train/trainer.h"

using namespace tessera;

namespace {

int world_rank_from_env() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return 0;
}

void log_step(const train::StepStats& s, double tokens_per_second) {
  TESSERA_LOG_INFO("step ", s.step, "  loss ", s.loss, "  ppl ", std::exp(s.loss), "  acc ", s.accuracy, "  lr ", s.lr,
                   "  gnorm ", s.grad_norm, "  tok/s ", static_cast<int64_t>(tokens_per_second));
}

int run(const train::TrainOptions& o) {
  parallel::ProcessGrid grid(o.tensor_parallel, o.data_parallel, o.collective_timeout);
  log_set_rank(grid.world_rank());
  kernels::set_num_threads(o.threads > 0 ? o.threads : kernels::default_threads_per_rank());
  TESSERA_LOG_INFO("world ", grid.world_size(), " = tp ", grid.tp_size(), " x dp ", grid.dp_size(), ", ",
                   kernels::num_threads(), " threads per rank");
  if (!o.out_dir.empty() && grid.world_rank() == 0) {
    std::filesystem::create_directories(o.out_dir);
    std::ofstream(std::filesystem::path(o.out_dir) / "config.cfg") << o.dump();
  }
  TESSERA_CHECK(o.task != "corpus", "--task corpus: corpus training is not part of this build; use copy or reverse");

  data::SyntheticTask task;
  task.kind = data::SyntheticTask::parse_kind(o.task);
  task.vocab_size = o.model.vocab_size;
  task.min_len = o.min_len;
  task.max_len = o.max_len;
  task.seed = o.seed;

  train::Trainer trainer(o, grid);
  TESSERA_LOG_INFO("model: ", o.model.parameter_count(o.tensor_parallel), " parameters, ",
                   trainer.store().values().numel(), " on this rank");
  const auto held_out = task.pairs(data::kHeldOutSplit, 0, 512);
  double tokens = 0, seconds = 0;
  for (int64_t step = 1; step <= o.steps; ++step) {
    const auto batch = task.pairs(data::kTrainSplit, (step - 1) * o.batch_sentences, o.batch_sentences);
    const train::StepStats s = trainer.train_step(batch);
    tokens += static_cast<double>(s.source_tokens + s.target_tokens);
    seconds += s.seconds;
    if (!std::isfinite(s.loss)) TESSERA_FAIL("loss is ", s.loss, " at step ", s.step, "; lower --lr-factor or set --clip-norm");
    if (step % o.log_every == 0 || step == o.steps) {
      log_step(s, tokens / seconds);
      tokens = seconds = 0;
    }
    if (o.valid_every > 0 && step % o.valid_every == 0) {
      const auto ev = trainer.evaluate(held_out, o.batch_sentences);
      TESSERA_LOG_INFO("valid step ", step, "  loss ", ev.loss, "  ppl ", std::exp(ev.loss), "  acc ", ev.accuracy);
    }
  }
  const auto ev = trainer.evaluate(held_out, o.batch_sentences);
  const double greedy = trainer.greedy_token_accuracy(held_out, o.batch_sentences);
  TESSERA_LOG_INFO("held-out ", held_out.size(), " sentences: loss ", ev.loss, "  ppl ", std::exp(ev.loss),
                   "  teacher-forced acc ", ev.accuracy, "  greedy token acc ", greedy);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool print = world_rank_from_env() == 0;
  std::optional<train::TrainOptions> options;
  try {
    options = train::parse_train_options(argc, argv, print);
  } catch (const std::exception& e) {
    if (print) std::cerr << "tessera-train: error: " << e.what() << "\n";
    return 2;
  }
  if (!options) return 0;
  try {
    parallel::MpiRuntime mpi(&argc, &argv);
    return run(*options);
  } catch (const std::exception& e) {
    std::cerr << "tessera-train: rank " << world_rank_from_env() << ": error: " << e.what() << "\n";
    return 1;
  }
}
