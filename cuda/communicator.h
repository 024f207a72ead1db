// NcclCommunicator: one rank's end of an NCCL communicator, for data-parallel training.
//
//   NcclId id = rank == 0 ? nccl_unique_id() : <received from rank 0>;  // training/rendezvous.h
//   NcclCommunicator comm(id, rank, world);        // on the current device; blocks until all join
//   comm.all_reduce_async(grads, n, CommType::Float32, CommOp::Avg);  // overlaps the backward
//   comm.wait_on_compute();                        // the compute stream waits for the reductions
//
// A plain C++ header like cuda/runtime.h (no CUDA or NCCL types), so training/ can hold one.
// Implemented in cuda/communicator.cu when the build found nccl.h (MT_WITH_NCCL, mk/nccl.mk);
// without it every entry point is an Error and nccl_built() is false.
//
// Streams: collectives run on a communication stream of their own (highest priority, so a
// bucket's all-reduce is scheduled as soon as it is ready rather than behind backward kernels).
// all_reduce_async makes that stream wait, through an event, for everything queued on the
// compute stream so far (the copy of the gradients into the buffer), and returns at once.
#pragma once

#include <array>
#include <cstddef>
#include <memory>

namespace mt::cuda {

// NCCL_UNIQUE_ID_BYTES: the opaque id rank 0 makes and every rank needs to join.
constexpr size_t kNcclIdBytes = 128;
using NcclId = std::array<char, kNcclIdBytes>;

enum class CommType { Float32, Float64 };
enum class CommOp { Sum, Avg, Max, Min };

// True when this build links NCCL.
bool nccl_built();
// A new unique id (rank 0 only); the NCCL version is in nccl_version().
NcclId nccl_unique_id();
int nccl_version();  // e.g. 22805 for 2.28.5; 0 without NCCL

// Forces NCCL_NVLS_ENABLE=0 in this process's environment (NVLink multicast can put the shared
// GPU hosts out of service). Returns the previous value ("" when unset). Called before init.
const char* disable_nvlink_multicast();

class NcclCommunicator {
 public:
  // Joins the communicator `id` as `rank` of `world` on the current device (cuda::set_device
  // first). Blocks until every rank has joined.
  NcclCommunicator(const NcclId& id, int rank, int world);
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }

  // In place on `count` elements of device memory at `data`, on the communication stream,
  // after the compute stream's work queued so far. Returns without waiting.
  void all_reduce_async(void* data, size_t count, CommType type, CommOp op);
  // The compute stream waits (on the device, not the host) for all communication queued so far.
  void wait_on_compute();
  // In place, on the compute stream: ordered with the kernels around it (checksums, tests).
  void all_reduce(void* data, size_t count, CommType type, CommOp op);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_ = 1;
};

}  // namespace mt::cuda
