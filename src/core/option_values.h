// Boost.Program_options values that read and print exactly: defaults shown as the shortest text
// that reads back as the same number (0.6, never 0.59999999999999998), and unsigned options that
// refuse a negative number instead of wrapping it (Boost reads "-1" as 2^64 - 1).
#pragma once

#include <boost/program_options.hpp>

#include <charconv>
#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace tessera {

// The shortest text that reads back as exactly `v` (std::to_chars), so --help defaults and
// --dump-config say 0.6, not 0.59999999999999998, and lose no digits.
template <typename T>
inline std::string exact_text(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
  } else if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else {
    std::ostringstream os;
    os << v;
    return os.str();
  }
}

// An option bound to `field` whose default is the field's current value, shown exactly. A bool
// given alone on the command line (--shard-optimizer) means true; --flag=false turns it off.
template <typename T>
inline boost::program_options::typed_value<T>* bound(T& field) {
  auto* value = boost::program_options::value(&field)->default_value(field, exact_text(field));
  if constexpr (std::is_same_v<T, bool>) value->implicit_value(true, "true");
  return value;
}

// An unsigned 64-bit option (a seed) named `name`: digits only, 0 to 2^64 - 1.
inline boost::program_options::typed_value<std::string>* unsigned_option(const char* name, uint64_t& field) {
  auto* value = boost::program_options::value<std::string>()->default_value(exact_text(field));
  return value->notifier([name, &field](const std::string& text) {
    uint64_t v = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    TESSERA_CHECK(r.ec == std::errc() && r.ptr == text.data() + text.size() && !text.empty(), name, ": '", text,
                  "' is not a number from 0 to 18446744073709551615");
    field = v;
  });
}

}  // namespace tessera
