// The Hopper FlashAttention kernels (cuda/flash_attention_fwd_sm90.cu, _bwd_sm90.cu: wgmma,
// sm_90a) against the float64 CPU reference, through their launchers fa::launch_forward_sm90 and
// fa::launch_backward_sm90, whatever fa::kUseSm90Forward / kUseSm90Backward say. The tolerances
// of tests/test_cuda_attention.cpp: the output's relative error at most 2x that of a naive bf16
// implementation, lse within 1e-3 (1 + sqrt(T)), each gradient's at most 3x.
// Outputs are poisoned with NaN first and checked to be fully written. Where the launcher
// declines on a device that is not compute capability 9.0, a case says so and checks nothing
// more; on a 9.0 device (an H100) a decline fails the case.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/attention.h"
#include "tensor/random.h"
#include "tests/half_bits.h"
#include "tests/test_util.h"
#ifdef MT_WITH_CUDA
#include "cuda/attention_dropout.h"
#include "cuda/flash_attention_bwd.cuh"
#include "cuda/flash_attention_sm90.cuh"
#endif

using namespace mt;
using mt::ops::AttentionOptions;

#ifdef MT_WITH_CUDA
namespace {

Tensor bf16_randn(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return Tensor::randn(shape, gen, kFloat64).to(kBFloat16).to(kFloat64);  // exact in bf16
}

#if defined(__FLT16_MAX__)
using testing::from_half_bits;  // tests/half_bits.h
using testing::to_half_bits;
#endif

cuda::AttnStrides strides_of(const Tensor& t) {
  return cuda::AttnStrides{t.stride(0), t.stride(1), t.stride(2)};
}

// The problem of q, k, v (device tensors, 2-byte elements, any [B, T, H, D] strides) and o,
// with out and lse (device, poisoned by the caller) to write.
cuda::FlashAttentionParams make_params(const Tensor& q, const Tensor& k, const Tensor& v,
                                       const AttentionOptions& o, Tensor& out, Tensor& lse) {
  cuda::FlashAttentionParams p;
  p.B = int(q.size(0)), p.T = int(q.size(1)), p.H = int(q.size(2)), p.D = int(q.size(3));
  p.scale = ops::attention_scale(o, q.size(3));
  p.causal = o.causal;
  p.seed = o.seed, p.offset = o.offset;
  p.dropout_threshold = AttentionDropout::threshold_for(o.dropout_p);
  p.q = q.raw_data(), p.k = k.raw_data(), p.v = v.raw_data();
  p.q_strides = strides_of(q), p.k_strides = strides_of(k), p.v_strides = strides_of(v);
  p.out = out.raw_data(), p.out_strides = strides_of(out), p.lse = lse.data<float>();
  return p;
}

// Checks the kernel's out and lse (float64 CPU copies) against the references for q, k, v (the
// float64 values the device inputs hold exactly).
void check_against_reference(const Tensor& q, const Tensor& k, const Tensor& v,
                             const AttentionOptions& o, const Tensor& out, const Tensor& lse) {
  REQUIRE(testing::all_written(out));
  REQUIRE(testing::all_written(lse));
  Tensor lse64;
  Tensor ref = ops::attention_forward(q, k, v, o, &lse64);  // tiled float64 CPU
  Tensor naive = ops::attention_naive_forward(q, k, v, o, /*emulate_bf16=*/true);
  const double err = testing::rel_error(out, ref), err_naive = testing::rel_error(naive, ref);
  INFO("forward error " << err << " vs naive bf16 " << err_naive);
  CHECK(err <= 2.0 * err_naive);
  const double lse_err = testing::max_abs_diff(lse, lse64);
  INFO("lse max abs error " << lse_err);
  CHECK(lse_err < 1e-3 * (1.0 + std::sqrt(double(q.size(1)))));
}

// A launcher may decline a case it handles only where the device is not compute capability 9.0;
// on an H100 a decline is a failure, not a skip.
void declined(const char* launcher) {
  REQUIRE_FALSE_MESSAGE(
      cuda::fa::device_is_sm90(),
      launcher << " declined a case it handles on a compute capability 9.0 device");
  MESSAGE(launcher << " declined (not a compute capability 9.0 device): not checked");
}

// One configuration in bf16 on contiguous inputs. Returns false (with a message) when the
// launcher declines.
bool check_case(int64_t B, int64_t T, int64_t H, int64_t D, bool causal) {
  INFO("B=" << B << " T=" << T << " H=" << H << " D=" << D << " causal=" << causal);
  const Shape shape{B, T, H, D};
  const uint64_t seed = uint64_t(T * 131 + D * 7 + H + 17 * B);
  Tensor q = bf16_randn(shape, seed), k = bf16_randn(shape, seed + 1);
  Tensor v = bf16_randn(shape, seed + 2);
  AttentionOptions o;
  o.causal = causal;
  Tensor qd = q.to(kBFloat16).cuda(), kd = k.to(kBFloat16).cuda(), vd = v.to(kBFloat16).cuda();
  Tensor out = Tensor::empty(shape, kBFloat16, Device::cuda());
  Tensor lse = Tensor::empty({B, H, T}, kFloat32, Device::cuda());
  testing::poison(out);
  testing::poison(lse);
  if (!cuda::fa::launch_forward_sm90(make_params(qd, kd, vd, o, out, lse))) {
    declined("launch_forward_sm90");
    return false;
  }
  check_against_reference(q, k, v, o, out.to(kFloat64).cpu(), lse.to(kFloat64).cpu());
  return true;
}

// ---- the backward ------------------------------------------------------------------------

// Backward inputs: float64 CPU values (exact in the element type) and their device copies.
struct BwdCase {
  Tensor q, k, v, dout;    // [B, T, H, D] float64, CPU
  Tensor qd, kd, vd, dod;  // device, 2-byte elements, any [B, T, H, D] strides
  bool f16 = false;        // fp16 bits in the 2-byte tensors (else bf16)
};

Tensor to_f64(const Tensor& device, bool f16) {
#if defined(__FLT16_MAX__)
  if (f16) return from_half_bits(device);
#endif
  (void)f16;
  return device.to(kFloat64).cpu();
}

// The gradient checks of tests/test_cuda_attention.cpp. At T = 1 the reference dq and dk are
// exactly zero (softmax over one key): the kernel's are bounded by scale 2^-8 max_row sum_d
// |dO O| max|k| (dk: max|q|), the rounding of the bf16 O inside delta plus fp32 terms.
void check_grads(const BwdCase& c, const AttentionOptions& o, const Tensor& out,
                 const Tensor* got) {
  const int64_t T = c.q.size(1), D = c.q.size(3);
  Tensor lse64;
  Tensor ref = ops::attention_forward(c.q, c.k, c.v, o, &lse64);
  ops::AttentionGrads r = ops::attention_backward(c.q, c.k, c.v, ref, lse64, c.dout, o);
  ops::AttentionGrads n = ops::attention_naive_backward(c.q, c.k, c.v, c.dout, o, true);
  const char* names[3] = {"dq", "dk", "dv"};
  const Tensor* want[3] = {&r.dq, &r.dk, &r.dv};
  const Tensor* nv[3] = {&n.dq, &n.dk, &n.dv};
  for (int i = 0; i < 3; ++i) {
    REQUIRE(testing::all_written(got[i]));
    if (T == 1 && i < 2) {
      std::vector<double> o64 = out.to_vector<double>(), do64 = c.dout.to_vector<double>();
      double worst_row = 0, max_other = 0;
      for (size_t row = 0; row < o64.size() / D; ++row) {
        double sum = 0;
        for (int64_t d = 0; d < D; ++d) sum += std::fabs(o64[row * D + d] * do64[row * D + d]);
        worst_row = std::max(worst_row, sum);
      }
      for (double x : (i == 0 ? c.k : c.q).to_vector<double>()) {
        max_other = std::max(max_other, std::fabs(x));
      }
      const double bound = ops::attention_scale(o, D) * std::ldexp(worst_row, -8) * max_other;
      INFO(names[i] << " at T = 1: " << testing::max_abs_diff(got[i], *want[i]) << " vs bound "
                    << bound);
      CHECK(testing::max_abs_diff(got[i], *want[i]) <= bound);
      continue;
    }
    const double e = testing::rel_error(got[i], *want[i]);
    const double en = testing::rel_error(*nv[i], *want[i]);
    INFO(names[i] << " error " << e << " vs naive bf16 " << en);
    CHECK(e <= 3.0 * en);
  }
}

// The single-pass backward with the sm90 dK/dV/dQ kernel in the middle: the forward (whichever
// kernel flash_attention_forward picks) for out and lse, the delta kernel (which also zeroes
// dq_accum), launch_backward_sm90, the dQ rounding. dq, dk, dv and dq_accum are poisoned first.
// Returns false (with a message) when the launcher declines.
bool check_backward(const BwdCase& c, bool causal) {
  const int64_t B = c.q.size(0), T = c.q.size(1), H = c.q.size(2), D = c.q.size(3);
  INFO("backward B=" << B << " T=" << T << " H=" << H << " D=" << D << " causal=" << causal
                     << " fp16=" << c.f16);
  const Shape shape{B, T, H, D};
  AttentionOptions o;
  o.causal = causal;
  Tensor out = Tensor::empty(shape, kBFloat16, Device::cuda());
  Tensor lse = Tensor::empty({B, H, T}, kFloat32, Device::cuda());
  testing::poison(out);
  testing::poison(lse);
  cuda::FlashAttentionParams p = make_params(c.qd, c.kd, c.vd, o, out, lse);
  p.elem = c.f16 ? cuda::AttnElem::F16 : cuda::AttnElem::BF16;
  cuda::flash_attention_forward(p);
  Tensor dq = Tensor::empty(shape, kBFloat16, Device::cuda()), dk = dq.clone(), dv = dq.clone();
  Tensor delta = Tensor::empty({2, B, H, T}, kFloat32, Device::cuda());
  Tensor dq_accum = Tensor::empty(shape, kFloat32, Device::cuda());
  testing::poison(dq), testing::poison(dk), testing::poison(dv), testing::poison(dq_accum);
  p.dout = c.dod.raw_data(), p.dout_strides = strides_of(c.dod);
  p.dq = dq.raw_data(), p.dk = dk.raw_data(), p.dv = dv.raw_data();
  p.dq_strides = strides_of(dq), p.dk_strides = strides_of(dk), p.dv_strides = strides_of(dv);
  p.delta = delta.data<float>(), p.dq_accum = dq_accum.data<float>();
  cuda::fa::launch_backward_delta(p);
  if (!cuda::fa::launch_backward_sm90(p)) {
    declined("launch_backward_sm90");
    return false;
  }
  cuda::fa::launch_backward_dq_convert(p);
  const Tensor got[3] = {to_f64(dq, c.f16), to_f64(dk, c.f16), to_f64(dv, c.f16)};
  check_grads(c, o, to_f64(out, c.f16), got);
  return true;
}

// Contiguous bf16 inputs of one configuration.
bool check_backward_case(int64_t B, int64_t T, int64_t H, int64_t D, bool causal) {
  const Shape shape{B, T, H, D};
  const uint64_t seed = uint64_t(T * 131 + D * 7 + H + 17 * B + 5);
  BwdCase c;
  c.q = bf16_randn(shape, seed), c.k = bf16_randn(shape, seed + 1);
  c.v = bf16_randn(shape, seed + 2), c.dout = bf16_randn(shape, seed + 3);
  c.qd = c.q.to(kBFloat16).cuda(), c.kd = c.k.to(kBFloat16).cuda();
  c.vd = c.v.to(kBFloat16).cuda(), c.dod = c.dout.to(kBFloat16).cuda();
  return check_backward(c, causal);
}

}  // namespace

CUDA_TEST_CASE("cuda: sm90 flash attention forward, short sequences") {
  for (int64_t D : {64, 128})
    for (int64_t T : {1, 17, 128})
      for (bool causal : {true, false})
        if (!check_case(3, T, 8, D, causal)) return;
}

CUDA_TEST_CASE("cuda: sm90 flash attention forward, T = 1000 and 2048") {
  for (int64_t D : {64, 128}) {
    if (!check_case(1, 1000, 8, D, true)) return;
    check_case(3, 1000, 1, D, false);
    check_case(1, 2048, 1, D, true);
    check_case(1, 2048, 1, D, false);
  }
}

CUDA_TEST_CASE("cuda: sm90 flash attention forward on strided views") {
  // The model's case: q, k, v are slices of a fused [B, T, 3, H, D] projection, no copy.
  for (int64_t D : {64, 128}) {
    INFO("D=" << D);
    Tensor qkv = bf16_randn({2, 300, 3, 4, D}, 9 + D);
    Tensor qkv_gpu = qkv.to(kBFloat16).cuda();
    Tensor q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);
    AttentionOptions o;
    o.causal = true;
    Tensor out = Tensor::empty({2, 300, 4, D}, kBFloat16, Device::cuda());
    Tensor lse = Tensor::empty({2, 4, 300}, kFloat32, Device::cuda());
    testing::poison(out);
    testing::poison(lse);
    cuda::FlashAttentionParams p =
        make_params(qkv_gpu.select(2, 0), qkv_gpu.select(2, 1), qkv_gpu.select(2, 2), o, out, lse);
    if (!cuda::fa::launch_forward_sm90(p)) {
      declined("launch_forward_sm90");
      return;
    }
    check_against_reference(q, k, v, o, out.to(kFloat64).cpu(), lse.to(kFloat64).cpu());
  }
}

#if defined(__FLT16_MAX__)
CUDA_TEST_CASE("cuda: sm90 flash attention forward with fp16 inputs") {
  for (int64_t D : {64, 128}) {
    INFO("D=" << D);
    const Shape shape{2, 300, 3, D};
    Generator gen(D + 1);
    auto half_randn = [&] {
      return from_half_bits(to_half_bits(Tensor::randn(shape, gen, kFloat64)));
    };
    Tensor q = half_randn(), k = half_randn(), v = half_randn();
    AttentionOptions o;
    o.causal = true;
    Tensor qd = to_half_bits(q).cuda(), kd = to_half_bits(k).cuda(), vd = to_half_bits(v).cuda();
    Tensor out = Tensor::empty(shape, kBFloat16, Device::cuda());
    Tensor lse = Tensor::empty({2, 3, 300}, kFloat32, Device::cuda());
    testing::poison(out);
    testing::poison(lse);
    cuda::FlashAttentionParams p = make_params(qd, kd, vd, o, out, lse);
    p.elem = cuda::AttnElem::F16;
    if (!cuda::fa::launch_forward_sm90(p)) {
      declined("launch_forward_sm90");
      return;
    }
    // fp16 keeps 3 more mantissa bits than bf16: the kernel must beat the bf16 bound.
    check_against_reference(q, k, v, o, from_half_bits(out), lse.to(kFloat64).cpu());
  }
}
#endif

CUDA_TEST_CASE("cuda: sm90 flash attention forward declines what it does not handle") {
  // Dropout and head dims other than 64 and 128 stay on the mma.sync kernel: the launcher
  // returns false before launching anything, on every device.
  const Shape shape{1, 64, 2, 32};
  Tensor q = Tensor::ones(shape, kBFloat16, Device::cuda());
  Tensor out = Tensor::empty(shape, kBFloat16, Device::cuda());
  Tensor lse = Tensor::empty({1, 2, 64}, kFloat32, Device::cuda());
  AttentionOptions o;
  CHECK_FALSE(cuda::fa::launch_forward_sm90(make_params(q, q, q, o, out, lse)));
  Tensor q64 = Tensor::ones({1, 64, 2, 64}, kBFloat16, Device::cuda());
  Tensor out64 = Tensor::empty({1, 64, 2, 64}, kBFloat16, Device::cuda());
  o.dropout_p = 0.1f;
  CHECK_FALSE(cuda::fa::launch_forward_sm90(make_params(q64, q64, q64, o, out64, lse)));
}

// Small enough for compute-sanitizer (memcheck, racecheck, synccheck): tails shorter and longer
// than a tile, causal and not, both head dims, several heads and batches.
CUDA_TEST_CASE("cuda: sm90 flash attention forward sanitizer set") {
  if (!check_case(1, 130, 2, 64, true)) return;
  check_case(2, 70, 1, 128, false);
  check_case(1, 33, 3, 128, true);
  check_case(1, 257, 1, 64, false);
  check_backward_case(1, 70, 2, 64, true);  // the backward has a set of its own below
}
CUDA_TEST_CASE("cuda: sm90 flash attention backward, short sequences") {
  for (int64_t D : {64, 128})
    for (int64_t T : {1, 17, 128})
      for (bool causal : {true, false})
        if (!check_backward_case(3, T, 5, D, causal)) return;
}

CUDA_TEST_CASE("cuda: sm90 flash attention backward, T = 1000") {
  for (int64_t D : {64, 128}) {
    if (!check_backward_case(1, 1000, 3, D, true)) return;
    check_backward_case(2, 1000, 1, D, false);
  }
}

CUDA_TEST_CASE("cuda: sm90 flash attention backward on strided views") {
  // q, k, v slices of a fused [B, T, 3, H, D] projection; dout a slice of a wider tensor.
  for (int64_t D : {64, 128}) {
    INFO("D=" << D);
    Tensor qkv = bf16_randn({2, 300, 3, 4, D}, 19 + D);
    Tensor dwide = bf16_randn({2, 300, 2, 4, D}, 23 + D);
    Tensor qkv_gpu = qkv.to(kBFloat16).cuda(), dwide_gpu = dwide.to(kBFloat16).cuda();
    BwdCase c;
    c.q = qkv.select(2, 0), c.k = qkv.select(2, 1), c.v = qkv.select(2, 2);
    c.dout = dwide.select(2, 1);
    c.qd = qkv_gpu.select(2, 0), c.kd = qkv_gpu.select(2, 1), c.vd = qkv_gpu.select(2, 2);
    c.dod = dwide_gpu.select(2, 1);
    if (!check_backward(c, true)) return;
  }
}

#if defined(__FLT16_MAX__)
CUDA_TEST_CASE("cuda: sm90 flash attention backward with fp16 inputs") {
  for (int64_t D : {64, 128}) {
    for (bool causal : {true, false}) {
      const Shape shape{2, 300, 3, D};
      Generator gen(D + 3);
      auto half_randn = [&] {
        return from_half_bits(to_half_bits(Tensor::randn(shape, gen, kFloat64)));
      };
      BwdCase c;
      c.q = half_randn(), c.k = half_randn(), c.v = half_randn(), c.dout = half_randn();
      c.qd = to_half_bits(c.q).cuda(), c.kd = to_half_bits(c.k).cuda();
      c.vd = to_half_bits(c.v).cuda(), c.dod = to_half_bits(c.dout).cuda();
      c.f16 = true;
      // fp16 keeps 3 more mantissa bits than bf16: the kernel must beat the bf16 bounds.
      if (!check_backward(c, causal)) return;
    }
  }
}
#endif

CUDA_TEST_CASE("cuda: sm90 flash attention backward declines what it does not handle") {
  // The deterministic backward (no dq_accum), dropout and head dims other than 64 and 128 stay
  // on the mma.sync kernels: the launcher returns false before launching anything, on every
  // device, and leaves the gradients as they were.
  for (int64_t D : {32, 64}) {
    const Shape shape{1, 64, 2, D};
    Tensor x = Tensor::ones(shape, kBFloat16, Device::cuda());
    Tensor out = Tensor::ones(shape, kBFloat16, Device::cuda());
    Tensor lse = Tensor::zeros({1, 2, 64}, kFloat32, Device::cuda());
    Tensor dk = Tensor::empty(shape, kBFloat16, Device::cuda()), dv = dk.clone();
    Tensor dq = dk.clone();
    Tensor delta = Tensor::zeros({2, 1, 2, 64}, kFloat32, Device::cuda());
    Tensor dq_accum = Tensor::zeros(shape, kFloat32, Device::cuda());
    testing::poison(dk), testing::poison(dv);
    AttentionOptions o;
    cuda::FlashAttentionParams p = make_params(x, x, x, o, out, lse);
    p.dout = x.raw_data(), p.dout_strides = strides_of(x);
    p.dq = dq.raw_data(), p.dk = dk.raw_data(), p.dv = dv.raw_data();
    p.dq_strides = strides_of(dq), p.dk_strides = strides_of(dk), p.dv_strides = strides_of(dv);
    p.delta = delta.data<float>(), p.dq_accum = dq_accum.data<float>();
    if (D == 32) {
      CHECK_FALSE(cuda::fa::launch_backward_sm90(p));
    } else {
      cuda::FlashAttentionParams det = p;
      det.dq_accum = nullptr;
      CHECK_FALSE(cuda::fa::launch_backward_sm90(det));
      cuda::FlashAttentionParams drop = p;
      drop.dropout_threshold = AttentionDropout::threshold_for(0.1f);
      CHECK_FALSE(cuda::fa::launch_backward_sm90(drop));
      cuda::FlashAttentionParams empty = p;
      empty.T = 0;
      CHECK_FALSE(cuda::fa::launch_backward_sm90(empty));
    }
    CHECK_FALSE(testing::all_written(dk.to(kFloat64).cpu()));  // still poisoned: nothing ran
  }
}

// Small enough for compute-sanitizer: tails shorter and longer than a key block and a query
// tile, causal and not, both head dims.
CUDA_TEST_CASE("cuda: sm90 flash attention backward sanitizer set") {
  if (!check_backward_case(1, 130, 2, 64, true)) return;
  check_backward_case(2, 70, 1, 128, false);
  check_backward_case(1, 33, 3, 128, true);
  check_backward_case(1, 257, 1, 64, false);
}
#endif
