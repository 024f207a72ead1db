// fork/exec launcher for one-host data-parallel runs (see training/launch.h).
#include "training/launch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "training/cli.h"
#include "training/rendezvous.h"

namespace mt::training {

namespace {

// The launcher's SIGTERM, passed on to the ranks by the wait loop.
volatile std::sig_atomic_t g_terminate = 0;
extern "C" void on_terminate(int) { g_terminate = 1; }

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// Stops the children still running: SIGTERM (the trainer saves and exits on it), then SIGKILL
// for any still alive after 10 s.
void stop_children(std::vector<pid_t>& alive) {
  for (pid_t pid : alive) {
    if (pid > 0) ::kill(pid, SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (pid_t& pid : alive) {
    if (pid <= 0) continue;
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    pid = -1;
  }
}

}  // namespace

bool launched_as_worker() {
  const char* w = std::getenv("WORLD_SIZE");
  return w != nullptr && *w != '\0';
}

int launch_local_workers(int n, int argc, char** argv) {
  CHECK(n >= 1, "launch: devices must be >= 1, got {}", n);
  CHECK(argc >= 1, "launch: no program name");
  const int port = find_free_port();
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<pid_t> children;
  for (int rank = 0; rank < n; ++rank) {
    const pid_t pid = ::fork();
    CHECK(pid >= 0, "launch: fork failed for rank {}", rank);
    if (pid == 0) {
      const std::string r = std::to_string(rank), w = std::to_string(n), p = std::to_string(port);
      setenv("RANK", r.c_str(), 1);
      setenv("LOCAL_RANK", r.c_str(), 1);
      setenv("WORLD_SIZE", w.c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", p.c_str(), 1);
      setenv("NCCL_NVLS_ENABLE", "0", 1);
      std::vector<char*> args(argv, argv + argc);
      args.push_back(nullptr);
      ::execv("/proc/self/exe", args.data());
      std::fprintf(stderr, "launch: exec of %s failed for rank %d\n", argv[0], rank);
      std::_Exit(127);
    }
    children.push_back(pid);
  }
  // Ctrl-C reaches the ranks from the terminal (one process group): each finishes its step,
  // they agree to stop and rank 0 saves. The launcher itself waits for them rather than die
  // first. A SIGTERM sent to the launcher alone is passed on to the ranks.
  const auto previous_int = std::signal(SIGINT, SIG_IGN);
  const auto previous_term = std::signal(SIGTERM, on_terminate);
  g_terminate = 0;
  std::printf("[dist] started %d ranks (pids %d..%d), rendezvous 127.0.0.1:%d\n", n,
              static_cast<int>(children.front()), static_cast<int>(children.back()), port);
  std::fflush(stdout);
  // Polls our own children only (waitpid on each pid): wait() would also reap children that
  // other code in this process started.
  int result = 0, running = n;
  bool forwarded = false, interrupted = false;
  while (running > 0 && result == 0) {
    if (g_terminate && !forwarded) {
      for (pid_t pid : children) {
        if (pid > 0) ::kill(pid, SIGTERM);
      }
      forwarded = true;
    }
    for (pid_t& pid : children) {
      int status = 0;
      if (pid <= 0 || ::waitpid(pid, &status, WNOHANG) != pid) continue;
      const int code = exit_code(status);
      --running;
      // A rank stopped by Ctrl-C or SIGTERM is no failure: the others stop at the same step,
      // and rank 0 may still be saving the checkpoint.
      if (code == kExitInterrupted) {
        interrupted = true;
      } else if (code != 0) {
        std::fprintf(stderr, "[dist] a rank (pid %d) exited with status %d: stopping the others\n",
                     static_cast<int>(pid), code);
        result = code;
      }
      pid = -1;
    }
    if (running > 0 && result == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (result != 0) stop_children(children);
  if (result == 0 && interrupted) result = kExitInterrupted;
  std::signal(SIGINT, previous_int);  // the caller's handlers again (tests launch, then go on)
  std::signal(SIGTERM, previous_term);
  return result;
}

}  // namespace mt::training
