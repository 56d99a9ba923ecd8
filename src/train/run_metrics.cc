#include "train/run_metrics.h"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/log.h"
#include "train/tensorboard_writer.h"

namespace tessera::train {
namespace fs = std::filesystem;

namespace {

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The merged configuration ("name = value" lines) as {"name": "value", ...}, in its order.
nlohmann::ordered_json config_object(const std::string& config_text) {
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  std::istringstream lines(config_text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t eq = line.find(" = ");
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    config[line.substr(0, eq)] = line.substr(eq + 3);
  }
  return config;
}

}  // namespace

double host_peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) * 1024.0;  // Linux reports KiB
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  char text[32];
  if (s >= 3600) std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60));
  else if (s >= 60) std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else std::snprintf(text, sizeof text, "%llds", static_cast<long long>(s));
  return text;
}

RunMetrics::RunMetrics(const TrainOptions& o, const parallel::ProcessGrid& grid, int64_t first_step, double peak_flops)
    : o_(o), grid_(grid), first_step_(first_step), peak_flops_(peak_flops), start_time_(unix_seconds()) {
  if (o.out_dir.empty() || grid.world_rank() != 0) return;
  jsonl_ = CurveFile::json_lines(fs::path(o.out_dir) / "metrics.jsonl", first_step);
  if (o.tensorboard) {
    tensorboard_ = std::make_unique<TensorBoardWriter>(o.out_dir);
    // After a resume TensorBoard drops the interrupted run's points past this step.
    if (first_step > 0) tensorboard_->start_session(first_step, start_time_);
  }
}

RunMetrics::~RunMetrics() = default;

void RunMetrics::write(const nlohmann::ordered_json& record) {
  if (!jsonl_.is_open()) return;
  jsonl_.append(record.dump());
}

void RunMetrics::start(int64_t parameters) {
  std::vector<std::string> hosts;
  for (int r = 0; r < grid_.world_size(); ++r)
    if (std::find(hosts.begin(), hosts.end(), grid_.node_of(r)) == hosts.end()) hosts.push_back(grid_.node_of(r));
  write({{"event", "start"},
         {"step", first_step_},
         {"time", start_time_},
         {"world", grid_.world_size()},
         {"tp", grid_.tp_size()},
         {"dp", grid_.dp_size()},
         {"hosts", hosts.size()},
         {"threads", kernels::num_threads()},
         {"device", o_.device},
         {"precision", o_.precision},
         {"parameters", parameters},
         {"peak_flops_per_rank", peak_flops_},
         {"config", config_object(o_.dump())}});
}

void RunMetrics::add_step(const StepStats& s, const StepTime& time, double model_flops) {
  ++steps_;
  source_tokens_ += static_cast<double>(s.source_tokens);
  target_tokens_ += static_cast<double>(s.target_tokens);
  flops_ += model_flops;
  time_.data += time.data;
  time_.compute += time.compute;
  time_.communication += time.communication;
  time_.checkpoint += time.checkpoint;
}

void RunMetrics::report(const StepStats& last, double host_peak_rss_bytes) {
  if (steps_ == 0) return;
  const double n = static_cast<double>(steps_), seconds = time_.total();
  const double tokens_per_s = (source_tokens_ + target_tokens_) / seconds;
  const double flops_per_s = flops_ / seconds;
  const double peak_fraction = peak_flops_ > 0 ? flops_per_s / (peak_flops_ * grid_.world_size()) : 0;
  const double eta = static_cast<double>(o_.steps - last.step) * seconds / n;
  const double elapsed = unix_seconds() - start_time_;
  const bool time_limited = o_.time_limit_minutes > 0 && o_.time_limit_minutes * 60 - elapsed < eta;
  TESSERA_LOG_INFO("step ", last.step, "  loss ", last.loss, "  ppl ", std::exp(last.loss), "  acc ", last.accuracy,
                   "  lr ", last.lr, "  gnorm ", last.grad_norm, "  tok/s ", static_cast<int64_t>(tokens_per_s),
                   "  ", static_cast<int64_t>(std::lround(100 * peak_fraction)), "% of peak  comm ",
                   static_cast<int64_t>(std::lround(100 * time_.communication / seconds)), "%  eta ",
                   format_duration(time_limited ? o_.time_limit_minutes * 60 - elapsed : eta),
                   time_limited ? " (time limit)" : "");
  write({{"event", "step"},
         {"step", last.step},
         {"time", unix_seconds()},
         {"elapsed_s", elapsed},
         {"steps", steps_},
         {"loss", last.loss},
         {"ppl", std::exp(last.loss)},
         {"accuracy", last.accuracy},
         {"lr", last.lr},
         {"grad_norm", last.grad_norm},
         {"source_tokens", source_tokens_},
         {"target_tokens", target_tokens_},
         {"tokens_per_s", tokens_per_s},
         {"step_s", seconds / n},
         {"compute_s", time_.compute / n},
         {"comm_exposed_s", time_.communication / n},
         {"data_s", time_.data / n},
         {"checkpoint_s", time_.checkpoint / n},
         {"model_flops_per_s", flops_per_s},
         {"peak_fraction", peak_fraction},
         {"host_peak_rss_bytes", host_peak_rss_bytes},
         {"eta_s", eta}});
  if (tensorboard_) {
    const double now = unix_seconds();
    const auto scalar = [&](const char* tag, double value) { tensorboard_->add_scalar(tag, last.step, value, now); };
    scalar("train/loss", last.loss);
    scalar("train/ppl", std::exp(last.loss));
    scalar("train/accuracy", last.accuracy);
    scalar("train/lr", last.lr);
    scalar("train/grad_norm", last.grad_norm);
    scalar("speed/tokens_per_s", tokens_per_s);
    scalar("speed/peak_fraction", peak_fraction);
    scalar("time/step_s", seconds / n);
    scalar("time/compute_s", time_.compute / n);
    scalar("time/comm_exposed_s", time_.communication / n);
    scalar("time/data_s", time_.data / n);
    scalar("time/checkpoint_s", time_.checkpoint / n);
    scalar("memory/host_peak_rss_gib", host_peak_rss_bytes / (1 << 30));
    tensorboard_->flush();
  }
  steps_ = 0;
  source_tokens_ = target_tokens_ = flops_ = 0;
  time_ = StepTime{};
}

void RunMetrics::report_validation(int64_t step, const ValidationResult& v) {
  write({{"event", "valid"},
         {"step", step},
         {"time", unix_seconds()},
         {"loss", v.loss},
         {"ppl", std::exp(v.loss)},
         {v.quality_name, v.quality},
         {"seconds", v.seconds}});
  if (tensorboard_) {
    const double now = unix_seconds();
    tensorboard_->add_scalar("valid/loss", step, v.loss, now);
    tensorboard_->add_scalar("valid/ppl", step, std::exp(v.loss), now);
    tensorboard_->add_scalar("valid/" + v.quality_name, step, v.quality, now);
    tensorboard_->flush();
  }
}

void RunMetrics::report_straggler(int64_t step, const Straggler& s, const std::string& host) {
  if (grid_.world_rank() != 0) return;
  TESSERA_LOG_WARN("straggler: rank ", s.rank, " on ", host, " took ", s.seconds, " s per step (without waiting), ",
                   static_cast<int64_t>(std::lround(s.percent_slower)), "% above the median ", s.median_seconds,
                   " s of the ", grid_.world_size(), " ranks");
  write({{"event", "straggler"},
         {"step", step},
         {"time", unix_seconds()},
         {"rank", s.rank},
         {"host", host},
         {"busy_s", s.seconds},
         {"median_busy_s", s.median_seconds},
         {"percent_slower", s.percent_slower}});
}

void RunMetrics::finish(int64_t step, const std::string& reason) {
  write({{"event", "end"}, {"step", step}, {"time", unix_seconds()}, {"reason", reason}});
  if (tensorboard_) tensorboard_->flush();
}

}  // namespace tessera::train
