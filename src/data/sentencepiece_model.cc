#include "data/sentencepiece_model.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <unordered_map>

#include "core/error.h"

namespace tessera::data {

namespace {

// Feeds in-memory sentences to the trainer, so no temporary text file is needed.
class VectorSentenceIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorSentenceIterator(const std::vector<std::string>& sentences)
      : sentences_(sentences) {}
  bool done() const override { return index_ >= sentences_.size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return sentences_[index_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& sentences_;
  std::size_t index_ = 0;
};

}  // namespace

void train_sentencepiece(const std::vector<std::string>& sentences,
                         const std::filesystem::path& model_file,
                         const SentencePieceOptions& options) {
  TESSERA_CHECK(!sentences.empty(), "no sentences to train SentencePiece model ",
                model_file.string());
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", std::to_string(options.character_coverage)},
      {"input_sentence_size", std::to_string(options.input_sentence_size)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(options.num_threads)},
      {"pad_id", std::to_string(kPadId)},
      {"unk_id", std::to_string(kUnkId)},
      {"bos_id", std::to_string(kBosId)},
      {"eos_id", std::to_string(kEosId)},
      {"pad_piece", "<pad>"},
      {"unk_piece", "<unk>"},
      {"bos_piece", "<s>"},
      {"eos_piece", "</s>"},
      {"minloglevel", "1"},  // warnings and errors only
  };
  // Sampling of input_sentence_size sentences is the only random step; fixing the seed makes
  // training reproducible.
  sentencepiece::SetRandomGeneratorSeed(options.seed);
  VectorSentenceIterator iterator(sentences);
  std::string serialized;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &iterator, &serialized);
  TESSERA_CHECK(status.ok(), "SentencePiece training for ", model_file.string(),
                " failed: ", status.ToString());

  const std::filesystem::path tmp = model_file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    TESSERA_CHECK(out, "cannot create ", tmp.string());
    out.write(serialized.data(), static_cast<std::streamsize>(serialized.size()));
    out.close();
    TESSERA_CHECK(out, "error while writing ", tmp.string());
  }
  std::filesystem::rename(tmp, model_file);
}

SentencePieceModel::SentencePieceModel(const std::filesystem::path& model_file)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()), file_(model_file) {
  const auto status = processor_->Load(model_file.string());
  TESSERA_CHECK(status.ok(), "cannot load SentencePiece model ", model_file.string(), ": ",
                status.ToString());
  TESSERA_CHECK(processor_->pad_id() == kPadId && processor_->unk_id() == kUnkId &&
                    processor_->bos_id() == kBosId && processor_->eos_id() == kEosId,
                "SentencePiece model ", model_file.string(), " has special ids pad=",
                processor_->pad_id(), " unk=", processor_->unk_id(), " bos=",
                processor_->bos_id(), " eos=", processor_->eos_id(),
                "; Tessera expects pad=0 unk=1 bos=2 eos=3");
}

SentencePieceModel::~SentencePieceModel() = default;
SentencePieceModel::SentencePieceModel(SentencePieceModel&&) noexcept = default;
SentencePieceModel& SentencePieceModel::operator=(SentencePieceModel&&) noexcept = default;

std::vector<std::int32_t> SentencePieceModel::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = processor_->Encode(text, &ids);
  TESSERA_CHECK(status.ok(), "encoding with ", file_.string(), " failed: ", status.ToString());
  return {ids.begin(), ids.end()};
}

std::vector<std::string> SentencePieceModel::encode_pieces(std::string_view text) const {
  std::vector<std::string> pieces;
  const auto status = processor_->Encode(text, &pieces);
  TESSERA_CHECK(status.ok(), "encoding with ", file_.string(), " failed: ", status.ToString());
  return pieces;
}

std::string SentencePieceModel::decode(std::span<const std::int32_t> ids) const {
  const int size = vocab_size();
  for (std::int32_t id : ids)
    TESSERA_CHECK(id >= 0 && id < size, "token id ", id, " is outside the vocabulary of ",
                  file_.string(), " (size ", size, ")");
  std::string text;
  const auto status = processor_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  TESSERA_CHECK(status.ok(), "decoding with ", file_.string(), " failed: ", status.ToString());
  return text;
}

int SentencePieceModel::vocab_size() const { return processor_->GetPieceSize(); }

std::string SentencePieceModel::piece(std::int32_t id) const {
  TESSERA_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " is outside the vocabulary of ",
                file_.string());
  return processor_->IdToPiece(id);
}

}  // namespace tessera::data
