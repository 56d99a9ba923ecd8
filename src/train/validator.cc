#include "train/validator.h"

#include <chrono>
#include <cmath>

#include "core/log.h"
#include "eval/bleu.h"
#include "eval/translate.h"

namespace tessera::train {

Validator::Validator(const TrainOptions& o, const parallel::ProcessGrid& grid) : o_(o), grid_(grid) {
  if (o.task == "corpus") {
    spm_ = std::make_unique<data::SentencePieceModel>(std::filesystem::path(o.data_dir) / "spm.model");
    TESSERA_CHECK(spm_->vocab_size() == o.model.vocab_size, "--vocab-size: ", o.model.vocab_size, " differs from the ",
                  spm_->vocab_size(), " pieces of ", o.data_dir, "/spm.model");
    dev_ = read_held_out(o.data_dir, "dev", o.model.vocab_size);
  } else {
    SyntheticBatchSource source(o);
    dev_.pairs = source.task().pairs(data::kHeldOutSplit, 0, 512);
  }
}

void Validator::open_curve(int64_t resume_step) {
  if (o_.out_dir.empty() || grid_.world_rank() != 0) return;
  tsv_ = CurveFile(std::filesystem::path(o_.out_dir) / "valid.tsv",
                   std::string("step\tminutes\tloss\tppl\t") + (spm_ ? "bleu" : "greedy_accuracy"), resume_step);
}

ValidationResult Validator::run(Trainer& trainer, int64_t step, double minutes) {
  const auto start = std::chrono::steady_clock::now();
  const EvalStats ev = trainer.evaluate(dev_.pairs, 64);
  ValidationResult r;
  r.loss = ev.loss;
  if (spm_) {
    const size_t n = std::min<size_t>(dev_.pairs.size(), static_cast<size_t>(o_.valid_bleu_sentences));
    std::vector<std::vector<int32_t>> sources;
    for (size_t i = 0; i < n; ++i) sources.push_back(dev_.pairs[i].src);
    const auto hyps = eval::translate_ids(trainer.model(), grid_, sources, eval::DecodeOptions{});
    eval::BleuAccumulator bleu;
    for (size_t i = 0; i < n; ++i) bleu.add(spm_->decode(hyps[i]), dev_.references[i]);
    r.quality = bleu.score().score;
    r.quality_name = "bleu";
    TESSERA_LOG_INFO("valid step ", step, "  loss ", full_precision_row(ev.loss), "  ppl ", std::exp(ev.loss),
                     "  greedy ", bleu.score().to_string(), " on ", n, " dev sentences");
  } else {
    r.quality = trainer.greedy_token_accuracy(dev_.pairs, 64);
    r.quality_name = "greedy_accuracy";
    TESSERA_LOG_INFO("valid step ", step, "  loss ", full_precision_row(ev.loss), "  ppl ", std::exp(ev.loss), "  acc ",
                     ev.accuracy, "  greedy token acc ", r.quality);
  }
  if (tsv_.is_open()) tsv_.append(full_precision_row(step, minutes, ev.loss, std::exp(ev.loss), r.quality));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

void Validator::show_examples(Trainer& trainer, size_t count) {
  if (!spm_) return;
  std::vector<std::string> sources(dev_.sources.begin(), dev_.sources.begin() + std::min(count, dev_.sources.size()));
  const auto hyps = eval::translate_text(trainer.model(), grid_, *spm_, sources, eval::DecodeOptions{});
  for (size_t i = 0; i < hyps.size(); ++i)
    TESSERA_LOG_INFO("example ", i + 1, "\n  de:  ", sources[i], "\n  ref: ", dev_.references[i], "\n  hyp: ", hyps[i]);
}

}  // namespace tessera::train
