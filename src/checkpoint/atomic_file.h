// Files that appear whole or not at all: bytes go to a temporary name beside the target, are
// flushed to disk (fsync), and only then renamed over the target. A crash at any moment leaves
// either the old file, the new file, or a stray temporary - never a half-written target.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>

namespace tessera::checkpoint {

class AtomicFile {
 public:
  // Opens "<target>.tmp-<pid>" for writing; throws naming the file when that fails.
  explicit AtomicFile(std::filesystem::path target);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  // Without commit() the temporary is removed and the target is untouched.
  ~AtomicFile();

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // fsync, rename onto the target, fsync the directory so the rename itself is durable.
  void commit();

 private:
  std::filesystem::path target_, temp_;
  int fd_ = -1;
};

// Writes `text` to `target` through an AtomicFile.
void write_file_atomically(const std::filesystem::path& target, std::string_view text);

// Directories that appear whole: `staging`, complete, takes the name `dir`. When `dir` exists the
// two are exchanged in one atomic step (renameat2 RENAME_EXCHANGE) and the old one, now under the
// staging name, is removed: whatever names `dir` sees a complete directory at every instant. File
// systems without RENAME_EXCHANGE get two renames through "<dir>.replaced".
inline constexpr const char* kReplacedDirectorySuffix = ".replaced";
void install_directory(const std::filesystem::path& staging, const std::filesystem::path& dir);

// Makes a finished rename or removal in `dir` durable.
void sync_directory(const std::filesystem::path& dir);

}  // namespace tessera::checkpoint
