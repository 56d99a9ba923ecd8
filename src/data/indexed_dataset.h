// An indexed binary dataset of token sequences, read through mmap without parsing.
//
// A dataset with prefix P is two files:
//   P.bin  all token ids back to back, int32 little endian
//   P.idx  header, then count + 1 offsets (uint64 LE, in tokens): sequence i is
//          tokens [offsets[i], offsets[i+1]) of P.bin
// The header is 32 bytes: magic "TSRIDX\0\0", uint32 version (1), uint32 bytes per token (4),
// uint64 sequence count, uint64 total token count. The writer writes both files under
// temporary names and renames them into place only in finish(), the index last, so a crash
// never leaves a half-written dataset under the final name.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <vector>

namespace tessera::data {

// The reader hands out views straight into the mapped little-endian file.
static_assert(std::endian::native == std::endian::little,
              "the indexed dataset format is little endian and is read in place");

inline constexpr char kIndexMagic[8] = {'T', 'S', 'R', 'I', 'D', 'X', '\0', '\0'};
inline constexpr std::uint32_t kIndexVersion = 1;
inline constexpr std::size_t kIndexHeaderBytes = 32;

std::filesystem::path data_file(const std::filesystem::path& prefix);   // P.bin
std::filesystem::path index_file(const std::filesystem::path& prefix);  // P.idx

class IndexedDatasetWriter {
 public:
  explicit IndexedDatasetWriter(std::filesystem::path prefix);
  // Removes the temporary files when finish() was never reached (an exception unwound us).
  ~IndexedDatasetWriter();
  IndexedDatasetWriter(const IndexedDatasetWriter&) = delete;
  IndexedDatasetWriter& operator=(const IndexedDatasetWriter&) = delete;

  void add(std::span<const std::int32_t> tokens);
  // Flushes, syncs and renames P.bin.tmp -> P.bin, then P.idx.tmp -> P.idx.
  void finish();
  std::size_t size() const { return offsets_.size() - 1; }

 private:
  std::filesystem::path prefix_;
  std::FILE* data_ = nullptr;
  std::vector<std::uint64_t> offsets_{0};
  bool finished_ = false;
};

class IndexedDataset {
 public:
  // Maps P.bin and P.idx and validates magic, version, token width, file sizes and offsets;
  // every error names the file at fault.
  explicit IndexedDataset(const std::filesystem::path& prefix);
  ~IndexedDataset();
  IndexedDataset(IndexedDataset&&) noexcept;
  IndexedDataset& operator=(IndexedDataset&&) noexcept;
  IndexedDataset(const IndexedDataset&) = delete;
  IndexedDataset& operator=(const IndexedDataset&) = delete;

  std::size_t size() const { return count_; }
  std::size_t num_tokens() const { return offsets_[count_]; }
  std::size_t length(std::size_t i) const { return offsets_[i + 1] - offsets_[i]; }
  // Sequence i (bounds-checked); the view lives as long as the dataset.
  std::span<const std::int32_t> operator[](std::size_t i) const;
  // Throws, naming the file, the sequence, the position and the id, unless every token id is in
  // [0, vocab_size): a dataset prepared with another vocabulary must not train silently.
  void check_token_ids(std::int64_t vocab_size) const;

 private:
  struct Mapping {
    void* address = nullptr;
    std::size_t bytes = 0;
  };
  static void unmap(Mapping& m);

  std::filesystem::path prefix_;
  Mapping index_map_;
  Mapping data_map_;
  std::size_t count_ = 0;
  const std::uint64_t* offsets_ = nullptr;
  const std::int32_t* tokens_ = nullptr;
};

// Source and target datasets of one split; sequence i of each are a translation pair.
struct ParallelDataset {
  // Opens prefix.src and prefix.tgt (e.g. "out/train" -> out/train.src.{bin,idx} and
  // out/train.tgt.{bin,idx}) and checks that both hold the same number of sequences.
  explicit ParallelDataset(const std::filesystem::path& prefix);
  std::size_t size() const { return source.size(); }
  void check_token_ids(std::int64_t vocab_size) const {
    source.check_token_ids(vocab_size);
    target.check_token_ids(vocab_size);
  }

  IndexedDataset source;
  IndexedDataset target;
};

std::filesystem::path source_prefix(const std::filesystem::path& prefix);  // prefix.src
std::filesystem::path target_prefix(const std::filesystem::path& prefix);  // prefix.tgt

}  // namespace tessera::data
