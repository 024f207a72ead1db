// bench_cpu: GFLOP/s of the CPU GEMM (ops::matmul) at the model's shapes, single-thread and on
// all threads, beside a naive triple loop. `make bench-cpu` runs it.
//
// The three products of one Linear 64 -> 256 over a batch of 65536 rows (B * T), with the
// operand layouts a training step really has (w is [out, in], so the forward reads w^T and the
// weight gradient reads dy^T, both as transposed views):
//   forward  y  = x . w^T    [65536 x 64] . [64 x 256]
//   backward dx = dy . w     [65536 x 256] . [256 x 64]
//   backward dw = dy^T . x   [256 x 65536] . [65536 x 64]
//
//   bench_cpu [--reps N]     best of N runs per figure (default 3)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>

#include "ops/matmul.h"
#include "tensor/random.h"
#include "training/cli.h"

namespace {

using Clock = std::chrono::steady_clock;

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Wall time and the CPU time all threads spent, of the run with the best wall time out of
// `reps`. On a shared machine the wall time includes waiting for a core; the CPU time does not,
// so flops / CPU-second is the per-core speed a dedicated core would give (OpenMP threads that
// spin at a barrier count as busy, which makes it a lower bound with several threads).
struct Timing {
  double wall = 1e30;
  double cpu = 1e30;
};

Timing best_of(int reps, const std::function<void()>& f) {
  Timing best;
  for (int r = 0; r < reps; ++r) {
    const double c0 = process_cpu_seconds();
    const auto t0 = Clock::now();
    f();
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    if (wall < best.wall) best = {wall, process_cpu_seconds() - c0};
  }
  return best;
}

// The textbook i-j-k loop (row of A times column of B), for the comparison figure.
void naive_matmul(int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      float s = 0.0f;
      for (int64_t k = 0; k < K; ++k) s += A[i * K + k] * B[k * N + j];
      C[i * N + j] = s;
    }
  }
}

struct Product {
  const char* name;
  const char* shapes;
  mt::Tensor a, b;
};

}  // namespace

int run(int argc, char** argv) {
  int reps = 3;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps =
          static_cast<int>(std::max<int64_t>(1, mt::training::parse_int_flag("--reps", argv[++i])));
    } else {
      std::fprintf(stderr, "usage: bench_cpu [--reps N]\n");
      return mt::training::kExitUsage;
    }
  }
  constexpr int64_t kRows = 65536, kIn = 64, kOut = 256;
  mt::Generator gen(7);
  const mt::Tensor x = mt::Tensor::uniform({kRows, kIn}, -1, 1, gen);
  const mt::Tensor w = mt::Tensor::uniform({kOut, kIn}, -1, 1, gen);
  const mt::Tensor dy = mt::Tensor::uniform({kRows, kOut}, -1, 1, gen);
  const Product products[] = {
      {"forward  y = x.w^T", "[65536x64].[64x256]", x, w.transpose(0, 1)},
      {"backward dx = dy.w", "[65536x256].[256x64]", dy, w},
      {"backward dw = dy^T.x", "[256x65536].[65536x64]", dy.transpose(0, 1), x},
  };
  const int threads = omp_get_max_threads();
  std::printf("CPU GEMM, float32, best of %d; %d threads available\n\n", reps, threads);
  std::printf(
      "GFLOP/s by wall clock; in brackets GFLOP per CPU-second of one core (what a dedicated\n"
      "core gives when the machine is shared). 'GEMM' writes into a preallocated output;\n"
      "'matmul' is ops::matmul, which also allocates its output (fresh pages from the OS,\n"
      "whose first-touch faults are part of that figure).\n\n");
  std::printf(
      "| product | shapes | GEMM 1 thread | GEMM %d threads | matmul 1 thread | matmul %d "
      "threads |\n",
      threads, threads);
  std::printf("|---|---|---|---|---|---|\n");
  for (const Product& p : products) {
    const int64_t M = p.a.size(0), K = p.a.size(1), N = p.b.size(1);
    const double gflop = 2e-9 * double(M) * double(K) * double(N);
    mt::Tensor out = mt::Tensor::zeros({M, N});
    const auto gemm = [&] {
      mt::ops::gemm_cpu<float>(M, N, K, p.a.data<float>(), p.a.stride(0), p.a.stride(1),
                               p.b.data<float>(), p.b.stride(0), p.b.stride(1), out.data<float>(),
                               N, false, true);
    };
    const auto matmul = [&] { mt::ops::matmul(p.a, p.b); };
    omp_set_num_threads(1);
    const Timing g1 = best_of(reps, gemm), m1 = best_of(reps, matmul);
    omp_set_num_threads(threads);
    const Timing gn = best_of(reps, gemm), mn = best_of(reps, matmul);
    std::printf("| %s | %s | %.1f (%.1f) | %.1f | %.1f (%.1f) | %.1f |\n", p.name, p.shapes,
                gflop / g1.wall, gflop / g1.cpu, gflop / gn.wall, gflop / m1.wall, gflop / m1.cpu,
                gflop / mn.wall);
  }
  // The naive loop on the forward shape, over the first 4096 rows only (the full 65536 would
  // take half a minute at 1 GFLOP/s); GFLOP/s does not depend on the row count.
  constexpr int64_t kNaiveRows = 4096;
  const mt::Tensor wt = w.transpose(0, 1).contiguous();  // [64, 256], row-major B
  mt::Tensor c = mt::Tensor::empty({kNaiveRows, kOut});
  const Timing tn = best_of(reps, [&] {
    naive_matmul(kNaiveRows, kOut, kIn, x.data<float>(), wt.data<float>(), c.data<float>());
  });
  const double gflop = 2e-9 * kNaiveRows * kIn * kOut;
  std::printf("| naive i-j-k loop, forward | [4096x64].[64x256] | %.1f (%.1f) | - | - | - |\n",
              gflop / tn.wall, gflop / tn.cpu);
  return 0;
}

int main(int argc, char** argv) { return mt::training::run_app("bench_cpu", run, argc, argv); }
