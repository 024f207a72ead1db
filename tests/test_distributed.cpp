// Data-parallel training (training/distributed.h, data/sharded_sampler.h, training/rendezvous.h,
// cuda/communicator.h). On the CPU: sharding, buckets, the rendezvous over loopback, and several
// ranks simulated by threads that average through shared memory (ThreadComm, tests/thread_comm.h),
// checked against one process on the whole batch. On one GPU: a one-rank NCCL communicator, and one
// DataParallel step against the plain step. Runs on 2+ GPUs are not part of `make test`.
// tests/test_distributed_launch.cpp has the launcher's cases.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

#include "autograd/functions_basic.h"
#include "cuda/communicator.h"
#include "data/sharded_sampler.h"
#include "data/windows.h"
#include "optim/optimizer.h"
#include "tensor/random.h"
#include "test_util.h"
#include "tests/thread_comm.h"
#include "training/distributed.h"
#include "training/rendezvous.h"

using namespace mt;
using namespace mt::training;
using namespace mt::testing;

namespace {

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// y = tanh(x W1 + b1) W2: three parameters of different sizes (W1 320 B, b1 64 B, W2 64 B).
struct TinyNet {
  Var w1, b1, w2;
  explicit TinyNet(uint64_t seed, Device device = Device::cpu()) {
    Generator gen(seed);
    w1 = Var(Tensor::randn({5, 16}, gen).to(device), true, "w1");
    b1 = Var(Tensor::randn({16}, gen).to(device), true, "b1");
    w2 = Var(Tensor::randn({16, 1}, gen).to(device), true, "w2");
  }
  std::vector<Var> params() const { return {w1, b1, w2}; }
  Var loss(const Tensor& x, const Tensor& y) const {
    Var h = tanh(add(matmul(Var(x), w1), b1));
    Var d = sub(matmul(h, w2), Var(y));
    return mean(mul(d, d));
  }
};

std::unique_ptr<Optimizer> make_sgd(const TinyNet& net) {
  return std::make_unique<SGD>(
      make_param_groups({{"w1", net.w1}, {"b1", net.b1}, {"w2", net.w2}}, 0.1, 0.0));
}

// Rows `rows` of a [N, F] CPU tensor.
Tensor take_rows(const Tensor& t, const std::vector<int64_t>& rows) {
  const int64_t F = t.size(1);
  const std::vector<float> all = t.to_vector<float>();
  std::vector<float> out;
  for (int64_t r : rows) {
    out.insert(out.end(), all.begin() + r * F, all.begin() + (r + 1) * F);
  }
  return Tensor::from_vector(out, {static_cast<int64_t>(rows.size()), F});
}

void set_env(const char* name, const char* value) {
  if (value == nullptr)
    unsetenv(name);
  else
    setenv(name, value, 1);
}

}  // namespace

DIST_TEST_CASE("sharding: every window exactly once per epoch across the ranks, equal lengths") {
  for (int world : {1, 2, 3, 8}) {
    const int64_t n = 96;  // divisible by every world above
    const std::vector<int64_t> order = data::shuffled_order(n, 7, 3);
    std::multiset<int64_t> seen;
    for (int r = 0; r < world; ++r) {
      const std::vector<int64_t> shard = data::shard_of(order, r, world, data::ShardTail::Drop);
      CHECK(static_cast<int64_t>(shard.size()) == n / world);
      seen.insert(shard.begin(), shard.end());
    }
    CHECK(static_cast<int64_t>(seen.size()) == n);
    for (int64_t i = 0; i < n; ++i) CHECK(seen.count(i) == 1);
  }
}

DIST_TEST_CASE("sharding: the tail is dropped or padded, never uneven") {
  const std::vector<int64_t> order = data::shuffled_order(10, 1, 0);
  std::vector<int64_t> dropped_union, padded_union;
  for (int r = 0; r < 3; ++r) {
    const auto d = data::shard_of(order, r, 3, data::ShardTail::Drop);
    const auto p = data::shard_of(order, r, 3, data::ShardTail::Pad);
    CHECK(d.size() == 3);
    CHECK(p.size() == 4);
    dropped_union.insert(dropped_union.end(), d.begin(), d.end());
    padded_union.insert(padded_union.end(), p.begin(), p.end());
  }
  // Drop: exactly the first 9 of the order; the last (order[9]) is left out this epoch.
  std::sort(dropped_union.begin(), dropped_union.end());
  std::vector<int64_t> first9(order.begin(), order.begin() + 9);
  std::sort(first9.begin(), first9.end());
  CHECK(dropped_union == first9);
  // Pad: every window at least once; order[0] and order[1] fill the last row again.
  CHECK(std::set<int64_t>(padded_union.begin(), padded_union.end()).size() == 10);
  CHECK(data::shard_of(order, 1, 3, data::ShardTail::Pad).back() == order[0]);
  CHECK(data::shard_of(order, 2, 3, data::ShardTail::Pad).back() == order[1]);
  CHECK_THROWS_WITH_TEXT(data::shard_of(order, 3, 3, data::ShardTail::Drop), "rank 3 of world 3");
  CHECK_THROWS_WITH_TEXT(data::shard_of({}, 0, 2, data::ShardTail::Pad), "cannot pad");
}

DIST_TEST_CASE(
    "sharding: batch j of all ranks together is batch j of one GPU at the global batch") {
  const int world = 4;
  const int64_t B = 3, n = 50;
  const std::vector<int64_t> order = data::shuffled_order(n, 42, 5);
  std::vector<std::vector<int64_t>> shards;
  for (int r = 0; r < world; ++r) {
    shards.push_back(data::shard_of(order, r, world, data::ShardTail::Drop));
  }
  const int64_t batches = static_cast<int64_t>(shards[0].size()) / B;
  CHECK(batches == n / (B * world));  // as a one-GPU loader with drop_last at batch B * world
  for (int64_t j = 0; j < batches; ++j) {
    std::vector<int64_t> together,
        global(order.begin() + j * B * world, order.begin() + (j + 1) * B * world);
    for (int r = 0; r < world; ++r) {
      together.insert(together.end(), shards[r].begin() + j * B, shards[r].begin() + (j + 1) * B);
    }
    std::sort(together.begin(), together.end());
    std::sort(global.begin(), global.end());
    CHECK(together == global);
  }
}

DIST_TEST_CASE("sharding: ShardedSampler is deterministic and reshuffles each epoch") {
  const data::ShardedSampler a(1000, 42, true, 1, 4), b(1000, 42, true, 1, 4);
  CHECK(a.epoch_indices(3) == b.epoch_indices(3));
  CHECK(a.epoch_indices(3) != a.epoch_indices(4));
  CHECK(a.size() == 250);
  CHECK(a.batches(32) == 7);
  const data::ShardedSampler plain(10, 0, false, 1, 2);
  CHECK(plain.epoch_indices(0) == std::vector<int64_t>{1, 3, 5, 7, 9});
  CHECK_THROWS_WITH_TEXT(data::ShardedSampler(10, 0, true, 2, 2), "rank 2 of world 2");
}

DIST_TEST_CASE("buckets: greedy in backward order, a bucket closes once it reaches bucket_bytes") {
  using B = std::vector<std::vector<int>>;
  CHECK(assign_buckets({100, 200, 50, 300, 10}, 250) == B{{0, 1}, {2, 3}, {4}});
  CHECK(assign_buckets({1000, 10, 10}, 250) == B{{0}, {1, 2}});
  CHECK(assign_buckets({10, 10, 10}, 1 << 20) == B{{0, 1, 2}});
  CHECK(assign_buckets({}, 100).empty());
  CHECK_THROWS_WITH_TEXT(assign_buckets({1}, 0), "bucket_bytes must be > 0");

  // On a model: parameters in reverse registration order, w2 (64 B) and b1 (64 B) first.
  TinyNet net(1);
  DataParallel dp(net.params(), make_local_comm(), {64, 0});
  CHECK(dp.buckets() == B{{2}, {1}, {0}});
  DataParallel one(net.params(), make_local_comm(), {1 << 20, 0});
  CHECK(one.buckets() == B{{2, 1, 0}});
}

DIST_TEST_CASE("resume: global progress carries over to another number of GPUs") {
  // 8 GPUs x 32 windows, 5 steps done: 1280 windows of the epoch's order consumed.
  const int64_t samples = global_samples(5, 32, 8);
  CHECK(samples == 1280);
  CHECK(resume_batch(samples, 32, 8) == 5);   // the same run
  CHECK(resume_batch(samples, 32, 2) == 20);  // 2 GPUs: 64 a step, 20 steps
  CHECK(resume_batch(samples, 32, 1) == 40);  // one GPU
  CHECK(resume_batch(samples, 96, 1) == 14);  // 1280 / 96 = 13.3: the partial batch is skipped
  CHECK(resume_batch(0, 32, 4) == 0);
  CHECK_THROWS_WITH_TEXT(resume_batch(10, 0, 4), "batch 0");
}

DIST_TEST_CASE("rendezvous: a 128-byte id over loopback TCP reaches every rank") {
  const int port = find_free_port();
  const int world = 3;
  std::vector<char> id(128);
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<char>(i * 37 + 11);
  std::vector<std::vector<char>> got(world);
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = world - 1; r >= 0; --r) {  // the joiners start first: they must retry
    threads.emplace_back([&, r] {
      try {
        got[r] =
            tcp_broadcast("127.0.0.1", port, r, world, r == 0 ? id : std::vector<char>{}, 20.0);
      } catch (const Error& e) {
        errors[r] = e.message();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    INFO("rank " << r << ": " << errors[r]);
    CHECK(errors[r].empty());
    CHECK(got[r] == id);
  }
  // Nobody listening: a clear timeout, not a hang.
  CHECK_THROWS_WITH_TEXT(tcp_broadcast("127.0.0.1", find_free_port(), 1, 2, {}, 0.2),
                         "could not reach rank 0");
}

DIST_TEST_CASE("rendezvous: the file fallback hands the id to a rank that was waiting") {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("mt-rdzv-test-" + std::to_string(::getpid())))
          .string();
  std::filesystem::remove(path);
  std::vector<char> id(128, 'x');
  id[5] = 'y';
  std::vector<char> got;
  std::thread joiner([&] { got = file_broadcast(path, 1, {}, 20.0); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(file_broadcast(path, 0, id, 20.0) == id);
  joiner.join();
  CHECK(got == id);
  std::filesystem::remove(path);
  CHECK_THROWS_WITH_TEXT(file_broadcast(path, 1, {}, 0.1), "timed out");
}

DIST_TEST_CASE("DistEnv reads RANK, WORLD_SIZE, LOCAL_RANK and MASTER_* and names a bad value") {
  const char* names[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"};
  std::vector<std::string> saved;
  std::vector<bool> had;
  for (const char* n : names) {
    const char* v = std::getenv(n);
    had.push_back(v != nullptr);
    saved.push_back(v != nullptr ? v : "");
  }
  set_env("RANK", "2");
  set_env("WORLD_SIZE", "4");
  set_env("LOCAL_RANK", "1");
  set_env("MASTER_ADDR", "10.0.0.7");
  set_env("MASTER_PORT", "29555");
  const DistEnv e = DistEnv::from_env();
  CHECK(e.rank == 2);
  CHECK(e.world == 4);
  CHECK(e.local_rank == 1);
  CHECK(e.master_addr == "10.0.0.7");
  CHECK(e.master_port == 29555);
  CHECK_FALSE(e.is_rank0());
  set_env("RANK", "4");
  CHECK_THROWS_WITH_TEXT(DistEnv::from_env(), "RANK=4 is not in 0 .. WORLD_SIZE-1 = 3");
  set_env("RANK", "two");
  CHECK_THROWS_WITH_TEXT(DistEnv::from_env(), "RANK='two' is not an integer");
  for (size_t i = 0; i < saved.size(); ++i) set_env(names[i], had[i] ? saved[i].c_str() : nullptr);
#ifndef MT_WITH_NCCL
  DistEnv two;
  two.world = 2;
  CHECK_THROWS_WITH_TEXT(make_grad_comm(two), "needs NCCL");
#endif
}

DIST_TEST_CASE("DataParallel on one rank: the same weights as the plain step, bit for bit") {
  Generator gen(3);
  const Tensor x = Tensor::randn({8, 5}, gen), y = Tensor::randn({8, 1}, gen);
  TinyNet plain(11), dp_net(11);
  auto opt_plain = make_sgd(plain), opt_dp = make_sgd(dp_net);
  DataParallel dp(dp_net.params(), make_local_comm(), {64, 1});
  dp.attach_hooks();
  for (int step = 1; step <= 3; ++step) {
    plain.loss(x, y).backward();
    opt_plain->step();
    opt_plain->zero_grad();
    dp_net.loss(x, y).backward();
    CHECK(dp.buckets_started() == 3 * step);  // all three started from the hooks
    dp.finish_gradients();
    // The grads are now views of the buckets' buffers.
    CHECK(dp_net.w1.grad().storage() != dp_net.w2.grad().storage());
    opt_dp->step();
    opt_dp->zero_grad();
    dp.check_identical_weights(step);
  }
  for (size_t i = 0; i < 3; ++i) {
    CHECK(testing::max_abs_diff(plain.params()[i].value(), dp_net.params()[i].value()) == 0.0);
  }
}

DIST_TEST_CASE("DataParallel over 2 simulated ranks equals one process on the global batch") {
  Generator gen(5);
  const int world = 2;
  const int64_t n = 12;  // global batch; 6 rows a rank
  const Tensor x = Tensor::randn({n, 5}, gen), y = Tensor::randn({n, 1}, gen);
  TinyNet single(21);
  auto opt = make_sgd(single);
  for (int step = 0; step < 3; ++step) {
    single.loss(x, y).backward();
    opt->step();
    opt->zero_grad();
  }
  ThreadGroup group(world);
  std::vector<std::vector<Tensor>> final(world);
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        TinyNet net(21);
        auto o = make_sgd(net);
        DataParallel dp(net.params(), std::make_shared<ThreadComm>(group, r), {64, 1});
        dp.attach_hooks();
        const auto rows = data::shard_of(iota(n), r, world, data::ShardTail::Drop);
        const Tensor xr = take_rows(x, rows), yr = take_rows(y, rows);
        for (int step = 1; step <= 3; ++step) {
          // Accumulation over 2 micro-batches of 3 rows: the first stays local (set_sync).
          for (int micro = 0; micro < 2; ++micro) {
            dp.set_sync(micro == 1);
            const std::vector<int64_t> half = {micro * 3, micro * 3 + 1, micro * 3 + 2};
            mul_scalar(net.loss(take_rows(xr, half), take_rows(yr, half)), 0.5).backward();
          }
          dp.finish_gradients();
          o->step();
          o->zero_grad();
          dp.check_identical_weights(step);
        }
        for (const Var& p : net.params()) final[r].push_back(p.value().clone());
      } catch (const Error& e) {
        errors[r] = e.message();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    INFO("rank " << r << ": " << errors[r]);
    REQUIRE(errors[r].empty());
    for (size_t i = 0; i < 3; ++i) {
      // float32 sums in another order: equal to rounding, far below one SGD update (~1e-2).
      CHECK(testing::rel_error(final[r][i], single.params()[i].value()) < 1e-5);
      CHECK(testing::max_abs_diff(final[r][i], final[0][i]) == 0.0);  // ranks bit-identical
    }
  }
}

DIST_TEST_CASE("DataParallel: ranks with different weights are an Error on every rank") {
  ThreadGroup group(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      TinyNet net(9);
      if (r == 1) net.b1.mutable_value().narrow(0, 3, 1).fill_(0.25);  // one value differs
      DataParallel dp(net.params(), std::make_shared<ThreadComm>(group, r), {64, 10});
      CHECK(dp.should_check(20));
      CHECK_FALSE(dp.should_check(21));
      try {
        dp.check_identical_weights(20);
      } catch (const Error& e) {
        errors[r] = e.message();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r)
    CHECK(errors[r].find("weights differ at step 20") != std::string::npos);
  // A swap of two values keeps the plain sum but not the weighted one.
  TinyNet a(4), b(4);
  std::vector<float> w = a.b1.value().to_vector<float>();
  std::swap(w[0], w[1]);
  b.b1.mutable_value().copy_(Tensor::from_vector(w, {16}));
  const auto ca = weight_checksum(a.params()), cb = weight_checksum(b.params());
  CHECK(ca[1] != cb[1]);
}

CUDA_TEST_CASE("cuda: a one-rank NCCL communicator's all-reduce equals its input") {
  if (!cuda::nccl_built()) {
    CHECK_THROWS_WITH_TEXT(cuda::nccl_unique_id(), "this build has no NCCL");
    return;
  }
  CHECK(cuda::nccl_version() >= 21000);  // ncclAvg needs 2.10
  cuda::NcclCommunicator comm(cuda::nccl_unique_id(), 0, 1);
  CHECK(std::string(std::getenv("NCCL_NVLS_ENABLE")) == "0");
  Generator gen(8);
  const Tensor x = Tensor::randn({1000003}, gen);  // a prime: no multiple of any chunk size
  for (cuda::CommOp op : {cuda::CommOp::Sum, cuda::CommOp::Avg, cuda::CommOp::Max}) {
    Tensor d = x.cuda().clone();
    comm.all_reduce_async(d.raw_data(), static_cast<size_t>(d.numel()), cuda::CommType::Float32,
                          op);
    comm.wait_on_compute();
    CHECK(testing::max_abs_diff(d, x) == 0.0);
  }
  Tensor d64 = x.to(kFloat64).cuda();
  comm.all_reduce(d64.raw_data(), static_cast<size_t>(d64.numel()), cuda::CommType::Float64,
                  cuda::CommOp::Sum);
  CHECK(testing::max_abs_diff(d64, x.to(kFloat64)) == 0.0);

  DistEnv env;  // one rank, no rendezvous needed
  auto grad_comm = make_nccl_comm(env);
  std::vector<double> v = {1.5, -2.25};
  grad_comm->all_reduce_host(v, cuda::CommOp::Min);
  CHECK(v == std::vector<double>{1.5, -2.25});
}

CUDA_TEST_CASE("cuda: a one-rank DataParallel step gives exactly the plain step's weights") {
  Generator gen(3);
  const Tensor x = Tensor::randn({64, 5}, gen).cuda(), y = Tensor::randn({64, 1}, gen).cuda();
  TinyNet plain(11, Device::cuda()), dp_net(11, Device::cuda());
  auto opt_plain = make_sgd(plain), opt_dp = make_sgd(dp_net);
  std::shared_ptr<GradComm> comm;
  if (cuda::nccl_built())
    comm = make_nccl_comm(DistEnv{});
  else
    comm = make_local_comm();
  DataParallel dp(dp_net.params(), comm, {64, 1});
  dp.attach_hooks();
  for (int step = 1; step <= 3; ++step) {
    plain.loss(x, y).backward();
    opt_plain->step();
    opt_plain->zero_grad();
    dp_net.loss(x, y).backward();
    CHECK(dp.buckets_started() == 3 * step);  // started during the backward, not after it
    dp.finish_gradients();
    opt_dp->step();
    opt_dp->zero_grad();
    dp.check_identical_weights(step);
  }
  for (size_t i = 0; i < 3; ++i) {
    Tensor w = dp_net.params()[i].value();
    CHECK(testing::all_written(w));
    CHECK(testing::max_abs_diff(plain.params()[i].value(), w) == 0.0);
  }
}
