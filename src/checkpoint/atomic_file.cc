#include "checkpoint/atomic_file.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/write_all.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

AtomicFile::AtomicFile(std::filesystem::path target)
    : target_(std::move(target)), temp_(target_.string() + ".tmp-" + std::to_string(::getpid())) {
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  TESSERA_CHECK(fd_ >= 0, "cannot create ", temp_, ": ", std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ < 0) return;
  ::close(fd_);
  std::error_code ignored;
  std::filesystem::remove(temp_, ignored);
}

void AtomicFile::write(const void* data, size_t bytes) {
  const int err = write_all(fd_, data, bytes);
  TESSERA_CHECK(err == 0, "cannot write ", temp_, ": ", std::strerror(err));
}

void AtomicFile::commit() {
  TESSERA_CHECK(::fsync(fd_) == 0, "cannot fsync ", temp_, ": ", std::strerror(errno));
  TESSERA_CHECK(::close(fd_) == 0, "cannot close ", temp_, ": ", std::strerror(errno));
  fd_ = -1;
  std::error_code ec;
  std::filesystem::rename(temp_, target_, ec);
  if (ec) {
    std::filesystem::remove(temp_, ec);
    TESSERA_FAIL("cannot rename ", temp_, " to ", target_, ": ", ec.message());
  }
  sync_directory(target_.has_parent_path() ? target_.parent_path() : std::filesystem::path("."));
}

void write_file_atomically(const std::filesystem::path& target, std::string_view text) {
  AtomicFile f(target);
  f.write(text);
  f.commit();
}

// Moves the finished staging directory to `dir`. When `dir` exists (the step is saved again) the
// two are exchanged in one atomic step and the old one, now under the staging name, is removed:
// whatever names `dir` (as `latest` may) sees a complete checkpoint at every instant. File systems
// without RENAME_EXCHANGE get two renames, with the old checkpoint kept until the new one is in.
void install_directory(const fs::path& staging, const fs::path& dir) {
  const fs::path root = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::exists(dir)) {
    fs::rename(staging, dir, ec);
    TESSERA_CHECK(!ec, "cannot rename ", staging, " to ", dir, ": ", ec.message());
  } else if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
    sync_directory(root);
    fs::remove_all(staging, ec);
  } else {
    TESSERA_CHECK(errno == EINVAL || errno == ENOSYS, "cannot exchange ", staging, " with ", dir, ": ",
                  std::strerror(errno));
    const fs::path replaced = dir.string() + kReplacedDirectorySuffix;
    fs::rename(dir, replaced, ec);
    TESSERA_CHECK(!ec, "cannot rename ", dir, " to ", replaced, ": ", ec.message());
    fs::rename(staging, dir, ec);
    TESSERA_CHECK(!ec, "cannot rename ", staging, " to ", dir, ": ", ec.message());
    sync_directory(root);
    fs::remove_all(replaced, ec);
  }
  sync_directory(root);
}

void sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  TESSERA_CHECK(fd >= 0, "cannot open directory ", dir, ": ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems (e.g. certain network mounts) refuse fsync on directories; the data itself
  // is already durable, so only real I/O errors count.
  TESSERA_CHECK(rc == 0 || err == EINVAL || err == ENOTSUP, "cannot fsync directory ", dir, ": ", std::strerror(err));
}

}  // namespace tessera::checkpoint
