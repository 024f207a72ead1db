// CUDA graphs in a build without CUDA (cuda/graph.h): there is nothing to capture.
#ifndef MT_WITH_CUDA

#include "base/error.h"
#include "cuda/graph.h"

namespace mt::cuda {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  FAIL("{}: this build has no CUDA support (rebuild with nvcc on the PATH and CUDA=1)", what);
}
}  // namespace

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
