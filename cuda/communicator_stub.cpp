// cuda/communicator.h in a CPU-only build (CUDA=0): no NCCL, and every entry point but the
// environment helper is an Error that says why. (A CUDA build without nccl.h gets the same from
// cuda/communicator.cu.)
#ifndef MT_WITH_CUDA

#include <cstdlib>
#include <string>

#include "base/error.h"
#include "cuda/communicator.h"

namespace mt::cuda {

namespace {
[[noreturn]] void no_nccl(const char* what) {
  FAIL("{}: this build has no NCCL (it has no CUDA support: rebuild with nvcc on the PATH)", what);
}
}  // namespace

const char* disable_nvlink_multicast() {
  static std::string previous;
  const char* old = std::getenv("NCCL_NVLS_ENABLE");
  previous = old != nullptr ? old : "";
  setenv("NCCL_NVLS_ENABLE", "0", 1);
  return previous.c_str();
}

struct NcclCommunicator::Impl {};

bool nccl_built() { return false; }
int nccl_version() { return 0; }
NcclId nccl_unique_id() { no_nccl("nccl_unique_id"); }
NcclCommunicator::NcclCommunicator(const NcclId&, int, int) { no_nccl("NcclCommunicator"); }
NcclCommunicator::~NcclCommunicator() = default;
void NcclCommunicator::all_reduce_async(void*, size_t, CommType, CommOp) {
  no_nccl("all_reduce_async");
}
void NcclCommunicator::wait_on_compute() { no_nccl("wait_on_compute"); }
void NcclCommunicator::all_reduce(void*, size_t, CommType, CommOp) { no_nccl("all_reduce"); }

}  // namespace mt::cuda

#endif
