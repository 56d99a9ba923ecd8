#include "train/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "checkpoint/atomic_file.h"
#include "core/error.h"
#include "core/write_all.h"

namespace tessera::train {
namespace fs = std::filesystem;

namespace {

// Writes all of `text` to fd; throws naming `path`.
void write_text(int fd, const std::string& text, const fs::path& path) {
  const int err = write_all(fd, text.data(), text.size());
  TESSERA_CHECK(err == 0, "cannot write ", path.string(), ": ", std::strerror(err));
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown-host";
  return name;
}

}  // namespace

void prepare_writable_directory(const fs::path& dir, const std::string& option) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  TESSERA_CHECK(!ec, option, ": cannot create directory '", dir.string(), "': ", ec.message());
  TESSERA_CHECK(fs::is_directory(dir), option, ": '", dir.string(), "' exists and is not a directory");
  const fs::path probe = dir / (".tessera-write-test-" + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  TESSERA_CHECK(fd >= 0, option, ": cannot write in '", dir.string(), "': ", std::strerror(errno));
  std::string error;
  try {
    write_text(fd, "tessera write test\n", probe);
    if (::fsync(fd) != 0) error = std::strerror(errno);
  } catch (const Error& e) {
    error = e.what();
  }
  ::close(fd);
  fs::remove(probe, ec);
  TESSERA_CHECK(error.empty(), option, ": cannot write in '", dir.string(), "': ", error);
}

DirectoryLock::DirectoryLock(const fs::path& dir, const std::string& option) {
  const fs::path path = dir / ".tessera.lock";
  fd_ = OwnedFd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  TESSERA_CHECK(fd_.valid(), option, ": cannot open lock file ", path.string(), ": ", std::strerror(errno));
  if (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::ifstream in(path);
    std::string holder;
    std::getline(in, holder);
    fd_.reset();
    TESSERA_CHECK(err != EWOULDBLOCK, option, ": '", dir.string(), "' is in use by another run (",
                  holder.empty() ? std::string("holder unknown") : holder,
                  " holds ", path.string(), "); wait for it, stop it, or choose another ", option);
    TESSERA_FAIL(option, ": cannot lock ", path.string(), ": ", std::strerror(err));
  }
  const std::string owner = "host " + host_name() + " pid " + std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_.get(), 0) == 0) write_text(fd_.get(), owner, path);
}

CurveFile::CurveFile(const fs::path& path, const std::string& header, int64_t resume_step)
    : CurveFile(path, header + "\n", resume_step, [&header](const std::string& line) -> std::optional<int64_t> {
        // Rows start with their step; a row cut short (a crash mid-write) has fewer columns: dropped.
        const auto columns = [](const std::string& s) { return std::count(s.begin(), s.end(), '\t'); };
        std::istringstream row(line);
        int64_t step = 0;
        if (!(row >> step) || columns(line) != columns(header)) return std::nullopt;
        return step;
      }) {}

CurveFile CurveFile::json_lines(const fs::path& path, int64_t resume_step) {
  return CurveFile(path, "", resume_step, [](const std::string& line) -> std::optional<int64_t> {
    // A record cut short does not parse: dropped. Records without a step belong to no step: kept.
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object()) return std::nullopt;
    const auto step = record.find("step");
    return step != record.end() && step->is_number_integer() ? step->get<int64_t>() : 0;
  });
}

CurveFile::CurveFile(const fs::path& path, const std::string& header_lines, int64_t resume_step,
                     const std::function<std::optional<int64_t>(const std::string&)>& step_of)
    : path_(path) {
  std::string kept = header_lines;
  if (resume_step > 0 && fs::exists(path)) {
    std::ifstream in(path);
    TESSERA_CHECK(in.good(), "cannot read ", path.string(), " to continue its learning curve");
    std::string line;
    if (!header_lines.empty()) std::getline(in, line);  // the old header
    while (std::getline(in, line)) {
      const std::optional<int64_t> step = step_of(line);
      if (step && *step <= resume_step) kept += line + "\n";
    }
  }
  checkpoint::write_file_atomically(path, kept);
  fd_ = OwnedFd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  TESSERA_CHECK(fd_.valid(), "cannot open ", path.string(), ": ", std::strerror(errno));
}

void CurveFile::append(const std::string& line) { write_text(fd_.get(), line + "\n", path_); }

}  // namespace tessera::train
