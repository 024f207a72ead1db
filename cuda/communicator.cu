// NcclCommunicator over NCCL (see cuda/communicator.h). Compiled with every CUDA build; the
// NCCL calls only when mk/nccl.mk found nccl.h (MT_WITH_NCCL), else each entry is an Error.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/check.cuh"
#include "cuda/communicator.h"
#include "cuda/nvtx.h"

#ifdef MT_WITH_NCCL
#include <nccl.h>

static_assert(NCCL_UNIQUE_ID_BYTES == mt::cuda::kNcclIdBytes, "NcclId must hold an ncclUniqueId");

// NCCL_CHECK(ncclAllReduce(...)): an mt::Error naming the call and NCCL's own explanation.
#define NCCL_CHECK(call)                                                                       \
  do {                                                                                         \
    ncclResult_t status_ = (call);                                                             \
    if (status_ != ncclSuccess) {                                                              \
      throw ::mt::Error(                                                                       \
          ::fmt::format("NCCL error: {} in {} (last: {})", ncclGetErrorString(status_), #call, \
                        ncclGetLastError(nullptr)),                                            \
          __FILE__, __LINE__);                                                                 \
    }                                                                                          \
  } while (0)
#endif

namespace mt::cuda {

const char* disable_nvlink_multicast() {
  static std::string previous;
  const char* old = std::getenv("NCCL_NVLS_ENABLE");
  previous = old != nullptr ? old : "";
  if (previous != "0") {
    if (!previous.empty()) {
      std::fprintf(stderr,
                   "[dist] NCCL_NVLS_ENABLE=%s overridden to 0: NVLink multicast must "
                   "stay off on these machines\n",
                   previous.c_str());
    }
    setenv("NCCL_NVLS_ENABLE", "0", 1);
  }
  return previous.c_str();
}

#ifdef MT_WITH_NCCL

namespace {

ncclDataType_t nccl_type(CommType type) {
  return type == CommType::Float64 ? ncclFloat64 : ncclFloat32;
}

ncclRedOp_t nccl_op(CommOp op) {
  switch (op) {
    case CommOp::Sum:
      return ncclSum;
    case CommOp::Avg:
      return ncclAvg;  // sum then 1/world inside NCCL (since 2.10)
    case CommOp::Max:
      return ncclMax;
    case CommOp::Min:
      return ncclMin;
  }
  FAIL("unknown CommOp {}", static_cast<int>(op));
}

}  // namespace

struct NcclCommunicator::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t comm_stream = nullptr;
  cudaEvent_t compute_ready = nullptr;  // recorded on the compute stream, waited on by comm
  cudaEvent_t comm_done = nullptr;      // recorded on the comm stream, waited on by compute
};

bool nccl_built() { return true; }

int nccl_version() {
  int v = 0;
  NCCL_CHECK(ncclGetVersion(&v));
  return v;
}

NcclId nccl_unique_id() {
  disable_nvlink_multicast();
  ncclUniqueId raw;
  NCCL_CHECK(ncclGetUniqueId(&raw));
  NcclId id;
  std::memcpy(id.data(), raw.internal, kNcclIdBytes);
  return id;
}

NcclCommunicator::NcclCommunicator(const NcclId& id, int rank, int world)
    : impl_(std::make_unique<Impl>()), rank_(rank), world_(world) {
  CHECK(world >= 1 && rank >= 0 && rank < world, "NcclCommunicator: rank {} of world {}", rank,
        world);
  disable_nvlink_multicast();
  (void)stream();  // creates the compute stream on the chosen device first
  int least = 0, greatest = 0;
  CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  CUDA_CHECK(cudaStreamCreateWithPriority(&impl_->comm_stream, cudaStreamNonBlocking, greatest));
  CUDA_CHECK(cudaEventCreateWithFlags(&impl_->compute_ready, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventCreateWithFlags(&impl_->comm_done, cudaEventDisableTiming));
  ncclUniqueId raw;
  std::memcpy(raw.internal, id.data(), kNcclIdBytes);
  NvtxRange range("nccl_init");
  NCCL_CHECK(ncclCommInitRank(&impl_->comm, world, raw, rank));
}

NcclCommunicator::~NcclCommunicator() {
  // No throwing from a destructor: errors here are reported by the next CUDA call anyway.
  if (impl_->comm != nullptr) {
    (void)cudaStreamSynchronize(impl_->comm_stream);
    (void)ncclCommDestroy(impl_->comm);
  }
  if (impl_->compute_ready != nullptr) (void)cudaEventDestroy(impl_->compute_ready);
  if (impl_->comm_done != nullptr) (void)cudaEventDestroy(impl_->comm_done);
  if (impl_->comm_stream != nullptr) (void)cudaStreamDestroy(impl_->comm_stream);
}

void NcclCommunicator::all_reduce_async(void* data, size_t count, CommType type, CommOp op) {
  NvtxRange range("allreduce_bucket");
  // cudaStreamWaitEvent captures the event's latest record at the call, so one event serves
  // every bucket: re-recording it afterwards does not change what the earlier wait waits for.
  CUDA_CHECK(cudaEventRecord(impl_->compute_ready, stream()));
  CUDA_CHECK(cudaStreamWaitEvent(impl_->comm_stream, impl_->compute_ready, 0));
  NCCL_CHECK(ncclAllReduce(data, data, count, nccl_type(type), nccl_op(op), impl_->comm,
                           impl_->comm_stream));
}

void NcclCommunicator::wait_on_compute() {
  CUDA_CHECK(cudaEventRecord(impl_->comm_done, impl_->comm_stream));
  CUDA_CHECK(cudaStreamWaitEvent(stream(), impl_->comm_done, 0));
}

void NcclCommunicator::all_reduce(void* data, size_t count, CommType type, CommOp op) {
  NvtxRange range("allreduce");
  wait_on_compute();  // keeps the order with any bucket still in flight
  NCCL_CHECK(ncclAllReduce(data, data, count, nccl_type(type), nccl_op(op), impl_->comm, stream()));
}

#else  // no NCCL in this build

struct NcclCommunicator::Impl {};

namespace {
[[noreturn]] void no_nccl(const char* what) {
  FAIL(
      "{}: this build has no NCCL (nccl.h was not found in the CUDA toolkit or PyTorch's "
      "nvidia-nccl wheel; see mk/nccl.mk)",
      what);
}
}  // namespace

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

#endif

}  // namespace mt::cuda
