// The test runner: doctest's main, plus a closing line that names the suites that were skipped
// (the CUDA suites on a machine with no GPU) and a plain "N passed, N failed, N skipped" line.
//
// Some tests start this binary again as the ranks of a data-parallel run (training/launch.h):
// such a worker (WORLD_SIZE set) prints only failures, so that `make test` shows one summary.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "cuda/runtime.h"
#include "training/launch.h"

namespace {

// Prints the plain closing line "N passed, N failed, N skipped" after doctest's own summary.
struct ClosingLine : doctest::IReporter {
  explicit ClosingLine(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& stats) override {
    if (mt::training::launched_as_worker()) return;
    const unsigned run = stats.numTestCasesPassingFilters;
    const unsigned skipped = stats.numTestCases - run;
    std::printf("tests: %u passed, %u failed, %u skipped\n", run - stats.numTestCasesFailed,
                stats.numTestCasesFailed, skipped);
  }
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};
REGISTER_LISTENER("closing_line", 1, ClosingLine);

}  // namespace

int main(int argc, char** argv) {
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  if (mt::training::launched_as_worker()) {
    context.setOption("minimal", true);
    return context.run();
  }
  const bool gpu = mt::cuda::available();
  if (gpu) {
    std::printf("[tests] GPU: %s — CUDA suites run\n", mt::cuda::device_name(0).c_str());
  } else {
    std::printf(
        "[tests] no GPU: CUDA suites are skipped (suite 'cuda', tests named 'cuda: ...')\n");
  }
  return context.run();
}
