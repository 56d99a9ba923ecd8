// For tests that write files and check error messages: a scratch directory per test, and the
// message of the tessera::Error a call throws.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "core/error.h"
#include "test_seed.h"

namespace tessera::testing {

// A fresh directory under the system temp dir, removed when the test ends.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "tessera-test-")
      : path_(std::filesystem::temp_directory_path() / (prefix + std::to_string(rng()()))) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The message of the tessera::Error that `f` throws ("" when it throws none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace tessera::testing
