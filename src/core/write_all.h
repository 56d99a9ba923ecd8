// write(2) until every byte is out: retries short writes and EINTR. Returns 0, or the errno of the
// write that failed (EIO when a write wrote nothing without an error). Callers name the file.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace tessera {

inline int write_all(int fd, const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    p += n;
    bytes -= static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace tessera
