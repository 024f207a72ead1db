// The exact CUDA attention (cuda/attention_exact.cu: float32 and float64 inputs, computed in
// float64) through the op (ops::attention_forward/backward) against the float64 CPU reference
// (the tiled path of ops/attention.cpp, itself checked against the naive formula and a float64
// gradcheck in tests/test_attention.cpp). The dropout mask is the same function on both sides, so
// the comparison with p = 0.05 is of the same mask, and a single wrong mask bit, scale or index
// shows up at the 1e-2 level.
//
// Tolerances, relative (||got - ref|| / ||ref||, testing::rel_error). The inputs are float64
// tensors that hold float32 values, so both sides see the same numbers and only the arithmetic
// differs.
//   - float64: both sides sum in float64, in different orders. Worst case the error grows like
//     n * 2^-53 for sums of n terms: n = T * D = 1.3e5 terms at most here gives 1.4e-11, so the
//     bound is 1e-10.
//   - float32: the kernel computes in float64 and rounds each output once (2^-24 = 6e-8). The
//     backward reads the float32-rounded out and lse: p_ij = exp(s_ij - lse_i) then carries a
//     relative error up to |lse_i| 2^-24, about 6e-7 for |lse| ~ 10 (T = 2048, scores of a few
//     units), and dq, dk, dv inherit it; delta = dout . out picks up 2^-24 of sum |dout o|. So
//     ~1e-6 at most, and the bound is 1e-5: float32's accuracy, where the bf16 kernel that used
//     to serve float32 inputs is ~1e-3 off.
// At T = 1 the softmax has one key: dq and dk are zero in exact arithmetic and what both sides
// compute is rounding noise, checked against an absolute bound instead (check_t1_grad).
// Outputs are poisoned (cuda::set_poison_allocations) and checked to be fully written.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "autograd/functions_attention.h"
#include "cuda/debug.h"
#include "ops/attention.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;
using mt::ops::AttentionOptions;

namespace {

double tolerance(DType dt) { return dt == kFloat64 ? 1e-10 : 1e-5; }

// Random normal values, exactly representable in dt, held in float64.
Tensor randn_in(const Shape& shape, uint64_t seed, DType dt) {
  Generator gen(seed);
  return Tensor::randn(shape, gen, kFloat64).to(dt).to(kFloat64);
}

struct PoisonAllocations {
  PoisonAllocations() { cuda::set_poison_allocations(true); }
  ~PoisonAllocations() { cuda::set_poison_allocations(false); }
};

struct Result {
  Tensor out, lse, dq, dk, dv;  // float64 copies on the CPU
};

// Forward and backward through the op on CUDA copies in dtype dt, every allocation poisoned.
Result run_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout,
                const AttentionOptions& o, DType dt) {
  PoisonAllocations poison;
  auto dev = [&](const Tensor& t) { return t.to(dt).cuda(); };
  Tensor qd = dev(q), kd = dev(k), vd = dev(v), lse;
  Tensor out = ops::attention_forward(qd, kd, vd, o, &lse);
  REQUIRE(out.dtype() == dt);
  REQUIRE(lse.dtype() == dt);  // float32 lse for float32 inputs, float64 for float64, as the CPU
  ops::AttentionGrads g = ops::attention_backward(qd, kd, vd, out, lse, dev(dout), o);
  auto host = [](const Tensor& t) { return t.cpu().to(kFloat64); };
  Result r{host(out), host(lse), host(g.dq), host(g.dk), host(g.dv)};
  for (const Tensor* t : {&r.out, &r.lse, &r.dq, &r.dk, &r.dv}) REQUIRE(testing::all_written(*t));
  return r;
}

// T = 1: dq = scale ds k and dk = scale ds q with ds = dp - delta, zero in exact arithmetic.
// delta = dout . out reads the stored out: rounded to float32, it is off by at most
// 2^-24 sum_d |dout_d out_d| (float64: D 2^-53 <= 2^-46 of it, from the dot products). So
// |dq - dq_ref| <= scale 2^e max_row(sum_d |dout_d out_d|) max|k| with e = -22 (float32) or
// -44 (float64), a factor 4 above those.
void check_t1_grad(const Tensor& got, const Tensor& want, const Tensor& out, const Tensor& dout,
                   const Tensor& other, const AttentionOptions& o, DType dt) {
  const int64_t D = out.size(3);
  std::vector<double> o64 = out.to_vector<double>(), do64 = dout.to_vector<double>();
  double worst_row = 0, max_other = 0;
  for (size_t row = 0; row < o64.size() / D; ++row) {
    double sum = 0;
    for (int64_t d = 0; d < D; ++d) sum += std::fabs(o64[row * D + d] * do64[row * D + d]);
    worst_row = std::max(worst_row, sum);
  }
  for (double x : other.to_vector<double>()) max_other = std::max(max_other, std::fabs(x));
  const double bound =
      ops::attention_scale(o, D) * std::ldexp(worst_row, dt == kFloat64 ? -44 : -22) * max_other;
  INFO("T = 1: " << testing::max_abs_diff(got, want) << " vs bound " << bound);
  CHECK(testing::max_abs_diff(got, want) <= bound);
}

void check_case(int64_t B, int64_t T, int64_t H, int64_t D, bool causal, float p, DType dt) {
  INFO(dtype_name(dt) << " B=" << B << " T=" << T << " H=" << H << " D=" << D
                      << " causal=" << causal << " p=" << p);
  const Shape shape{B, T, H, D};
  const uint64_t seed = uint64_t(T * 131 + D * 7 + H);
  Tensor q = randn_in(shape, seed, dt), k = randn_in(shape, seed + 1, dt);
  Tensor v = randn_in(shape, seed + 2, dt), dout = randn_in(shape, seed + 3, dt);
  const AttentionOptions o{causal, p, 1234 + uint64_t(T), 7, 0.0f};
  Tensor lse64;
  const Tensor ref = ops::attention_forward(q, k, v, o, &lse64);  // tiled float64 CPU
  const ops::AttentionGrads r = ops::attention_backward(q, k, v, ref, lse64, dout, o);
  const Result g = run_cuda(q, k, v, dout, o, dt);
  const double tol = tolerance(dt);
  INFO("errors: out " << testing::rel_error(g.out, ref) << ", lse "
                      << testing::rel_error(g.lse, lse64) << ", dq "
                      << testing::rel_error(g.dq, r.dq) << ", dk " << testing::rel_error(g.dk, r.dk)
                      << ", dv " << testing::rel_error(g.dv, r.dv));
  CHECK(testing::rel_error(g.out, ref) <= tol);
  CHECK(testing::rel_error(g.lse, lse64) <= tol);
  CHECK(testing::rel_error(g.dv, r.dv) <= tol);
  if (T == 1) {
    check_t1_grad(g.dq, r.dq, g.out, dout, k, o, dt);
    check_t1_grad(g.dk, r.dk, g.out, dout, q, o, dt);
  } else {
    CHECK(testing::rel_error(g.dq, r.dq) <= tol);
    CHECK(testing::rel_error(g.dk, r.dk) <= tol);
  }
}

}  // namespace

CUDA_TEST_CASE("cuda: exact attention (float32, float64), short sequences, every flag") {
  for (DType dt : {kFloat64, kFloat32})
    for (int64_t D : {8, 64, 128})
      for (int64_t T : {1, 17, 128})
        for (bool causal : {true, false})
          for (float p : {0.0f, 0.05f}) check_case(2, T, 3, D, causal, p, dt);
}

CUDA_TEST_CASE("cuda: exact attention, T = 1000, and head dims that are not powers of two") {
  for (DType dt : {kFloat64, kFloat32}) {
    check_case(1, 1000, 3, 8, true, 0.05f, dt);
    check_case(2, 1000, 1, 64, false, 0.0f, dt);
    check_case(1, 1000, 1, 128, true, 0.05f, dt);
    check_case(1, 1000, 1, 128, false, 0.05f, dt);
    // 1 lane a row (D = 1), 4 (D = 3), 32 with idle lanes (24), 2 and 4 elements a lane (40, 100)
    for (int64_t D : {1, 3, 24, 40, 100}) check_case(2, 67, 3, D, D % 2 == 1, 0.05f, dt);
  }
}

// Small enough for compute-sanitizer (dev/gpu_probe.sh runs '*sanitizer set*' under memcheck and
// racecheck): partial warps, D = 1 (32 rows a warp), 40 (2 elements a lane) and 128, causal,
// dropout, both dtypes.
CUDA_TEST_CASE("cuda: exact attention sanitizer set") {
  for (DType dt : {kFloat64, kFloat32}) {
    check_case(1, 33, 2, 1, true, 0.05f, dt);
    check_case(1, 19, 1, 40, false, 0.05f, dt);
    check_case(1, 21, 1, 128, true, 0.0f, dt);
  }
}

CUDA_TEST_CASE("cuda: exact attention on strided views through scaled_dot_product_attention") {
  // The model's case: q, k, v are slices of a fused [B, T, 3, H, D] projection, read in place;
  // dout is a transposed view whose head dim is not contiguous (the op copies it).
  for (DType dt : {kFloat64, kFloat32}) {
    INFO(dtype_name(dt));
    const Tensor qkv = randn_in({2, 300, 3, 4, 24}, 9, dt);
    const Tensor dy = randn_in({2, 300, 24, 4}, 10, dt);
    const AttentionOptions o{true, 0.05f, 5, 2, 0.0f};
    PoisonAllocations poison;
    const Tensor qkv_gpu = qkv.to(dt).cuda();
    Var q(qkv_gpu.select(2, 0), true), k(qkv_gpu.select(2, 1), true), v(qkv_gpu.select(2, 2), true);
    Var y = scaled_dot_product_attention(q, k, v, o);
    REQUIRE(y.dtype() == dt);
    y.backward(dy.to(dt).cuda().transpose(2, 3));
    const Tensor qc = qkv.select(2, 0), kc = qkv.select(2, 1), vc = qkv.select(2, 2);
    const Tensor dyc = dy.transpose(2, 3);
    Tensor lse;
    const Tensor ref = ops::attention_forward(qc, kc, vc, o, &lse);
    const ops::AttentionGrads r = ops::attention_backward(qc, kc, vc, ref, lse, dyc, o);
    const double tol = tolerance(dt);
    auto host = [](const Var& x) { return x.grad().cpu().to(kFloat64); };
    CHECK(testing::rel_error(y.value().cpu().to(kFloat64), ref) <= tol);
    REQUIRE(q.grad().shape() == Shape({2, 300, 4, 24}));
    CHECK(testing::all_written(host(q)));
    CHECK(testing::rel_error(host(q), r.dq) <= tol);
    CHECK(testing::rel_error(host(k), r.dk) <= tol);
    CHECK(testing::rel_error(host(v), r.dv) <= tol);
  }
}

CUDA_TEST_CASE("cuda: exact attention is deterministic") {
  const Shape shape{2, 1000, 4, 32};
  Tensor q = randn_in(shape, 1, kFloat32), k = randn_in(shape, 2, kFloat32);
  Tensor v = randn_in(shape, 3, kFloat32), dout = randn_in(shape, 4, kFloat32);
  const AttentionOptions o{true, 0.05f, 42, 3, 0.0f};
  const Result a = run_cuda(q, k, v, dout, o, kFloat32), b = run_cuda(q, k, v, dout, o, kFloat32);
  CHECK(testing::max_abs_diff(a.out, b.out) == 0.0);
  CHECK(testing::max_abs_diff(a.dq, b.dq) == 0.0);
  CHECK(testing::max_abs_diff(a.dk, b.dk) == 0.0);
  CHECK(testing::max_abs_diff(a.dv, b.dv) == 0.0);
}

CUDA_TEST_CASE("cuda: exact attention runs the seed shape (B=32, H=8, T=2048, D=8) quickly") {
  // float32, causal, dropout 0.05: the fp32 precision mode at the seed model's shape. Timed after
  // a warm-up (156 ms forward + backward on an H200); the bound, half a second, is "well under a
  // second". Batch 0 is checked against the CPU (the mask of batch 0 does not depend on B).
  const Shape shape{32, 2048, 8, 8};
  Tensor q = randn_in(shape, 11, kFloat32), k = randn_in(shape, 12, kFloat32);
  Tensor v = randn_in(shape, 13, kFloat32), dout = randn_in(shape, 14, kFloat32);
  const AttentionOptions o{true, 0.05f, 99, 1, 0.0f};
  auto dev = [](const Tensor& t) { return t.to(kFloat32).cuda(); };
  const Tensor qd = dev(q), kd = dev(k), vd = dev(v), dod = dev(dout);
  auto step = [&] {
    Tensor lse;
    Tensor out = ops::attention_forward(qd, kd, vd, o, &lse);
    return std::make_pair(out, ops::attention_backward(qd, kd, vd, out, lse, dod, o));
  };
  step();
  cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  const auto [out, g] = step();
  cuda::synchronize();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("exact attention, seed shape, float32 forward + backward: " << seconds * 1e3 << " ms");
  CHECK(seconds < 0.5);

  auto first = [](const Tensor& t) { return t.narrow(0, 0, 1).cpu().to(kFloat64); };
  const Tensor q0 = first(q), k0 = first(k), v0 = first(v), do0 = first(dout);
  Tensor lse0;
  const Tensor ref = ops::attention_forward(q0, k0, v0, o, &lse0);
  const ops::AttentionGrads r = ops::attention_backward(q0, k0, v0, ref, lse0, do0, o);
  CHECK(testing::rel_error(first(out), ref) <= 1e-5);
  CHECK(testing::rel_error(first(g.dq), r.dq) <= 1e-5);
  CHECK(testing::rel_error(first(g.dk), r.dk) <= 1e-5);
  CHECK(testing::rel_error(first(g.dv), r.dv) <= 1e-5);
}

CUDA_TEST_CASE("cuda: exact attention errors name what was expected") {
  Tensor q = Tensor::ones({1, 4, 1, 129}, kFloat32, Device::cuda());
  CHECK_THROWS_WITH_TEXT(ops::attention_forward(q, q, q, {}, nullptr), "head dims up to 128");
  Tensor q64 = Tensor::ones({1, 4, 1, 8}, kFloat64, Device::cuda());
  Tensor lse32 = Tensor::zeros({1, 1, 4}, kFloat32, Device::cuda());
  CHECK_THROWS_WITH_TEXT(ops::attention_backward(q64, q64, q64, q64, lse32, q64, {}),
                         "float64 lse");
}
