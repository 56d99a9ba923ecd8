// The files a training run writes outside its checkpoints, and the one run that owns them:
// output directories checked at start-up, an exclusive lock per directory, and learning curves
// whose every line is checked (a full disk is an error naming the file, not a curve cut mid-line).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <iomanip>
#include <sstream>
#include <string>

#include "core/owned_fd.h"

namespace tessera::train {

// Creates `dir` and writes, syncs and removes a probe file in it, so a read-only, full or
// file-shaped --out-dir / --save-dir fails at start-up instead of after the run. `option` names
// the option in the error.
void prepare_writable_directory(const std::filesystem::path& dir, const std::string& option);

// An exclusive claim on a directory: flock(2) on <dir>/.tessera.lock, which holds "host pid" of
// the owner. A second run on the same directory fails at start-up naming the first one's host and
// pid. The kernel drops the lock when its holder exits, however it exits (SIGKILL included), so a
// crashed run never blocks the next one.
class DirectoryLock {
 public:
  DirectoryLock() = default;
  DirectoryLock(const std::filesystem::path& dir, const std::string& option);

 private:
  OwnedFd fd_;  // closing the lock file releases the flock
};

// A row of a learning curve: tab-separated values at full precision (17 significant digits, so
// doubles round-trip and runs can be compared exactly).
template <typename... T>
std::string full_precision_row(const T&... values) {
  std::ostringstream os;
  os << std::setprecision(17);
  const char* sep = "";
  ((os << sep << values, sep = "\t"), ...);
  return os.str();
}

// A tab-separated learning curve (train.tsv, valid.tsv) whose first column is the step.
class CurveFile {
 public:
  CurveFile() = default;
  // A fresh run (resume_step 0) starts the file anew with `header`. A run resumed at step N keeps
  // the header and the rows of steps <= N and drops later ones (the interrupted run's rows after
  // its checkpoint are being redone), then appends. The kept part is written to a temporary file
  // and renamed into place, so a crash here loses nothing.
  CurveFile(const std::filesystem::path& path, const std::string& header, int64_t resume_step);

  // One JSON object per line (metrics.jsonl), no header. Resumed at step N it keeps the records
  // whose "step" is <= N and those without a step, and drops lines that do not parse.
  static CurveFile json_lines(const std::filesystem::path& path, int64_t resume_step);

  bool is_open() const { return fd_.valid(); }
  // Appends `line` and a newline in one write(2); throws naming the file when it fails.
  void append(const std::string& line);

 private:
  // Keeps `header_lines`, then (resuming) the old file's lines past its header whose step_of() is
  // a step <= resume_step.
  CurveFile(const std::filesystem::path& path, const std::string& header_lines, int64_t resume_step,
            const std::function<std::optional<int64_t>(const std::string&)>& step_of);

  std::filesystem::path path_;
  OwnedFd fd_;
};

}  // namespace tessera::train
