// tessera-translate: translates sentences (one per line, from a file or stdin) with a trained
// checkpoint, writes detokenised translations, and optionally scores them with BLEU against a
// reference file. With --score it translates nothing: it prints the model's cross-entropy and
// log-probability of the reference given the input, pair by line (src/eval/score.h). Runs on one
// process or under mpirun with any (tp, dp) layout, whatever layout wrote the checkpoint. With
// --quantize int8 every linear layer and the output projection multiply in int8 on the CPU
// (parallel/int8_quantization.h).
#include <boost/program_options.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/manifest.h"
#include "core/log.h"
#include "core/option_values.h"
#include "data/sentencepiece_model.h"
#include "eval/bleu.h"
#include "eval/score.h"
#include "eval/translate.h"
#include "kernels/ops.h"
#include "kernels/threads.h"
#include "parallel/compute_device.h"
#include "parallel/int8_quantization.h"
#include "parallel/mpi_runtime.h"
#include "parallel/process_grid.h"
#include "train/options.h"

namespace po = boost::program_options;
using namespace tessera;

namespace {

struct Options {
  std::string checkpoint, spm, input, output, reference;
  int64_t beam = 4;
  double length_penalty = 0.6;
  int64_t max_len_extra = 50;
  int64_t batch_sentences = 32;
  bool score = false;
  int64_t max_tokens = 4096;
  int tensor_parallel = 1, data_parallel = 1, threads = 0;
  double collective_timeout = 300;
  std::string device = "cpu";
  std::string quantize = "none";
};

std::optional<Options> parse(int argc, char** argv, bool print) {
  Options o;
  po::options_description desc("tessera-translate: translate with a trained checkpoint");
  desc.add_options()
      ("help,h", "print this help and exit")
      ("checkpoint", po::value(&o.checkpoint)->required(), "checkpoint directory (a step directory or a save directory)")
      ("spm", po::value(&o.spm), "SentencePiece model (default: spm.model in the training run's --data-dir)")
      ("input,i", po::value(&o.input), "source sentences, one per line (default: stdin)")
      ("output,o", po::value(&o.output), "translations, or the --score line (default: stdout)")
      ("reference,r", po::value(&o.reference), "reference translations: print corpus BLEU (sacreBLEU 13a) to stderr; with --score, the target sentences scored")
      ("score", bound(o.score), "translate nothing: print the label-smoothed and plain cross-entropy per target token and "
                                "the log-probability of --reference given --input (line by line) in one line")
      ("max-tokens", bound(o.max_tokens), "--score: padded source + target tokens per batch")
      ("beam", bound(o.beam), "beam size (1: greedy)")
      ("length-penalty", bound(o.length_penalty), "beam score = logprob / ((5 + len) / 6)^alpha")
      ("max-len-extra", bound(o.max_len_extra), "translations end by source length + this")
      ("batch-sentences", bound(o.batch_sentences), "sentences decoded (or scored) together")
      ("tensor-parallel", bound(o.tensor_parallel), "ranks per tensor-parallel group")
      ("data-parallel", bound(o.data_parallel), "replicas that split the sentences")
      ("threads", bound(o.threads), "threads per rank (0: cores / ranks on the node)")
      ("device", bound(o.device), "cpu | cuda (one GPU per rank, by local rank on its node)")
      ("quantize", bound(o.quantize), "none | int8: int8 weights (one scale per output channel) and activations (one "
                                      "scale and zero point per row), int32 sums, for every linear layer and the "
                                      "output projection; --device cpu only")
      ("collective-timeout", bound(o.collective_timeout), "seconds a collective may wait");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      if (print) std::cout << desc << "\n";
      return std::nullopt;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    TESSERA_FAIL(e.what());
  }
  TESSERA_CHECK(o.beam >= 1, "--beam: must be at least 1, got ", o.beam);
  TESSERA_CHECK(o.batch_sentences >= 1, "--batch-sentences: must be at least 1, got ", o.batch_sentences);
  TESSERA_CHECK(o.max_tokens >= 1, "--max-tokens: must be at least 1, got ", o.max_tokens);
  TESSERA_CHECK(!o.score || !o.reference.empty(), "--score: needs --reference, the target sentences to score");
  parallel::parse_device_kind(o.device);
  TESSERA_CHECK(o.quantize == "none" || o.quantize == "int8", "--quantize: expected none or int8, got '", o.quantize,
                "'");
  TESSERA_CHECK(o.quantize == "none" || o.device == "cpu", "--quantize int8: int8 products run on the CPU only; use "
                "--device cpu (got --device ", o.device, ")");
  return o;
}

std::vector<std::string> read_lines(std::istream& in) {
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> read_lines(const std::string& file) {
  std::ifstream in(file);
  TESSERA_CHECK(in.good(), "cannot open '", file, "'");
  return read_lines(in);
}

// Copies rank 0's string to every rank (its length first, then its bytes packed in i32 words).
void broadcast_string(parallel::Communicator& comm, std::string& text) {
  int32_t size = static_cast<int32_t>(text.size());
  comm.broadcast(&size, 1, DType::i32, 0);
  std::vector<int32_t> words((size + 3) / 4, 0);
  if (comm.rank() == 0 && size > 0) std::memcpy(words.data(), text.data(), size);
  if (!words.empty()) comm.broadcast(words.data(), words.size(), DType::i32, 0);
  text.assign(reinterpret_cast<const char*>(words.data()), size);
}

// The lines of `file` (stdin when empty) on every rank: rank 0 reads them (stdin is forwarded to
// rank 0 only) and broadcasts them.
std::vector<std::string> read_lines_on_every_rank(parallel::Communicator& world, const std::string& file,
                                                  const char* option) {
  std::string text;
  if (world.rank() == 0) {
    std::ostringstream all;
    if (file.empty()) all << std::cin.rdbuf();
    else {
      std::ifstream in(file);
      TESSERA_CHECK(in.good(), option, ": cannot open '", file, "'");
      all << in.rdbuf();
    }
    text = all.str();
  }
  broadcast_string(world, text);
  std::istringstream in(text);
  return read_lines(in);
}

// --output (opened into `file`), or stdout.
std::ostream& open_output(const Options& o, std::ofstream& file) {
  if (o.output.empty()) return std::cout;
  file.open(o.output);
  TESSERA_CHECK(file.good(), "--output: cannot write '", o.output, "'");
  return file;
}

// --score: one line of numbers on stdout (or --output), one for the reader on stderr.
void score_files(const Options& o, model::Transformer& net, const parallel::ProcessGrid& grid,
                 const data::SentencePieceModel& spm, const std::vector<std::string>& sources) {
  const std::string input_name = o.input.empty() ? "stdin" : "'" + o.input + "'";
  const auto targets = read_lines_on_every_rank(grid.world(), o.reference, "--reference");
  TESSERA_CHECK(sources.size() == targets.size(), "--score: --input ", input_name, " has ", sources.size(),
                " lines but --reference '", o.reference, "' has ", targets.size(), " (pairs are taken line by line)");
  TESSERA_CHECK(!sources.empty(), "--score: --input ", input_name, " and --reference '", o.reference, "' are empty");
  const eval::Score score = eval::score_text(net, grid, spm, sources, targets, {o.max_tokens, o.batch_sentences});
  if (grid.world_rank() != 0) return;
  write_stderr_line(eval::score_summary(score));
  std::ofstream file;
  open_output(o, file) << eval::score_line(score) << std::endl;
}

int run(const Options& o, bool alone) {
  const Device device = parallel::select_compute_device(o.device);
  const parallel::ProcessGrid grid = alone ? parallel::ProcessGrid::single()
                                           : parallel::ProcessGrid(o.tensor_parallel, o.data_parallel,
                                                                   o.collective_timeout, device);
  log_set_rank(grid.world_rank());
  kernels::set_num_threads(o.threads > 0 ? o.threads : kernels::default_threads_per_rank());

  const auto dir = checkpoint::resolve_checkpoint(o.checkpoint);
  const auto manifest = checkpoint::read_manifest(dir);
  train::TrainOptions trained = train::parse_config_text(manifest.config, (dir / "manifest.json").string());
  trained.model.validate(o.tensor_parallel);
  const std::filesystem::path spm_file = !o.spm.empty() ? std::filesystem::path(o.spm)
                                                        : std::filesystem::path(trained.data_dir) / "spm.model";
  const data::SentencePieceModel spm(spm_file);
  TESSERA_CHECK(spm.vocab_size() == trained.model.vocab_size, "--spm: ", spm_file.string(), " has ", spm.vocab_size(),
                " pieces but the checkpoint's model has a vocabulary of ", trained.model.vocab_size);

  model::ParameterStore store;
  model::Transformer net(trained.model, store, grid.tp());
  store.finalize_for_inference(DType::f32, device);
  const auto info = checkpoint::load_checkpoint(dir, store, nullptr, grid.world());
  TESSERA_LOG_INFO("loaded ", dir.string(), " (step ", info.step, ")");
  if (o.quantize == "int8") {
    const parallel::Int8Summary q = parallel::quantize_int8(store);
    TESSERA_LOG_INFO("quantised ", q.layers, " weights (", q.weights, " values on this rank) to int8: ",
                     q.int8_bytes / 1024, " KiB");
  }

  const std::vector<std::string> sources = read_lines_on_every_rank(grid.world(), o.input, "--input");
  if (o.score) {
    score_files(o, net, grid, spm, sources);
    return 0;
  }

  eval::DecodeOptions decode;
  decode.beam = o.beam;
  decode.length_penalty = o.length_penalty;
  decode.max_len_extra = o.max_len_extra;
  decode.batch_sentences = o.batch_sentences;
  const auto hyps = eval::translate_text(net, grid, spm, sources, decode);

  if (grid.world_rank() == 0) {
    std::ofstream file;
    std::ostream& out = open_output(o, file);
    for (const auto& h : hyps) out << h << "\n";
    if (!o.reference.empty()) {
      const auto refs = read_lines(o.reference);
      TESSERA_CHECK(refs.size() == hyps.size(), "--reference: '", o.reference, "' has ", refs.size(),
                    " lines but the input has ", hyps.size());
      std::cerr << eval::corpus_bleu(hyps, refs).to_string() << "\n";
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool print = parallel::launcher_world_rank() == 0;
  std::optional<Options> options;
  try {
    options = parse(argc, argv, print);
  } catch (const std::exception& e) {
    if (print) write_stderr_line(std::string("tessera-translate: error: ") + e.what());
    return 2;
  }
  if (!options) return 0;
  // One process started by hand, with no peers to talk to, runs without MPI: Open MPI's singleton
  // start-up alone took 0.4 s here, a fifth of translating 500 sentences on two cores.
  if (!parallel::started_by_launcher() && options->tensor_parallel == 1 && options->data_parallel == 1)
    return parallel::run_without_mpi("tessera-translate", [&] { return run(*options, /*alone=*/true); });
  return parallel::run_with_mpi("tessera-translate", &argc, &argv, [&] { return run(*options, /*alone=*/false); });
}
