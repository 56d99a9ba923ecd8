#include "data/indexed_dataset.h"

#include <algorithm>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace tessera::data {

namespace {

std::filesystem::path with_suffix(const std::filesystem::path& p, const char* suffix) {
  return p.string() + suffix;
}

void write_all(std::FILE* f, const void* bytes, std::size_t n, const std::filesystem::path& path) {
  if (n == 0) return;  // an empty sequence may come with a null data pointer
  TESSERA_CHECK(std::fwrite(bytes, 1, n, f) == n, "error while writing ", path.string(), ": ",
                std::strerror(errno));
}

// Flushes the C buffer and asks the kernel to put the bytes on disk before we rename.
void flush_and_close(std::FILE* f, const std::filesystem::path& path) {
  const bool ok = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  TESSERA_CHECK(ok && closed, "error while writing ", path.string(), ": ", std::strerror(err));
}

}  // namespace

std::filesystem::path data_file(const std::filesystem::path& prefix) {
  return with_suffix(prefix, ".bin");
}
std::filesystem::path index_file(const std::filesystem::path& prefix) {
  return with_suffix(prefix, ".idx");
}
std::filesystem::path source_prefix(const std::filesystem::path& prefix) {
  return with_suffix(prefix, ".src");
}
std::filesystem::path target_prefix(const std::filesystem::path& prefix) {
  return with_suffix(prefix, ".tgt");
}

// --- writer ---------------------------------------------------------------------------------

IndexedDatasetWriter::IndexedDatasetWriter(std::filesystem::path prefix)
    : prefix_(std::move(prefix)) {
  const auto tmp = with_suffix(data_file(prefix_), ".tmp");
  data_ = std::fopen(tmp.c_str(), "wb");
  TESSERA_CHECK(data_ != nullptr, "cannot create ", tmp.string(), ": ", std::strerror(errno));
}

IndexedDatasetWriter::~IndexedDatasetWriter() {
  if (finished_) return;
  if (data_ != nullptr) std::fclose(data_);
  std::error_code ignored;
  std::filesystem::remove(with_suffix(data_file(prefix_), ".tmp"), ignored);
  std::filesystem::remove(with_suffix(index_file(prefix_), ".tmp"), ignored);
}

void IndexedDatasetWriter::add(std::span<const std::int32_t> tokens) {
  TESSERA_CHECK(!finished_, "dataset ", prefix_.string(), " was already finished");
  write_all(data_, tokens.data(), tokens.size_bytes(), with_suffix(data_file(prefix_), ".tmp"));
  offsets_.push_back(offsets_.back() + tokens.size());
}

void IndexedDatasetWriter::finish() {
  TESSERA_CHECK(!finished_, "dataset ", prefix_.string(), " was already finished");
  const auto data_tmp = with_suffix(data_file(prefix_), ".tmp");
  const auto index_tmp = with_suffix(index_file(prefix_), ".tmp");
  flush_and_close(data_, data_tmp);
  data_ = nullptr;

  std::FILE* index = std::fopen(index_tmp.c_str(), "wb");
  TESSERA_CHECK(index != nullptr, "cannot create ", index_tmp.string(), ": ", std::strerror(errno));
  const std::uint32_t version = kIndexVersion;
  const std::uint32_t token_bytes = sizeof(std::int32_t);
  const std::uint64_t count = size();
  const std::uint64_t total = offsets_.back();
  write_all(index, kIndexMagic, sizeof(kIndexMagic), index_tmp);
  write_all(index, &version, sizeof(version), index_tmp);
  write_all(index, &token_bytes, sizeof(token_bytes), index_tmp);
  write_all(index, &count, sizeof(count), index_tmp);
  write_all(index, &total, sizeof(total), index_tmp);
  write_all(index, offsets_.data(), offsets_.size() * sizeof(std::uint64_t), index_tmp);
  flush_and_close(index, index_tmp);

  // The index is renamed last: a reader that finds P.idx also finds the matching P.bin.
  std::filesystem::rename(data_tmp, data_file(prefix_));
  std::filesystem::rename(index_tmp, index_file(prefix_));
  finished_ = true;
}

// --- reader ---------------------------------------------------------------------------------

namespace {

// Maps a whole file read-only; an empty file gives an empty mapping.
void map_file(const std::filesystem::path& path, void*& address, std::size_t& bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  TESSERA_CHECK(fd >= 0, "cannot open ", path.string(), ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    TESSERA_FAIL("cannot stat ", path.string(), ": ", std::strerror(err));
  }
  bytes = static_cast<std::size_t>(st.st_size);
  address = nullptr;
  if (bytes > 0) {
    void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);
    TESSERA_CHECK(p != MAP_FAILED, "cannot mmap ", path.string(), ": ", std::strerror(err));
    address = p;
  } else {
    ::close(fd);
  }
}

}  // namespace

void IndexedDataset::unmap(Mapping& m) {
  if (m.address != nullptr) ::munmap(m.address, m.bytes);
  m = {};
}

IndexedDataset::IndexedDataset(const std::filesystem::path& prefix) : prefix_(prefix) {
  const auto idx_path = index_file(prefix);
  const auto bin_path = data_file(prefix);
  try {
    map_file(idx_path, index_map_.address, index_map_.bytes);
    const auto* bytes = static_cast<const unsigned char*>(index_map_.address);
    TESSERA_CHECK(index_map_.bytes >= kIndexHeaderBytes, "index file ", idx_path.string(),
                  " is truncated: ", index_map_.bytes, " bytes, smaller than its ",
                  kIndexHeaderBytes, "-byte header");
    TESSERA_CHECK(std::memcmp(bytes, kIndexMagic, sizeof(kIndexMagic)) == 0, "index file ",
                  idx_path.string(), " is not a Tessera indexed dataset (bad magic)");
    std::uint32_t version, token_bytes;
    std::uint64_t count, total;
    std::memcpy(&version, bytes + 8, 4);
    std::memcpy(&token_bytes, bytes + 12, 4);
    std::memcpy(&count, bytes + 16, 8);
    std::memcpy(&total, bytes + 24, 8);
    TESSERA_CHECK(version == kIndexVersion, "index file ", idx_path.string(), " has version ",
                  version, "; this build reads version ", kIndexVersion);
    TESSERA_CHECK(token_bytes == sizeof(std::int32_t), "index file ", idx_path.string(),
                  " declares ", token_bytes, "-byte tokens; expected 4 (int32)");
    // Compare in a way that cannot overflow for a corrupted, huge count.
    const std::uint64_t offset_bytes = index_map_.bytes - kIndexHeaderBytes;
    TESSERA_CHECK(count < offset_bytes / 8 + 1 && offset_bytes == (count + 1) * 8, "index file ",
                  idx_path.string(), " is truncated or corrupt: its header declares ", count,
                  " sequences, which needs ", kIndexHeaderBytes, " + 8 * (", count,
                  " + 1) bytes, but the file has ", index_map_.bytes, " bytes");
    count_ = count;
    offsets_ = reinterpret_cast<const std::uint64_t*>(bytes + kIndexHeaderBytes);
    TESSERA_CHECK(offsets_[0] == 0 && offsets_[count_] == total, "index file ",
                  idx_path.string(), " is corrupt: offsets run from ", offsets_[0], " to ",
                  offsets_[count_], " but the header declares ", total, " tokens");
    for (std::size_t i = 0; i < count_; ++i)
      TESSERA_CHECK(offsets_[i] <= offsets_[i + 1], "index file ", idx_path.string(),
                    " is corrupt: offsets decrease at sequence ", i);

    map_file(bin_path, data_map_.address, data_map_.bytes);
    TESSERA_CHECK(data_map_.bytes == total * sizeof(std::int32_t), "data file ",
                  bin_path.string(), " has ", data_map_.bytes, " bytes but its index ",
                  idx_path.string(), " declares ", total, " tokens (",
                  total * sizeof(std::int32_t), " bytes): truncated or from another dataset");
    tokens_ = static_cast<const std::int32_t*>(data_map_.address);
  } catch (...) {
    unmap(index_map_);
    unmap(data_map_);
    throw;
  }
}

IndexedDataset::~IndexedDataset() {
  unmap(index_map_);
  unmap(data_map_);
}

IndexedDataset::IndexedDataset(IndexedDataset&& other) noexcept
    : prefix_(std::move(other.prefix_)),
      index_map_(std::exchange(other.index_map_, {})),
      data_map_(std::exchange(other.data_map_, {})),
      count_(std::exchange(other.count_, 0)),
      offsets_(std::exchange(other.offsets_, nullptr)),
      tokens_(std::exchange(other.tokens_, nullptr)) {}

IndexedDataset& IndexedDataset::operator=(IndexedDataset&& other) noexcept {
  if (this != &other) {
    unmap(index_map_);
    unmap(data_map_);
    prefix_ = std::move(other.prefix_);
    index_map_ = std::exchange(other.index_map_, {});
    data_map_ = std::exchange(other.data_map_, {});
    count_ = std::exchange(other.count_, 0);
    offsets_ = std::exchange(other.offsets_, nullptr);
    tokens_ = std::exchange(other.tokens_, nullptr);
  }
  return *this;
}

std::span<const std::int32_t> IndexedDataset::operator[](std::size_t i) const {
  TESSERA_CHECK(i < count_, "sequence ", i, " is out of range for dataset ", prefix_.string(),
                " with ", count_, " sequences");
  return {tokens_ + offsets_[i], static_cast<std::size_t>(offsets_[i + 1] - offsets_[i])};
}

void IndexedDataset::check_token_ids(std::int64_t vocab_size) const {
  const std::size_t n = num_tokens();
  for (std::size_t t = 0; t < n; ++t) {
    if (tokens_[t] >= 0 && tokens_[t] < vocab_size) continue;
    // The offsets are sorted: the sequence holding token t is the last one starting at or before it.
    const std::size_t seq = static_cast<std::size_t>(std::upper_bound(offsets_, offsets_ + count_ + 1, t) - offsets_) - 1;
    TESSERA_FAIL("dataset ", data_file(prefix_).string(), ": sequence ", seq, " holds token id ", tokens_[t],
                 " at position ", t - offsets_[seq], ", outside the vocabulary [0, ", vocab_size,
                 ") (--vocab-size); was it prepared with another SentencePiece model?");
  }
}

ParallelDataset::ParallelDataset(const std::filesystem::path& prefix)
    : source(source_prefix(prefix)), target(target_prefix(prefix)) {
  TESSERA_CHECK(source.size() == target.size(), "parallel dataset ", prefix.string(),
                ": source ", index_file(source_prefix(prefix)).string(), " has ", source.size(),
                " sequences but target ", index_file(target_prefix(prefix)).string(), " has ",
                target.size());
}

}  // namespace tessera::data
