// DataParallel, its communicators and the environment of a data-parallel run
// (see training/distributed.h).
#include "training/distributed.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/error.h"
#include "cuda/nvtx.h"
#include "cuda/runtime.h"
#include "training/rendezvous.h"

namespace mt::training {

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  CHECK(end != nullptr && *end == '\0', "environment: {}='{}' is not an integer", name, v);
  return static_cast<int>(x);
}

std::string env_str(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

class LocalComm : public GradComm {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  void average_async(Tensor&) override {}
  void wait() override {}
  void all_reduce_host(std::vector<double>&, cuda::CommOp) override {}
};

#ifdef MT_WITH_NCCL
class NcclComm : public GradComm {
 public:
  NcclComm(const cuda::NcclId& id, int rank, int world) : comm_(id, rank, world) {}
  int rank() const override { return comm_.rank(); }
  int world() const override { return comm_.world(); }
  void average_async(Tensor& flat) override {
    MT_CHECK(flat.is_cuda() && flat.dtype() == kFloat32 && flat.is_contiguous(),
             "NCCL average: expected a contiguous float32 CUDA tensor, got {}", flat.describe());
    comm_.all_reduce_async(flat.raw_data(), static_cast<size_t>(flat.numel()),
                           cuda::CommType::Float32, cuda::CommOp::Avg);
  }
  void wait() override { comm_.wait_on_compute(); }
  void all_reduce_host(std::vector<double>& values, cuda::CommOp op) override {
    Tensor device = Tensor::from_vector(values, {static_cast<int64_t>(values.size())}).cuda();
    comm_.all_reduce(device.raw_data(), values.size(), cuda::CommType::Float64, op);
    values = device.to_vector<double>();  // synchronizes the compute stream
  }

 private:
  cuda::NcclCommunicator comm_;
};
#endif

}  // namespace

DistEnv DistEnv::from_env() {
  DistEnv e;
  e.world = env_int("WORLD_SIZE", 1);
  e.rank = env_int("RANK", 0);
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  e.master_addr = env_str("MASTER_ADDR");
  e.master_port = env_int("MASTER_PORT", 29500);  // torchrun's default
  e.rendezvous_file = env_str("MT_RENDEZVOUS_FILE");
  e.timeout_s = env_int("MT_RENDEZVOUS_TIMEOUT", 300);
  CHECK(e.world >= 1, "environment: WORLD_SIZE must be >= 1, got {}", e.world);
  CHECK(e.rank >= 0 && e.rank < e.world, "environment: RANK={} is not in 0 .. WORLD_SIZE-1 = {}",
        e.rank, e.world - 1);
  CHECK(e.local_rank >= 0, "environment: LOCAL_RANK must be >= 0, got {}", e.local_rank);
  return e;
}

std::unique_ptr<GradComm> make_local_comm() { return std::make_unique<LocalComm>(); }

std::unique_ptr<GradComm> make_nccl_comm(const DistEnv& env) {
#ifdef MT_WITH_NCCL
  cuda::NcclId id{};
  std::vector<char> payload;
  if (env.rank == 0) {
    id = cuda::nccl_unique_id();
    payload.assign(id.begin(), id.end());
  }
  if (env.world > 1) {
    CHECK(!env.master_addr.empty() || !env.rendezvous_file.empty(),
          "data-parallel: {} ranks but neither MASTER_ADDR (TCP rendezvous) nor "
          "MT_RENDEZVOUS_FILE is set",
          env.world);
    payload = !env.master_addr.empty()
                  ? tcp_broadcast(env.master_addr, env.master_port, env.rank, env.world, payload,
                                  env.timeout_s)
                  : file_broadcast(env.rendezvous_file, env.rank, payload, env.timeout_s);
    CHECK(payload.size() == cuda::kNcclIdBytes,
          "data-parallel: the rendezvous gave {} bytes, "
          "an NCCL id has {}",
          payload.size(), cuda::kNcclIdBytes);
    std::memcpy(id.data(), payload.data(), cuda::kNcclIdBytes);
  }
  return std::make_unique<NcclComm>(id, env.rank, env.world);
#else
  FAIL(
      "data-parallel training over {} rank(s) needs NCCL, and this build has none (CUDA {}; "
      "mk/nccl.mk looks for nccl.h in the CUDA toolkit and PyTorch's nvidia-nccl wheel)",
      env.world, cuda::available() ? "available" : "not available");
#endif
}

std::unique_ptr<GradComm> make_grad_comm(const DistEnv& env) {
  return env.world == 1 ? make_local_comm() : make_nccl_comm(env);
}

std::vector<std::vector<int>> assign_buckets(const std::vector<size_t>& bytes,
                                             size_t bucket_bytes) {
  CHECK(bucket_bytes > 0, "assign_buckets: bucket_bytes must be > 0");
  std::vector<std::vector<int>> buckets;
  size_t filled = bucket_bytes;  // "full": the first parameter opens a bucket
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (filled >= bucket_bytes) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(static_cast<int>(i));
    filled += bytes[i];
  }
  return buckets;
}

DataParallel::DataParallel(std::vector<Var> params, std::shared_ptr<GradComm> comm,
                           DataParallelOptions options)
    : comm_(std::move(comm)), options_(options) {
  CHECK(comm_ != nullptr, "DataParallel: no communicator");
  for (Var& p : params) {
    if (p.requires_grad()) params_.push_back(p);
  }
  CHECK(!params_.empty(), "DataParallel: no parameter requires grad");
  const Device device = params_[0].device();
  // Backward order: the last registered parameters get their gradients first.
  std::vector<size_t> bytes;
  std::vector<int> backward_order;
  for (int i = static_cast<int>(params_.size()) - 1; i >= 0; --i) {
    const Var& p = params_[static_cast<size_t>(i)];
    CHECK(p.dtype() == kFloat32 && p.device() == device,
          "DataParallel: parameter '{}' is {}; all "
          "must be float32 on {} (float32 master weights)",
          p.name(), p.value().describe(), device.str());
    bytes.push_back(p.value().nbytes());
    backward_order.push_back(i);
  }
  buckets_ = assign_buckets(bytes, options_.bucket_bytes);
  slots_.resize(params_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    int64_t elements = 0;
    for (int& k : buckets_[b]) {
      k = backward_order[static_cast<size_t>(k)];  // position in bytes -> index into params_
      slots_[static_cast<size_t>(k)] = {static_cast<int>(b), elements, false};
      elements += params_[static_cast<size_t>(k)].value().numel();
    }
    flat_.push_back(Tensor::zeros({elements}, kFloat32, device));
  }
  ready_count_.assign(buckets_.size(), 0);
}

DataParallel::~DataParallel() { detach_hooks(); }

void DataParallel::attach_hooks() {
  for (size_t i = 0; i < params_.size(); ++i) {
    VarImpl* impl = params_[i].impl();
    CHECK(!impl->post_accumulate_hook || hooked_,
          "DataParallel: parameter '{}' already has a "
          "post-accumulate hook",
          params_[i].name());
    const int index = static_cast<int>(i);
    impl->post_accumulate_hook = [this, index](VarImpl&) { on_ready(index); };
  }
  hooked_ = true;
}

void DataParallel::detach_hooks() {
  if (!hooked_) return;
  for (Var& p : params_) p.impl()->post_accumulate_hook = nullptr;
  hooked_ = false;
}

void DataParallel::on_ready(int param) {
  if (!sync_) return;  // an accumulation micro-batch: gradients stay local
  Slot& s = slots_[static_cast<size_t>(param)];
  if (s.ready) return;  // a second backward before finish_gradients: already counted
  s.ready = true;
  if (++ready_count_[static_cast<size_t>(s.bucket)] ==
      static_cast<int>(buckets_[static_cast<size_t>(s.bucket)].size())) {
    start_ready_buckets();
  }
}

// Starts complete buckets in index order only: a bucket that completes early waits for the
// ones before it, so every rank issues the same sequence of collectives.
void DataParallel::start_ready_buckets() {
  while (next_bucket_ < static_cast<int>(buckets_.size()) &&
         ready_count_[static_cast<size_t>(next_bucket_)] ==
             static_cast<int>(buckets_[static_cast<size_t>(next_bucket_)].size())) {
    start_bucket(next_bucket_++);
  }
}

void DataParallel::start_bucket(int bucket) {
  cuda::NvtxRange range("dp_bucket");
  Tensor& flat = flat_[static_cast<size_t>(bucket)];
  for (int k : buckets_[static_cast<size_t>(bucket)]) {
    const Var& p = params_[static_cast<size_t>(k)];
    Tensor dst =
        flat.narrow(0, slots_[static_cast<size_t>(k)].offset, p.value().numel()).view(p.shape());
    if (p.grad().defined()) {
      dst.copy_(p.grad());
    } else {
      dst.zero_();  // no gradient reached it this pass: it contributes zero, as on every rank
    }
  }
  comm_->average_async(flat);
  ++started_total_;
}

void DataParallel::finish_gradients() {
  cuda::NvtxRange range("dp_finish");
  // Parameters the backward never reached count as ready (their gradient is zero).
  for (size_t b = static_cast<size_t>(next_bucket_); b < buckets_.size(); ++b) {
    ready_count_[b] = static_cast<int>(buckets_[b].size());
  }
  start_ready_buckets();
  comm_->wait();
  for (size_t i = 0; i < params_.size(); ++i) {
    Var& p = params_[i];
    Slot& s = slots_[i];
    // The averaged gradient, as a view of the bucket's buffer: no copy back. The next pass
    // writes the buffer again only after zero_grad has let go of these views (or accumulated
    // them into new tensors), and only on the compute stream, after this step's optimizer.
    p.set_grad(flat_[static_cast<size_t>(s.bucket)]
                   .narrow(0, s.offset, p.value().numel())
                   .view(p.shape()));
    s.ready = false;
  }
  ready_count_.assign(buckets_.size(), 0);
  next_bucket_ = 0;
  sync_ = true;
}

int64_t global_samples(int64_t batches_done, int64_t batch, int world) {
  CHECK(batches_done >= 0 && batch >= 1 && world >= 1,
        "global_samples: {} batches of {} on {} "
        "ranks",
        batches_done, batch, world);
  return batches_done * batch * world;
}

int64_t resume_batch(int64_t samples, int64_t batch, int world) {
  CHECK(samples >= 0 && batch >= 1 && world >= 1, "resume_batch: {} samples, batch {}, {} ranks",
        samples, batch, world);
  const int64_t global = batch * world;
  return (samples + global - 1) / global;
}

std::vector<double> weight_checksum(const std::vector<Var>& params) {
  double sum = 0, weighted = 0;
  int64_t position = 0;
  for (const Var& p : params) {
    for (double x : p.value().to_vector<double>()) {
      sum += x;
      // Weights 1 .. 1024 by position: a permutation of values changes this sum.
      weighted += x * static_cast<double>(position++ % 1024 + 1);
    }
  }
  return {sum, weighted};
}

void DataParallel::check_identical_weights(int64_t step) {
  cuda::NvtxRange range("dp_check_weights");
  const std::vector<double> mine = weight_checksum(params_);
  std::vector<double> hi = mine, lo = mine;
  comm_->all_reduce_host(hi, cuda::CommOp::Max);
  comm_->all_reduce_host(lo, cuda::CommOp::Min);
  for (size_t i = 0; i < mine.size(); ++i) {
    CHECK(hi[i] == lo[i],
          "data-parallel: the ranks' weights differ at step {}: checksum {} is "
          "{:.17g} on one rank and {:.17g} on another (this rank {}: {:.17g})",
          step, i, lo[i], hi[i], comm_->rank(), mine[i]);
  }
}

}  // namespace mt::training
