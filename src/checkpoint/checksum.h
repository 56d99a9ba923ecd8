// Checksums of checkpoint bytes: XXH3-64 (libxxhash), written as 16 lower-case hex digits.
// XXH3 hashes at memory speed, so verifying a shard costs little next to reading it, and any
// single flipped bit changes the value (a collision is a 2^-64 event, not a pattern).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace tessera::checkpoint {

// The checksum of `bytes` bytes at `data`, as 16 hex digits.
std::string checksum(const void* data, size_t bytes);

// A checksum over bytes that arrive in pieces (equal to checksum() of their concatenation).
class ChecksumStream {
 public:
  ChecksumStream();
  ~ChecksumStream();
  ChecksumStream(const ChecksumStream&) = delete;
  ChecksumStream& operator=(const ChecksumStream&) = delete;

  void update(const void* data, size_t bytes);
  std::string hex() const;

 private:
  void* state_;  // XXH3_state_t, kept opaque so that users need not include xxhash.h
};

// The checksum and length of a whole file, read in large blocks; throws naming the file.
struct FileChecksum {
  uint64_t bytes = 0;
  std::string xxh3;
};
FileChecksum checksum_file(const std::filesystem::path& path);

}  // namespace tessera::checkpoint
