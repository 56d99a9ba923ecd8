#include "train/memory_estimate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unistd.h>
#include <vector>

#include "core/error.h"
#include "parallel/mpi_runtime.h"

namespace tessera::train {
namespace {

// The longest sequence a batch can hold: the synthetic task's --max-len, or for a corpus --max-len
// (0: no limit, so a batch of --max-tokens can be one sentence pair of half that length each).
double longest_sequence(const TrainOptions& o) {
  if (o.task != "corpus") return static_cast<double>(o.max_len) + 1;
  const double half_budget = static_cast<double>(o.max_tokens) / 2;
  return o.max_len > 0 ? std::min(static_cast<double>(o.max_len) + 1, half_budget) : half_budget;
}

// A number from the first line of `path` ("max" or missing: infinity).
double read_limit(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return INFINITY;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  return end != text.c_str() && v > 0 ? v : INFINITY;
}

}  // namespace

MemoryEstimate estimate_rank_memory(const TrainOptions& o) {
  const auto& m = o.model;
  const double tp = o.tensor_parallel, d = static_cast<double>(m.d_model), ff = static_cast<double>(m.d_ff);
  const double v = static_cast<double>(m.vocab_size), h = static_cast<double>(m.heads);
  const double enc = static_cast<double>(m.encoder_layers), dec = static_cast<double>(m.decoder_layers);
  // Parameters: attention 4d^2, FFN 2 d d_ff per layer (the decoder has two attentions), the
  // embedding V d; all of it split across the tensor-parallel group.
  const double params = (v * d + enc * (4 * d * d + 2 * d * ff) + dec * (8 * d * d + 2 * d * ff)) / tp;
  MemoryEstimate e;
  e.parameters = 4 * params;
  e.optimizer = 3 * e.parameters;
  // Activations of one micro-batch on one rank: per token and layer at least the sublayer inputs
  // and outputs (~8 d), the FFN's hidden layer (d_ff / tp) and the attention probabilities of the
  // local heads over the sequence (h / tp x L); plus the logits' vocabulary slice per target token.
  const double len = longest_sequence(o);
  const double sentences = o.task == "corpus" ? static_cast<double>(o.max_tokens) / (2 * len)
                                              : static_cast<double>(o.batch_sentences);
  const double per_rank_sentences = std::max(1.0, sentences / (o.data_parallel * o.accumulate));
  const double tokens = per_rank_sentences * len;  // each side
  const double per_token_layer = 8 * d + ff / tp + h / tp * len;
  e.activations = 4 * tokens * ((enc + dec) * per_token_layer + v / tp);
  return e;
}

double rank_memory_budget() {
  const double pages = static_cast<double>(sysconf(_SC_PHYS_PAGES)), page = static_cast<double>(sysconf(_SC_PAGE_SIZE));
  double bytes = pages > 0 && page > 0 ? pages * page : INFINITY;
  bytes = std::min({bytes, read_limit("/sys/fs/cgroup/memory.max"),
                    read_limit("/sys/fs/cgroup/memory/memory.limit_in_bytes")});
  return bytes / parallel::launcher_local_ranks();
}

std::string format_bytes(double bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) bytes /= 1024, ++u;
  char buf[64];
  if (bytes >= 1e6) std::snprintf(buf, sizeof buf, "%.3g %s", bytes, units[u]);
  else std::snprintf(buf, sizeof buf, "%.1f %s", bytes, units[u]);
  return buf;
}

void check_memory_fits(const TrainOptions& o, double budget_bytes) {
  const MemoryEstimate e = estimate_rank_memory(o);
  if (e.total() <= budget_bytes) return;
  // The option furthest above its default is the likely mistake.
  const TrainOptions defaults;
  const auto& m = o.model;
  const auto& dm = defaults.model;
  struct Candidate {
    const char* name;
    double value, usual;
  };
  std::vector<Candidate> candidates = {
      {"--vocab-size", double(m.vocab_size), double(dm.vocab_size)},
      {"--d-model", double(m.d_model), double(dm.d_model)},
      {"--d-ff", double(m.d_ff), double(dm.d_ff)},
      {"--heads", double(m.heads), double(dm.heads)},
      {"--encoder-layers", double(m.encoder_layers), double(dm.encoder_layers)},
      {"--decoder-layers", double(m.decoder_layers), double(dm.decoder_layers)}};
  if (o.task == "corpus") {
    candidates.push_back({"--max-tokens", double(o.max_tokens), double(defaults.max_tokens)});
  } else {
    candidates.push_back({"--batch-sentences", double(o.batch_sentences), double(defaults.batch_sentences)});
    candidates.push_back({"--max-len", double(o.max_len), double(defaults.max_len)});
  }
  const Candidate& worst = *std::max_element(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    return a.value / a.usual < b.value / b.usual;
  });
  std::ostringstream value;
  value.precision(17);
  value << worst.value;
  TESSERA_FAIL(worst.name, " ", value.str(), ": the run would need at least ", format_bytes(e.total()),
               " per rank (parameters ", format_bytes(e.parameters), ", gradients and Adam moments ",
               format_bytes(e.optimizer), ", activations ", format_bytes(e.activations), ") but a rank has ",
               format_bytes(budget_bytes), " (this machine's memory or cgroup limit, divided among its ranks); "
               "use a smaller ", worst.name, ", more --tensor-parallel ranks or more memory");
}

}  // namespace tessera::train
