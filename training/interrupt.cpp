#include "training/interrupt.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

namespace mt::training {

namespace {

// Lock-free atomics are async-signal-safe; nothing else is touched inside the handler.
std::atomic<bool> g_interrupted{false};

extern "C" void on_signal(int signo) {
  g_interrupted.store(true);
  std::signal(signo, SIG_DFL);  // the next one terminates
  const char msg[] =
      "\n[train] interrupt: finishing the step, saving the last checkpoint "
      "(press Ctrl-C again to quit at once)\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
  (void)ignored;
}

}  // namespace

void install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

bool interrupt_requested() { return g_interrupted.load(); }

void request_interrupt(bool on) { g_interrupted.store(on); }

}  // namespace mt::training
