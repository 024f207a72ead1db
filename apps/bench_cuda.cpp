// bench_cuda: the CUDA backend's kernels at sizes large enough to reach steady state, reported
// as achieved bandwidth (memory-bound kernels) or TFLOP/s (GEMMs) beside the GPU's limits.
// `make bench-cuda` runs it. Each figure is the median of `reps` timed runs after 3 warm-up
// runs; the GPU is synchronized around each run, so launch overhead is included (it is
// negligible at these sizes: ~5 us against 100s of us).
//
//   bench_cuda [--reps N]
//
// Byte counts are the minimum traffic: each input read once, each output written once.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cuda/runtime.h"
#include "ops/activation.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/optim_ops.h"
#include "ops/reduce.h"
#include "ops/rmsnorm.h"
#include "ops/softmax.h"
#include "tensor/random.h"
#include "training/cli.h"

using namespace mt;

namespace {

using Clock = std::chrono::steady_clock;

double median_seconds(int reps, const std::function<void()>& f) {
  for (int i = 0; i < 3; ++i) f();
  cuda::synchronize();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    cuda::synchronize();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void report_bw(const char* what, double bytes, double seconds) {
  std::printf("%-44s %9.1f us  %7.0f GB/s\n", what, seconds * 1e6, bytes / seconds / 1e9);
}

void report_flops(const char* what, double flops, double seconds) {
  std::printf("%-44s %9.1f us  %7.1f TFLOP/s\n", what, seconds * 1e6, flops / seconds / 1e12);
}

}  // namespace

int run(int argc, char** argv) {
  int reps = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = static_cast<int>(std::max<int64_t>(1, training::parse_int_flag("--reps", argv[++i])));
    } else {
      std::fprintf(stderr, "usage: bench_cuda [--reps N]\n");
      return training::kExitUsage;
    }
  }
  if (!cuda::available()) {
    std::printf("bench_cuda: no GPU here (cuda::available() is false)\n");
    return 0;
  }
  std::printf("bench_cuda on %s, median of %d runs\n", cuda::device_name(0).c_str(), reps);
  const Device gpu = Device::cuda();
  Generator gen(1);
  const int64_t n = int64_t(1) << 26;  // 64 Mi elements: 256 MiB in float32, far beyond L2
  const Tensor a = Tensor::randn({n}, gen, kFloat32, gpu),
               b = Tensor::randn({n}, gen, kFloat32, gpu);
  report_bw("add f32 [64Mi]", 12.0 * n, median_seconds(reps, [&] { ops::add(a, b); }));
  const Tensor bias = Tensor::randn({1024}, gen, kFloat32, gpu);
  const Tensor a2 = a.view({n / 1024, 1024});
  report_bw("add f32 broadcast [64Ki,1024] + [1024]", 8.0 * n,
            median_seconds(reps, [&] { ops::add(a2, bias); }));
  report_bw("exp f32 [64Mi]", 8.0 * n, median_seconds(reps, [&] { ops::exp(a); }));
  report_bw("gelu(tanh) f32 [64Mi]", 8.0 * n, median_seconds(reps, [&] { ops::gelu(a); }));
  report_bw("sum f32 [64Mi] (float64 accumulation)", 4.0 * n,
            median_seconds(reps, [&] { ops::sum(a); }));
  report_bw("sum over rows f32 [64Ki,1024] -> [1024]", 4.0 * n,
            median_seconds(reps, [&] { ops::sum(a2, {0}); }));
  report_bw("softmax f32 [64Ki,1024] last dim", 8.0 * n,
            median_seconds(reps, [&] { ops::softmax(a2, -1); }));
  const Tensor w = Tensor::ones({1024}, kFloat32, gpu);
  report_bw("rmsnorm fwd f32 [64Ki,1024]", 8.0 * n,
            median_seconds(reps, [&] { ops::rmsnorm_forward(a2, w, 1e-5f, nullptr); }));
  Tensor rstd;
  ops::rmsnorm_forward(a2, w, 1e-5f, &rstd);
  report_bw("rmsnorm bwd f32 [64Ki,1024] (dx and dw)", 12.0 * n, median_seconds(reps, [&] {
              Tensor dx, dw;
              ops::rmsnorm_backward(a2, a2, w, rstd, &dx, &dw);
            }));

  for (DType dt : {kBFloat16, kFloat32}) {
    const int64_t M = 8192, N = 8192, K = 8192;
    const Tensor x = Tensor::randn({M, K}, gen, dt, gpu), y = Tensor::randn({K, N}, gen, dt, gpu);
    const std::string what = std::string("matmul ") + dtype_name(dt) + " 8192^3 (cuBLASLt)";
    report_flops(what.c_str(), 2.0 * M * N * K, median_seconds(reps, [&] { ops::matmul(x, y); }));
  }
  {
    const Tensor x = Tensor::randn({65536, 64}, gen, kBFloat16, gpu);
    const Tensor wl = Tensor::randn({256, 64}, gen, kBFloat16, gpu);
    const Tensor bl = Tensor::randn({256}, gen, kBFloat16, gpu);
    report_flops("linear bf16 [65536,64] -> 256 + bias", 2.0 * 65536 * 64 * 256,
                 median_seconds(reps, [&] { ops::linear(x, wl, bl); }));
  }

  // AdamW over 12M parameters in 40 tensors (a model of that size): 4 reads + 3 writes of 4 B.
  std::vector<Tensor> p, g, m, v;
  int64_t total = 0;
  for (int k = 0; k < 40; ++k) {
    const int64_t sz = (k % 4 == 0) ? 1024 : 400000;
    p.push_back(Tensor::randn({sz}, gen, kFloat32, gpu));
    g.push_back(Tensor::randn({sz}, gen, kFloat32, gpu));
    m.push_back(Tensor::zeros({sz}, kFloat32, gpu));
    v.push_back(Tensor::zeros({sz}, kFloat32, gpu));
    total += sz;
  }
  const Tensor lr = Tensor::scalar(1e-3, kFloat32, gpu);
  ops::AdamWHyper h;
  // The optimizer's device counters: the kernel reads the step count, a one-thread kernel
  // advances it (both timed, as Optimizer::step runs them).
  Tensor counters = Tensor::zeros({ops::kNumOptimCounters}, kInt64, gpu);
  const Tensor count = counters.narrow(0, ops::kStepsApplied, 1);
  report_bw("adamw fused, 40 tensors, 12M params", 28.0 * total, median_seconds(reps, [&] {
              ops::adamw_step_(p, g, m, v, lr, count, h);
              ops::optimizer_counters_advance_(counters);
            }));
  report_bw("grad global norm, 40 tensors, 12M", 4.0 * total,
            median_seconds(reps, [&] { ops::grad_global_norm(g); }));

  const auto s0 = cuda::memory_stats();
  const double alloc_s = median_seconds(reps, [&] {
    for (int i = 0; i < 1000; ++i) cuda::release(cuda::allocate(size_t(4) << 20));
  });
  std::printf("%-44s %9.1f ns per allocate+release pair (%zu new cudaMalloc)\n",
              "caching allocator, 4 MiB blocks", alloc_s / 1000 * 1e9,
              cuda::memory_stats().num_device_mallocs - s0.num_device_mallocs);
  return 0;
}

int main(int argc, char** argv) { return training::run_app("bench_cuda", run, argc, argv); }
