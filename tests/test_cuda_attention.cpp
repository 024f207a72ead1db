// The CUDA FlashAttention kernels against the float64 CPU reference.
//
// Tolerance (docs/design.md, Numerics): the kernel's relative error against the float64 reference
// may be at most 2x (forward) or 3x (gradients) that of a naive bf16 implementation (every
// intermediate rounded to bf16: ops::attention_naive_*(..., emulate_bf16 = true)) against the
// same reference. Both see the same bf16-rounded inputs, so only the arithmetic differs.
// Outputs are poisoned with NaN before every kernel and checked to be fully written.
#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/functions_attention.h"
#include "cuda/attention_dropout.h"
#include "ops/attention.h"
#include "tensor/random.h"
#include "tests/half_bits.h"
#include "tests/test_util.h"
#ifdef MT_WITH_CUDA
#include "cuda/flash_attention.cuh"
#endif

using namespace mt;
using mt::ops::AttentionOptions;

namespace {

struct GpuResult {
  Tensor out, lse, dq, dk, dv;  // float64 CPU copies
};

// The kernels through their raw launchers, on bf16 copies of q, k, v, dout, with every output
// poisoned first.
GpuResult run_gpu(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout,
                  const AttentionOptions& o, bool backward) {
#ifdef MT_WITH_CUDA
  auto dev = [](const Tensor& t) { return t.to(kBFloat16).cuda(); };
  Tensor qd = dev(q), kd = dev(k), vd = dev(v), dod = dev(dout);
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), D = q.size(3);
  Tensor out = Tensor::empty(q.shape(), kBFloat16, Device::cuda());
  Tensor lse = Tensor::empty({B, H, T}, kFloat32, Device::cuda());
  testing::poison(out);
  testing::poison(lse);
  cuda::FlashAttentionParams p;
  p.B = int(B), p.T = int(T), p.H = int(H), p.D = int(D);
  p.scale = ops::attention_scale(o, D);
  p.causal = o.causal;
  p.seed = o.seed, p.offset = o.offset;
  p.dropout_threshold = AttentionDropout::threshold_for(o.dropout_p);
  auto strides = [](const Tensor& t) {
    return cuda::AttnStrides{t.stride(0), t.stride(1), t.stride(2)};
  };
  p.q = qd.raw_data(), p.k = kd.raw_data(), p.v = vd.raw_data();
  p.q_strides = strides(qd), p.k_strides = strides(kd), p.v_strides = strides(vd);
  p.out = out.raw_data(), p.out_strides = strides(out), p.lse = lse.data<float>();
  cuda::flash_attention_forward(p);
  GpuResult r{out.to(kFloat64).cpu(), lse.to(kFloat64).cpu(), {}, {}, {}};
  if (backward) {
    Tensor dq = Tensor::empty(q.shape(), kBFloat16, Device::cuda());
    Tensor dk = Tensor::empty(q.shape(), kBFloat16, Device::cuda());
    Tensor dv = Tensor::empty(q.shape(), kBFloat16, Device::cuda());
    Tensor delta = Tensor::empty({2, B, H, T}, kFloat32, Device::cuda());
    testing::poison(dq), testing::poison(dk), testing::poison(dv);
    p.dout = dod.raw_data(), p.dout_strides = strides(dod);
    p.dq = dq.raw_data(), p.dk = dk.raw_data(), p.dv = dv.raw_data();
    p.dq_strides = strides(dq), p.dk_strides = strides(dk), p.dv_strides = strides(dv);
    p.delta = delta.data<float>();
    // The single pass's float32 dQ accumulator, poisoned too: the backward must zero it.
    Tensor dq_accum;
    if (!o.deterministic) {
      dq_accum = Tensor::empty(q.shape(), kFloat32, Device::cuda());
      testing::poison(dq_accum);
      p.dq_accum = dq_accum.data<float>();
    }
    cuda::flash_attention_backward(p);
    r.dq = dq.to(kFloat64).cpu(), r.dk = dk.to(kFloat64).cpu(), r.dv = dv.to(kFloat64).cpu();
  }
  return r;
#else
  (void)q, (void)k, (void)v, (void)dout, (void)o, (void)backward;
  MT_FAIL("run_gpu: built without CUDA");
#endif
}

Tensor bf16_randn(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return Tensor::randn(shape, gen, kFloat64).to(kBFloat16).to(kFloat64);  // exact in bf16
}

// Checks one configuration; returns the kernel's forward error for the summary.
// deterministic: the two-kernel backward (fixed summation order) instead of the single pass.
void check_case(int64_t B, int64_t T, int64_t H, int64_t D, bool causal, float p, bool grads,
                bool deterministic = false) {
  INFO("B=" << B << " T=" << T << " H=" << H << " D=" << D << " causal=" << causal << " p=" << p
            << " deterministic=" << deterministic);
  const Shape shape{B, T, H, D};
  const uint64_t seed = uint64_t(T * 131 + D * 7 + H);
  Tensor q = bf16_randn(shape, seed), k = bf16_randn(shape, seed + 1);
  Tensor v = bf16_randn(shape, seed + 2), dout = bf16_randn(shape, seed + 3);
  AttentionOptions o{causal, p, 1234 + uint64_t(T), 7, 0.0f};
  o.deterministic = deterministic;

  Tensor lse64;
  Tensor ref = ops::attention_forward(q, k, v, o, &lse64);  // tiled float64 CPU
  Tensor naive = ops::attention_naive_forward(q, k, v, o, /*emulate_bf16=*/true);
  GpuResult g = run_gpu(q, k, v, dout, o, grads);
  REQUIRE(testing::all_written(g.out));
  REQUIRE(testing::all_written(g.lse));
  const double err = testing::rel_error(g.out, ref), err_naive = testing::rel_error(naive, ref);
  INFO("forward error " << err << " vs naive bf16 " << err_naive);
  CHECK(err <= 2.0 * err_naive);
  CHECK(testing::max_abs_diff(g.lse, lse64) < 1e-3 * (1.0 + std::sqrt(double(T))));
  if (!grads) return;
  REQUIRE(testing::all_written(g.dq));
  REQUIRE(testing::all_written(g.dk));
  REQUIRE(testing::all_written(g.dv));
  ops::AttentionGrads r = ops::attention_backward(q, k, v, ref, lse64, dout, o);
  ops::AttentionGrads n = ops::attention_naive_backward(q, k, v, dout, o, true);
  const char* names[3] = {"dq", "dk", "dv"};
  const Tensor* got[3] = {&g.dq, &g.dk, &g.dv};
  const Tensor* want[3] = {&r.dq, &r.dk, &r.dv};
  const Tensor* nv[3] = {&n.dq, &n.dk, &n.dv};
  for (int i = 0; i < 3; ++i) {
    // T = 1: softmax over one key has zero gradient w.r.t. its score, so dq and dk are exactly
    // zero in the reference and a relative error is undefined. The kernel's dS = dP - delta is
    // not exactly 0: delta = dO . O uses the bf16-rounded O (relative error <= 2^-9 an element),
    // so |dS| <= 2^-9 sum_d |dO_d O_d| + fp32 rounding, and |dq| <= scale |dS| max|k| (dk: q).
    // Checked against that bound with 2^-8 to cover the fp32 terms.
    if (T == 1 && i < 2) {
      std::vector<double> o64 = g.out.to_vector<double>(), do64 = dout.to_vector<double>();
      double worst_row = 0;
      for (size_t row = 0; row < o64.size() / D; ++row) {
        double sum = 0;
        for (int64_t d = 0; d < D; ++d) sum += std::fabs(o64[row * D + d] * do64[row * D + d]);
        worst_row = std::max(worst_row, sum);
      }
      const Tensor& other = i == 0 ? k : q;
      double max_other = 0;
      for (double x : other.to_vector<double>()) max_other = std::max(max_other, std::fabs(x));
      const double bound = ops::attention_scale(o, D) * std::ldexp(worst_row, -8) * max_other;
      INFO(names[i] << " at T = 1: " << testing::max_abs_diff(*got[i], *want[i]) << " vs bound "
                    << bound);
      CHECK(testing::max_abs_diff(*got[i], *want[i]) <= bound);
      continue;
    }
    const double e = testing::rel_error(*got[i], *want[i]);
    const double en = testing::rel_error(*nv[i], *want[i]);
    INFO(names[i] << " error " << e << " vs naive bf16 " << en);
    CHECK(e <= 3.0 * en);
  }
}

// D = 8 inputs whose scores move along the keys at a slope per head, in log2 units a key:
// 4 / 64 and 24 / 64 (rising: later key tiles outgrow the lazy kernel's bound on P's row sums
// and take its slow path, which random scores never reach), -4 / 64 (falling), 0 (random).
// Checked against the float64 reference directly: the naive bf16 rounds scores of several
// hundred to steps of 1 or 2 and is no yardstick. A scalar model of the kernel (bf16 P, hi/lo Q)
// gives about 2e-3 here, at 64- and at 128-key tiles.
void check_rising_scores(int64_t T, bool causal, float p) {
  INFO("T=" << T << " causal=" << causal << " p=" << p);
  const int64_t H = 4, D = 8;
  const Shape shape{1, T, H, D};
  const double slopes[H] = {4.0 / 64, 24.0 / 64, -4.0 / 64, 0.0};
  AttentionOptions o{causal, p, 99 + uint64_t(T), 3, 0.0f};
  const double scale_log2 = ops::attention_scale(o, D) * 1.4426950408889634;
  std::vector<double> q = bf16_randn(shape, 21).to_vector<double>();
  std::vector<double> k = bf16_randn(shape, 22).to_vector<double>();
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      double* qr = &q[(t * H + h) * D];
      double* kr = &k[(t * H + h) * D];
      for (int64_t d = 1; d < D; ++d) qr[d] *= 0.5, kr[d] *= 0.5;
      qr[0] = 2.0;  // score ~ 2 k[0] + noise, k[0] = key * slope / (2 scale log2 e) + noise
      kr[0] += double(t) * slopes[h] / (2.0 * scale_log2);
    }
  }
  auto bf16_exact = [&](const std::vector<double>& x) {
    return Tensor::from_doubles(x, shape, kFloat64).to(kBFloat16).to(kFloat64);
  };
  Tensor qt = bf16_exact(q), kt = bf16_exact(k), v = bf16_randn(shape, 23);
  Tensor lse64;
  Tensor ref = ops::attention_forward(qt, kt, v, o, &lse64);
  GpuResult g = run_gpu(qt, kt, v, v, o, /*backward=*/false);
  REQUIRE(testing::all_written(g.out));
  REQUIRE(testing::all_written(g.lse));
  const double err = testing::rel_error(g.out, ref);
  INFO("forward error " << err << ", lse " << testing::max_abs_diff(g.lse, lse64));
  CHECK(err < 1e-2);
  CHECK(testing::max_abs_diff(g.lse, lse64) < 1e-3 * (1.0 + std::sqrt(double(T))));
}

// The backward writes dq, dk, dv through their strides. Into the q, k, v views of one packed
// [B, T, 4, H, D] gradient (part 3 a sentinel that must survive; parts 0-2 poisoned) it gives
// the bits of attention_backward's contiguous gradients: only the addresses change. The single
// pass adds dQ atomically, in any order where several key blocks add to a row (T > 64), so
// there dq is compared as the determinism test below does; everything else bit for bit.
void check_packed_grads(int64_t B, int64_t T, int64_t H, int64_t D, DType dt, float p,
                        bool deterministic) {
  INFO("B=" << B << " T=" << T << " H=" << H << " D=" << D << " " << dtype_name(dt) << " p=" << p
            << " deterministic=" << deterministic);
  Tensor qkv = bf16_randn({B, T, 3, H, D}, uint64_t(T + D)).to(dt).cuda();
  Tensor q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);
  Tensor dout = bf16_randn({B, T, H, D}, uint64_t(T + D + 1)).to(dt).cuda();
  AttentionOptions o{true, p, 77, 5, 0.0f};
  o.deterministic = deterministic;
  Tensor lse;
  Tensor out = ops::attention_forward(q, k, v, o, &lse);
  ops::AttentionGrads want = ops::attention_backward(q, k, v, out, lse, dout, o);
  Tensor packed = Tensor::full({B, T, 4, H, D}, 7.0, dt, Device::cuda());
  ops::AttentionGrads got{packed.select(2, 0), packed.select(2, 1), packed.select(2, 2)};
  testing::poison(got.dq), testing::poison(got.dk), testing::poison(got.dv);
  ops::attention_backward_into(q, k, v, out, lse, dout, o, got);
  const Tensor gq = got.dq.cpu(), gk = got.dk.cpu(), gv = got.dv.cpu();
  REQUIRE(testing::all_written(gq));
  REQUIRE(testing::all_written(gk));
  REQUIRE(testing::all_written(gv));
  const bool dq_exact = deterministic || dt != kBFloat16 || T <= 64;
  if (dq_exact) {
    CHECK(testing::max_abs_diff(gq, want.dq.cpu()) == 0.0);
  } else {
    CHECK(testing::rel_error(gq, want.dq.cpu()) < 1e-2);
  }
  CHECK(testing::max_abs_diff(gk, want.dk.cpu()) == 0.0);
  CHECK(testing::max_abs_diff(gv, want.dv.cpu()) == 0.0);
  CHECK(testing::max_abs_diff(packed.select(2, 3).cpu(), Tensor::full({B, T, H, D}, 7.0, dt)) ==
        0.0);
  // A layout the kernels cannot write (rows 12 elements apart: not 16-byte aligned) goes through
  // a contiguous gradient and a copy: the same values.
  Tensor padded = Tensor::empty({B, T, H, D + 4}, dt, Device::cuda());
  ops::AttentionGrads odd{padded.narrow(3, 0, D), Tensor::empty({B, T, H, D}, dt, Device::cuda()),
                          Tensor::empty({B, T, H, D}, dt, Device::cuda())};
  ops::attention_backward_into(q, k, v, out, lse, dout, o, odd);
  CHECK(testing::max_abs_diff(odd.dk.cpu(), want.dk.cpu()) == 0.0);
  CHECK(testing::max_abs_diff(odd.dv.cpu(), want.dv.cpu()) == 0.0);
  if (dq_exact) CHECK(testing::max_abs_diff(odd.dq.cpu(), want.dq.cpu()) == 0.0);
}

}  // namespace

CUDA_TEST_CASE("cuda: flash attention, short sequences, every head dim and flag") {
  for (int64_t D : {8, 16, 32, 64, 128})
    for (int64_t T : {1, 17, 128})
      for (bool causal : {true, false})
        for (float p : {0.0f, 0.05f}) check_case(3, T, 8, D, causal, p, true);
}

CUDA_TEST_CASE("cuda: flash attention, T = 1000 and 2048") {
  for (int64_t D : {8, 16, 32, 64, 128}) {
    check_case(1, 1000, 8, D, true, 0.05f, true);
    check_case(3, 1000, 1, D, false, 0.0f, true);
    check_case(1, 2048, 1, D, true, 0.0f, true);
    check_case(1, 2048, 1, D, false, 0.05f, true);
  }
}

CUDA_TEST_CASE("cuda: flash attention, T = 4099 (past every tile multiple)") {
  check_case(1, 4099, 1, 8, true, 0.05f, true);
  check_case(1, 4099, 1, 64, false, 0.0f, true);
  check_case(1, 4099, 1, 128, true, 0.0f, true);
  for (int64_t D : {16, 32}) check_case(1, 4099, 1, D, true, 0.05f, false);
}

// fa::launch_over_tiles puts the B * H heads in groups whose K and V fit 16 MiB of L2, each
// group in its own grid z (cuda/flash_attention_common.cuh); the other cases here all fit in
// one group. These take two: 300 heads of 66.5 KiB at D = 128 (150 a group), 600 of 33 KiB at
// D = 64 (300 a group), with several tiles a head.
CUDA_TEST_CASE("cuda: flash attention over several head groups (the launch order)") {
  check_case(3, 130, 100, 128, true, 0.0f, true);
  check_case(3, 130, 100, 128, true, 0.05f, true);
  check_case(3, 130, 200, 64, true, 0.05f, true);
}

CUDA_TEST_CASE("cuda: flash attention, the deterministic backward at every head dim") {
  for (int64_t D : {8, 16, 32, 64, 128}) {
    check_case(3, 17, 8, D, true, 0.05f, true, true);
    check_case(1, 1000, 2, D, true, 0.05f, true, true);
    check_case(2, 300, 1, D, false, 0.0f, true, true);
  }
}

CUDA_TEST_CASE("cuda: flash attention backward is deterministic") {
  const Shape shape{2, 1000, 4, 32};
  Tensor q = bf16_randn(shape, 1), k = bf16_randn(shape, 2), v = bf16_randn(shape, 3);
  Tensor dout = bf16_randn(shape, 4);
  AttentionOptions o{true, 0.05f, 42, 3, 0.0f};
  o.deterministic = true;
  GpuResult a = run_gpu(q, k, v, dout, o, true), b = run_gpu(q, k, v, dout, o, true);
  CHECK(testing::max_abs_diff(a.dq, b.dq) == 0.0);
  CHECK(testing::max_abs_diff(a.dk, b.dk) == 0.0);
  CHECK(testing::max_abs_diff(a.dv, b.dv) == 0.0);
  CHECK(testing::max_abs_diff(a.out, b.out) == 0.0);
  // The single pass: dK and dV are still summed in a fixed order; dQ's atomic adds may round
  // differently from run to run, by a few bf16 ulps at most.
  o.deterministic = false;
  GpuResult c = run_gpu(q, k, v, dout, o, true), d = run_gpu(q, k, v, dout, o, true);
  CHECK(testing::max_abs_diff(c.dk, a.dk) == 0.0);
  CHECK(testing::max_abs_diff(c.dv, a.dv) == 0.0);
  CHECK(testing::max_abs_diff(c.dk, d.dk) == 0.0);
  CHECK(testing::rel_error(c.dq, a.dq) < 1e-2);
  CHECK(testing::rel_error(c.dq, d.dq) < 1e-2);
}

CUDA_TEST_CASE("cuda: scaled_dot_product_attention on strided views matches the CPU") {
  // The model's case: q, k, v are slices of a fused [B, T, 3, H, D] projection, no copy.
  Tensor qkv = bf16_randn({2, 300, 3, 4, 16}, 9);
  Tensor qkv_gpu = qkv.to(kBFloat16).cuda();
  AttentionOptions o{true, 0.05f, 5, 2, 0.0f};
  Var q(qkv_gpu.select(2, 0), true), k(qkv_gpu.select(2, 1), true), v(qkv_gpu.select(2, 2), true);
  Var y = scaled_dot_product_attention(q, k, v, o);
  Tensor dy = bf16_randn({2, 300, 4, 16}, 10);
  y.backward(dy.to(kBFloat16).cuda());
  Tensor qc = qkv.select(2, 0), kc = qkv.select(2, 1), vc = qkv.select(2, 2);
  Tensor ref = ops::attention_forward(qc, kc, vc, o, nullptr);
  Tensor naive = ops::attention_naive_forward(qc, kc, vc, o, true);
  CHECK(testing::rel_error(y.value().to(kFloat64).cpu(), ref) <=
        2.0 * testing::rel_error(naive, ref));
  ops::AttentionGrads n = ops::attention_naive_backward(qc, kc, vc, dy, o, true);
  Tensor lse;
  Tensor out = ops::attention_forward(qc, kc, vc, o, &lse);
  ops::AttentionGrads r = ops::attention_backward(qc, kc, vc, out, lse, dy, o);
  CHECK(q.grad().shape() == Shape({2, 300, 4, 16}));
  CHECK(testing::rel_error(q.grad().to(kFloat64).cpu(), r.dq) <=
        3.0 * testing::rel_error(n.dq, r.dq));
  CHECK(testing::rel_error(k.grad().to(kFloat64).cpu(), r.dk) <=
        3.0 * testing::rel_error(n.dk, r.dk));
  CHECK(testing::rel_error(v.grad().to(kFloat64).cpu(), r.dv) <=
        3.0 * testing::rel_error(n.dv, r.dv));
}

CUDA_TEST_CASE("cuda: attention backward into the views of one packed gradient") {
  for (int64_t D : {8, 16, 32, 64, 128}) {
    for (bool det : {false, true}) {
      check_packed_grads(2, 17, 3, D, kBFloat16, 0.0f, det);
      check_packed_grads(2, 130, 3, D, kBFloat16, 0.0f, det);  // sm90 at D = 64, 128 (single pass)
      check_packed_grads(1, 130, 2, D, kBFloat16, 0.05f, det);
    }
  }
  for (DType dt : {kFloat32, kFloat64}) check_packed_grads(2, 130, 3, 8, dt, 0.05f, true);
}

CUDA_TEST_CASE("cuda: flash attention rejects unsupported head dims") {
  Tensor q = Tensor::ones({1, 4, 1, 24}, kBFloat16, Device::cuda());
  CHECK_THROWS_WITH_TEXT(ops::attention_forward(q, q, q, {}, nullptr), "head dims");
}

CUDA_TEST_CASE("cuda: flash attention at D = 8, scores rising along the keys (lazy max)") {
  for (bool causal : {true, false})
    for (float p : {0.0f, 0.05f}) check_rising_scores(300, causal, p);
  check_rising_scores(1000, true, 0.05f);
}

// Small enough for compute-sanitizer (memcheck, racecheck): tails, causal, dropout, D = 8 and
// 64, fp32 references at tiny cost.
CUDA_TEST_CASE("cuda: flash attention sanitizer set") {
  check_case(1, 130, 2, 8, true, 0.05f, true);
  check_case(1, 70, 1, 64, false, 0.05f, true);
  check_case(1, 33, 1, 128, true, 0.0f, true);
  check_case(1, 130, 2, 8, true, 0.05f, true, /*deterministic=*/true);
}

#if defined(MT_WITH_CUDA) && defined(__FLT16_MAX__)
using testing::from_half_bits;  // tests/half_bits.h
using testing::to_half_bits;

CUDA_TEST_CASE("cuda: flash attention with fp16 inputs") {
  for (int64_t D : {8, 64}) {
    INFO("D=" << D);
    const Shape shape{2, 300, 3, D};
    Generator gen(D);
    auto half_randn = [&] {
      return from_half_bits(to_half_bits(Tensor::randn(shape, gen, kFloat64)));
    };
    Tensor q = half_randn(), k = half_randn(), v = half_randn(), dout = half_randn();
    AttentionOptions o{true, 0.05f, 11, 1, 0.0f};
    Tensor qd = to_half_bits(q).cuda(), kd = to_half_bits(k).cuda(), vd = to_half_bits(v).cuda();
    Tensor dod = to_half_bits(dout).cuda();
    Tensor out = Tensor::empty(shape, kBFloat16, Device::cuda());
    Tensor lse = Tensor::empty({2, 3, 300}, kFloat32, Device::cuda());
    Tensor dq = Tensor::empty(shape, kBFloat16, Device::cuda()), dk = dq.clone(), dv = dq.clone();
    Tensor delta = Tensor::empty({2, 2, 3, 300}, kFloat32, Device::cuda());
    testing::poison(out), testing::poison(dq), testing::poison(dk), testing::poison(dv);
    cuda::FlashAttentionParams p;
    p.elem = cuda::AttnElem::F16;
    p.B = 2, p.T = 300, p.H = 3, p.D = int(D);
    p.scale = ops::attention_scale(o, D);
    p.causal = true, p.seed = o.seed, p.offset = o.offset;
    p.dropout_threshold = AttentionDropout::threshold_for(o.dropout_p);
    const cuda::AttnStrides st{300 * 3 * D, 3 * D, D};
    p.q_strides = p.k_strides = p.v_strides = p.out_strides = p.dout_strides = st;
    p.dq_strides = p.dk_strides = p.dv_strides = st;
    p.q = qd.raw_data(), p.k = kd.raw_data(), p.v = vd.raw_data(), p.dout = dod.raw_data();
    p.out = out.raw_data(), p.lse = lse.data<float>(), p.delta = delta.data<float>();
    p.dq = dq.raw_data(), p.dk = dk.raw_data(), p.dv = dv.raw_data();
    Tensor dq_accum = Tensor::empty(shape, kFloat32, Device::cuda());  // the single pass
    testing::poison(dq_accum);
    p.dq_accum = dq_accum.data<float>();
    cuda::flash_attention_forward(p);
    cuda::flash_attention_backward(p);
    Tensor lse64;
    Tensor ref = ops::attention_forward(q, k, v, o, &lse64);
    ops::AttentionGrads r = ops::attention_backward(q, k, v, ref, lse64, dout, o);
    // fp16 keeps 3 more mantissa bits than bf16: the kernel must beat the bf16 bounds.
    Tensor naive = ops::attention_naive_forward(q, k, v, o, true);
    ops::AttentionGrads n = ops::attention_naive_backward(q, k, v, dout, o, true);
    Tensor got = from_half_bits(out);
    REQUIRE(testing::all_written(got));
    CHECK(testing::rel_error(got, ref) <= 2.0 * testing::rel_error(naive, ref));
    CHECK(testing::rel_error(from_half_bits(dq), r.dq) <= 3.0 * testing::rel_error(n.dq, r.dq));
    CHECK(testing::rel_error(from_half_bits(dk), r.dk) <= 3.0 * testing::rel_error(n.dk, r.dk));
    CHECK(testing::rel_error(from_half_bits(dv), r.dv) <= 3.0 * testing::rel_error(n.dv, r.dv));
  }
}
#endif
