// Error reporting with context: every failure names the thing at fault
// (file, option, rank, tensor) and where in the source it was detected.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace tessera {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
[[noreturn]] inline void throw_error(const char* file, int line, const std::string& msg) {
  std::ostringstream os;
  os << msg << " [" << file << ":" << line << "]";
  throw Error(os.str());
}
// Streams any number of values into one string.
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace tessera

// TESSERA_CHECK(cond, "tensor ", name, " has shape ", shape) throws tessera::Error with the
// message, the failed condition and the source location.
#define TESSERA_CHECK(cond, ...)                                                      \
  do {                                                                                \
    if (!(cond))                                                                      \
      ::tessera::detail::throw_error(__FILE__, __LINE__,                              \
                                     ::tessera::detail::concat(__VA_ARGS__));         \
  } while (0)

#define TESSERA_FAIL(...) \
  ::tessera::detail::throw_error(__FILE__, __LINE__, ::tessera::detail::concat(__VA_ARGS__))
