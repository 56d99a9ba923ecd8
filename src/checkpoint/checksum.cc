#include "checkpoint/checksum.h"

#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"

namespace tessera::checkpoint {

namespace {

std::string hex64(XXH64_hash_t h) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

}  // namespace

std::string checksum(const void* data, size_t bytes) { return hex64(XXH3_64bits(data, bytes)); }

ChecksumStream::ChecksumStream() : state_(XXH3_createState()) {
  TESSERA_CHECK(state_ != nullptr, "out of memory for a checksum state");
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}

ChecksumStream::~ChecksumStream() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void ChecksumStream::update(const void* data, size_t bytes) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, bytes);
}

std::string ChecksumStream::hex() const { return hex64(XXH3_64bits_digest(static_cast<XXH3_state_t*>(state_))); }

FileChecksum checksum_file(const std::filesystem::path& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  TESSERA_CHECK(file != nullptr, "cannot open ", path, ": ", std::strerror(errno));
  ChecksumStream sum;
  FileChecksum result;
  std::vector<char> block(size_t{8} << 20);
  for (;;) {
    const size_t n = std::fread(block.data(), 1, block.size(), file.get());
    sum.update(block.data(), n);
    result.bytes += n;
    if (n < block.size()) break;
  }
  TESSERA_CHECK(!std::ferror(file.get()), "cannot read ", path, ": ", std::strerror(errno));
  result.xxh3 = sum.hex();
  return result;
}

}  // namespace tessera::checkpoint
