// tessera-train: trains the encoder-decoder on one process or under mpirun/srun with any
// (tensor-parallel, data-parallel) layout whose product is the world size.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <vector>

#include "checkpoint/atomic_file.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/agreement.h"
#include "checkpoint/checkpoint_saver.h"
#include "checkpoint/manifest.h"
#include "core/log.h"
#include "data/sentencepiece_model.h"
#include "eval/bleu.h"
#include "eval/translate.h"
#include "kernels/ops.h"
#include "kernels/threads.h"
#include "parallel/compute_device.h"
#include "parallel/mpi_runtime.h"
#include "parallel/process_grid.h"
#include "train/batch_source.h"
#include "train/divergence_guard.h"
#include "train/resume_config.h"
#include "train/stop_signals.h"
#include "train/run_directory.h"
#include "train/trainer.h"

using namespace tessera;

namespace {

void log_step(const train::StepStats& s, double tokens_per_second) {
  TESSERA_LOG_INFO("step ", s.step, "  loss ", s.loss, "  ppl ", std::exp(s.loss), "  acc ", s.accuracy, "  lr ", s.lr,
                   "  gnorm ", s.grad_norm, "  tok/s ", static_cast<int64_t>(tokens_per_second));
}

// Tab-separated values at full precision (17 significant digits: doubles round-trip).
template <typename... T>
std::string full_precision(const T&... values) {
  std::ostringstream os;
  os << std::setprecision(17);
  const char* sep = "";
  ((os << sep << values, sep = "\t"), ...);
  return os.str();
}

// Held-out evaluation: loss and perplexity, and greedy BLEU on the corpus (greedy token accuracy
// on synthetic tasks). Appends a line to <out-dir>/valid.tsv on rank 0.
class Validator {
 public:
  Validator(const train::TrainOptions& o, const parallel::ProcessGrid& grid) : o_(o), grid_(grid) {
    if (o.task == "corpus") {
      spm_ = std::make_unique<data::SentencePieceModel>(std::filesystem::path(o.data_dir) / "spm.model");
      TESSERA_CHECK(spm_->vocab_size() == o.model.vocab_size, "--vocab-size: ", o.model.vocab_size,
                    " differs from the ", spm_->vocab_size(), " pieces of ", o.data_dir, "/spm.model");
      dev_ = train::read_held_out(o.data_dir, "dev", o.model.vocab_size);
    } else {
      train::SyntheticBatchSource source(o);
      dev_.pairs = source.task().pairs(data::kHeldOutSplit, 0, 512);
    }
  }

  // Starts <out-dir>/valid.tsv on world rank 0, continuing it when resuming at `resume_step`.
  void open_curve(int64_t resume_step) {
    if (o_.out_dir.empty() || grid_.world_rank() != 0) return;
    tsv_ = train::CurveFile(std::filesystem::path(o_.out_dir) / "valid.tsv",
                            std::string("step\tminutes\tloss\tppl\t") + (spm_ ? "bleu" : "greedy_accuracy"),
                            resume_step);
  }

  void run(train::Trainer& trainer, int64_t step, double minutes) {
    const train::EvalStats ev = trainer.evaluate(dev_.pairs, 64);
    double quality = 0;
    if (spm_) {
      const size_t n = std::min<size_t>(dev_.pairs.size(), static_cast<size_t>(o_.valid_bleu_sentences));
      std::vector<std::vector<int32_t>> sources;
      for (size_t i = 0; i < n; ++i) sources.push_back(dev_.pairs[i].src);
      const auto hyps = eval::translate_ids(trainer.model(), grid_, sources, eval::DecodeOptions{});
      eval::BleuAccumulator bleu;
      for (size_t i = 0; i < n; ++i) bleu.add(spm_->decode(hyps[i]), dev_.references[i]);
      quality = bleu.score().score;
      TESSERA_LOG_INFO("valid step ", step, "  loss ", full_precision(ev.loss), "  ppl ", std::exp(ev.loss), "  greedy ",
                       bleu.score().to_string(), " on ", n, " dev sentences");
    } else {
      quality = trainer.greedy_token_accuracy(dev_.pairs, 64);
      TESSERA_LOG_INFO("valid step ", step, "  loss ", full_precision(ev.loss), "  ppl ", std::exp(ev.loss), "  acc ", ev.accuracy,
                       "  greedy token acc ", quality);
    }
    if (tsv_.is_open())
      tsv_.append(full_precision(step, minutes, ev.loss, std::exp(ev.loss), quality));
  }

  // A few dev sentences with their translations, for the eye.
  void show_examples(train::Trainer& trainer, size_t count) {
    if (!spm_) return;
    std::vector<std::string> sources(dev_.sources.begin(), dev_.sources.begin() + std::min(count, dev_.sources.size()));
    const auto hyps = eval::translate_text(trainer.model(), grid_, *spm_, sources, eval::DecodeOptions{});
    for (size_t i = 0; i < hyps.size(); ++i)
      TESSERA_LOG_INFO("example ", i + 1, "\n  de:  ", sources[i], "\n  ref: ", dev_.references[i], "\n  hyp: ", hyps[i]);
  }

 private:
  const train::TrainOptions& o_;
  const parallel::ProcessGrid& grid_;
  std::unique_ptr<data::SentencePieceModel> spm_;
  train::HeldOutSet dev_;
  train::CurveFile tsv_;
};

int run(const train::TrainOptions& o) {
  train::catch_stop_signals();
  const Device device = parallel::select_compute_device(o.device);
  parallel::ProcessGrid grid(o.tensor_parallel, o.data_parallel, o.collective_timeout, device, o.allow_tp_across_nodes);
  log_set_rank(grid.world_rank());
  kernels::set_num_threads(o.threads > 0 ? o.threads : kernels::default_threads_per_rank());
  TESSERA_LOG_INFO("world ", grid.world_size(), " = tp ", grid.tp_size(), " x dp ", grid.dp_size(), ", ",
                   kernels::num_threads(), " threads per rank, device ", device_name(device), ", precision ", o.precision,
                   o.shard_optimizer && o.data_parallel > 1 ? ", optimizer sharded over dp (ZeRO-1)" : "");
  const std::filesystem::path save_dir =
      !o.save_dir.empty() ? std::filesystem::path(o.save_dir)
                          : (o.out_dir.empty() ? std::filesystem::path() : std::filesystem::path(o.out_dir) / "checkpoints");
  // World rank 0 owns the output: it checks that the directories can be written and locks them
  // before any work, so a bad path or a second run on the same directory fails now, not after
  // hours (the error ends every rank at once, see run_with_mpi).
  std::vector<train::DirectoryLock> locks;
  if (grid.world_rank() == 0) {
    if (!o.out_dir.empty()) {
      train::prepare_writable_directory(o.out_dir, "--out-dir");
      locks.emplace_back(o.out_dir, "--out-dir");
      checkpoint::write_file_atomically(std::filesystem::path(o.out_dir) / "config.cfg", o.dump());
    }
    if (!save_dir.empty()) {
      train::prepare_writable_directory(save_dir, o.save_dir.empty() ? "--out-dir" : "--save-dir");
      if (!o.save_dir.empty()) locks.emplace_back(save_dir, "--save-dir");
    }
  }
  const auto source = train::make_batch_source(o, o.data_parallel * o.accumulate);
  TESSERA_LOG_INFO("data: ", source->describe());
  Validator validator(o, grid);
  train::Trainer trainer(o, grid, DType::f32, device);
  TESSERA_LOG_INFO("model: ", o.model.parameter_count(o.tensor_parallel), " parameters, ",
                   trainer.store().values().numel(), " on this rank");
  // The step whose state is already in save_dir: a resumed run that ends where it started (a
  // requeued job) must not save that step again.
  int64_t checkpointed_step = -1;
  // --resume auto: the same command line starts a run and continues it after every requeue.
  std::string resume = o.resume;
  if (resume == "auto") {
    resume = std::filesystem::exists(save_dir / "latest") ? save_dir.string() : "";
    if (resume.empty()) TESSERA_LOG_INFO("--resume auto: no checkpoint in ", save_dir.string(), " yet; starting fresh");
  }
  if (!resume.empty()) {
    // The model is checked before a byte of it is read: same shapes do not make the same model.
    std::vector<std::string> changes;
    checkpoint::agree(grid.world(), checkpoint::attempt([&] {
                        const auto dir = checkpoint::resolve_checkpoint(resume);
                        changes = train::check_resume_config(checkpoint::read_manifest(dir).config, o, dir.string());
                      }),
                      "checking the configuration of checkpoint " + resume);
    for (const std::string& change : changes) TESSERA_LOG_INFO("resumed with a changed option: ", change);
    const auto info =
        checkpoint::load_checkpoint(resume, trainer.store(), &trainer.optimizer(), grid.world(), o.io_timeout);
    source->restore(info.sampler_state);
    TESSERA_LOG_INFO("resumed from ", info.dir.string(), " at step ", info.step, " (written by tp ",
                     info.tensor_parallel, " x dp ", info.data_parallel, ")");
    std::error_code ec;
    if (!save_dir.empty() && std::filesystem::equivalent(info.dir, checkpoint::step_directory(save_dir, info.step), ec))
      checkpointed_step = info.step;
  }
  std::optional<checkpoint::CheckpointSaver> saver;
  if (!save_dir.empty())
    saver.emplace(save_dir, grid,
                  checkpoint::SavePolicy{{o.keep_last, o.keep_every}, o.async_save, o.io_timeout});
  auto save = [&](int64_t at_step) {
    if (!saver) return;
    if (at_step == checkpointed_step) {
      TESSERA_LOG_INFO("step ", at_step, " is already saved in ", checkpoint::step_directory(save_dir, at_step).string(),
                       "; not saving it again");
      return;
    }
    if (saver->in_flight()) {  // the previous background save commits first
      saver->finish();
      TESSERA_LOG_INFO("saved checkpoint ", saver->last_committed().string());
    }
    saver->save(trainer.store(), &trainer.optimizer(), {at_step, o.dump(), source->state()});
    checkpointed_step = at_step;
    if (o.async_save)
      TESSERA_LOG_INFO("checkpoint of step ", at_step, " taken in ", saver->last_stall_seconds(),
                       " s; writing it in the background");
    else
      TESSERA_LOG_INFO("saved checkpoint ", saver->last_committed().string(), " in ", saver->last_stall_seconds(), " s");
  };
  // A background save is committed at the first step boundary after every rank has written.
  auto poll_save = [&] {
    if (!saver || !saver->in_flight()) return;
    saver->poll();
    if (!saver->in_flight()) TESSERA_LOG_INFO("saved checkpoint ", saver->last_committed().string());
  };

  // Learning curves, one line per step, at full precision so runs can be compared exactly; a
  // resumed run continues them from its checkpoint's step.
  const int64_t first_step = trainer.optimizer().step();
  train::CurveFile curve;
  if (!o.out_dir.empty() && grid.world_rank() == 0)
    curve = train::CurveFile(std::filesystem::path(o.out_dir) / "train.tsv",
                             "step\tloss\tgrad_norm\tlr\ttarget_tokens\tseconds", first_step);
  validator.open_curve(first_step);
  train::DivergenceGuard guard(o.divergence_factor, o.divergence_steps, o.model.vocab_size);
  const auto start = std::chrono::steady_clock::now();
  auto minutes = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60; };
  double tokens = 0, seconds = 0;
  int64_t step = first_step;
  int stopped_by = 0;  // the stop signal every rank agreed on, or 0
  while (step < o.steps) {
    const train::StepStats s = trainer.train_step(source->next());
    step = s.step;
    poll_save();
    tokens += static_cast<double>(s.source_tokens + s.target_tokens);
    seconds += s.seconds;
    if (curve.is_open()) curve.append(full_precision(s.step, s.loss, s.grad_norm, s.lr, s.target_tokens, s.seconds));
    guard.observe(s.step, s.loss);  // the loss is the global batch's: every rank stops together
    // Every rank must agree on stopping: the time limit is taken from world rank 0's clock, and a
    // stop signal counts wherever it arrived.
    double stop_flags[2] = {grid.world_rank() == 0 && o.time_limit_minutes > 0 && minutes() >= o.time_limit_minutes ? 1.0 : 0.0,
                            static_cast<double>(train::stop_signal())};
    grid.world().all_reduce(stop_flags, 2, DType::f64, parallel::ReduceOp::max);
    const double stop = stop_flags[0];
    stopped_by = static_cast<int>(stop_flags[1]);
    if (step % o.log_every == 0 || step == o.steps || stop > 0 || stopped_by != 0) {
      log_step(s, tokens / seconds);
      tokens = seconds = 0;
    }
    if (stopped_by != 0) {
      TESSERA_LOG_INFO("received ", train::signal_name(stopped_by), ": saving a checkpoint at step ", step,
                       " and stopping (exit code ", train::kExitStoppedEarly, "; resume with --resume auto)");
      break;
    }
    if (stop > 0) {
      TESSERA_LOG_INFO("time limit of ", o.time_limit_minutes, " minutes reached at step ", step, " of ", o.steps,
                       ": saving a checkpoint and stopping (exit code ", train::kExitStoppedEarly,
                       "; resume with --resume auto)");
      break;
    }
    if (o.valid_every > 0 && step % o.valid_every == 0 && step != o.steps) validator.run(trainer, step, minutes());
    if (o.save_every > 0 && step % o.save_every == 0 && step != o.steps) save(step);
  }
  save(step);
  if (saver && saver->in_flight()) {
    saver->finish();
    TESSERA_LOG_INFO("saved checkpoint ", saver->last_committed().string());
  }
  if (stopped_by != 0) return train::kExitStoppedEarly;  // no validation: the job is about to end
  validator.run(trainer, step, minutes());
  validator.show_examples(trainer, 5);
  // A run cut short by --time-limit is resumable too: the batch script requeues on this code.
  return step < o.steps ? train::kExitStoppedEarly : 0;
}

}  // namespace

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
  return parallel::run_with_mpi("tessera-train", &argc, &argv, [&] { return run(*options); });
}
