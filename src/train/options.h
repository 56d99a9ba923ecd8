// tessera-train's options: presets in config files (configs/*.cfg), later files overriding
// earlier ones and the command line overriding both (as in Marian), validated together, and
// printable as one merged configuration (--dump-config) that reproduces the run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace tessera::train {

struct TrainOptions {
  model::ModelConfig model;

  // training
  int64_t steps = 1000;
  int64_t warmup = 4000;
  double lr_factor = 1.0;
  double adam_beta1 = 0.9, adam_beta2 = 0.98, adam_eps = 1e-9;
  double clip_norm = 0;  // 0: no clipping
  int64_t batch_sentences = 64;  // synthetic tasks: sentences per global batch
  int64_t max_tokens = 4096;     // corpus: source + target tokens per global batch
  int64_t accumulate = 1;        // micro-batches per step and data-parallel rank
  uint64_t seed = 1;
  int64_t log_every = 10;
  int64_t valid_every = 0;       // 0: validate only at the end
  int64_t valid_bleu_sentences = 200;  // dev sentences decoded for BLEU at each validation
  double time_limit_minutes = 0; // stop training after this much wall time (0: no limit)
  double divergence_factor = 2;  // stop when the loss stays above this x ln V ... (0: never)
  int64_t divergence_steps = 20; // ... for this many consecutive steps

  // metrics
  bool tensorboard = true;          // TensorBoard event files in --out-dir (beside metrics.jsonl)
  double peak_gflops = 0;           // per-rank matrix-product peak for "% of peak" (0: measured at start)
  int64_t straggler_every = 100;    // gather per-rank step times every N steps (0: never)
  double straggler_threshold = 20;  // name the slowest rank when it is this many percent slower than the median

  // data
  std::string task = "reverse";  // copy | reverse | corpus
  int64_t min_len = 4, max_len = 12;
  std::string data_dir;

  // parallelism and runtime
  int tensor_parallel = 1, data_parallel = 1;
  double bucket_mb = 4;
  std::string precision = "fp32";  // fp32 | bf16 (bf16 products and activations, fp32 master weights and statistics)
  bool shard_optimizer = false;  // ZeRO-1: Adam moments sharded across the data-parallel group
  std::string grad_reduce = "fp32";  // fp32 | bf16 (bf16 on the wire, summed in f32)
  bool allow_tp_across_nodes = false;  // experiments only: let a tensor-parallel group span nodes
  std::string log_ranks = "0";         // 0 | all: which ranks print info lines
  double collective_timeout = 300;
  int threads = 0;  // 0: cores on the node divided among its ranks
  std::string device = "cpu";    // cpu | cuda (one GPU per rank, chosen by local rank on the node)
  std::string out_dir;
  std::string save_dir;          // checkpoints (default: <out-dir>/checkpoints when --out-dir is set)
  int64_t save_every = 0;        // 0: save only at the end
  int64_t keep_last = 0;         // keep the newest N checkpoints (0: all)
  int64_t keep_every = 0;        // ... and every step that is a multiple of K, for good (0: none)
  bool async_save = false;       // write checkpoints on a background thread while training goes on
  double io_timeout = 1800;      // seconds a rank may wait for checkpoint I/O
  std::string resume;            // checkpoint directory to continue from, or "auto" (<save-dir>/latest if any)

  // The merged configuration as config-file text.
  std::string dump() const;
  // Throws tessera::Error naming the option at fault.
  void validate() const;
};

// Parses argv (with --config files). Returns nullopt after printing --help or --dump-config
// output (the caller exits 0). Throws tessera::Error for bad input, naming the option or file.
std::optional<TrainOptions> parse_train_options(int argc, char** argv, bool print);

// Options from config-file text (e.g. the merged configuration saved in a checkpoint); `origin`
// names the text in errors.
TrainOptions parse_config_text(const std::string& text, const std::string& origin);

}  // namespace tessera::train
