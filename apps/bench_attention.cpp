// bench_attention: times the FlashAttention kernels at the model's shapes (bf16, causal) and
// prints time, TFLOP/s and, at D = 8, exponentials per second against the MUFU limit.
//
//   build/bin/bench_attention [--json FILE] [--iters N] [--shape B,H,T,D,p]
//
// --shape times one shape only (e.g. to profile one kernel with ncu: `ncu -k regex:flash_fwd
// build/bin/bench_attention --shape 16,16,2048,64,0 --iters 1`).
//
// FLOPs are counted as FlashAttention counts them: 4 B H T^2 D (two T x T x D products), halved
// when causal; the backward as 2.5x the forward. `make bench-attention` runs this and then
// scripts/bench_attention_torch.py, which times PyTorch's SDPA backends in the same run and
// prints the ratios (docs/benchmarks.md has the results).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "cuda/runtime.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "training/cli.h"
#ifdef MT_WITH_CUDA
#include <cuda_runtime.h>

#include "cuda/attention_dropout.h"
#include "cuda/flash_attention.cuh"
#include "cuda/flash_attention_bwd.cuh"
#include "cuda/flash_attention_sm90.cuh"
#include "ops/attention.h"
#endif

namespace {

struct Shape4 {
  int B, H, T, D;
  float dropout;
};

#ifdef MT_WITH_CUDA
// Median time in ms of `fn` over `iters` runs, each bracketed by events on the framework stream.
template <typename F>
double time_ms(F&& fn, int iters) {
  auto stream = static_cast<cudaStream_t>(mt::cuda::stream_handle());
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int i = 0; i < 5; ++i) fn();  // warm-up: module load, smem attribute, clocks
  std::vector<float> ms(iters);
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(start, stream);
    fn();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    cudaEventElapsedTime(&ms[i], start, stop);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[iters / 2];
}

std::string bench_one(const Shape4& s, int iters) {
  using namespace mt;
  Generator gen(1);
  const Shape shape{s.B, s.T, s.H, s.D};
  auto rnd = [&] { return Tensor::randn(shape, gen, kFloat32, Device::cuda()).to(kBFloat16); };
  Tensor q = rnd(), k = rnd(), v = rnd(), dout = rnd();
  Tensor out = Tensor::empty(shape, kBFloat16, Device::cuda());
  Tensor dq = Tensor::empty(shape, kBFloat16, Device::cuda());
  Tensor dk = Tensor::empty(shape, kBFloat16, Device::cuda());
  Tensor dv = Tensor::empty(shape, kBFloat16, Device::cuda());
  Tensor lse = Tensor::empty({s.B, s.H, s.T}, kFloat32, Device::cuda());
  Tensor delta = Tensor::empty({2, s.B, s.H, s.T}, kFloat32, Device::cuda());
  cuda::FlashAttentionParams p;
  p.B = s.B, p.T = s.T, p.H = s.H, p.D = s.D;
  p.scale = 1.0f / std::sqrt(float(s.D));
  p.causal = true;
  p.seed = 7, p.offset = 0;
  p.dropout_threshold = AttentionDropout::threshold_for(s.dropout);
  const cuda::AttnStrides st{int64_t(s.T) * s.H * s.D, int64_t(s.H) * s.D, s.D};
  p.q = q.raw_data(), p.k = k.raw_data(), p.v = v.raw_data();
  p.q_strides = p.k_strides = p.v_strides = p.out_strides = p.dout_strides = st;
  p.out = out.raw_data(), p.lse = lse.data<float>();
  p.dout = dout.raw_data();
  p.dq = dq.raw_data(), p.dk = dk.raw_data(), p.dv = dv.raw_data();
  p.dq_strides = p.dk_strides = p.dv_strides = st;
  p.delta = delta.data<float>();
  const double fwd = time_ms([&] { cuda::flash_attention_forward(p); }, iters);
  // The deterministic backward (no dQ accumulator: delta, dK/dV, dQ kernels) ...
  cuda::FlashAttentionParams det = p;
  const double bwd_det = time_ms([&] { cuda::flash_attention_backward(det); }, iters);
  const double t_kv_det = time_ms([&] { cuda::fa::launch_backward_kv(det); }, iters);
  const double t_q = time_ms([&] { cuda::fa::launch_backward_q(det); }, iters);
  // ... and the default single pass (delta + zeroing, dK/dV/dQ, dQ rounding), kernel by kernel.
  Tensor dq_accum = Tensor::empty(shape, kFloat32, Device::cuda());
  p.dq_accum = dq_accum.data<float>();
  const double bwd = time_ms([&] { cuda::flash_attention_backward(p); }, iters);
  const double t_delta = time_ms([&] { cuda::fa::launch_backward_delta(p); }, iters);
  // The dK/dV/dQ kernel that flash_attention_backward picks: the wgmma one where it takes p
  // (D = 64/128 on an H100), whose mma.sync alternative is then timed too, for the A/B.
  const bool sm90 = cuda::fa::kUseSm90Backward && cuda::fa::sm90_handles(p);
  const double t_kv_mma = time_ms([&] { cuda::fa::launch_backward_kv(p); }, iters);
  const double t_kv = sm90 ? time_ms([&] { cuda::fa::launch_backward_sm90(p); }, iters) : t_kv_mma;
  const double t_convert = time_ms([&] { cuda::fa::launch_backward_dq_convert(p); }, iters);
  const double flops = 4.0 * s.B * s.H * double(s.T) * s.T * s.D / 2.0;
  // Exponentials the causal forward must compute: one per visible score, B H T (T + 1) / 2.
  const double exps = double(s.B) * s.H * s.T * (s.T + 1.0) / 2.0;
  std::printf(
      "B=%-3d H=%-3d T=%-5d D=%-4d p=%.2f  fwd %8.3f ms %6.1f TF/s  bwd %8.3f ms %6.1f TF/s"
      "  fwd exp %.2fe12/s\n",
      s.B, s.H, s.T, s.D, s.dropout, fwd, flops / fwd / 1e9, bwd, 2.5 * flops / bwd / 1e9,
      exps / fwd * 1e3 / 1e12);
  std::printf("    backward = delta %.3f + dK/dV/dQ %.3f%s + dQ rounding %.3f ms", t_delta, t_kv,
              sm90 ? " (wgmma)" : "", t_convert);
  if (sm90) std::printf("; dK/dV/dQ on mma.sync %.3f ms", t_kv_mma);
  std::printf("\n");
  std::printf("    deterministic backward %.3f ms = delta + dK/dV %.3f + dQ %.3f ms\n", bwd_det,
              t_kv_det, t_q);
  return fmt::format(
      "{{\"B\":{},\"H\":{},\"T\":{},\"D\":{},\"dropout\":{},\"fwd_ms\":{:.4f},\"bwd_ms\":{:.4f},"
      "\"bwd_det_ms\":{:.4f},\"fwd_TF\":{:.1f},\"bwd_TF\":{:.1f},\"fwd_exp_per_s\":{:.4e}}}",
      s.B, s.H, s.T, s.D, s.dropout, fwd, bwd, bwd_det, flops / fwd / 1e9, 2.5 * flops / bwd / 1e9,
      exps / fwd * 1e3);
}
#endif

}  // namespace

int run(int argc, char** argv) {
  std::string json_path;
  [[maybe_unused]] int iters = 50;  // used by the CUDA build only
  std::vector<Shape4> only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (a == "--iters" && i + 1 < argc) {
      iters = static_cast<int>(mt::training::parse_int_flag("--iters", argv[++i]));
    } else if (a == "--shape" && i + 1 < argc) {
      Shape4 s{};
      if (std::sscanf(argv[++i], "%d,%d,%d,%d,%f", &s.B, &s.H, &s.T, &s.D, &s.dropout) != 5) {
        std::fprintf(stderr, "bench_attention: --shape wants B,H,T,D,p, got %s\n", argv[i]);
        return mt::training::kExitUsage;
      }
      only.push_back(s);
    } else {
      std::fprintf(stderr,
                   "usage: bench_attention [--json FILE] [--iters N] [--shape B,H,T,D,p]\n");
      return mt::training::kExitUsage;
    }
  }
  if (!mt::cuda::available()) {
    std::printf("bench_attention: no GPU available; nothing to time\n");
    return 0;
  }
#ifdef MT_WITH_CUDA
  // The seed model's shape first (with and without its dropout 0.05), then D = 64 and 128.
  std::vector<Shape4> shapes = {{32, 8, 2048, 8, 0.0f},  {32, 8, 2048, 8, 0.05f},
                                {16, 8, 4096, 8, 0.0f},  {16, 16, 2048, 64, 0.0f},
                                {8, 16, 4096, 64, 0.0f}, {8, 16, 2048, 128, 0.0f},
                                {4, 16, 4096, 128, 0.0f}};
  if (!only.empty()) shapes = only;
  std::printf("FlashAttention (ours), bf16, causal, on %s\n", mt::cuda::device_name(0).c_str());
  std::vector<std::string> rows;
  for (const Shape4& s : shapes) rows.push_back(bench_one(s, iters));
  if (!json_path.empty()) {
    FILE* f = std::fopen(json_path.c_str(), "w");
    CHECK(f != nullptr, "bench_attention: cannot write {}", json_path);
    std::fprintf(f, "[\n");
    for (size_t i = 0; i < rows.size(); ++i)
      std::fprintf(f, "%s%s\n", rows[i].c_str(), i + 1 < rows.size() ? "," : "");
    std::fprintf(f, "]\n");
    std::fclose(f);
  }
#endif
  return 0;
}

int main(int argc, char** argv) {
  return mt::training::run_app("bench_attention", run, argc, argv);
}
