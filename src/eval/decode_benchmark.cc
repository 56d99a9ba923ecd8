#include "eval/decode_benchmark.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/manifest.h"
#include "core/error.h"
#include "core/log.h"
#include "data/sentencepiece_model.h"
#include "train/options.h"

extern char** environ;

namespace tessera::eval {
namespace {

namespace fs = std::filesystem;
using detail::concat;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// One child process, measured from spawn to exit.
struct ChildRun {
  std::string spawn_error;  // non-empty: it never started
  int exit_code = -1;       // 128 + signal when a signal ended it
  double wall_s = 0, cpu_s = 0;
  int64_t peak_rss_bytes = 0;  // its largest resident set (ru_maxrss)
};

// Runs argv (argv[0] looked up in PATH) with stdin from /dev/null, stdout and stderr into files,
// and waits for it with wait4, whose rusage is the child's own: peak memory per configuration.
ChildRun run_child(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err) {
  ChildRun run;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const double start = now_s();
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    run.spawn_error = concat("cannot start '", argv[0], "': ", std::strerror(rc));
    return run;
  }
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0)
    TESSERA_CHECK(errno == EINTR, "waiting for '", argv[0], "' (pid ", pid, "): ", std::strerror(errno));
  run.wall_s = now_s() - start;
  run.cpu_s = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + 1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  run.peak_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux: KiB
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file);
  std::ostringstream all;
  all << in.rdbuf();
  return all.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The last non-empty line of a child's stderr: the reason it gives when it fails.
std::string last_line(const fs::path& file) {
  const auto lines = split_lines(read_file(file));
  for (auto it = lines.rbegin(); it != lines.rend(); ++it)
    if (it->find_first_not_of(" \t\r") != std::string::npos) return *it;
  return "(no message)";
}

std::string quoted(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

// A CPU feature summary from /proc/cpuinfo: the model name, the count, and the vector extensions.
std::string machine_summary() {
  std::ifstream in("/proc/cpuinfo");
  std::string model, flags, family, model_number;
  int cpus = 0;
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "processor") ++cpus;
    if (key == "model name" && model.empty()) model = value;
    if (key == "flags" && flags.empty()) flags = " " + value + " ";
    if (key == "cpu family" && family.empty()) family = value;
    if (key == "model" && model_number.empty()) model_number = value;
  }
  std::string ext;
  for (const char* f : {"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8"})
    if (flags.find(concat(" ", f, " ")) != std::string::npos) ext += concat(ext.empty() ? "" : ", ", f);
  const bool guest = flags.find(" hypervisor ") != std::string::npos;
  return concat(model.empty() ? "unknown CPU" : model, " (family ", family, ", model ", model_number, ")",
                guest ? ", a virtual machine" : "", ", ", cpus, " CPU(s) visible; vector extensions: ",
                ext.empty() ? "none of AVX2/AVX-512/VNNI" : ext);
}

std::string load_average() {
  std::string one;
  std::ifstream("/proc/loadavg") >> one;
  return one.empty() ? "?" : one;
}

// Removes a temporary directory when the benchmark ends, however it ends.
struct RemoveOnExit {
  fs::path dir;
  ~RemoveOnExit() {
    std::error_code ignored;
    if (!dir.empty()) fs::remove_all(dir, ignored);
  }
};

fs::path make_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = concat(tmp && *tmp ? tmp : "/tmp", "/tessera-decode-bench-XXXXXX");
  TESSERA_CHECK(mkdtemp(pattern.data()) != nullptr, "cannot create a temporary directory ", pattern, ": ",
                std::strerror(errno));
  return pattern;
}

// One row of the table: a precision, a beam size, a thread count.
struct Config {
  std::string precision;  // f32 | int8
  int64_t beam;
  int threads;
  std::string name() const { return concat(precision, "-beam", beam, "-threads", threads); }
};

// What one system did on one configuration (best of --repeat runs).
struct Measured {
  std::string not_run;  // non-empty: why there are no numbers (shown in the row)
  double wall_s = 0, cpu_s = 0;
  int64_t peak_rss_bytes = 0;
  int64_t target_tokens = 0;
  std::vector<std::string> outputs;  // detokenised translations, in input order
};

class Benchmark {
 public:
  explicit Benchmark(const DecodeBenchmarkOptions& o) : o_(o) {}

  int run() {
    TESSERA_CHECK(!o_.checkpoint.empty(), "--decode: needs --checkpoint");
    TESSERA_CHECK(o_.sentences >= 1, "--sentences: must be at least 1, got ", o_.sentences);
    TESSERA_CHECK(o_.batch_sentences >= 1, "--batch-sentences: must be at least 1, got ", o_.batch_sentences);
    TESSERA_CHECK(o_.repeat >= 1, "--repeat: must be at least 1, got ", o_.repeat);
    TESSERA_CHECK(!o_.beams.empty() && !o_.threads.empty(), "--beam and --decode-threads: give at least one value");
    for (const auto b : o_.beams) TESSERA_CHECK(b >= 1, "--beam: must be at least 1, got ", b);
    for (const auto t : o_.threads) TESSERA_CHECK(t >= 1, "--decode-threads: must be at least 1, got ", t);
    const char* launcher[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (const char* var : launcher)
      TESSERA_CHECK(std::getenv(var) == nullptr, "--decode: run without mpirun (", var, " is set): it starts one "
                    "tessera-translate per configuration itself");

    exe_dir_ = fs::read_symlink("/proc/self/exe").parent_path();
    translate_ = !o_.translate_program.empty() ? o_.translate_program : (exe_dir_ / "tessera-translate").string();
    TESSERA_CHECK(access(translate_.c_str(), X_OK) == 0, "--translate: '", translate_, "' is not an executable "
                  "(build tessera-translate next to tessera-bench, or name it)");
    step_dir_ = checkpoint::resolve_checkpoint(o_.checkpoint);
    const auto manifest = checkpoint::read_manifest(step_dir_);
    trained_ = train::parse_config_text(manifest.config, (step_dir_ / "manifest.json").string());
    step_ = manifest.step;
    spm_file_ = !o_.spm.empty() ? fs::path(o_.spm) : fs::path(trained_.data_dir) / "spm.model";
    TESSERA_CHECK(fs::exists(spm_file_), "--spm: '", spm_file_.string(), "' does not exist",
                  o_.spm.empty() ? " (the checkpoint's data-dir + spm.model; name it with --spm)" : "");
    spm_.emplace(spm_file_);
    TESSERA_CHECK(spm_->vocab_size() == trained_.model.vocab_size, "--spm: '", spm_file_.string(), "' has ",
                  spm_->vocab_size(), " pieces but the checkpoint's model has a vocabulary of ",
                  trained_.model.vocab_size);
    for (int32_t id = 0; id < spm_->vocab_size(); ++id) piece_ids_.emplace(spm_->piece(id), id);

    RemoveOnExit cleanup;
    if (o_.work_dir.empty()) {
      work_ = make_temp_dir();
      cleanup.dir = work_;
    } else {
      work_ = o_.work_dir;
      fs::create_directories(work_);
    }
    write_inputs();
    prepare_anchor();

    std::vector<Config> configs;
    for (const std::string precision : {"f32", "int8"}) {
      if (precision == "int8" && !o_.int8) continue;
      for (const auto beam : o_.beams)
        for (const auto threads : o_.threads) configs.push_back({precision, beam, threads});
    }
    const std::string load_start = load_average();
    int failures = 0;
    std::vector<std::pair<Measured, Measured>> rows;
    for (const auto& c : configs) {
      Measured tessera = run_tessera(c);
      if (!tessera.not_run.empty() && tessera.not_run != tessera_int8_missing_) ++failures;
      Measured ct2 = run_ct2(c);
      rows.emplace_back(std::move(tessera), std::move(ct2));
    }
    print_table(configs, rows, load_start);
    return failures == 0 ? 0 : 1;
  }

 private:
  // The first --sentences lines as text (tessera-translate's input) and as the pieces of Tessera's
  // own encoder, one sentence per line (CTranslate2's input): both systems see the same ids.
  void write_inputs() {
    std::ifstream in(o_.input);
    TESSERA_CHECK(in.good(), "--input: cannot open '", o_.input, "'");
    std::ofstream text(work_ / "source.txt"), pieces(work_ / "source.pieces");
    TESSERA_CHECK(text.good() && pieces.good(), "cannot write the inputs into '", work_.string(), "'");
    for (std::string line; static_cast<int64_t>(sources_.size()) < o_.sentences && std::getline(in, line);) {
      text << line << "\n";
      const auto ids = spm_->encode(line);
      std::string joined;
      for (const auto id : ids) {
        if (!joined.empty()) joined += ' ';
        joined += spm_->piece(id);
      }
      pieces << joined << "\n";
      source_pieces_ += static_cast<int64_t>(ids.size());
      sources_.push_back(line);
    }
    TESSERA_CHECK(!sources_.empty(), "--input: '", o_.input, "' has no lines");
  }

  // Finds Python with ctranslate2 and the two scripts, and converts the checkpoint (unless
  // --ct2-model names a converted one). Leaves anchor_skipped_ empty when the anchor can run.
  void prepare_anchor() {
    if (!o_.anchor) {
      anchor_skipped_ = "skipped: --no-anchor";
      return;
    }
    const ChildRun check = run_child({o_.python, "-c", "import ctranslate2; print(ctranslate2.__version__)"},
                                     work_ / "ct2-version.out", work_ / "ct2-version.err");
    if (!check.spawn_error.empty()) {
      anchor_skipped_ = concat("skipped: ", check.spawn_error, " (--python)");
      return;
    }
    if (check.exit_code != 0) {
      anchor_skipped_ = concat("skipped: ctranslate2 not installed (", o_.python, ": ", last_line(work_ / "ct2-version.err"), ")");
      return;
    }
    ct2_version_ = last_line(work_ / "ct2-version.out");
    std::vector<fs::path> candidates;
    if (!o_.tools_dir.empty()) candidates = {o_.tools_dir};
    else candidates = {fs::path("tools"), exe_dir_.parent_path() / "tools"};
    for (const auto& dir : candidates)
      if (fs::exists(dir / "ct2_decode.py") && fs::exists(dir / "export_ctranslate2.py")) {
        tools_ = dir;
        break;
      }
    if (tools_.empty()) {
      anchor_skipped_ = concat("skipped: no ct2_decode.py and export_ctranslate2.py in ",
                               o_.tools_dir.empty() ? "tools/ or next to the build directory" : o_.tools_dir,
                               " (--tools-dir)");
      return;
    }
    if (!o_.ct2_model.empty()) {
      TESSERA_CHECK(fs::exists(fs::path(o_.ct2_model) / "model.bin"), "--ct2-model: '", o_.ct2_model,
                    "' holds no model.bin (write one with tools/export_ctranslate2.py)");
      ct2_model_ = o_.ct2_model;
      return;
    }
    ct2_model_ = work_ / "ct2-model";
    const std::string ckpt =
        !o_.ckpt_program.empty() ? o_.ckpt_program : (exe_dir_ / "tessera-ckpt").string();
    const std::vector<std::string> convert = {o_.python, (tools_ / "export_ctranslate2.py").string(), step_dir_.string(),
                                              ct2_model_.string(), "--spm", spm_file_.string(), "--tessera-ckpt", ckpt};
    std::cerr << "converting for CTranslate2: " << quoted(convert) << std::endl;
    const ChildRun run = run_child(convert, work_ / "convert.out", work_ / "convert.err");
    if (run.exit_code != 0)
      anchor_skipped_ = concat("skipped: conversion failed: ",
                               run.spawn_error.empty() ? last_line(work_ / "convert.err") : run.spawn_error);
  }

  // Runs `argv` --repeat times; keeps the best wall time, the largest peak memory, and the output
  // file of the last run. Returns the reason when a run failed.
  std::string measure(const std::vector<std::string>& argv, const std::string& name, Measured& m) {
    m.wall_s = 1e30;
    for (int r = 0; r < o_.repeat; ++r) {
      std::cerr << "[" << load_average() << "] " << quoted(argv) << std::endl;
      const ChildRun run = run_child(argv, work_ / (name + ".out"), work_ / (name + ".err"));
      if (!run.spawn_error.empty()) return run.spawn_error;
      if (run.exit_code != 0)
        return concat("failed (exit ", run.exit_code, "): ", last_line(work_ / (name + ".err")));
      if (run.wall_s < m.wall_s) {
        m.wall_s = run.wall_s;
        m.cpu_s = run.cpu_s;
      }
      m.peak_rss_bytes = std::max(m.peak_rss_bytes, run.peak_rss_bytes);
    }
    return "";
  }

  // Target tokens counted the same way for both systems: the pieces of each output line.
  int64_t count_pieces(const std::vector<std::string>& outputs) const {
    int64_t n = 0;
    for (const auto& s : outputs) n += static_cast<int64_t>(spm_->encode(s).size());
    return n;
  }

  Measured run_tessera(const Config& c) {
    Measured m;
    if (c.precision == "int8" && !tessera_int8_missing_.empty()) {
      m.not_run = tessera_int8_missing_;
      return m;
    }
    const std::string name = "tessera-" + c.name();
    const fs::path output = work_ / (name + ".txt");
    std::vector<std::string> argv = {translate_, "--checkpoint", step_dir_.string(), "--spm", spm_file_.string(),
                                     "--input", (work_ / "source.txt").string(), "--output", output.string(),
                                     "--beam", std::to_string(c.beam), "--threads", std::to_string(c.threads),
                                     "--batch-sentences", std::to_string(o_.batch_sentences),
                                     "--length-penalty", concat(o_.length_penalty),
                                     "--max-len-extra", std::to_string(o_.max_len_extra)};
    if (c.precision == "int8") argv.insert(argv.end(), {"--quantize", "int8"});
    m.not_run = measure(argv, name, m);
    if (!m.not_run.empty()) {
      const std::string err = read_file(work_ / (name + ".err"));
      if (c.precision == "int8" && err.find("quantize") != std::string::npos &&
          (err.find("unrecognised") != std::string::npos || err.find("unrecognized") != std::string::npos ||
           err.find("unknown option") != std::string::npos))
        m.not_run = tessera_int8_missing_ = "n/a (tessera-translate has no --quantize)";
      std::cerr << "tessera-translate " << c.name() << ": " << m.not_run << std::endl;
      return m;
    }
    m.outputs = split_lines(read_file(output));
    if (m.outputs.size() != sources_.size()) {
      m.not_run = concat("failed: ", m.outputs.size(), " output lines for ", sources_.size(), " sentences");
      return m;
    }
    m.target_tokens = count_pieces(m.outputs);
    return m;
  }

  Measured run_ct2(const Config& c) {
    Measured m;
    if (!anchor_skipped_.empty()) {
      m.not_run = anchor_skipped_;
      return m;
    }
    const std::string name = "ct2-" + c.name();
    const fs::path pieces_file = work_ / (name + ".pieces");
    const std::vector<std::string> argv = {
        o_.python, (tools_ / "ct2_decode.py").string(), ct2_model_.string(),
        "--input", (work_ / "source.pieces").string(), "--output", pieces_file.string(),
        "--beam", std::to_string(c.beam), "--threads", std::to_string(c.threads),
        "--batch-sentences", std::to_string(o_.batch_sentences), "--length-penalty", concat(o_.length_penalty),
        "--max-len-extra", std::to_string(o_.max_len_extra),
        "--compute-type", c.precision == "int8" ? "int8" : "float32"};
    m.not_run = measure(argv, name, m);
    if (!m.not_run.empty()) {
      std::cerr << "ct2_decode.py " << c.name() << ": " << m.not_run << std::endl;
      return m;
    }
    // Its pieces -> Tessera's ids -> text through the same SentencePiece model.
    const auto lines = split_lines(read_file(pieces_file));
    if (lines.size() != sources_.size()) {
      m.not_run = concat("failed: ", lines.size(), " output lines for ", sources_.size(), " sentences");
      return m;
    }
    std::ofstream text(work_ / (name + ".txt"));
    for (const auto& line : lines) {
      std::vector<int32_t> ids;
      std::istringstream in(line);
      for (std::string piece; in >> piece;) {
        const auto it = piece_ids_.find(piece);
        if (it == piece_ids_.end()) {
          m.not_run = concat("failed: it generated '", piece, "', not a piece of ", spm_file_.string());
          return m;
        }
        ids.push_back(it->second);
      }
      ct2_generated_[c.name()] += static_cast<int64_t>(ids.size());
      m.outputs.push_back(spm_->decode(ids));
      text << m.outputs.back() << "\n";
    }
    m.target_tokens = count_pieces(m.outputs);
    return m;
  }

  static std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
  }

  // sentences/s, target tokens/s, wall s, peak MiB, cpu share: the cells of one system.
  std::vector<std::string> cells(const Measured& m, const Config& c) const {
    if (!m.not_run.empty()) return {m.not_run, "-", "-", "-", "-"};
    const double n = static_cast<double>(sources_.size());
    return {fixed(n / m.wall_s, 1), fixed(m.target_tokens / m.wall_s, 0), fixed(m.wall_s, 2),
            fixed(m.peak_rss_bytes / 1048576.0, 0), fixed(100.0 * m.cpu_s / (m.wall_s * c.threads), 0) + "%"};
  }

  void print_table(const std::vector<Config>& configs, const std::vector<std::pair<Measured, Measured>>& rows,
                   const std::string& load_start) const {
    const auto& mc = trained_.model;
    std::printf("Command: `%s`\n\n", o_.command_line.c_str());
    std::printf("Machine: %s; load average %s at the start, %s at the end.\n\n", machine_summary().c_str(),
                load_start.c_str(), load_average().c_str());
    std::printf("Model: `%s` (step %lld): d_model %lld, d_ff %lld, %lld heads, %lld+%lld layers, %s, vocabulary %lld, "
                "%lld parameters. Input: the first %zu lines of `%s` (%lld source pieces). Both systems: batches "
                "of %lld sentences, length penalty %s, at most source length + %lld tokens; %s.\n\n",
                step_dir_.string().c_str(), static_cast<long long>(step_), static_cast<long long>(mc.d_model),
                static_cast<long long>(mc.d_ff), static_cast<long long>(mc.heads),
                static_cast<long long>(mc.encoder_layers), static_cast<long long>(mc.decoder_layers),
                mc.pre_ln ? "pre-LN" : "post-LN", static_cast<long long>(mc.vocab_size), static_cast<long long>(mc.parameter_count()),
                sources_.size(), o_.input.c_str(), static_cast<long long>(source_pieces_),
                static_cast<long long>(o_.batch_sentences), concat(o_.length_penalty).c_str(),
                static_cast<long long>(o_.max_len_extra),
                anchor_skipped_.empty() ? concat("CTranslate2 ", ct2_version_).c_str() : anchor_skipped_.c_str());
    std::printf("| precision | beam | threads | Tessera sent/s | Tessera tok/s | Tessera wall s | Tessera peak MiB "
                "| Tessera cpu | CT2 sent/s | CT2 tok/s | CT2 wall s | CT2 peak MiB | CT2 cpu | wall Tessera/CT2 "
                "| memory Tessera/CT2 | same output |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < configs.size(); ++i) {
      const Config& c = configs[i];
      const auto& [tessera, ct2] = rows[i];
      std::string line = concat("| ", c.precision, " | ", c.beam, " | ", c.threads);
      for (const auto& cell : cells(tessera, c)) line += " | " + cell;
      for (const auto& cell : cells(ct2, c)) line += " | " + cell;
      if (tessera.not_run.empty() && ct2.not_run.empty()) {
        int64_t same = 0;
        for (size_t s = 0; s < sources_.size(); ++s) same += tessera.outputs[s] == ct2.outputs[s];
        line += concat(" | ", fixed(tessera.wall_s / ct2.wall_s, 2), "x | ",
                       fixed(static_cast<double>(tessera.peak_rss_bytes) / ct2.peak_rss_bytes, 2), "x | ", same, "/",
                       sources_.size());
      } else {
        line += " | - | - | -";
      }
      std::printf("%s |\n", line.c_str());
    }
    // How the shared count (pieces of the output, re-encoded) compares with what CTranslate2
    // actually generated: the two differ only where decoding re-segments a generated sequence.
    std::string counts;
    for (size_t i = 0; i < configs.size(); ++i) {
      const auto it = ct2_generated_.find(configs[i].name());
      if (it == ct2_generated_.end() || !rows[i].second.not_run.empty()) continue;
      counts += concat(counts.empty() ? "" : ", ", configs[i].name(), " ", it->second, " generated / ",
                       rows[i].second.target_tokens, " counted");
    }
    std::printf("\nTarget tokens: the SentencePiece pieces of each output line (eos never counted), re-encoded by the "
                "same model for both systems.%s%s\n",
                counts.empty() ? "" : " CTranslate2's pieces as generated vs counted: ", counts.c_str());
    std::fflush(stdout);
  }

  const DecodeBenchmarkOptions& o_;
  fs::path exe_dir_, step_dir_, spm_file_, work_, tools_, ct2_model_;
  std::string translate_;
  train::TrainOptions trained_;
  int64_t step_ = 0;
  std::optional<data::SentencePieceModel> spm_;
  std::map<std::string, int32_t> piece_ids_;
  std::vector<std::string> sources_;
  int64_t source_pieces_ = 0;
  std::string anchor_skipped_, ct2_version_, tessera_int8_missing_;
  std::map<std::string, int64_t> ct2_generated_;
};

}  // namespace

int run_decode_benchmark(const DecodeBenchmarkOptions& options) { return Benchmark(options).run(); }

}  // namespace tessera::eval
