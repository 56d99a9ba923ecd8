#include "train/training_run.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <filesystem>
#include <optional>
#include <sstream>
#include <vector>

#include "checkpoint/agreement.h"
#include "checkpoint/atomic_file.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_saver.h"
#include "checkpoint/manifest.h"
#include "core/log.h"
#include "kernels/threads.h"
#include "model/flop_count.h"
#include "parallel/compute_device.h"
#include "parallel/process_grid.h"
#include "train/batch_source.h"
#include "train/divergence_guard.h"
#include "train/peak_flops.h"
#include "train/resume_config.h"
#include "train/rank_layout.h"
#include "train/run_directory.h"
#include "train/run_metrics.h"
#include "train/stop_signals.h"
#include "train/straggler_report.h"
#include "train/trainer.h"
#include "train/validator.h"

namespace tessera::train {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Test hook that stands for a slow node: TESSERA_TEST_SLOW_RANK=RANK:SECONDS makes world rank RANK
// spend SECONDS longer building each batch (the straggler report's test).
double simulated_slowness(int world_rank) {
  const char* v = std::getenv("TESSERA_TEST_SLOW_RANK");
  if (v == nullptr || std::strchr(v, ':') == nullptr) return 0;
  return std::atoi(v) == world_rank ? std::atof(std::strchr(v, ':') + 1) : 0;
}

// Checkpoints go to --save-dir, or <out-dir>/checkpoints; none without either.
fs::path save_directory(const TrainOptions& o) {
  if (!o.save_dir.empty()) return o.save_dir;
  return o.out_dir.empty() ? fs::path() : fs::path(o.out_dir) / "checkpoints";
}

class TrainingRun {
 public:
  explicit TrainingRun(const TrainOptions& o);
  int run();

 private:
  void claim_directories();
  void report_layout();
  void resume_if_asked();
  // Saves step `at_step` (in the background with --async-save); returns the seconds it took here.
  double save(int64_t at_step);
  // Commits a finished background save; returns the seconds it took here.
  double poll_save();
  void finish_save();
  // Every --straggler-every steps: gathers each rank's busy time per step and names the slowest.
  void check_stragglers(int64_t step, double busy_seconds, int64_t steps);

  const TrainOptions& o_;
  const Device device_;
  parallel::ProcessGrid grid_;
  const fs::path save_dir_;
  std::vector<DirectoryLock> locks_;
  std::unique_ptr<BatchSource> source_;
  std::optional<Validator> validator_;
  std::optional<Trainer> trainer_;
  std::optional<checkpoint::CheckpointSaver> saver_;
  std::optional<RunMetrics> metrics_;
  // The step whose state is already in save_dir_: a resumed run that ends where it started (a
  // requeued job) must not save that step again.
  int64_t checkpointed_step_ = -1;
};

TrainingRun::TrainingRun(const TrainOptions& o)
    : o_(o),
      device_(parallel::select_compute_device(o.device)),
      grid_(o.tensor_parallel, o.data_parallel, o.collective_timeout, device_, o.allow_tp_across_nodes),
      save_dir_(save_directory(o)) {
  log_set_rank(grid_.world_rank());
  log_set_all_ranks(o.log_ranks == "all");
  kernels::set_num_threads(o.threads > 0 ? o.threads : kernels::default_threads_per_rank());
  TESSERA_LOG_INFO("world ", grid_.world_size(), " = tp ", grid_.tp_size(), " x dp ", grid_.dp_size(), ", ",
                   kernels::num_threads(), " threads per rank, device ", device_name(device_), ", precision ",
                   o.precision, o.shard_optimizer && o.data_parallel > 1 ? ", optimizer sharded over dp (ZeRO-1)" : "");
  claim_directories();
  report_layout();
  source_ = make_batch_source(o, o.data_parallel * o.accumulate);
  TESSERA_LOG_INFO("data: ", source_->describe());
  validator_.emplace(o, grid_);
  trainer_.emplace(o, grid_, DType::f32, device_);
  TESSERA_LOG_INFO("model: ", o.model.parameter_count(o.tensor_parallel), " parameters, ",
                   trainer_->store().values().numel(), " on this rank");
  resume_if_asked();
  if (!save_dir_.empty())
    saver_.emplace(save_dir_, grid_, checkpoint::SavePolicy{{o.keep_last, o.keep_every}, o.async_save, o.io_timeout});
}

// World rank 0 owns the output: it checks that the directories can be written and locks them
// before any work, so a bad path or a second run on the same directory fails now, not after
// hours (the error ends every rank at once, see run_with_mpi).
void TrainingRun::claim_directories() {
  if (grid_.world_rank() != 0) return;
  if (!o_.out_dir.empty()) {
    prepare_writable_directory(o_.out_dir, "--out-dir");
    locks_.emplace_back(o_.out_dir, "--out-dir");
    checkpoint::write_file_atomically(fs::path(o_.out_dir) / "config.cfg", o_.dump());
  }
  if (!save_dir_.empty()) {
    prepare_writable_directory(save_dir_, o_.save_dir.empty() ? "--out-dir" : "--save-dir");
    if (!o_.save_dir.empty()) locks_.emplace_back(save_dir_, "--save-dir");
  }
}

// Every rank's place, printed once by world rank 0 and saved as <out-dir>/layout.txt.
void TrainingRun::report_layout() {
  const std::string table = rank_layout_table(gather_rank_layout(grid_, kernels::num_threads()));
  if (grid_.world_rank() != 0) return;
  std::istringstream lines(table);
  TESSERA_LOG_INFO("layout:");
  for (std::string line; std::getline(lines, line);) TESSERA_LOG_INFO("  ", line);
  if (!o_.out_dir.empty()) checkpoint::write_file_atomically(fs::path(o_.out_dir) / "layout.txt", table);
}

void TrainingRun::resume_if_asked() {
  // --resume auto: the same command line starts a run and continues it after every requeue.
  std::string resume = o_.resume;
  if (resume == "auto") {
    resume = fs::exists(save_dir_ / "latest") ? save_dir_.string() : "";
    if (resume.empty()) TESSERA_LOG_INFO("--resume auto: no checkpoint in ", save_dir_.string(), " yet; starting fresh");
  }
  if (resume.empty()) return;
  // The model is checked before a byte of it is read: same shapes do not make the same model.
  std::vector<std::string> changes;
  checkpoint::agree(grid_.world(), checkpoint::attempt([&] {
                      const auto dir = checkpoint::resolve_checkpoint(resume);
                      changes = check_resume_config(checkpoint::read_manifest(dir).config, o_, dir.string());
                    }),
                    "checking the configuration of checkpoint " + resume);
  for (const std::string& change : changes) TESSERA_LOG_INFO("resumed with a changed option: ", change);
  const auto info =
      checkpoint::load_checkpoint(resume, trainer_->store(), &trainer_->optimizer(), grid_.world(), o_.io_timeout);
  source_->restore(info.sampler_state);
  TESSERA_LOG_INFO("resumed from ", info.dir.string(), " at step ", info.step, " (written by tp ",
                   info.tensor_parallel, " x dp ", info.data_parallel, ")");
  std::error_code ec;
  if (!save_dir_.empty() && fs::equivalent(info.dir, checkpoint::step_directory(save_dir_, info.step), ec))
    checkpointed_step_ = info.step;
}

double TrainingRun::save(int64_t at_step) {
  if (!saver_) return 0;
  if (at_step == checkpointed_step_) {
    TESSERA_LOG_INFO("step ", at_step, " is already saved in ", checkpoint::step_directory(save_dir_, at_step).string(),
                     "; not saving it again");
    return 0;
  }
  const auto start = Clock::now();
  if (saver_->in_flight()) finish_save();  // the previous background save commits first
  saver_->save(trainer_->store(), &trainer_->optimizer(), {at_step, o_.dump(), source_->state()});
  checkpointed_step_ = at_step;
  if (o_.async_save)
    TESSERA_LOG_INFO("checkpoint of step ", at_step, " taken in ", saver_->last_stall_seconds(),
                     " s; writing it in the background");
  else
    TESSERA_LOG_INFO("saved checkpoint ", saver_->last_committed().string(), " in ", saver_->last_stall_seconds(), " s");
  return seconds_since(start);
}

// A background save is committed at the first step boundary after every rank has written.
double TrainingRun::poll_save() {
  if (!saver_ || !saver_->in_flight()) return 0;
  const auto start = Clock::now();
  saver_->poll();
  if (!saver_->in_flight()) TESSERA_LOG_INFO("saved checkpoint ", saver_->last_committed().string());
  return seconds_since(start);
}

void TrainingRun::finish_save() {
  saver_->finish();
  TESSERA_LOG_INFO("saved checkpoint ", saver_->last_committed().string());
}

void TrainingRun::check_stragglers(int64_t step, double busy_seconds, int64_t steps) {
  const double mine = busy_seconds / static_cast<double>(std::max<int64_t>(steps, 1));
  std::vector<double> per_rank(static_cast<size_t>(grid_.world_size()));
  grid_.world().all_gather(&mine, per_rank.data(), 1, DType::f64);
  if (const auto straggler = find_straggler(per_rank, o_.straggler_threshold))
    metrics_->report_straggler(step, *straggler, grid_.node_of(straggler->rank));
}

int TrainingRun::run() {
  // Learning curves continue from the resumed step; train.tsv holds one line per step at full
  // precision so runs can be compared exactly.
  const int64_t first_step = trainer_->optimizer().step();
  CurveFile curve;
  if (!o_.out_dir.empty() && grid_.world_rank() == 0)
    curve = CurveFile(fs::path(o_.out_dir) / "train.tsv", "step\tloss\tgrad_norm\tlr\ttarget_tokens\tseconds", first_step);
  validator_->open_curve(first_step);
  double peak = o_.peak_gflops * 1e9;
  if (peak == 0) {  // each rank measures while the others do (they share the node), then the mean
    peak = measure_matmul_peak(device_, trainer_->store().precision());
    grid_.world().all_reduce(&peak, 1, DType::f64, parallel::ReduceOp::avg);
  }
  metrics_.emplace(o_, grid_, first_step, peak);
  metrics_->start(o_.model.parameter_count(o_.tensor_parallel));
  DivergenceGuard guard(o_.divergence_factor, o_.divergence_steps, o_.model.vocab_size);

  const auto start = Clock::now();
  const auto minutes = [&] { return seconds_since(start) / 60; };
  int64_t step = first_step;
  int stopped_by = 0;  // the stop signal every rank agreed on, or 0
  bool time_limit = false;
  double checkpoint_seconds = 0;  // taken after a step, charged to the next one
  double busy_seconds = 0;                  // since the last straggler check: this rank's time not waiting
  int64_t busy_steps = 0;
  const double slowness = simulated_slowness(grid_.world_rank());
  while (step < o_.steps) {
    StepTime time;
    time.checkpoint = checkpoint_seconds;
    auto phase = Clock::now();
    if (slowness > 0) std::this_thread::sleep_for(std::chrono::duration<double>(slowness));
    const auto batch = source_->next();
    time.data = seconds_since(phase);
    phase = Clock::now();
    const double waited_before = parallel::host_wait_seconds();
    const StepStats s = trainer_->train_step(batch);
    step = s.step;
    if (curve.is_open())
      curve.append(full_precision_row(s.step, s.loss, s.grad_norm, s.lr, s.target_tokens, s.seconds));
    guard.observe(s.step, s.loss);  // the loss is the global batch's: every rank stops together
    // Every rank must agree on stopping: the time limit is taken from world rank 0's clock, and a
    // stop signal counts wherever it arrived. The same reduction finds the largest memory.
    double flags[3] = {grid_.world_rank() == 0 && o_.time_limit_minutes > 0 && minutes() >= o_.time_limit_minutes ? 1.0 : 0.0,
                       static_cast<double>(stop_signal()), host_peak_rss_bytes()};
    grid_.world().all_reduce(flags, 3, DType::f64, parallel::ReduceOp::max);
    time_limit = flags[0] > 0;
    stopped_by = static_cast<int>(flags[1]);
    time.communication = parallel::host_wait_seconds() - waited_before;
    time.compute = seconds_since(phase) - time.communication;
    metrics_->add_step(s, time, model::training_flops(o_.model, batch));
    busy_seconds += time.data + time.compute;
    ++busy_steps;
    if (step % o_.log_every == 0 || step == o_.steps || time_limit || stopped_by != 0) metrics_->report(s, flags[2]);
    if (o_.straggler_every > 0 && step % o_.straggler_every == 0) {
      // The first window holds the warm-up (allocations, first touches): not compared.
      if (step - first_step > o_.straggler_every) check_stragglers(step, busy_seconds, busy_steps);
      busy_seconds = 0;
      busy_steps = 0;
    }
    if (stopped_by != 0) {
      TESSERA_LOG_INFO("received ", signal_name(stopped_by), ": saving a checkpoint at step ", step,
                       " and stopping (exit code ", kExitStoppedEarly, "; resume with --resume auto)");
      break;
    }
    if (time_limit) {
      TESSERA_LOG_INFO("time limit of ", o_.time_limit_minutes, " minutes reached at step ", step, " of ", o_.steps,
                       ": saving a checkpoint and stopping (exit code ", kExitStoppedEarly,
                       "; resume with --resume auto)");
      break;
    }
    if (o_.valid_every > 0 && step % o_.valid_every == 0 && step != o_.steps)
      metrics_->report_validation(step, validator_->run(*trainer_, step, minutes()));
    checkpoint_seconds = poll_save();
    if (o_.save_every > 0 && step % o_.save_every == 0 && step != o_.steps) checkpoint_seconds += save(step);
  }
  save(step);
  if (saver_ && saver_->in_flight()) finish_save();
  if (stopped_by != 0) {  // no validation: the job is about to end
    metrics_->finish(step, signal_name(stopped_by));
    return kExitStoppedEarly;
  }
  metrics_->report_validation(step, validator_->run(*trainer_, step, minutes()));
  validator_->show_examples(*trainer_, 5);
  // A run cut short by --time-limit is resumable too: the batch script requeues on this code.
  metrics_->finish(step, step < o_.steps ? "time-limit" : "finished");
  return step < o_.steps ? kExitStoppedEarly : 0;
}

}  // namespace

int run_training(const TrainOptions& o) {
  catch_stop_signals();
  return TrainingRun(o).run();
}

}  // namespace tessera::train
