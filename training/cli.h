// What every app (apps/*.cpp) shares on its command line: the exit codes, the error line and
// the parsing of flag values.
//
// Exit codes, the same for prepare, train, evaluate, forecast and the benchmarks:
//   0    success; a training run stopped by trainer.max_steps, as it was asked to, included
//   1    a failure at run time: a missing or corrupt file, a CSV row that does not parse, no GPU
//        for device cuda, a run stopped by non-finite losses
//   2    usage: an unknown flag, a malformed flag value, a config key or value the schema
//        rejects (the same command fails the same way on any machine)
//   130  interrupted: Ctrl-C or SIGTERM stopped it (train saves its last checkpoint first)
// An error is printed once, on stderr, as "<app>: error: <message>".
#pragma once

#include <cstdint>
#include <string>

#include "base/error.h"

namespace mt::training {

enum ExitCode : int { kExitOk = 0, kExitFailure = 1, kExitUsage = 2, kExitInterrupted = 130 };

// A mistake in the command line or the config: exit code 2 (any other Error is 1).
class UsageError : public Error {
 public:
  explicit UsageError(const Error& e) : Error(e.message(), e.file(), e.line()) {}
};

// Runs f() and rethrows any Error it throws as a UsageError: wraps the parsing of the command
// line and the config, so that their errors exit with 2 whichever layer raised them.
template <typename F>
auto usage_phase(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(e);
  }
}

// The value that follows the flag at argv[i] ("--run", "DIR" -> "DIR"), with i moved onto it;
// a flag given last, with nothing after it, is a UsageError that names the flag.
std::string next_flag_value(int argc, char** argv, int& i);

// "--max-windows", "12" -> 12; "abc", "12x" or out of range: a UsageError that names the flag.
int64_t parse_int_flag(const std::string& flag, const std::string& value);

// The body of main(): returns run(argc, argv), or prints "<app>: error: <message>" and returns
// kExitUsage for a UsageError, kExitFailure for any other exception.
int run_app(const char* app, int (*run)(int, char**), int argc, char** argv);

}  // namespace mt::training
