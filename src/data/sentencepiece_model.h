// The joint German+English SentencePiece vocabulary: training it, and a small encode/decode
// wrapper around sentencepiece::SentencePieceProcessor.
//
// Special ids are fixed so that every part of Tessera can rely on them:
//   0 <pad>  padding — batches are padded with id 0 and attention masks treat 0 as "no token"
//   1 <unk>  unknown piece
//   2 <s>    beginning of sentence (decoder input starts with it)
//   3 </s>   end of sentence
// encode() returns the pieces of the text only; adding <s> and </s> is the batcher's job.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace tessera::data {

inline constexpr std::int32_t kPadId = 0;
inline constexpr std::int32_t kUnkId = 1;
inline constexpr std::int32_t kBosId = 2;
inline constexpr std::int32_t kEosId = 3;

struct SentencePieceOptions {
  int vocab_size = 8000;
  std::string model_type = "unigram";     // or "bpe"
  double character_coverage = 0.9999;     // rarer characters map to <unk>
  std::size_t input_sentence_size = 1'000'000;  // sentences sampled for training (0: all)
  int num_threads = 2;
  std::uint32_t seed = 1;  // seeds SentencePiece's sampling: same input + seed = same model
};

// Trains a model on `sentences` (pass both sides of the training corpus for a joint
// vocabulary) and writes it to `model_file` (via a temporary file and a rename). Throws
// tessera::Error with SentencePiece's message when training fails.
void train_sentencepiece(const std::vector<std::string>& sentences,
                         const std::filesystem::path& model_file,
                         const SentencePieceOptions& options);

class SentencePieceModel {
 public:
  // Loads a model file written by train_sentencepiece (or any SentencePiece model whose
  // special ids match the ones above; others are refused with an error naming the file).
  explicit SentencePieceModel(const std::filesystem::path& model_file);
  ~SentencePieceModel();
  SentencePieceModel(SentencePieceModel&&) noexcept;
  SentencePieceModel& operator=(SentencePieceModel&&) noexcept;

  std::vector<std::int32_t> encode(std::string_view text) const;
  std::string decode(std::span<const std::int32_t> ids) const;
  std::vector<std::string> encode_pieces(std::string_view text) const;

  int vocab_size() const;
  std::string piece(std::int32_t id) const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::filesystem::path file_;
};

}  // namespace tessera::data
