// tessera-bench: training throughput read against the limit of this machine (docs/performance.md).
//
// Without --overlap it prints, on one process (on the host, or with --device cuda on its GPU):
//   1. the sgemm rate (OpenBLAS, or cuBLAS) of square and transformer-shaped products: the limit;
//   2. for each --model-config (configs/*.cfg, switched to the synthetic reverse task so no data is
//      needed): tokens/s of a full training step (forward + backward + Adam), the model FLOPs of
//      the step (every matrix product, counted analytically) and the achieved share of the peak;
//   3. where the step's time goes: forward + backward, optimizer, and the step's matrix products
//      replayed alone with the same shapes, whose difference is the non-GEMM time.
// With --overlap, under `mpirun -np 2` (data-parallel, one thread per rank by default), it measures
// how much of the gradient all-reduce hides behind backward, for each --bucket-mb:
//   a = step with bucketed, overlapped all-reduce; b = the same per-rank batch computed alone;
//   c = the all-reduce of the whole gradient in the same buckets alone; hidden = (b + c - a) / c.
// With --memory it times nothing: it prints the memory per GPU (train/memory_estimate.h) of each
// --model-config (default base and big) at fp32 and bf16, with and without ZeRO-1, for the
// --tensor-parallel x --data-parallel layout (default two 8-GPU nodes' worth: 1 x 8 and 8 x 1) and
// --max-tokens padded tokens per GPU and micro-batch.
// With --decode it times decoding instead (src/eval/decode_benchmark.h): tessera-translate on
// --checkpoint and --input, for each --beam and --decode-threads in f32 and int8, each run in its own
// child process (sentences/s, target tokens/s, wall s, peak memory), next to CTranslate2 on the same
// model converted by tools/export_ctranslate2.py when Python's ctranslate2 is installed; it prints
// one markdown table (docs/performance.md, "Decoding").
#include <mpi.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/option_values.h"
#include "data/synthetic_task.h"
#include "eval/decode_benchmark.h"
#include "kernels/ops.h"
#include "kernels/threads.h"
#if defined(TESSERA_WITH_CUDA)
#include "kernels/cuda/runtime.h"
#endif
#include "parallel/compute_device.h"
#include "parallel/gradient_buckets.h"
#include "parallel/mpi_runtime.h"
#include "parallel/process_grid.h"
#include "train/memory_estimate.h"
#include "train/optimizer.h"
#include "train/torch_anchor.h"
#include "train/trainer.h"

namespace po = boost::program_options;
using namespace tessera;

namespace {

struct BenchOptions {
  std::vector<std::string> configs{"configs/small.cfg", "configs/base.cfg"};
  int threads = 0;  // 0: cores / ranks on the node
  int steps = 5, warmup_steps = 1;
  int64_t batch_sentences = 64, min_len = 20, max_len = 30;
  bool gemm = true, breakdown = true;
  bool overlap = false;
  std::string overlap_config = "configs/small.cfg";
  std::vector<double> bucket_mb{1, 4, 16};
  std::string device = "cpu";
  std::string precision = "fp32";  // of the timed steps and, on a GPU, of a second peak column
  bool device_info = false;
  // --memory
  bool memory = false;
  std::vector<int> tensor_parallel{1, 8}, data_parallel{8, 1};  // layouts, pairwise
  int64_t max_tokens = 4096;     // padded source + target tokens per GPU and micro-batch
  int64_t memory_max_len = 100;  // --max-len of --memory: the longest sentence of the worst batch
  // --decode
  bool decode = false;
  eval::DecodeBenchmarkOptions decoding;
};

kernels::Precision g_precision = kernels::Precision::fp32;

// Where the products and steps run (--device); timings wait for the GPU to finish.
Device g_device = Device::cpu;
void sync_device() {
#if defined(TESSERA_WITH_CUDA)
  if (g_device.is_cuda()) kernels::cuda::synchronize("tessera-bench");
#endif
}

bool parse(int argc, char** argv, BenchOptions& o) {
  po::options_description desc("tessera-bench options");
  eval::DecodeBenchmarkOptions& d = o.decoding;
  po::options_description decode("--decode: decoding speed and peak memory, tessera-translate next to CTranslate2");
  decode.add_options()
      ("decode", "time decoding (one child process per configuration) instead of training, and print the table")
      ("checkpoint", po::value(&d.checkpoint), "--decode: the checkpoint to decode with (step directory or save root)")
      ("input", bound(d.input), "--decode: source sentences, one per line")
      ("sentences", bound(d.sentences), "--decode: decode the first this many lines of --input")
      ("beam", po::value(&d.beams)->multitoken(), "--decode: beam sizes (default: 1 4)")
      ("decode-threads", po::value(&d.threads)->multitoken(), "--decode: thread counts (default: 1 2)")
      ("length-penalty", bound(d.length_penalty), "--decode: alpha of the length penalty, both systems")
      ("max-len-extra", bound(d.max_len_extra), "--decode: translations end by source length + this, both systems")
      ("no-int8", "--decode: skip the int8 rows (tessera-translate --quantize int8, CTranslate2 compute_type int8)")
      ("repeat", bound(d.repeat), "--decode: runs per configuration (best wall time, largest peak memory)")
      ("spm", po::value(&d.spm), "--decode: SentencePiece model (default: spm.model in the checkpoint's data-dir)")
      ("translate", po::value(&d.translate_program), "--decode: tessera-translate (default: the one next to tessera-bench)")
      ("ckpt", po::value(&d.ckpt_program), "--decode: tessera-ckpt, for the conversion (default: next to tessera-bench)")
      ("python", bound(d.python), "--decode: the Python that has ctranslate2")
      ("tools-dir", po::value(&d.tools_dir), "--decode: where export_ctranslate2.py and ct2_decode.py are "
                                             "(default: tools/, or next to the build directory)")
      ("ct2-model", po::value(&d.ct2_model), "--decode: a CTranslate2 model already converted from --checkpoint")
      ("no-anchor", "--decode: do not run CTranslate2")
      ("work-dir", po::value(&d.work_dir), "--decode: keep inputs, outputs and logs here (default: a temporary "
                                           "directory, removed)");
  desc.add_options()
      ("help,h", "print this help")
      ("model-config", po::value(&o.configs)->multitoken(), "configs whose models to time (default: small and base)")
      ("threads", bound(o.threads), "threads per rank (0: cores / ranks on the node)")
      ("device", bound(o.device), "cpu | cuda: where the products and training steps run")
      ("device-info", "select --device, print what it is and exit (1, with the reason, when it is unusable)")
      ("precision", bound(o.precision),
       "fp32 | bf16: precision of the timed training steps (and, with --device cuda, a bf16 column in the sgemm table)")
      ("steps", bound(o.steps), "timed training steps per measurement")
      ("warmup-steps", bound(o.warmup_steps), "untimed steps first")
      ("batch-sentences", bound(o.batch_sentences),
       "sentences per (per-rank) batch")
      ("min-len", bound(o.min_len), "shortest synthetic sentence")
      ("max-len", po::value<int64_t>(),
       "longest synthetic sentence (default 30); with --memory the longest sentence of the worst batch (default 100)")
      ("no-gemm", "skip the sgemm peak table")
      ("no-breakdown", "skip the time breakdown")
      ("overlap", "measure data-parallel overlap (run under mpirun -np 2)")
      ("overlap-config", bound(o.overlap_config), "model of --overlap")
      ("bucket-mb", po::value(&o.bucket_mb)->multitoken(), "bucket sizes of --overlap (default: 1 4 16)")
      ("memory", "print the memory per GPU of each --model-config (default base and big) and exit; times nothing")
      ("tensor-parallel", po::value(&o.tensor_parallel)->multitoken(),
       "--memory: tensor-parallel sizes, one table each, paired with --data-parallel (default: 1 8)")
      ("data-parallel", po::value(&o.data_parallel)->multitoken(), "--memory: data-parallel sizes (default: 8 1)")
      ("max-tokens", bound(o.max_tokens), "--memory: padded source + target tokens per GPU and micro-batch");
  desc.add(decode);
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return false;
  }
  o.gemm = !vm.count("no-gemm");
  o.breakdown = !vm.count("no-breakdown");
  o.overlap = vm.count("overlap") > 0;
  o.device_info = vm.count("device-info") > 0;
  o.memory = vm.count("memory") > 0;
  o.decode = vm.count("decode") > 0;
  if (o.decode) {
    d.batch_sentences = vm["batch-sentences"].defaulted() ? 32 : o.batch_sentences;
    d.anchor = !vm.count("no-anchor");
    d.int8 = !vm.count("no-int8");
    for (int i = 0; i < argc; ++i) {
      if (i > 0) d.command_line += ' ';
      d.command_line += argv[i];
    }
    return true;
  }
  if (vm.count("max-len")) (o.memory ? o.memory_max_len : o.max_len) = vm["max-len"].as<int64_t>();
  if (o.memory && !vm.count("model-config")) o.configs = {"configs/base.cfg", "configs/big.cfg"};
  TESSERA_CHECK(o.precision == "fp32" || o.precision == "bf16", "--precision: must be fp32 or bf16, got '",
                o.precision, "'");
  g_precision = o.precision == "bf16" ? kernels::Precision::bf16 : kernels::Precision::fp32;
  TESSERA_CHECK(o.tensor_parallel.size() == o.data_parallel.size(), "--tensor-parallel and --data-parallel: give "
                "as many sizes of one as of the other (they pair up into layouts)");
  for (size_t i = 0; i < o.tensor_parallel.size(); ++i)
    TESSERA_CHECK(o.tensor_parallel[i] >= 1 && o.data_parallel[i] >= 1, "--tensor-parallel / --data-parallel: "
                  "sizes must be at least 1");
  TESSERA_CHECK(o.max_tokens >= 1 && o.memory_max_len >= 1, "--max-tokens and --max-len must be at least 1");
  TESSERA_CHECK(o.steps >= 1 && o.warmup_steps >= 0, "--steps must be >= 1 and --warmup-steps >= 0");
  parallel::parse_device_kind(o.device);
  TESSERA_CHECK(!(o.overlap && o.device != "cpu"), "--overlap measures the MPI gradient buckets: use --device cpu");
  return true;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// CPU seconds of this process (all threads), to tell a busy machine from a slow program.
double cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// The 1-minute load average: other work on the machine competes for its cores.
std::string load_average() {
  std::string one;
  std::ifstream("/proc/loadavg") >> one;
  return one;
}

// Best of `reps` runs of f, in seconds.
template <typename F>
double best_time(int reps, F&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t = now_s();
    f();
    sync_device();
    best = std::min(best, now_s() - t);
  }
  return best;
}

Tensor random_tensor(const Shape& shape) {
  static std::mt19937 gen(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Tensor t = Tensor::empty(shape, DType::f32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(gen);
  return on_device(t, g_device);
}

// A config file switched to the synthetic reverse task, with the bench's batch and layout.
train::TrainOptions load_config(const std::string& file, const BenchOptions& b, int dp, double bucket_mb) {
  std::vector<std::string> args = {"tessera-bench", "--config", file, "--task", "reverse",
                                   "--min-len", std::to_string(b.min_len), "--max-len", std::to_string(b.max_len),
                                   "--batch-sentences", std::to_string(b.batch_sentences * dp),
                                   "--data-parallel", std::to_string(dp), "--tensor-parallel", "1",
                                   "--accumulate", "1", "--bucket-mb", std::to_string(bucket_mb),
                                   "--precision", b.precision};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return *train::parse_train_options(static_cast<int>(argv.size()), argv.data(), false);
}

data::SyntheticTask task_of(const train::TrainOptions& o) {
  data::SyntheticTask task;
  task.kind = data::SyntheticTask::Kind::reverse;
  task.vocab_size = o.model.vocab_size;
  task.min_len = o.min_len;
  task.max_len = o.max_len;
  task.seed = o.seed;
  return task;
}

std::string config_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return name.substr(0, name.find('.'));
}

// ---- the matrix products of one training step ---------------------------------------------

// c[batch] = op(a) op(b) with c [m, n] and inner dimension k; `group` names the part of the model.
struct Gemm {
  const char* group;
  int64_t batch, m, n, k;
  bool ta, tb;
  double flops() const { return 2.0 * batch * m * n * k; }
};

// y = x W for x [rows, in]; backward dW += x^T dy and dx = dy W^T.
void add_linear(std::vector<Gemm>& g, const char* group, int64_t rows, int64_t in, int64_t out) {
  g.push_back({group, 1, rows, out, in, false, false});
  g.push_back({group, 1, in, out, rows, true, false});
  g.push_back({group, 1, rows, in, out, false, true});
}

// S = Q K^T and C = P V per (sentence, head); backward dP = dC V^T, dV = P^T dC, dQ = dS K, dK = dS^T Q.
void add_attention(std::vector<Gemm>& g, int64_t bh, int64_t sq, int64_t sk, int64_t dk) {
  const char* group = "attention QK^T, PV";
  g.push_back({group, bh, sq, sk, dk, false, true});
  g.push_back({group, bh, sq, dk, sk, false, false});
  g.push_back({group, bh, sq, sk, dk, false, true});
  g.push_back({group, bh, sk, dk, sq, true, false});
  g.push_back({group, bh, sq, dk, sk, false, false});
  g.push_back({group, bh, sk, dk, sq, true, false});
}

// Every product of forward + backward on a padded batch of b sentences, s source and t target
// positions (tensor-parallel size 1), in the order the step runs them.
std::vector<Gemm> step_gemms(const model::ModelConfig& c, int64_t b, int64_t s, int64_t t) {
  const int64_t d = c.d_model, ns = b * s, nt = b * t, bh = b * c.heads, dk = c.d_head();
  std::vector<Gemm> g;
  for (int64_t l = 0; l < c.encoder_layers; ++l) {
    for (int i = 0; i < 4; ++i) add_linear(g, "attention projections", ns, d, d);
    add_attention(g, bh, s, s, dk);
    add_linear(g, "feed-forward", ns, d, c.d_ff);
    add_linear(g, "feed-forward", ns, c.d_ff, d);
  }
  for (int64_t l = 0; l < c.decoder_layers; ++l) {
    for (int i = 0; i < 4; ++i) add_linear(g, "attention projections", nt, d, d);  // self
    add_attention(g, bh, t, t, dk);
    for (int i = 0; i < 2; ++i) add_linear(g, "attention projections", nt, d, d);  // cross Q, out
    for (int i = 0; i < 2; ++i) add_linear(g, "attention projections", ns, d, d);  // cross K, V
    add_attention(g, bh, t, s, dk);
    add_linear(g, "feed-forward", nt, d, c.d_ff);
    add_linear(g, "feed-forward", nt, c.d_ff, d);
  }
  // Logits = h E^T on the tied embedding; dE += dlogits^T h, dh = dlogits E.
  const char* out = "output projection";
  g.push_back({out, 1, nt, c.vocab_size, d, false, true});
  g.push_back({out, 1, c.vocab_size, d, nt, true, false});
  g.push_back({out, 1, nt, d, c.vocab_size, false, false});
  return g;
}

double total_flops(const std::vector<Gemm>& gemms) {
  double f = 0;
  for (const auto& g : gemms) f += g.flops();
  return f;
}

// Runs the products with fresh operands per (role, shape); returns seconds per group, best of reps.
std::map<std::string, double> replay(const std::vector<Gemm>& gemms, int reps) {
  std::map<std::tuple<int, int64_t, int64_t, int64_t>, Tensor> buffers;
  auto buffer = [&](int role, int64_t batch, int64_t rows, int64_t cols) -> Tensor& {
    Tensor& t = buffers[{role, batch, rows, cols}];
    if (!t.defined()) t = batch == 1 ? random_tensor({rows, cols}) : random_tensor({batch, rows, cols});
    return t;
  };
  std::map<std::string, double> seconds;
  for (int r = 0; r < reps; ++r) {
    std::map<std::string, double> run;
    for (const auto& g : gemms) {
      Tensor& a = g.ta ? buffer(0, g.batch, g.k, g.m) : buffer(0, g.batch, g.m, g.k);
      Tensor& b = g.tb ? buffer(1, g.batch, g.n, g.k) : buffer(1, g.batch, g.k, g.n);
      Tensor& c = buffer(2, g.batch, g.m, g.n);
      const double t = now_s();
      if (g.batch == 1) kernels::matmul(a, g.ta, b, g.tb, c, 1.0, 0.0, g_precision);
      else kernels::batched_matmul(a, g.ta, b, g.tb, c, 1.0, 0.0, g_precision);
      sync_device();
      run[g.group] += now_s() - t;
    }
    double total = 0, best_total = 0;
    for (auto& [k, v] : run) total += v;
    for (auto& [k, v] : seconds) best_total += v;
    if (r == 0 || total < best_total) seconds = run;
  }
  return seconds;
}

// ---- 1. sgemm peak --------------------------------------------------------------------------

// kernels::matmul at `precision`: with bf16 the rounding of both operands is part of the time.
double sgemm_gflops(int64_t m, int64_t n, int64_t k, bool tb, kernels::Precision precision = kernels::Precision::fp32) {
  Tensor a = random_tensor({m, k}), b = tb ? random_tensor({n, k}) : random_tensor({k, n}), c = random_tensor({m, n});
  kernels::matmul(a, false, b, tb, c, 1.0, 0.0, precision);
  const double flops = 2.0 * m * n * k;
  const int reps = std::clamp(static_cast<int>(3e10 / flops), 3, 50);
  return flops / best_time(reps, [&] { kernels::matmul(a, false, b, tb, c, 1.0, 0.0, precision); }) / 1e9;
}

// Prints the table for each thread count (on a GPU with --precision bf16, also a bf16 column);
// returns the peak of the timed steps' precision at `threads`.
double gemm_peak_table(int threads) {
  struct Shape3 {
    const char* what;
    int64_t m, n, k;
    bool tb;
  };
  const std::vector<Shape3> shapes = {
      {"square", 512, 512, 512, false},          {"square", 1024, 1024, 1024, false},
      {"square", 2048, 2048, 2048, false},       {"tokens x d x d (d=256)", 1664, 256, 256, false},
      {"tokens x d_ff x d (d=256)", 1664, 1024, 256, false}, {"tokens x d x d (d=512)", 1664, 512, 512, false},
      {"tokens x d_ff x d (d=512)", 1664, 2048, 512, false}, {"tokens x d x d_ff (d=512)", 1664, 512, 2048, false},
      {"tokens x vocab x d (logits)", 1664, 8000, 512, true}};
  std::vector<int> counts = {1};
  if (threads > 1 && g_device.is_cpu()) counts.push_back(threads);
  const bool bf16 = g_precision == kernels::Precision::bf16, bf16_column = bf16 && g_device.is_cuda();
  std::printf("\n## 1. %s sgemm (C = A B, row-major f32, best of several runs), GFLOP/s\n\n",
              g_device.is_cpu() ? "OpenBLAS" : "cuBLAS");
  if (bf16_column)
    std::printf("bf16: kernels::matmul(..., Precision::bf16), f32 operands converted to bf16 (the conversion is "
                "timed) and products summed in f32 by cuBLAS.\n\n");
  else if (bf16)
    std::printf("bf16 on the CPU is emulated: kernels::matmul rounds copies of both operands to bf16 values and runs "
                "the f32 BLAS, so there is no bf16 peak to show; the f32 peak is the limit of the bf16 steps too.\n\n");
  std::printf("| %-28s | %6s | %6s | %6s |", "shape", "M", "N", "K");
  for (int t : counts) std::printf(" %2d thread%s |", t, t == 1 ? " " : "s");
  if (bf16_column) std::printf("    bf16    |");
  std::printf("\n|%s|--------|--------|--------|", std::string(30, '-').c_str());
  for (size_t i = 0; i < counts.size() + (bf16_column ? 1 : 0); ++i) std::printf("------------|");
  std::printf("\n");
  std::vector<double> peak(counts.size(), 0);
  double bf16_peak = 0;
  for (const auto& s : shapes) {
    std::printf("| %-28s | %6ld | %6ld | %6ld |", s.what, static_cast<long>(s.m), static_cast<long>(s.n),
                static_cast<long>(s.k));
    for (size_t i = 0; i < counts.size(); ++i) {
      kernels::set_num_threads(counts[i]);
      const double g = sgemm_gflops(s.m, s.n, s.k, s.tb);
      peak[i] = std::max(peak[i], g);
      std::printf(" %10.1f |", g);
    }
    if (bf16_column) {
      const double g = sgemm_gflops(s.m, s.n, s.k, s.tb, kernels::Precision::bf16);
      bf16_peak = std::max(bf16_peak, g);
      std::printf(" %10.1f |", g);
    }
    std::printf("\n");
  }
  kernels::set_num_threads(threads);
  std::printf("\npeak (best shape): ");
  for (size_t i = 0; i < counts.size(); ++i)
    std::printf("%s%.1f GFLOP/s at %d thread(s)", i ? ", " : "", peak[i], counts[i]);
  if (bf16_column) std::printf("; bf16 peak %.1f GFLOP/s", bf16_peak);
  std::printf("\n");
  return bf16_column ? bf16_peak : peak.back();
}

// ---- 2. and 3. training step ----------------------------------------------------------------

std::vector<model::TokenPair> batch_for_step(const data::SyntheticTask& task, int64_t step, int64_t sentences) {
  return task.pairs(data::kTrainSplit, step * sentences, sentences);
}

struct StepTimes {
  double mean_s = 0, best_s = 1e30;
  double tokens = 0;       // source + target tokens per step (mean)
  double cpu_share = 0;    // CPU seconds / (wall seconds x threads): below 1, the cores were busy elsewhere
};

// o.steps train_step calls after the warm-up steps.
StepTimes time_train_steps(train::Trainer& trainer, const data::SyntheticTask& task, int64_t sentences,
                           const BenchOptions& b) {
  StepTimes r;
  double cpu = 0;
  for (int step = 0; step < b.warmup_steps + b.steps; ++step) {
    const auto batch = batch_for_step(task, step, sentences);
    const double t0 = now_s(), c0 = cpu_s();
    const train::StepStats s = trainer.train_step(batch);
    if (step >= b.warmup_steps) {
      const double t = now_s() - t0;
      r.mean_s += t;
      r.best_s = std::min(r.best_s, t);
      cpu += cpu_s() - c0;
      r.tokens += static_cast<double>(s.source_tokens + s.target_tokens);
    }
  }
  r.cpu_share = cpu / r.mean_s / kernels::num_threads();
  r.mean_s /= b.steps;
  r.tokens /= b.steps;
  return r;
}

void step_tables(const BenchOptions& b, int threads, double peak) {
  std::printf("\n## 2. Training step (forward + backward + Adam), synthetic reverse task, %d sentences of %ld-%ld "
              "tokens, --precision %s, %d thread(s), mean of %d steps after %d warm-up\n\n",
              static_cast<int>(b.batch_sentences), static_cast<long>(b.min_len), static_cast<long>(b.max_len),
              b.precision.c_str(), threads, b.steps, b.warmup_steps);
  std::printf("Rates use the best step (the least disturbed by other work on the machine); cpu share = CPU "
              "seconds / (wall seconds x threads) over the timed steps.\n\n");
  std::printf("| config | params | batch B x S / T | tokens (src+tgt) | step mean / best (s) | tokens/s | GFLOP/step "
              "| GFLOP/s | %% of sgemm peak | cpu share | PyTorch eager tokens/s | Tessera / PyTorch |\n");
  std::printf("|--------|--------|-----------------|------------------|----------------------|----------|-----------"
              "-|---------|-----------------|-----------|------------------------|-------------------|\n");
  std::vector<std::string> anchor_notes;  // printed under the table
  struct Breakdown {
    std::string name;
    double step = 0, fwd_bwd = 0, zero = 0, norm = 0, adam = 0, batch = 0, flops = 0;
    std::map<std::string, double> gemm;
  };
  std::vector<Breakdown> breakdowns;
  for (const auto& file : b.configs) {
    const train::TrainOptions o = load_config(file, b, 1, 4);
    auto grid = parallel::ProcessGrid::single();
    train::Trainer trainer(o, grid, DType::f32, g_device);
    const data::SyntheticTask task = task_of(o);
    const StepTimes times = time_train_steps(trainer, task, o.batch_sentences, b);
    const double step_s = times.best_s, tokens = times.tokens;
    const auto pairs = batch_for_step(task, 0, o.batch_sentences);
    const auto& cfg = o.model;
    const model::Batch batch =
        model::Batch::from_pairs(pairs, 0, pairs.size(), 0, cfg.pad_id, cfg.bos_id, cfg.eos_id);
    const int64_t bs = batch.size(), s = batch.src.dim(1), t = batch.tgt_in.dim(1);
    const auto gemms = step_gemms(cfg, bs, s, t);
    const double flops = total_flops(gemms);
    std::printf("| %-6s | %5.1fM | %3ld x %2ld / %2ld    | %16.0f | %9.3f / %8.3f | %8.0f | %10.1f | %7.1f | %14.1f%% "
                "| %8.0f%% |",
                config_name(file).c_str(), cfg.parameter_count() / 1e6, static_cast<long>(bs), static_cast<long>(s),
                static_cast<long>(t), tokens, times.mean_s, step_s, tokens / step_s, flops / 1e9, flops / step_s / 1e9,
                100.0 * flops / step_s / 1e9 / peak, 100.0 * times.cpu_share);
    // The anchor: the same model and sentence lengths in PyTorch eager on the CPU, in this run.
    const train::TorchAnchor anchor = g_device.is_cpu()
        ? train::time_torch_step(cfg, pairs, threads, b.steps, b.warmup_steps)
        : train::TorchAnchor{.why_not = "the anchor runs on the CPU only"};
    if (anchor.ran) {
      std::printf(" %22.0f | %16.2fx |\n", anchor.tokens_per_s, tokens / step_s / anchor.tokens_per_s);
      anchor_notes.push_back(config_name(file) + ": PyTorch " + anchor.torch_version + " eager step mean / best " +
                             std::to_string(anchor.mean_s) + " / " + std::to_string(anchor.best_s) + " s");
    } else {
      std::printf(" %22s | %17s |\n", "skipped", "-");
      anchor_notes.push_back(config_name(file) + ": PyTorch anchor skipped: " + anchor.why_not);
    }
    std::fflush(stdout);
    if (!b.breakdown) continue;

    Breakdown bd;
    bd.name = config_name(file);
    bd.step = step_s;
    bd.flops = flops;
    const int reps = b.steps;
    auto& store = trainer.store();
    model::StepContext ctx;
    ctx.seed = o.seed;
    ctx.step = 1;
    const double scale = 1.0 / static_cast<double>(batch.target_tokens());
    trainer.model().forward_backward(batch, ctx, scale, false);
    bd.fwd_bwd = best_time(reps, [&] { trainer.model().forward_backward(batch, ctx, scale, false); });
    bd.zero = best_time(reps, [&] { store.zero_grads(); });
    bd.norm = best_time(reps, [&] { train::global_grad_norm(store, grid.tp()); });
    bd.adam = best_time(reps, [&] { trainer.optimizer().update(store, 1e-7, 1.0); });
    bd.batch = best_time(reps, [&] {
      model::Batch::from_pairs(pairs, 0, pairs.size(), 0, cfg.pad_id, cfg.bos_id, cfg.eos_id);
    });
    bd.gemm = replay(gemms, reps);
    breakdowns.push_back(std::move(bd));
  }
  std::printf("\n");
  for (const std::string& note : anchor_notes) std::printf("%s\n", note.c_str());
  if (!b.breakdown) return;

  std::printf("\n## 3. Where the step's time goes (ms, each part and the step best of --steps runs, so the parts "
              "may not add up to the step exactly)\n\n");
  std::printf("| part |");
  for (const auto& bd : breakdowns) std::printf(" %s ms | %s %% of step |", bd.name.c_str(), bd.name.c_str());
  std::printf("\n|------|");
  for (size_t i = 0; i < breakdowns.size(); ++i) std::printf("------|------|");
  std::printf("\n");
  auto row = [&](const std::string& label, auto value) {
    std::printf("| %s |", label.c_str());
    for (const auto& bd : breakdowns) std::printf(" %.1f | %.1f%% |", 1e3 * value(bd), 100.0 * value(bd) / bd.step);
    std::printf("\n");
  };
  auto gemm_sum = [](const Breakdown& bd) {
    double s = 0;
    for (auto& [k, v] : bd.gemm) s += v;
    return s;
  };
  row("full train_step (best)", [](const Breakdown& bd) { return bd.step; });
  row("forward + backward", [](const Breakdown& bd) { return bd.fwd_bwd; });
  for (const auto& entry : breakdowns.front().gemm)
    row("  of which GEMM replay: " + entry.first, [&](const Breakdown& bd) { return bd.gemm.at(entry.first); });
  row("  of which GEMM replay: total", gemm_sum);
  row("  of which not GEMM (fwd+bwd - GEMM replay)", [&](const Breakdown& bd) { return bd.fwd_bwd - gemm_sum(bd); });
  row("zero gradients", [](const Breakdown& bd) { return bd.zero; });
  row("global gradient norm", [](const Breakdown& bd) { return bd.norm; });
  row("Adam update", [](const Breakdown& bd) { return bd.adam; });
  row("batch padding (Batch::from_pairs)", [](const Breakdown& bd) { return bd.batch; });
  std::printf("\nGEMM replay alone: ");
  for (const auto& bd : breakdowns)
    std::printf("%s %.1f GFLOP/s  ", bd.name.c_str(), bd.flops / gemm_sum(bd) / 1e9);
  std::printf("(the step's products with the same shapes, without anything between them)\n");
}

// ---- 4. data-parallel overlap -----------------------------------------------------------------

double max_over_ranks(parallel::Communicator& world, double x) {
  world.all_reduce(&x, 1, DType::f64, parallel::ReduceOp::max);
  return x;
}

// Best step time over ranks-synchronised steps: every rank starts each step together, and the
// slowest rank's time counts; the best of o.steps after the warm-up is the least disturbed.
template <typename F>
double best_synchronised(parallel::ProcessGrid& grid, const BenchOptions& b, F&& step) {
  double best = 1e30;
  for (int i = 0; i < b.warmup_steps + b.steps; ++i) {
    grid.world().barrier();
    const double t0 = now_s();
    step(i);
    const double t = max_over_ranks(grid.world(), now_s() - t0);
    if (i >= b.warmup_steps) best = std::min(best, t);
  }
  return best;
}

void overlap_table(const BenchOptions& b, int threads) {
  int world_size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  TESSERA_CHECK(world_size >= 2, "--overlap needs at least 2 ranks: run it under mpirun -np 2");
  parallel::ProcessGrid grid(1, world_size, 600);
  const bool root = grid.world_rank() == 0;
  const train::TrainOptions single_options = load_config(b.overlap_config, b, 1, 4);
  if (root)
    std::printf("\n## 4. Data-parallel overlap: %s (gradient %.1f MiB), dp=%d, tp=1, %d thread(s) per rank, "
                "%d sentences of %ld-%ld tokens per rank, best of %d steps (slowest rank)\n\n"
                "| bucket MiB | buckets | a: step, overlapped (s) | b: compute alone (s) | c: all-reduce alone (s) "
                "| hidden (b+c-a)/c |\n|-----|-----|-----|-----|-----|-----|\n",
                config_name(b.overlap_config).c_str(), single_options.model.parameter_count() * 4.0 / (1 << 20),
                world_size, threads, static_cast<int>(b.batch_sentences), static_cast<long>(b.min_len),
                static_cast<long>(b.max_len), b.steps);

  // b: every rank trains its own slice of the same global batches on a single-process grid.
  auto single = parallel::ProcessGrid::single();
  train::Trainer alone(single_options, single);
  for (const double mb : b.bucket_mb) {
    const train::TrainOptions o = load_config(b.overlap_config, b, world_size, mb);
    train::Trainer trainer(o, grid, DType::f32, g_device);
    const data::SyntheticTask task = task_of(o);
    auto global_batch = [&](int i) { return batch_for_step(task, i, o.batch_sentences); };
    const double compute_s = best_synchronised(grid, b, [&](int i) {
      const auto global = global_batch(i);
      const auto [begin, end] = train::slice_of(global.size(), world_size, grid.dp_rank());
      alone.train_step(std::vector<model::TokenPair>(global.begin() + begin, global.begin() + end));
    });
    const double step_s = best_synchronised(grid, b, [&](int i) { trainer.train_step(global_batch(i)); });
    // c: the same buckets, all launched at once with nothing to overlap.
    parallel::GradientBuckets buckets(trainer.store(), grid.dp(), mb);
    const double comm_s = best_synchronised(grid, b, [&](int) { buckets.finish(); });
    const double hidden = std::clamp((compute_s + comm_s - step_s) / comm_s, 0.0, 1.0);
    if (root)
      std::printf("| %g | %zu | %.3f | %.3f | %.4f | %.0f%% |\n", mb, buckets.buckets().size(), step_s, compute_s,
                  comm_s, 100.0 * hidden);
    std::fflush(stdout);
  }
}

// ---- 5. memory per GPU (--memory) ------------------------------------------------------------

// The options of a corpus run of `file`'s model on a tp x dp layout with --max-tokens padded
// tokens per GPU and micro-batch; throws when tp does not divide the heads or the FFN.
train::TrainOptions memory_options(const std::string& file, const BenchOptions& b, int tp, int dp,
                                   const std::string& precision, bool zero) {
  train::TrainOptions o = load_config(file, b, 1, 4);
  o.model.validate(tp);
  o.task = "corpus";  // a --max-tokens budget of padded tokens, cut into dp slices
  o.max_tokens = b.max_tokens * dp;
  o.max_len = b.memory_max_len;
  o.accumulate = 1;
  o.tensor_parallel = tp;
  o.data_parallel = dp;
  o.precision = precision;
  o.shard_optimizer = zero;
  o.device = "cuda";  // the table is per GPU: bf16 operands of 2 B
  return o;
}

// One table per layout: each config at fp32 and bf16, without and with ZeRO-1, from
// train::estimate_rank_memory on the options a corpus run of that layout would have.
void memory_tables(const BenchOptions& b) {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  for (size_t i = 0; i < b.tensor_parallel.size(); ++i)  // every layout valid before anything is printed
    for (const auto& file : b.configs) memory_options(file, b, b.tensor_parallel[i], b.data_parallel[i], "fp32", false);
  std::printf("# tessera-bench --memory: memory per GPU of a training step, GiB (train/memory_estimate.h)\n\n");
  std::printf("Parameters and gradients: fp32, this GPU's tensor-parallel shard. Adam moments: fp32 m and v, 1/dp of "
              "them with ZeRO-1 (--shard-optimizer). bf16 copies: the bf16 operands of the largest matrix product, "
              "converted for cuBLAS while it runs (--precision bf16). Activations: what forward keeps for backward "
              "for one micro-batch, stored in fp32 at both precisions, plus the logits (their gradient in place) "
              "and the output gradient. A lower bound: the CUDA caching allocator's slack, small tensors, "
              "temporaries inside one sublayer, NCCL buffers and the CUDA context are not counted.\n");
  for (size_t i = 0; i < b.tensor_parallel.size(); ++i) {
    const int tp = b.tensor_parallel[i], dp = b.data_parallel[i];
    auto options_for = [&](const std::string& file, const std::string& precision, bool zero) {
      return memory_options(file, b, tp, dp, precision, zero);
    };
    const train::MicroBatchShape shape = train::largest_micro_batch(options_for(b.configs.front(), "fp32", false));
    std::printf("\n## tp %d x dp %d (%d GPUs): %ld padded tokens per GPU and micro-batch, the worst batch: %.1f "
                "sentences of %.0f source + %.0f target positions\n\n",
                tp, dp, tp * dp, static_cast<long>(b.max_tokens), shape.sentences, shape.source_len, shape.target_len);
    std::printf("| config | precision | ZeRO-1 | params | grads | Adam moments | bf16 copies | activations | total |\n");
    std::printf("|--------|-----------|--------|-------:|------:|-------------:|------------:|------------:|------:|\n");
    for (const auto& file : b.configs)
      for (const char* precision : {"fp32", "bf16"})
        for (const bool zero : {false, true}) {
          const train::MemoryEstimate e = train::estimate_rank_memory(options_for(file, precision, zero));
          std::printf("| %-6s | %-9s | %-6s | %6.2f | %5.2f | %12.2f | %11.2f | %11.2f | %5.2f |\n",
                      config_name(file).c_str(), precision, zero ? "yes" : "no", e.parameters / kGiB,
                      e.gradients / kGiB, e.moments / kGiB, e.bf16_operands / kGiB, e.activations / kGiB,
                      e.total() / kGiB);
        }
    std::printf("\n");
    for (size_t c = 0; c < b.configs.size(); ++c) {
      const train::TrainOptions o = options_for(b.configs[c], "fp32", false);
      std::printf("%s%s: %.1fM parameters, %.1fM on each GPU", c ? "; " : "", config_name(b.configs[c]).c_str(),
                  o.model.parameter_count(tp) / 1e6, train::rank_parameter_count(o.model, tp) / 1e6);
    }
    std::printf(".\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    BenchOptions options;
    if (!parse(argc, argv, options)) return 0;
    if (options.decode) return eval::run_decode_benchmark(options.decoding);
    if (options.memory) {
      memory_tables(options);
      return 0;
    }
    if (options.overlap) {
      return parallel::run_with_mpi("tessera-bench", &argc, &argv, [&] {
        const int threads = options.threads > 0 ? options.threads : 1;
        kernels::set_num_threads(threads);
        overlap_table(options, threads);
        return 0;
      });
    }
    const int threads = options.threads > 0 ? options.threads : kernels::default_threads_per_rank();
    kernels::set_num_threads(threads);
    g_device = parallel::select_compute_device(options.device);
    if (options.device_info) {
      std::printf("device %s\n", device_name(g_device).c_str());
      return 0;
    }
    std::printf("# tessera-bench: device %s, %d thread(s), load average %s at start\n", device_name(g_device).c_str(),
                threads, load_average().c_str());
    // Without the sgemm table, the peak is the best square product at this thread count.
    const double peak = options.gemm ? gemm_peak_table(threads)
                                     : sgemm_gflops(2048, 2048, 2048, false,
                                                    g_device.is_cuda() ? g_precision : kernels::Precision::fp32);
    step_tables(options, threads, peak);
    std::printf("\nload average %s at the end\n", load_average().c_str());
  } catch (const std::exception& e) {
    write_stderr_line(std::string("tessera-bench: error: ") + e.what());
    return 1;
  }
  return 0;
}
