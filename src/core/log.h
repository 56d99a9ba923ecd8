// Logging: one line per event, prefixed by time and rank, to stderr. Only rank 0 logs `info` by
// default; warnings and errors come from every rank. Each line is one write(2).
#pragma once

#include <string>

#include "core/error.h"

namespace tessera {

enum class LogLevel { debug, info, warn, error };

void log_set_rank(int rank);
// Info and debug lines come from rank 0 only unless every rank is asked to log (--log-ranks all).
void log_set_all_ranks(bool all);
void log_set_level(LogLevel level);
void log_line(LogLevel level, const std::string& message);

// Writes `text` and a newline to stderr in one write(2), so lines from the ranks of a job (which
// mpirun merges) never interleave mid-line; every message to stderr goes through here.
void write_stderr_line(const std::string& text);

}  // namespace tessera

#define TESSERA_LOG_INFO(...) ::tessera::log_line(::tessera::LogLevel::info, ::tessera::detail::concat(__VA_ARGS__))
#define TESSERA_LOG_WARN(...) ::tessera::log_line(::tessera::LogLevel::warn, ::tessera::detail::concat(__VA_ARGS__))
#define TESSERA_LOG_DEBUG(...) ::tessera::log_line(::tessera::LogLevel::debug, ::tessera::detail::concat(__VA_ARGS__))
