// The C++ forward pass as a reference for tools/load_into_pytorch.py: loads a checkpoint at tp 1,
// feeds a few fixed sentence pairs of different lengths (token ids drawn from a fixed seed, padded
// to the longest) through Transformer::teacher_forced_logits, and writes every target position's
// log-softmax over the vocabulary as JSON:
//   {"pairs": [{"src": [...], "tgt_in": [...], "tgt_out": [...], "logprobs": [[V values] per target position]}]}
// usage: ckpt_reference_logprobs CHECKPOINT OUT.json
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/manifest.h"
#include "kernels/threads.h"
#include "model/transformer.h"
#include "parallel/process_grid.h"
#include "train/options.h"

using namespace tessera;

namespace {

Tensor padded(const std::vector<std::vector<int32_t>>& rows, int32_t pad) {
  size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.size());
  Tensor t = Tensor::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(width)}, DType::i32);
  for (size_t b = 0; b < rows.size(); ++b)
    for (size_t i = 0; i < width; ++i) t.data<int32_t>()[b * width + i] = i < rows[b].size() ? rows[b][i] : pad;
  return t;
}

Tensor lengths(const std::vector<std::vector<int32_t>>& rows) {
  Tensor t = Tensor::empty({static_cast<int64_t>(rows.size())}, DType::i32);
  for (size_t b = 0; b < rows.size(); ++b) t.data<int32_t>()[b] = static_cast<int32_t>(rows[b].size());
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: ckpt_reference_logprobs CHECKPOINT OUT.json\n";
    return 2;
  }
  try {
    kernels::set_num_threads(1);
    const auto dir = checkpoint::resolve_checkpoint(argv[1]);
    const model::ModelConfig cfg = train::parse_config_text(checkpoint::read_manifest(dir).config, dir.string()).model;
    parallel::ProcessGrid grid = parallel::ProcessGrid::single();
    model::ParameterStore store;
    model::Transformer net(cfg, store, grid.tp());
    store.finalize(DType::f32, 1);
    checkpoint::load_checkpoint(dir, store, nullptr, grid.world());

    // Four pairs: source lengths 7, 3, 9, 5 and target lengths 4, 8, 6, 2 (so both sides pad).
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int32_t> token(4, static_cast<int32_t>(cfg.vocab_size) - 1);
    const std::vector<std::pair<int, int>> sizes = {{7, 4}, {3, 8}, {9, 6}, {5, 2}};
    std::vector<std::vector<int32_t>> src, tgt_in, tgt_out;
    for (const auto& [s, t] : sizes) {
      src.emplace_back();
      for (int i = 0; i < s; ++i) src.back().push_back(token(rng));
      std::vector<int32_t> y;
      for (int i = 0; i < t; ++i) y.push_back(token(rng));
      tgt_in.push_back({cfg.bos_id});
      tgt_in.back().insert(tgt_in.back().end(), y.begin(), y.end());
      tgt_out.push_back(y);
      tgt_out.back().push_back(cfg.eos_id);
    }
    const Tensor logits = net.teacher_forced_logits(padded(src, cfg.pad_id), lengths(src),
                                                    padded(tgt_in, cfg.pad_id), lengths(tgt_in));
    const int64_t width = logits.dim(0) / static_cast<int64_t>(src.size()), v = logits.dim(1);
    nlohmann::json pairs = nlohmann::json::array();
    for (size_t b = 0; b < src.size(); ++b) {
      nlohmann::json rows = nlohmann::json::array();
      for (size_t t = 0; t < tgt_out[b].size(); ++t) {
        const float* z = logits.data<float>() + (static_cast<int64_t>(b) * width + static_cast<int64_t>(t)) * v;
        double mx = z[0], sum = 0;
        for (int64_t j = 0; j < v; ++j) mx = std::max(mx, static_cast<double>(z[j]));
        for (int64_t j = 0; j < v; ++j) sum += std::exp(z[j] - mx);
        std::vector<double> row(static_cast<size_t>(v));
        for (int64_t j = 0; j < v; ++j) row[static_cast<size_t>(j)] = z[j] - mx - std::log(sum);
        rows.push_back(row);
      }
      pairs.push_back({{"src", src[b]}, {"tgt_in", tgt_in[b]}, {"tgt_out", tgt_out[b]}, {"logprobs", rows}});
    }
    std::ofstream(argv[2]) << nlohmann::json{{"pairs", pairs}}.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ckpt_reference_logprobs: error: " << e.what() << "\n";
    return 1;
  }
}
