// What a training run reports as it goes, for people and for programs, from world rank 0:
// - the progress line in the log every --log-every steps, with the steps' mean speed and an ETA;
// - <out-dir>/metrics.jsonl: one JSON object per line, an event each ("start", "step", "valid",
//   "straggler", "end"); a "step" record holds the means over the steps since the last one, with
//   the step time split into data, compute, exposed communication and checkpoint;
// - TensorBoard event files (scalars) in <out-dir>, so `tensorboard --logdir runs/` shows the
//   curves of every run below runs/.
// A resumed run continues metrics.jsonl from its checkpoint's step (the interrupted run's records
// after it are dropped, as in train.tsv) and starts a new event file. The format of every record
// is in docs/metrics.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "parallel/process_grid.h"
#include "train/options.h"
#include "train/run_directory.h"
#include "train/straggler_report.h"
#include "train/trainer.h"
#include "train/validator.h"

namespace tessera::train {

class TensorBoardWriter;

// Where one step's wall time went on this rank, in seconds.
struct StepTime {
  double data = 0;           // building the global batch
  double compute = 0;        // forward, backward and the update, less the exposed communication
  double communication = 0;  // blocked in collectives: the communication compute did not hide
  double checkpoint = 0;     // snapshotting, writing and committing checkpoints
  double total() const { return data + compute + communication + checkpoint; }
};

class RunMetrics {
 public:
  // World rank 0 opens metrics.jsonl and the event file in o.out_dir (when set); other ranks
  // only keep the window. `first_step` is 0 or the step resumed from; `peak_flops` is one rank's
  // matrix-product peak (FLOP/s).
  RunMetrics(const TrainOptions& o, const parallel::ProcessGrid& grid, int64_t first_step, double peak_flops);
  ~RunMetrics();

  // The "start" record: the layout, the model and the merged configuration.
  void start(int64_t parameters);
  // Adds a finished step to the window. `model_flops` is the global batch's (model/flop_count.h).
  void add_step(const StepStats& s, const StepTime& time, double model_flops);
  // Reports the window (progress line, "step" record, scalars) and starts a new one.
  // `host_peak_rss_bytes` is the largest peak resident memory over the ranks.
  void report(const StepStats& last, double host_peak_rss_bytes);
  void report_validation(int64_t step, const ValidationResult& v);
  void report_straggler(int64_t step, const Straggler& s, const std::string& host);
  // The "end" record: "finished", "time-limit" or the stop signal's name.
  void finish(int64_t step, const std::string& reason);

 private:
  void write(const nlohmann::ordered_json& record);

  const TrainOptions& o_;
  const parallel::ProcessGrid& grid_;
  const int64_t first_step_;
  const double peak_flops_;
  const double start_time_;  // unix seconds
  CurveFile jsonl_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
  // The window since the last report.
  int64_t steps_ = 0;
  double source_tokens_ = 0, target_tokens_ = 0, flops_ = 0;
  StepTime time_;
};

// This process's peak resident memory in bytes (getrusage).
double host_peak_rss_bytes();

// "1h02m", "3m05s", "42s".
std::string format_duration(double seconds);

}  // namespace tessera::train
