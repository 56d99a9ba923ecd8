#include "train/batch_source.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tessera::train {

SyntheticBatchSource::SyntheticBatchSource(const TrainOptions& o) : batch_sentences_(o.batch_sentences) {
  task_.kind = data::SyntheticTask::parse_kind(o.task);
  task_.vocab_size = o.model.vocab_size;
  task_.min_len = o.min_len;
  task_.max_len = o.max_len;
  task_.seed = o.seed;
}

std::vector<model::TokenPair> SyntheticBatchSource::next() {
  auto pairs = task_.pairs(data::kTrainSplit, next_index_, batch_sentences_);
  next_index_ += batch_sentences_;
  return pairs;
}

std::string SyntheticBatchSource::state() const { return nlohmann::json{{"next_index", next_index_}}.dump(); }

void SyntheticBatchSource::restore(const std::string& state) {
  try {
    next_index_ = nlohmann::json::parse(state).at("next_index").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    TESSERA_FAIL("synthetic data state '", state, "' is not valid: ", e.what());
  }
}

std::string SyntheticBatchSource::describe() const {
  std::ostringstream os;
  os << "synthetic " << (task_.kind == data::SyntheticTask::Kind::reverse ? "reverse" : "copy") << " task, "
     << batch_sentences_ << " sentences of " << task_.min_len << "-" << task_.max_len << " tokens per batch";
  return os.str();
}

namespace {
data::TokenBatcherOptions batcher_options(const TrainOptions& o, int64_t min_sentences) {
  data::TokenBatcherOptions b;
  b.max_tokens = o.max_tokens;
  b.max_len = o.max_len;
  b.min_sentences = min_sentences;
  b.seed = o.seed;
  return b;
}
}  // namespace

CorpusBatchSource::CorpusBatchSource(const TrainOptions& o, int64_t min_sentences)
    : train_(std::filesystem::path(o.data_dir) / "train"), sampler_(train_, batcher_options(o, min_sentences)) {
  train_.check_token_ids(o.model.vocab_size);
}

std::vector<model::TokenPair> CorpusBatchSource::next() { return sampler_.next_batch().pairs; }
std::string CorpusBatchSource::state() const { return data::to_json_string(sampler_.state()); }
void CorpusBatchSource::restore(const std::string& state) { sampler_.restore(data::sampler_state_from_json(state)); }
std::string CorpusBatchSource::describe() const {
  return "corpus of " + std::to_string(train_.size()) + " sentence pairs: " + sampler_.batcher().stats().summary();
}

std::unique_ptr<BatchSource> make_batch_source(const TrainOptions& o, int64_t min_sentences) {
  if (o.task == "corpus") return std::make_unique<CorpusBatchSource>(o, min_sentences);
  return std::make_unique<SyntheticBatchSource>(o);
}

namespace {
std::vector<std::string> read_lines(const std::filesystem::path& file) {
  std::ifstream in(file);
  TESSERA_CHECK(in.good(), "cannot open ", file.string());
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}
}  // namespace

HeldOutSet read_held_out(const std::filesystem::path& data_dir, const std::string& split, int64_t vocab_size) {
  const data::ParallelDataset ids(data_dir / split);
  ids.check_token_ids(vocab_size);
  HeldOutSet set;
  set.sources = read_lines(data_dir / (split + ".de"));
  set.references = read_lines(data_dir / (split + ".en"));
  TESSERA_CHECK(set.sources.size() == ids.size() && set.references.size() == ids.size(), split, " set of ",
                data_dir.string(), ": ", ids.size(), " encoded pairs but ", set.sources.size(), " lines in ", split,
                ".de and ", set.references.size(), " in ", split, ".en");
  std::vector<int64_t> all(ids.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  set.pairs = data::read_pairs(ids, all);
  return set;
}

}  // namespace tessera::train
