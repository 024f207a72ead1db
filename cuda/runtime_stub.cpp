// The runtime of a CPU-only build (no nvcc at build time, or CUDA=0): no GPU is ever available,
// and anything that would touch device memory is an Error that says why. CUDA graphs
// (cuda/graph.h) too: there is nothing to capture, and capturing() is false.
#ifndef MT_WITH_CUDA

#include "base/error.h"
#include "cuda/graph.h"
#include "cuda/runtime.h"

namespace mt::cuda {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  FAIL("{}: this build has no CUDA support (rebuild with nvcc on the PATH and CUDA=1)", what);
}
}  // namespace

bool available() { return false; }
int device_count() { return 0; }
void set_device(int) { no_cuda("set_device"); }
int current_device() { return -1; }
std::string device_name(int) { return "none"; }
void* allocate(size_t) { no_cuda("cuda::allocate"); }
void release(void*) { no_cuda("cuda::release"); }
void copy_host_to_device(void*, const void*, size_t) { no_cuda("copy_host_to_device"); }
void copy_device_to_host(void*, const void*, size_t) { no_cuda("copy_device_to_host"); }
void copy_device_to_device(void*, const void*, size_t) { no_cuda("copy_device_to_device"); }
void memset_zero(void*, size_t) { no_cuda("memset_zero"); }
void synchronize() {}
void* stream_handle() { return nullptr; }
MemoryStats memory_stats() { return {}; }
void reset_peak_memory() {}
void empty_cache() {}

bool capturing() { return false; }

struct CapturedGraph::Impl {};
CapturedGraph::CapturedGraph() = default;
CapturedGraph::~CapturedGraph() = default;
void CapturedGraph::begin() { no_cuda("CapturedGraph::begin"); }
void CapturedGraph::end() { no_cuda("CapturedGraph::end"); }
void CapturedGraph::abort() noexcept {}
void CapturedGraph::replay() { no_cuda("CapturedGraph::replay"); }
bool CapturedGraph::ready() const { return false; }
size_t CapturedGraph::memory_bytes() const { return 0; }
size_t CapturedGraph::nodes() const { return 0; }

}  // namespace mt::cuda

#endif  // MT_WITH_CUDA
