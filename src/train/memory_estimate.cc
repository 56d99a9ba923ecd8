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

// A number from the first line of `path` ("max" or missing: infinity).
double read_limit(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return INFINITY;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  return end != text.c_str() && v > 0 ? v : INFINITY;
}

// Elements of the two operands of the largest matrix product of a step on one rank: the copies
// that --precision bf16 makes of them live while that product runs (kernels/matmul.cc).
double largest_product_operands(const model::ModelConfig& m, int tp, const MicroBatchShape& b) {
  const double d = double(m.d_model), w = d / tp, f = double(m.d_ff) / tp, dk = double(m.d_head());
  const double heads = double(m.heads) / tp, vocab = std::ceil(double(m.vocab_size) / tp);
  const double ns = b.sentences * b.source_len, nt = b.sentences * b.target_len;
  double largest = 0;
  // y [rows, out] = x [rows, in] W [in, out]; backward x^T dy and dy W^T.
  auto linear = [&](double rows, double in, double out) {
    largest = std::max({largest, rows * in + in * out, rows * in + rows * out, rows * out + in * out});
  };
  // S = Q K^T, C = P V and their backward, per (sentence, local head).
  auto attention = [&](double sq, double sk) {
    largest = std::max(largest, b.sentences * heads * (sq * sk + std::max(sq, sk) * dk));
  };
  for (const double rows : {ns, nt}) {
    linear(rows, d, w);  // Q, K, V (column-parallel)
    linear(rows, w, d);  // attention output (row-parallel)
    linear(rows, d, f);  // FFN W1
    linear(rows, f, d);  // FFN W2
  }
  attention(b.source_len, b.source_len);
  attention(b.target_len, b.target_len);
  attention(b.target_len, b.source_len);
  linear(nt, d, vocab);  // logits on the tied embedding's vocabulary slice
  return largest;
}

// Elements that forward keeps for backward (as src/model/*.cc keeps them), counted per buffer
// (views and tensors shared by two modules once), plus the logits and the output gradient.
//   Encoder layer, per source token: the layer input (kept by Q/K/V), heads-major Q, K, V
//   (3 d/tp), the attention context (input of the output projection, d/tp), each residual's
//   layer-norm input (d) and output (d) with mean and rstd (2), the FFN's pre-activation and
//   hidden units (2 d_ff/tp): 4d + 4d/tp + 2 d_ff/tp + 4; plus the attention probabilities
//   [B, h/tp, S, S]. Pre-LN keeps the same number of buffers (norm before, not after).
//   Decoder layer, per target token: 6d + 6d/tp + 2 d_ff/tp + 6 (three residuals, two attentions),
//   plus K and V of the encoder output (2 d/tp per source token) and the probabilities
//   [B, h/tp, T, T] and [B, h/tp, T, S].
//   Once: the encoder output (read by every cross-attention) and the decoder output (d per token;
//   pre-LN: also the final norm's input and statistics, d + 2), the logits [T tokens, V/tp] (the
//   loss writes their gradient in place) and the gradient of the decoder output (d).
// Dropout masks are not stored (backward draws them again from the counter-based generator), so
// --dropout and --attention-dropout add nothing.
double activation_elements(const model::ModelConfig& m, int tp, const MicroBatchShape& b) {
  const double d = double(m.d_model), w = d / tp, f = double(m.d_ff) / tp, heads = double(m.heads) / tp;
  const double vocab = std::ceil(double(m.vocab_size) / tp);
  const double s = b.source_len, t = b.target_len, ns = b.sentences * s, nt = b.sentences * t;
  const double encoder_layer = ns * (4 * d + 4 * w + 2 * f + 4) + b.sentences * heads * s * s;
  const double decoder_layer = nt * (6 * d + 6 * w + 2 * f + 6) + ns * 2 * w + b.sentences * heads * (t * t + t * s);
  const double outputs = (ns + nt) * (m.pre_ln ? 2 * d + 2 : d);
  const double loss = nt * (vocab + d);
  return double(m.encoder_layers) * encoder_layer + double(m.decoder_layers) * decoder_layer + outputs + loss;
}

}  // namespace

MicroBatchShape largest_micro_batch(const TrainOptions& o) {
  const double slices = std::max(1.0, double(o.data_parallel) * double(o.accumulate));
  MicroBatchShape b;
  double len = 0;
  if (o.task == "corpus") {
    // The budget counts padded tokens, B x (longest source + longest target), per global batch; a
    // pair too long for dp x accumulate copies in the budget is skipped (data/token_batcher.h).
    const double half = std::max(1.0, double(o.max_tokens) / slices / 2);
    len = o.max_len > 0 ? std::min(double(o.max_len) + 1, half) : half;
    b.sentences = std::max(1.0, double(o.max_tokens) / slices / (2 * len));
  } else {
    len = double(o.max_len) + 1;
    b.sentences = std::max(1.0, double(o.batch_sentences) / slices);
  }
  b.source_len = b.target_len = len;
  return b;
}

double rank_parameter_count(const model::ModelConfig& m, int tensor_parallel) {
  const double tp = tensor_parallel, d = double(m.d_model), f = double(m.d_ff);
  const double vocab = std::ceil(double(m.vocab_size) / tp) * tp;
  // Split across the group: Q, K, V weights and biases, the output projection's weight, W1 and b1,
  // W2, the embedding. Replicated: the output projection's and W2's biases, layer norms.
  const double attention = (4 * d * d + 3 * d) / tp + d, ffn = (2 * d * f + f) / tp + d, norm = 2 * d;
  const double encoder = double(m.encoder_layers) * (attention + ffn + 2 * norm);
  const double decoder = double(m.decoder_layers) * (2 * attention + ffn + 3 * norm);
  return vocab * d / tp + encoder + decoder + (m.pre_ln ? 2 * norm : 0);
}

MemoryEstimate estimate_rank_memory(const TrainOptions& o, const MicroBatchShape& batch) {
  const double params = rank_parameter_count(o.model, o.tensor_parallel);
  MemoryEstimate e;
  e.parameters = 4 * params;
  e.gradients = 4 * params;
  // ZeRO-1: each data-parallel rank updates (and keeps the moments of) 1/dp of the parameters.
  e.moments = 8 * (o.shard_optimizer ? std::ceil(params / std::max(1, o.data_parallel)) : params);
  if (o.precision == "bf16") {
    const double bytes = o.device == "cpu" ? 4 : 2;  // a rounded f32 copy on the CPU, bf16 on a GPU
    e.bf16_operands = bytes * largest_product_operands(o.model, o.tensor_parallel, batch);
  }
  // Activations stay f32 with --precision bf16 too (rounded only where they enter a product).
  e.activations = 4 * activation_elements(o.model, o.tensor_parallel, batch);
  return e;
}

MemoryEstimate estimate_rank_memory(const TrainOptions& o) { return estimate_rank_memory(o, largest_micro_batch(o)); }

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
               format_bytes(e.gradients + e.moments), ", activations ", format_bytes(e.activations),
               e.bf16_operands > 0 ? ", bf16 operand copies " + format_bytes(e.bf16_operands) : std::string(),
               ") but a rank has ",
               format_bytes(budget_bytes), " (this machine's memory or cgroup limit, divided among its ranks); "
               "use a smaller ", worst.name, ", more --tensor-parallel ranks or more memory");
}

}  // namespace tessera::train
