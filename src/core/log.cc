#include "core/log.h"

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>

#include "core/write_all.h"

namespace tessera {
namespace {
int g_rank = 0;
bool g_all_ranks = false;
LogLevel g_level = LogLevel::info;
std::mutex g_mutex;
const auto g_start = std::chrono::steady_clock::now();

// mpirun's forwarder reads a rank's stderr pipe up to 4 KiB at a time and passes each read on
// whole, so lines written back to back are cut at 4 KiB boundaries and the pieces interleave with
// other ranks' lines (seen: 1 line in 30 broken with 4 ranks logging at once). Waiting (at most
// 50 ms) until the pipe is drained before writing the next line makes every read end at the end
// of a line (of up to 4 KiB).
void wait_until_pipe_drained(int fd) {
  static const bool is_pipe = [fd] {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
  }();
  if (!is_pipe) return;
  for (int i = 0; i < 200; ++i) {
    int queued = 0;
    if (::ioctl(fd, FIONREAD, &queued) != 0 || queued == 0) return;
    ::usleep(250);
  }
}

}  // namespace

void log_set_rank(int rank) { g_rank = rank; }
void log_set_all_ranks(bool all) { g_all_ranks = all; }
void log_set_level(LogLevel level) { g_level = level; }

void write_stderr_line(const std::string& text) {
  std::string line = text;
  line += '\n';
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fflush(stderr);  // anything stdio still holds goes first
  wait_until_pipe_drained(STDERR_FILENO);
  write_all(STDERR_FILENO, line.data(), line.size());  // if stderr is gone, a diagnostic has nowhere to go
}

void log_line(LogLevel level, const std::string& message) {
  if (level < g_level) return;
  if (level <= LogLevel::info && g_rank != 0 && !g_all_ranks) return;
  static const char* names[] = {"debug", "info", "warn", "error"};
  const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
  char prefix[64];
  std::snprintf(prefix, sizeof prefix, "[%8.2fs r%d %s] ", t, g_rank, names[static_cast<int>(level)]);
  write_stderr_line(prefix + message);
}

}  // namespace tessera
