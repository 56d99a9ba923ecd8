#include "train/options.h"

#include <boost/program_options.hpp>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/error.h"
#include "core/option_values.h"
#include "parallel/compute_device.h"
#include "train/memory_estimate.h"

namespace tessera::train {
namespace po = boost::program_options;

namespace {

// Every option, grouped by topic for --help; `o` is bound to the fields it fills.
struct OptionGroup {
  std::string title;
  po::options_description options;
};

std::vector<OptionGroup> option_groups(TrainOptions& o) {
  po::options_description general("General");
  general.add_options()
      ("help,h", "print this help and exit")
      ("config,c", po::value<std::vector<std::string>>()->composing(),
       "config file(s); later files override earlier ones, the command line overrides all")
      ("dump-config", "print the merged configuration and exit");

  po::options_description model("Model (Vaswani et al. 2017, Table 3)");
  model.add_options()
      ("vocab-size", bound(o.model.vocab_size), "shared source/target vocabulary size")
      ("d-model", bound(o.model.d_model), "model width")
      ("d-ff", bound(o.model.d_ff), "feed-forward inner width")
      ("heads", bound(o.model.heads), "attention heads")
      ("encoder-layers", bound(o.model.encoder_layers), "encoder layers")
      ("decoder-layers", bound(o.model.decoder_layers), "decoder layers")
      ("dropout", bound(o.model.dropout), "dropout on sublayer outputs and embeddings")
      ("attention-dropout", bound(o.model.attention_dropout), "dropout on attention probabilities")
      ("activation", bound(o.model.activation), "feed-forward activation: relu | gelu")
      ("pre-ln", bound(o.model.pre_ln), "pre-LN sublayers with a final LN (default: post-LN, the paper)")
      ("label-smoothing", bound(o.model.label_smoothing), "label smoothing epsilon");

  po::options_description training("Training");
  training.add_options()
      ("steps", bound(o.steps), "optimizer steps")
      ("warmup", bound(o.warmup), "learning-rate warm-up steps")
      ("lr-factor", bound(o.lr_factor), "factor on d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)")
      ("adam-beta1", bound(o.adam_beta1), "Adam beta1")
      ("adam-beta2", bound(o.adam_beta2), "Adam beta2")
      ("adam-eps", bound(o.adam_eps), "Adam epsilon")
      ("clip-norm", bound(o.clip_norm), "clip the global gradient norm to this (0: off)")
      ("batch-sentences", bound(o.batch_sentences), "synthetic tasks: sentences per global batch")
      ("max-tokens", bound(o.max_tokens), "corpus: source + target tokens per global batch")
      ("accumulate", bound(o.accumulate), "micro-batches per step on each data-parallel rank")
      ("seed", unsigned_option("--seed", o.seed), "seed of weights, dropout and data order")
      ("log-every", bound(o.log_every), "log every N steps")
      ("valid-every", bound(o.valid_every), "validate every N steps (0: at the end)")
      ("valid-bleu-sentences", bound(o.valid_bleu_sentences), "corpus: dev sentences greedily decoded for BLEU at each validation")
      ("time-limit", bound(o.time_limit_minutes), "stop training after this many minutes (0: no limit)")
      ("divergence-factor", bound(o.divergence_factor), "stop when the training loss stays above this x ln(vocab size) (0: never)")
      ("divergence-steps", bound(o.divergence_steps), "... for this many consecutive steps");

  po::options_description metrics("Metrics");
  metrics.add_options()
      ("tensorboard", bound(o.tensorboard), "write TensorBoard event files (scalars) into --out-dir, beside metrics.jsonl")
      ("peak-gflops", bound(o.peak_gflops), "per-rank matrix-product peak in GFLOP/s for the reported % of peak (0: measure a 1024^3 product at start)")
      ("straggler-every", bound(o.straggler_every), "every N steps compare the ranks' step times and name a straggler (0: never)")
      ("straggler-threshold", bound(o.straggler_threshold), "percent above the median step time that makes a rank a straggler");

  po::options_description data("Data");
  data.add_options()
      ("task", bound(o.task), "copy | reverse (synthetic) | corpus (--data-dir)")
      ("min-len", bound(o.min_len), "synthetic tasks: shortest sequence")
      ("max-len", bound(o.max_len), "synthetic tasks: longest sequence")
      ("data-dir", bound(o.data_dir), "corpus prepared by tessera-prep");

  po::options_description parallel("Parallelism and runtime");
  parallel.add_options()
      ("tensor-parallel", bound(o.tensor_parallel), "ranks per tensor-parallel group (split heads, FFN, vocabulary)")
      ("data-parallel", bound(o.data_parallel), "data-parallel replicas; tp * dp = MPI world size")
      ("bucket-mb", bound(o.bucket_mb), "gradient all-reduce bucket size in MiB")
      ("precision", bound(o.precision), "fp32 | bf16: bf16 matrix-product inputs and activations, fp32 accumulation, master weights, moments and statistics")
      ("grad-reduce", bound(o.grad_reduce), "fp32 | bf16: data-parallel gradients travel as f32 and are summed by the collective, or as bf16 (half the bytes), all-gathered and summed in f32")
      ("shard-optimizer", bound(o.shard_optimizer), "ZeRO-1: shard Adam's moments across the data-parallel group (reduce-scatter gradients, all-gather parameters)")
      ("allow-tp-across-nodes", bound(o.allow_tp_across_nodes), "allow a tensor-parallel group to span nodes (slow; for experiments)")
      ("collective-timeout", bound(o.collective_timeout), "seconds a collective may wait before the job aborts")
      ("log-ranks", bound(o.log_ranks), "0 | all: info lines from world rank 0 only, or from every rank (each prefixed r<rank>)")
      ("threads", bound(o.threads), "threads per rank for BLAS and loops (0: cores / ranks on the node)")
      ("device", bound(o.device), "cpu | cuda: where each rank computes (cuda: one GPU per rank, by local rank on its node)")
      ("out-dir", bound(o.out_dir), "where the merged configuration, learning curves and checkpoints go; one run at a time (locked)")
      ("save-dir", bound(o.save_dir), "checkpoint directory (default: <out-dir>/checkpoints); one run at a time (locked)")
      ("save-every", bound(o.save_every), "save a checkpoint every N steps (0: at the end only)")
      ("keep-last", bound(o.keep_last), "keep the newest N checkpoints, removing older ones once a new one is complete (0: keep all)")
      ("keep-every", bound(o.keep_every), "with --keep-last, also keep for good every checkpoint whose step is a multiple of K (0: none)")
      ("async-save", bound(o.async_save), "write checkpoints on a background thread while training continues (the step waits only for a host copy)")
      ("io-timeout", bound(o.io_timeout), "seconds a rank may wait for checkpoint writes and reads (its own or other ranks') before the job stops")
      ("resume", bound(o.resume), "continue from this checkpoint (a step directory, or a save directory's latest), or 'auto': from <save-dir>/latest when it exists, else start fresh (one command line for the first start and every requeue); in the same --out-dir the learning curves continue from its step");
  return {{"General", general}, {"Model", model}, {"Training", training}, {"Metrics", metrics}, {"Data", data},
          {"Parallelism and runtime", parallel}};
}

po::options_description all_options(TrainOptions& o) {
  po::options_description all("tessera-train: train the Transformer encoder-decoder");
  for (auto& g : option_groups(o)) all.add(g.options);
  return all;
}

// The value of option `name` as config-file text.
std::string value_text(const po::variable_value& v) {
  const auto& a = v.value();
  std::ostringstream os;
  if (auto p = boost::any_cast<int64_t>(&a)) os << *p;
  else if (auto p = boost::any_cast<uint64_t>(&a)) os << *p;
  else if (auto p = boost::any_cast<int>(&a)) os << *p;
  else if (auto p = boost::any_cast<double>(&a)) os << exact_text(*p);
  else if (auto p = boost::any_cast<float>(&a)) os << exact_text(*p);
  else if (auto p = boost::any_cast<bool>(&a)) os << exact_text(*p);
  else if (auto p = boost::any_cast<std::string>(&a)) os << *p;
  return os.str();
}

}  // namespace

std::string TrainOptions::dump() const {
  // A description whose defaults are this object's values: parsing nothing yields exactly them.
  TrainOptions copy = *this;
  po::variables_map vm;
  po::store(po::command_line_parser(std::vector<std::string>{}).options(all_options(copy)).run(), vm);
  std::ostringstream os;
  os << "# tessera-train merged configuration\n";
  for (auto& group : option_groups(copy)) {
    if (group.title == "General") continue;
    os << "\n# " << group.title << "\n";
    for (const auto& opt : group.options.options()) {
      const std::string& name = opt->long_name();
      if (name == "help" || name == "config" || name == "dump-config") continue;
      os << name << " = " << value_text(vm[name]) << "\n";
    }
  }
  return os.str();
}

void TrainOptions::validate() const {
  model.validate(tensor_parallel);
  TESSERA_CHECK(steps >= 0, "--steps: must not be negative, got ", steps);
  TESSERA_CHECK(warmup > 0, "--warmup: must be positive, got ", warmup);
  TESSERA_CHECK(lr_factor > 0, "--lr-factor: must be positive, got ", lr_factor);
  TESSERA_CHECK(adam_beta1 >= 0 && adam_beta1 < 1, "--adam-beta1: ", adam_beta1, " is not in [0, 1)");
  TESSERA_CHECK(adam_beta2 >= 0 && adam_beta2 < 1, "--adam-beta2: ", adam_beta2, " is not in [0, 1)");
  TESSERA_CHECK(adam_eps > 0, "--adam-eps: must be positive, got ", adam_eps);
  TESSERA_CHECK(clip_norm >= 0, "--clip-norm: must not be negative, got ", clip_norm);
  TESSERA_CHECK(accumulate >= 1, "--accumulate: must be at least 1, got ", accumulate);
  TESSERA_CHECK(log_every >= 1, "--log-every: must be at least 1, got ", log_every);
  TESSERA_CHECK(log_ranks == "0" || log_ranks == "all", "--log-ranks: must be 0 or all, got '", log_ranks, "'");
  TESSERA_CHECK(valid_every >= 0, "--valid-every: must not be negative, got ", valid_every);
  TESSERA_CHECK(valid_bleu_sentences >= 0, "--valid-bleu-sentences: must not be negative, got ", valid_bleu_sentences);
  TESSERA_CHECK(time_limit_minutes >= 0, "--time-limit: must not be negative, got ", time_limit_minutes);
  TESSERA_CHECK(divergence_factor >= 0, "--divergence-factor: must not be negative (0: off), got ", divergence_factor);
  TESSERA_CHECK(divergence_steps >= 1, "--divergence-steps: must be at least 1, got ", divergence_steps);
  TESSERA_CHECK(peak_gflops >= 0, "--peak-gflops: must not be negative (0: measure), got ", peak_gflops);
  TESSERA_CHECK(straggler_every >= 0, "--straggler-every: must not be negative (0: never), got ", straggler_every);
  TESSERA_CHECK(straggler_threshold > 0, "--straggler-threshold: must be positive, got ", straggler_threshold);
  TESSERA_CHECK(data_parallel >= 1, "--data-parallel: must be at least 1, got ", data_parallel);
  TESSERA_CHECK(bucket_mb > 0, "--bucket-mb: must be positive, got ", bucket_mb);
  TESSERA_CHECK(collective_timeout > 0, "--collective-timeout: must be positive, got ", collective_timeout);
  TESSERA_CHECK(threads >= 0, "--threads: must not be negative, got ", threads);
  parallel::parse_device_kind(device);
  TESSERA_CHECK(precision == "fp32" || precision == "bf16", "--precision: must be fp32 or bf16, got '", precision, "'");
  TESSERA_CHECK(grad_reduce == "fp32" || grad_reduce == "bf16", "--grad-reduce: must be fp32 or bf16, got '",
                grad_reduce, "'");
  TESSERA_CHECK(save_every >= 0, "--save-every: must not be negative, got ", save_every);
  TESSERA_CHECK(keep_last >= 0, "--keep-last: must not be negative (0: keep all), got ", keep_last);
  TESSERA_CHECK(keep_every >= 0, "--keep-every: must not be negative (0: none), got ", keep_every);
  TESSERA_CHECK(keep_every == 0 || keep_last > 0, "--keep-every: ", keep_every,
                " needs --keep-last (without it every checkpoint is kept anyway)");
  TESSERA_CHECK(io_timeout > 0, "--io-timeout: must be positive, got ", io_timeout);
  TESSERA_CHECK(resume != "auto" || !out_dir.empty() || !save_dir.empty(),
                "--resume auto: continues from <save-dir>/latest, so it needs --save-dir or --out-dir");
  if (task == "corpus") {
    TESSERA_CHECK(!data_dir.empty(), "--data-dir: --task corpus needs the directory written by tessera-prep");
    TESSERA_CHECK(max_tokens > 0, "--max-tokens: must be positive, got ", max_tokens);
    TESSERA_CHECK(max_len >= 0, "--max-len: must not be negative (0: no limit), got ", max_len);
    TESSERA_CHECK(std::filesystem::exists(std::filesystem::path(data_dir) / "COMPLETE"), "--data-dir: '", data_dir,
                  "' holds no complete corpus (run tessera-prep --out-dir ", data_dir, " first)");
  } else {
    TESSERA_CHECK(task == "copy" || task == "reverse", "--task: '", task, "' is not one of copy, reverse, corpus");
    TESSERA_CHECK(min_len >= 1 && min_len <= max_len, "--min-len/--max-len: need 1 <= min-len <= max-len, got ",
                  min_len, " and ", max_len);
    TESSERA_CHECK(batch_sentences >= data_parallel * accumulate, "--batch-sentences: ", batch_sentences,
                  " sentences cannot be cut into --data-parallel ", data_parallel, " x --accumulate ", accumulate,
                  " non-empty micro-batches");
  }
}

std::optional<TrainOptions> parse_train_options(int argc, char** argv, bool print) {
  TrainOptions o;
  const po::options_description all = all_options(o);
  po::variables_map vm;
  try {
    // po::store keeps the first value it sees for an option, so the command line goes first and
    // the config files follow from the last to the first: later files override earlier ones.
    po::store(po::parse_command_line(argc, argv, all), vm);
    if (vm.count("config")) {
      const auto files = vm["config"].as<std::vector<std::string>>();
      for (auto file = files.rbegin(); file != files.rend(); ++file) {
        std::error_code ec;
        TESSERA_CHECK(!std::filesystem::is_directory(*file, ec), "--config: '", *file,
                      "' is a directory, not a config file");
        std::ifstream in(*file);
        TESSERA_CHECK(in.good(), "--config: cannot open config file '", *file, "'");
        try {
          po::store(po::parse_config_file(in, all), vm);
        } catch (const po::error& e) {
          TESSERA_FAIL("config file '", *file, "': ", e.what());
        }
        TESSERA_CHECK(!in.bad(), "--config: error reading config file '", *file, "'");
      }
    }
    if (vm.count("help")) {
      if (print) std::cout << all << "\n";
      return std::nullopt;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    TESSERA_FAIL(e.what());
  }
  o.validate();
  if (vm.count("dump-config")) {
    if (print) std::cout << o.dump();
    return std::nullopt;
  }
  // Host memory holds the model on the CPU; on a GPU the device allocator reports what does not fit.
  if (parallel::parse_device_kind(o.device) == DeviceKind::cpu) check_memory_fits(o, rank_memory_budget());
  return o;
}

TrainOptions parse_config_text(const std::string& text, const std::string& origin) {
  TrainOptions o;
  const po::options_description all = all_options(o);
  po::variables_map vm;
  std::istringstream in(text);
  try {
    po::store(po::parse_config_file(in, all), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    TESSERA_FAIL(origin, ": ", e.what());
  }
  return o;
}

}  // namespace tessera::train
