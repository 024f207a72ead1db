// The data-parallel launcher (training/launch.h) for real, on the CPU: `launch_local_workers`
// forks and execs this test binary once per rank; the ranks see the environment a launched
// worker expects, and a failing rank stops the others and hands its status back.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "test_util.h"
#include "training/distributed.h"
#include "training/launch.h"

using namespace mt;
using namespace mt::training;

// The launcher for real, on the CPU: it forks and execs this test binary once per rank, each
// child running only the case below. The child case does nothing unless it is a launched rank.
DIST_TEST_CASE("launch: what a launched rank sees") {
  if (!launched_as_worker()) return;  // the normal run: only the launcher's children check
  const DistEnv env = DistEnv::from_env();
  CHECK(env.world == 2);
  CHECK((env.rank == 0 || env.rank == 1));
  CHECK(env.local_rank == env.rank);
  CHECK(env.master_addr == "127.0.0.1");
  CHECK(env.master_port > 0);
  CHECK(std::string(std::getenv("NCCL_NVLS_ENABLE")) == "0");
  const char* fail = std::getenv("MT_TEST_LAUNCH_FAIL");  // the rank that fails, if any
  if (fail != nullptr && std::atoi(fail) == env.rank) std::_Exit(3);
  // The other rank waits: the launcher must stop it once its partner failed. SIGTERM is left to
  // end it quietly (doctest would otherwise report the expected signal as a crash in the log).
  if (fail != nullptr) {
    std::signal(SIGTERM, SIG_DFL);
    std::this_thread::sleep_for(std::chrono::seconds(60));
  }
}

// Sends this process's stdout and stderr (and so its children's) to a file until text() is
// called: the launcher's own lines are checked here instead of landing in the test log.
class CapturedOutput {
 public:
  explicit CapturedOutput(std::string path) : path_(std::move(path)) {
    std::fflush(stdout);
    std::fflush(stderr);
    saved_out_ = ::dup(1);
    saved_err_ = ::dup(2);
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~CapturedOutput() { restore(); }
  std::string text() {
    restore();
    std::ifstream in(path_);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::remove(path_.c_str());
    return s;
  }

 private:
  void restore() {
    if (saved_out_ < 0) return;
    std::fflush(stdout);
    std::fflush(stderr);
    ::dup2(saved_out_, 1);
    ::dup2(saved_err_, 2);
    ::close(saved_out_);
    ::close(saved_err_);
    saved_out_ = saved_err_ = -1;
  }
  std::string path_;
  int saved_out_ = -1, saved_err_ = -1;
};

DIST_TEST_CASE("launch: 2 ranks run; a failing rank stops the other and gives its status") {
  if (launched_as_worker()) return;
  const std::string log =
      (std::filesystem::temp_directory_path() / ("mt_test_launch_" + std::to_string(::getpid())))
          .string();
  std::string self = "tests", filter = "-tc=launch: what a launched rank sees";
  char* argv[] = {self.data(), filter.data()};
  std::string out;
  int status = 0;
  {
    CapturedOutput capture(log);
    status = launch_local_workers(2, 2, argv);
    out = capture.text();
  }
  CHECK(status == 0);
  INFO("launcher output: " << out);
  CHECK(out.find("[dist] started 2 ranks") != std::string::npos);
  CHECK(out.find("test cases") == std::string::npos);  // the ranks print no doctest summary

  setenv("MT_TEST_LAUNCH_FAIL", "1", 1);
  const auto start = std::chrono::steady_clock::now();
  {
    CapturedOutput capture(log);
    status = launch_local_workers(2, 2, argv);
    out = capture.text();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  unsetenv("MT_TEST_LAUNCH_FAIL");
  CHECK(status == 3);
  CHECK(seconds < 30);  // rank 0 (asleep for 60 s) was stopped, not waited for
  CHECK(out.find("exited with status 3: stopping the others") != std::string::npos);
}
