#include "train/torch_anchor.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <sstream>

namespace tessera::train {
namespace {

// The script's path, or "" when neither place holds it.
std::string script_path() {
  namespace fs = std::filesystem;
  const fs::path relative = fs::path("tools") / "bench_torch_step.py";
  if (fs::exists(relative)) return relative.string();
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && fs::exists(exe.parent_path().parent_path() / relative))
    return (exe.parent_path().parent_path() / relative).string();
  return "";
}

// Runs `command` through the shell; returns its exit status and everything it printed.
int run(const std::string& command, std::string& output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  std::array<char, 4096> buffer;
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) output += buffer.data();
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The last non-empty line of `text`.
std::string last_line(const std::string& text) {
  std::istringstream in(text);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

// The value of `key=` on the RESULT line, or "".
std::string field(const std::string& result, const std::string& key) {
  std::istringstream in(result);
  std::string word;
  while (in >> word)
    if (word.rfind(key + "=", 0) == 0) return word.substr(key.size() + 1);
  return "";
}

}  // namespace

TorchAnchor time_torch_step(const model::ModelConfig& model, const std::vector<model::TokenPair>& batch, int threads,
                            int steps, int warmup_steps) {
  TorchAnchor anchor;
  std::string probe;
  if (run("python3 -c 'import torch'", probe) != 0) {
    anchor.why_not = "PyTorch is not installed (python3 -c \"import torch\": " + last_line(probe) + ")";
    return anchor;
  }
  const std::string script = script_path();
  if (script.empty()) {
    anchor.why_not = "tools/bench_torch_step.py not found under the working directory or the build's parent";
    return anchor;
  }
  std::ostringstream cmd, src, tgt;
  for (size_t i = 0; i < batch.size(); ++i) {
    src << (i ? "," : "") << batch[i].src.size() + 1;  // + EOS
    tgt << (i ? "," : "") << batch[i].tgt.size() + 1;  // + BOS (input) / EOS (output)
  }
  cmd << "python3 '" << script << "' --threads " << threads << " --steps " << steps << " --warmup-steps "
      << warmup_steps << " --vocab-size " << model.vocab_size << " --d-model " << model.d_model << " --d-ff "
      << model.d_ff << " --heads " << model.heads << " --encoder-layers " << model.encoder_layers
      << " --decoder-layers " << model.decoder_layers << " --dropout " << model.dropout << " --attention-dropout "
      << model.attention_dropout << " --label-smoothing " << model.label_smoothing << " --activation "
      << model.activation << (model.pre_ln ? " --pre-ln" : "") << " --pad-id " << model.pad_id << " --src-lengths "
      << src.str() << " --tgt-lengths " << tgt.str();
  std::string output;
  const int status = run(cmd.str(), output);
  const std::string result = last_line(output);
  if (status != 0 || result.rfind("RESULT ", 0) != 0) {
    anchor.why_not = "tools/bench_torch_step.py failed (exit " + std::to_string(status) + "): " + result;
    return anchor;
  }
  anchor.ran = true;
  anchor.best_s = std::stod(field(result, "best_s"));
  anchor.mean_s = std::stod(field(result, "mean_s"));
  anchor.tokens = std::stod(field(result, "tokens"));
  anchor.tokens_per_s = std::stod(field(result, "tokens_per_s"));
  anchor.torch_version = field(result, "torch");
  return anchor;
}

}  // namespace tessera::train
