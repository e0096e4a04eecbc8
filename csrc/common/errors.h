// Error helpers shared by every kernel.
//
// Convention: a problem with the caller's input (wrong shape, dtype,
// degenerate box, ...) throws std::invalid_argument, which pybind11 maps to
// Python's ValueError.  Messages name the offending argument and say what was
// expected and what was received.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace vsum {

// Concatenate anything streamable into one string.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

// Throw std::invalid_argument (-> Python ValueError) with a formatted message.
template <typename... Args>
[[noreturn]] void throw_value_error(const Args&... args) {
  throw std::invalid_argument(str_cat(args...));
}

}  // namespace vsum

// VSUM_CHECK(cond, "part", value, "part", ...): throw ValueError unless cond.
#define VSUM_CHECK(cond, ...)                  \
  do {                                         \
    if (!(cond)) {                             \
      ::vsum::throw_value_error(__VA_ARGS__);  \
    }                                          \
  } while (0)
