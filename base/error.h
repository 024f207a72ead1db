// The framework's one error type and the CHECK macro family.
//
// Every user-visible failure (a shape mismatch, a bad config key, a malformed CSV row, a failed
// CUDA call) becomes an mt::Error carrying the message and the file:line that raised it. The
// checks are always on: they guard public boundaries, where a cheap test beats a crash or
// silently wrong numbers. Kernels and inner loops trust their (already checked) inputs.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace mt {

class Error : public std::runtime_error {
 public:
  Error(const std::string& message, const char* file, int line)
      : std::runtime_error(fmt::format("{} ({}:{})", message, file, line)), message_(message),
        file_(file), line_(line) {}
  // The message without the location suffix, for tests that match on the text.
  const std::string& message() const { return message_; }
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  std::string message_;
  const char* file_;
  int line_;
};

}  // namespace mt

// MT_CHECK(cond, "format {}", args...): throws mt::Error with the formatted message when cond is
// false. The message should say what was expected and what came.
#define MT_CHECK(cond, ...)                                                     \
  do {                                                                          \
    if (!(cond)) {                                                              \
      throw ::mt::Error(::fmt::format(__VA_ARGS__), __FILE__, __LINE__);        \
    }                                                                           \
  } while (0)

// MT_FAIL("format {}", args...): an unconditional error, for unreachable dispatch branches.
#define MT_FAIL(...) throw ::mt::Error(::fmt::format(__VA_ARGS__), __FILE__, __LINE__)

// The short names CHECK and FAIL, for library .cpp and .cu files. Test files are compiled with
// MT_NO_SHORT_CHECK (the Makefile sets it), because there CHECK and FAIL are doctest's. Hence the
// rule: code in headers (inline functions, templates, macros) uses MT_CHECK / MT_FAIL, so that it
// means the same in every translation unit.
#ifndef MT_NO_SHORT_CHECK
#define CHECK(cond, ...) MT_CHECK(cond, __VA_ARGS__)
#define FAIL(...) MT_FAIL(__VA_ARGS__)
#endif
