// Data-parallel training: one process per GPU, gradients averaged with NCCL in buckets that
// overlap the backward, and a periodic check that every rank holds the same weights.
//
//   DistEnv env = DistEnv::from_env();            // RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*
//   cuda::set_device(env.local_rank);
//   DataParallel dp(model.parameters(), make_grad_comm(env), {});
//   dp.attach_hooks();
//   for each step:
//     for each micro-batch i of k:  dp.set_sync(i == k - 1);  loss.backward();
//     dp.finish_gradients();                       // grads = mean over ranks
//     clip, optimizer.step(), zero_grad
//     if (dp.should_check(step)) dp.check_identical_weights(step);
//   only dp.is_rank0() logs, checkpoints and evaluates
//
// Buckets (as PyTorch DDP): the parameters in reverse registration order (the backward produces
// the last layers' gradients first), packed greedily into buckets of about bucket_bytes, each
// with one flat float32 buffer. When the last gradient of a bucket is complete (the leaf's
// post_accumulate_hook, autograd/var.h), the bucket's gradients are copied into its buffer on
// the compute stream and the all-reduce (ncclAvg: the mean) starts on the communication stream
// while the backward goes on. Buckets start strictly in index order, so every rank issues its
// collectives in the same order (NCCL requires it) whatever order the hooks fire in.
// finish_gradients() starts any bucket still waiting (parameters that got no gradient this pass
// count as zero), makes the compute stream wait for the communication stream, and sets each
// parameter's grad to a view of its bucket's buffer: no copy back.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/var.h"
#include "cuda/communicator.h"

namespace mt::training {

// Where this process sits in the run, from the launcher's environment variables.
struct DistEnv {
  int rank = 0;             // RANK: 0 .. world - 1
  int world = 1;            // WORLD_SIZE
  int local_rank = 0;       // LOCAL_RANK: the GPU of this process on its host
  std::string master_addr;  // MASTER_ADDR / MASTER_PORT: TCP rendezvous at rank 0
  int master_port = 0;
  std::string rendezvous_file;  // MT_RENDEZVOUS_FILE: one-host fallback when no MASTER_ADDR
  double timeout_s = 300;       // MT_RENDEZVOUS_TIMEOUT (seconds)

  // Unset variables keep the defaults (a single process). An Error names a malformed value.
  static DistEnv from_env();
  bool is_rank0() const { return rank == 0; }
};

// The collectives data-parallel training needs. NCCL in real runs; tests use a one-rank
// LocalComm or their own in-process implementation to simulate several ranks on the CPU.
class GradComm {
 public:
  virtual ~GradComm() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // Starts replacing the contiguous float32 `flat` by its mean over the ranks; may return before
  // it is done. Calls happen in the same order on every rank.
  virtual void average_async(Tensor& flat) = 0;
  // After this, work queued on the compute stream sees every average started so far.
  virtual void wait() = 0;
  // Elementwise Max or Min (or Sum) of host values over the ranks; blocking.
  virtual void all_reduce_host(std::vector<double>& values, cuda::CommOp op) = 0;
};

// world == 1: nothing to exchange (averages are the identity).
std::unique_ptr<GradComm> make_local_comm();
// NCCL: rank 0 makes the unique id and hands it out over TCP (env.master_addr) or the file
// (env.rendezvous_file), then every rank joins on the current device. An Error when the build
// has no NCCL or the rendezvous times out.
std::unique_ptr<GradComm> make_nccl_comm(const DistEnv& env);
// make_local_comm for one process, make_nccl_comm for several.
std::unique_ptr<GradComm> make_grad_comm(const DistEnv& env);

// Greedy buckets over parameters given in backward order (reverse registration): a bucket
// closes once it holds at least bucket_bytes (so one large parameter is a bucket of its own).
// Returns, per bucket, indices into `bytes`.
std::vector<std::vector<int>> assign_buckets(const std::vector<size_t>& bytes, size_t bucket_bytes);

struct DataParallelOptions {
  // 256 KiB: the seed model (d_model 64, 4 layers: ~0.2 M float32 parameters, ~0.8 MB of
  // gradients) gets about 4 buckets, so the first all-reduce starts while most of the backward
  // is still to run; much smaller buckets would pay NCCL's ~10-20 us launch cost per bucket.
  // Larger models want PyTorch DDP's 25 MiB.
  size_t bucket_bytes = size_t(256) << 10;
  int64_t check_every = 100;  // steps between identical-weights checks (0: only when asked)
};

class DataParallel {
 public:
  // params: the model's parameters in registration order (those without requires_grad are
  // skipped). All must be float32 on one device.
  DataParallel(std::vector<Var> params, std::shared_ptr<GradComm> comm,
               DataParallelOptions options = {});
  ~DataParallel();  // detaches the hooks
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  void attach_hooks();
  void detach_hooks();
  // false for the micro-batches before the last of an accumulation group: their backward only
  // accumulates locally (PyTorch's no_sync).
  void set_sync(bool sync) { sync_ = sync; }
  // Completes the averaging of this step's gradients (see the top of this file).
  void finish_gradients();

  // A checksum of the weights all-reduced as max and min: an Error naming both when the ranks
  // differ. Reads every weight back to the host (a few ms for the seed model).
  void check_identical_weights(int64_t step);
  bool should_check(int64_t step) const {
    return options_.check_every > 0 && step % options_.check_every == 0;
  }

  int rank() const { return comm_->rank(); }
  int world() const { return comm_->world(); }
  bool is_rank0() const { return comm_->rank() == 0; }
  const std::vector<std::vector<int>>& buckets() const {
    return buckets_;
  }  // indices into params()
  const std::vector<Var>& params() const { return params_; }
  int64_t buckets_started() const { return started_total_; }  // since construction, for tests

 private:
  struct Slot {
    int bucket = 0;
    int64_t offset = 0;  // elements into the bucket's buffer
    bool ready = false;
  };
  void on_ready(int param);
  void start_ready_buckets();
  void start_bucket(int bucket);

  std::vector<Var> params_;
  std::shared_ptr<GradComm> comm_;
  DataParallelOptions options_;
  std::vector<std::vector<int>> buckets_;
  std::vector<Tensor> flat_;      // per bucket, float32 [elements]
  std::vector<Slot> slots_;       // per parameter
  std::vector<int> ready_count_;  // per bucket, this pass
  int next_bucket_ = 0;           // buckets [0, next_bucket_) started this pass
  bool sync_ = true, hooked_ = false;
  int64_t started_total_ = 0;
};

// Resume with any number of GPUs: a checkpoint stores the epoch's global progress, the windows
// of the epoch's global order consumed (batches_done * batch * world), never a per-rank index.
// A run with `world` ranks of `batch` windows resumes at resume_batch(samples, batch, world): the
// first whole global batch at or after `samples` (a partly seen global batch is skipped: at most
// batch * world - 1 windows of that epoch).
int64_t global_samples(int64_t batches_done, int64_t batch, int world);
int64_t resume_batch(int64_t samples, int64_t batch, int world);

// Float64 sums of the weights (plain and position-weighted, which also catches two swapped
// values), computed on the host in a fixed order: bit-identical for identical weights.
std::vector<double> weight_checksum(const std::vector<Var>& params);

}  // namespace mt::training
