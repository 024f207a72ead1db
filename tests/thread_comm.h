// Ranks of a data-parallel run simulated by threads of one process: a GradComm whose
// all-reduces meet at a barrier in shared memory, standing in for NCCL in the CPU tests.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "training/distributed.h"

namespace mt::testing {

// In-process ranks: each thread is one rank; all-reduces meet at a barrier in shared memory.
struct ThreadGroup {
  explicit ThreadGroup(int w) : world(w) {}
  int world;
  std::mutex m;
  std::condition_variable cv;
  int arrived = 0;
  int64_t generation = 0;
  std::vector<double> acc, result;

  void all_reduce(std::vector<double>& v, cuda::CommOp op) {
    std::unique_lock<std::mutex> lock(m);
    if (arrived == 0) {
      acc = v;
    } else {
      for (size_t i = 0; i < v.size(); ++i) {
        if (op == cuda::CommOp::Max)
          acc[i] = std::max(acc[i], v[i]);
        else if (op == cuda::CommOp::Min)
          acc[i] = std::min(acc[i], v[i]);
        else
          acc[i] += v[i];
      }
    }
    if (++arrived == world) {
      result = acc;
      if (op == cuda::CommOp::Avg) {
        for (double& x : result) x /= world;
      }
      arrived = 0;
      ++generation;
      cv.notify_all();
    } else {
      const int64_t g = generation;
      cv.wait(lock, [&] { return generation != g; });
    }
    v = result;  // a faster rank cannot overwrite it: the next round needs this rank too
  }
};

class ThreadComm : public training::GradComm {
 public:
  ThreadComm(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int world() const override { return group_.world; }
  void average_async(Tensor& flat) override {
    std::vector<double> v = flat.to_vector<double>();
    group_.all_reduce(v, cuda::CommOp::Avg);
    flat.copy_(Tensor::from_doubles(v, flat.shape(), kFloat64));
  }
  void wait() override {}
  void all_reduce_host(std::vector<double>& values, cuda::CommOp op) override {
    group_.all_reduce(values, op);
  }

 private:
  ThreadGroup& group_;
  int rank_;
};

}  // namespace mt::testing
