#include "autograd/parameter_version.h"

#include <atomic>

namespace mt {

namespace {
// Atomic: data-parallel ranks may run as threads of one process, each stepping its own model.
std::atomic<uint64_t> g_version{0};
}  // namespace

uint64_t parameters_version() { return g_version.load(std::memory_order_acquire); }
void parameters_changed() { g_version.fetch_add(1, std::memory_order_acq_rel); }

}  // namespace mt
