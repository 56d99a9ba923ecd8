#include "core/log.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <mutex>

namespace tessera {
namespace {
int g_rank = 0;
LogLevel g_level = LogLevel::info;
std::mutex g_mutex;
const auto g_start = std::chrono::steady_clock::now();
}  // namespace

void log_set_rank(int rank) { g_rank = rank; }
void log_set_level(LogLevel level) { g_level = level; }

void write_stderr_line(const std::string& text) {
  std::string line = text;
  line += '\n';
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fflush(stderr);  // anything stdio still holds goes first
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr is gone; nothing better to do with a diagnostic
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void log_line(LogLevel level, const std::string& message) {
  if (level < g_level) return;
  if (level <= LogLevel::info && g_rank != 0) return;
  static const char* names[] = {"debug", "info", "warn", "error"};
  const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
  char prefix[64];
  std::snprintf(prefix, sizeof prefix, "[%8.2fs r%d %s] ", t, g_rank, names[static_cast<int>(level)]);
  write_stderr_line(prefix + message);
}

}  // namespace tessera
