#include "training/cli.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace mt::training {

std::string next_flag_value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) {
    throw UsageError(
        Error(fmt::format("{} needs a value (see --help)", argv[i]), __FILE__, __LINE__));
  }
  return argv[++i];
}

int64_t parse_int_flag(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    const long long x = std::stoll(value, &used);
    if (used == value.size()) return x;
  } catch (const std::exception&) {  // std::stoll's invalid_argument and out_of_range
  }
  throw UsageError(
      Error(fmt::format("{}: expected an integer, got '{}'", flag, value), __FILE__, __LINE__));
}

int run_app(const char* app, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: error: %s\n", app, e.message().c_str());
    return kExitUsage;
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", app, e.message().c_str());
    return kExitFailure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", app, e.what());
    return kExitFailure;
  }
}

}  // namespace mt::training
