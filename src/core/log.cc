#include "core/log.h"

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

void log_line(LogLevel level, const std::string& message) {
  if (level < g_level) return;
  if (level <= LogLevel::info && g_rank != 0) return;
  static const char* names[] = {"debug", "info", "warn", "error"};
  const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "[%8.2fs r%d %s] %s\n", t, g_rank, names[static_cast<int>(level)], message.c_str());
  std::fflush(stderr);
}

}  // namespace tessera
