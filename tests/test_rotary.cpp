// Rotary embedding: hand-computed angles, the PyTorch rotate-half formula, partial rotary dim,
// position offset, strided views, inverse, gradcheck, errors.
#include <cmath>
#include <vector>

#include "autograd/functions_nn.h"
#include "autograd/gradcheck.h"
#include "ops/rotary.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

// The seed's PyTorch code, literally, in float64 over x [B, T, H, D] (R = rotary dim):
//   inv = 1 / base^(arange(0, R, 2) / R); f = outer(t + offset, inv); e = cat([f, f])
//   y[..., :R] = x * cos(e) + rotate_half(x) * sin(e),  rotate_half(v) = cat([-v2, v1])
std::vector<double> rope_ref(const Tensor& x, int64_t R, double base, int64_t offset) {
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3), half = R / 2;
  std::vector<double> v = x.contiguous().to_vector<double>(), y = v;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < H; ++h) {
        const double* row = &v[((b * T + t) * H + h) * D];
        double* out = &y[((b * T + t) * H + h) * D];
        for (int64_t c = 0; c < R; ++c) {
          const double inv = 1.0 / std::pow(base, double(2 * (c % half)) / double(R));
          const double e = double(t + offset) * inv;
          const double rotated = c < half ? -row[c + half] : row[c - half];
          out[c] = row[c] * std::cos(e) + rotated * std::sin(e);
        }
      }
    }
  }
  return y;
}

Tensor as_tensor(const std::vector<double>& v, const Shape& shape) {
  return Tensor::from_doubles(v, shape, kFloat64);
}

}  // namespace

TEST_SUITE("rotary") {
  TEST_CASE("rotary: hand-computed angles at positions 0, 1 and 2") {
    // D = 4, base 10000: inverse frequencies 1 and 10000^(-1/2) = 0.01. At t = 1 the pair (0, 2)
    // turns by 1 rad, the pair (1, 3) by 0.01 rad; at t = 2 by 2 and 0.02 rad.
    std::vector<double> row = {1, 2, 3, 4};
    std::vector<double> v;
    for (int t = 0; t < 3; ++t) v.insert(v.end(), row.begin(), row.end());
    std::vector<double> y = ops::rotary_forward(as_tensor(v, {1, 3, 1, 4})).to_vector<double>();
    // t = 0: the identity.
    for (int c = 0; c < 4; ++c) CHECK(y[c] == row[c]);
    // t = 1: y0 = 1 cos1 - 3 sin1, y1 = 2 cos.01 - 4 sin.01, y2 = 3 cos1 + sin1, y3 = 4 cos.01 + 2
    // sin.01
    const std::vector<double> t1 = {-1.9841106485555495, 1.959900667496664, 2.4623779024123156,
                                    4.019799668334994};
    const std::vector<double> t2 = {-3.1440391170241875, 1.9196053465598233, -0.33914308281574557,
                                    4.039197360052977};
    for (int c = 0; c < 4; ++c) {
      CHECK(y[4 + c] == doctest::Approx(t1[c]).epsilon(1e-14));
      CHECK(y[8 + c] == doctest::Approx(t2[c]).epsilon(1e-14));
    }
    // The tables say the same: cos(theta[1, 0]) = cos 1, sin(theta[2, 1]) = sin 0.02.
    Tensor cos_t, sin_t;
    ops::rotary_tables(3, 4, 10000.0, 0, &cos_t, &sin_t);
    CHECK(cos_t.shape() == Shape{3, 2});
    CHECK(cos_t.to_vector<double>()[2] == doctest::Approx(0.5403023058681398).epsilon(1e-15));
    CHECK(sin_t.to_vector<double>()[5] == doctest::Approx(0.019998666693333080).epsilon(1e-14));
  }

  TEST_CASE("rotary matches PyTorch's rotate-half formula over odd shapes and base/dim options") {
    Generator gen(31);
    Tensor x = Tensor::randn({2, 5, 3, 8}, gen, kFloat64);
    CHECK(testing::max_abs_diff(ops::rotary_forward(x),
                                as_tensor(rope_ref(x, 8, 10000.0, 0), x.shape())) < 1e-14);
    ops::RotaryOptions o;
    o.rotary_dim = 4;
    o.base = 500.0;
    o.position_offset = 7;
    Tensor y = ops::rotary_forward(x, o);
    CHECK(testing::max_abs_diff(y, as_tensor(rope_ref(x, 4, 500.0, 7), x.shape())) < 1e-14);
    // Channels past the rotary dim pass through bit for bit.
    CHECK(testing::max_abs_diff(y.narrow(3, 4, 4).contiguous(), x.narrow(3, 4, 4).contiguous()) ==
          0);
    // float32 computes the products in float32 from float64 angles.
    Tensor y32 = ops::rotary_forward(x.to(kFloat32), o);
    CHECK(y32.dtype() == kFloat32);
    CHECK(testing::max_abs_diff(y32, y) < 2e-6);
    Tensor yb = ops::rotary_forward(x.to(kBFloat16), o);
    CHECK(yb.dtype() == kBFloat16);
    // One bf16 rounding per element (<= 2^-8); norm-wise their rms is ~2^-8 / sqrt(3) < 2^-9.
    CHECK(testing::rel_error(yb, ops::rotary_forward(x.to(kBFloat16).to(kFloat64), o)) < 1.0 / 512);
  }

  TEST_CASE("rotary position offset continues a sequence") {
    Generator gen(2);
    Tensor x = Tensor::randn({1, 9, 2, 6}, gen, kFloat64);
    Tensor whole = ops::rotary_forward(x);
    ops::RotaryOptions tail;
    tail.position_offset = 4;
    Tensor part = ops::rotary_forward(x.narrow(1, 4, 5), tail);
    CHECK(testing::max_abs_diff(part, whole.narrow(1, 4, 5).contiguous()) < 1e-15);
  }

  TEST_CASE("rotary reads strided slices of a fused QKV tensor") {
    Generator gen(8);
    Tensor qkv = Tensor::randn({2, 7, 3, 2, 4}, gen, kFloat64);  // [B, T, 3, H, D]
    Tensor k = qkv.select(2, 1);                                 // [B, T, H, D], strided
    REQUIRE_FALSE(k.is_contiguous());
    CHECK(testing::max_abs_diff(ops::rotary_forward(k), ops::rotary_forward(k.contiguous())) == 0);
  }

  TEST_CASE("rotary_qkv: the packed q, k, v in one pass, the same bits as each part alone") {
    // rotary_qkv_forward rotates q and k of a packed [B, T, 3, H, D] and copies v;
    // rotary_qkv_backward_ rotates the q and k parts of a packed gradient back in place and
    // leaves its v part: each part must equal rotary_forward / rotary_backward of that part.
    Generator gen(23);
    for (DType dt : {kFloat64, kFloat32, kBFloat16}) {
      for (int64_t R : {int64_t(-1), int64_t(2)}) {
        INFO(dtype_name(dt) << " R=" << R);
        ops::RotaryOptions o;
        o.rotary_dim = R;
        o.position_offset = 3;
        const Tensor qkv = Tensor::randn({2, 5, 3, 3, 6}, gen, kFloat64).to(dt);
        const Tensor y = ops::rotary_qkv_forward(qkv, o);
        CHECK(y.is_contiguous());
        CHECK(y.dtype() == dt);
        for (int64_t part : {0, 1}) {
          CHECK(testing::max_abs_diff(y.select(2, part),
                                      ops::rotary_forward(qkv.select(2, part), o)) == 0.0);
        }
        CHECK(testing::max_abs_diff(y.select(2, 2), qkv.select(2, 2)) == 0.0);
        Tensor d = qkv.clone();
        ops::rotary_qkv_backward_(d, o);
        for (int64_t part : {0, 1}) {
          CHECK(testing::max_abs_diff(d.select(2, part),
                                      ops::rotary_backward(qkv.select(2, part), o)) == 0.0);
        }
        CHECK(testing::max_abs_diff(d.select(2, 2), qkv.select(2, 2)) == 0.0);
        // Backward after forward gives q and k back, to two roundings of elements under 6 in
        // size (bf16: 2 x 6 x 2^-9 = 0.023), and v exactly.
        Tensor back = y.clone();
        ops::rotary_qkv_backward_(back, o);
        const double tol = dt == kFloat64 ? 1e-14 : dt == kFloat32 ? 1e-5 : 0.025;
        CHECK(testing::max_abs_diff(back, qkv) < tol);
        CHECK(testing::max_abs_diff(back.select(2, 2), qkv.select(2, 2)) == 0.0);
        // Parts that are not adjacent (a [B, T, H, 3, D] tensor seen as [B, T, 3, H, D]): the
        // forward copies to contiguous first, the backward rotates q, then k.
        const Tensor apart = qkv.permute({0, 1, 3, 2, 4}).contiguous().permute({0, 1, 3, 2, 4});
        CHECK(testing::max_abs_diff(ops::rotary_qkv_forward(apart, o), y) == 0.0);
        Tensor d_apart = qkv.permute({0, 1, 3, 2, 4}).contiguous().permute({0, 1, 3, 2, 4});
        ops::rotary_qkv_backward_(d_apart, o);
        CHECK(testing::max_abs_diff(d_apart, d) == 0.0);
      }
    }
    CHECK_THROWS_WITH_TEXT(ops::rotary_qkv_forward(Tensor::ones({1, 2, 2, 1, 4})),
                           "expected a packed q, k, v tensor of shape [B, T, 3, H, D]");
    ops::RotaryOptions bad;
    bad.rotary_dim = 6;
    CHECK_THROWS_WITH_TEXT(ops::rotary_qkv_backward_(Tensor::ones({1, 2, 3, 1, 4}), bad),
                           "rotary_qkv_backward_: rotary_dim must be even and <= D = 4");
  }

  TEST_CASE("rotary backward is the inverse rotation and preserves norms") {
    Generator gen(12);
    Tensor x = Tensor::randn({3, 4, 2, 10}, gen, kFloat64);
    ops::RotaryOptions o;
    o.rotary_dim = 6;
    o.position_offset = 3;
    Tensor y = ops::rotary_forward(x, o);
    CHECK(testing::max_abs_diff(ops::rotary_backward(y, o), x) < 1e-14);
    double nx = 0, ny = 0;
    for (double v : x.to_vector<double>()) nx += v * v;
    for (double v : y.to_vector<double>()) ny += v * v;
    CHECK(ny == doctest::Approx(nx).epsilon(1e-13));
  }

  TEST_CASE("rotary gradcheck (float64)") {
    Generator gen(19);
    Tensor x = Tensor::randn({1, 3, 2, 4}, gen, kFloat64);
    gradcheck([](const std::vector<Var>& v) { return rotary(v[0]); }, {x});
    Tensor x2 = Tensor::randn({2, 3, 1, 6}, gen, kFloat64);
    ops::RotaryOptions o;
    o.rotary_dim = 2;
    o.position_offset = 5;
    o.base = 100.0;
    gradcheck([o](const std::vector<Var>& v) { return rotary(v[0], o); }, {x2});
  }

  TEST_CASE("rotary errors") {
    CHECK_THROWS_WITH_TEXT(ops::rotary_forward(Tensor::ones({2, 3, 4})),
                           "expected x of shape [B, T, H, D], got float32[2, 3, 4] cpu");
    ops::RotaryOptions o;
    o.rotary_dim = 3;
    CHECK_THROWS_WITH_TEXT(ops::rotary_forward(Tensor::ones({1, 2, 1, 4}), o),
                           "rotary_dim must be even and <= D = 4");
    o.rotary_dim = 6;
    CHECK_THROWS_WITH_TEXT(ops::rotary_backward(Tensor::ones({1, 2, 1, 4}), o),
                           "rotary_backward: rotary_dim must be even and <= D = 4");
    o.rotary_dim = -1;
    o.base = 0.0;
    CHECK_THROWS_WITH_TEXT(ops::rotary_forward(Tensor::ones({1, 2, 1, 4}), o), "base must be > 0");
    CHECK_THROWS_WITH_TEXT(ops::rotary_forward(Tensor::ones({1, 2, 1, 4}, kInt64)),
                           "expected a floating tensor");
  }

  CUDA_TEST_CASE("cuda: rotary forward and backward on a strided view, partial rotary_dim") {
    // q out of a fused [B, T, 3, H, D] projection: strided, as the model passes it.
    const Tensor qkv = testing::random_uniform({2, 37, 3, 3, 16}, 60);
    for (int64_t R : {int64_t(-1), int64_t(8)}) {
      ops::RotaryOptions o;
      o.rotary_dim = R;
      o.position_offset = 5;
      auto fwd = [=](const std::vector<Tensor>& t) {
        return ops::rotary_forward(t[0].select(2, 1), o);
      };
      auto bwd = [=](const std::vector<Tensor>& t) {
        return ops::rotary_backward(t[0].select(2, 0), o);
      };
      testing::check_cuda_vs_cpu_float_types(fwd, {qkv}, "rotary_forward");
      testing::check_cuda_vs_cpu_float_types(bwd, {qkv}, "rotary_backward");
    }
  }
  CUDA_TEST_CASE("cuda: rotary_qkv forward and in-place backward on packed q, k, v") {
    // D = 16 and 8: whole heads of 16 or 32 bytes take the vector kernel (bf16 at D = 8 is the
    // seed model's case, float32 at D = 8 and bf16 at D = 16 two vectors a head), the others
    // and the partial rotary_dim the general one.
    for (const int64_t D : {int64_t(16), int64_t(8)}) {
      CAPTURE(D);
      const Tensor qkv = testing::random_uniform({2, 37, 3, 3, D}, 61);
      for (int64_t R : {int64_t(-1), int64_t(D / 2)}) {
        ops::RotaryOptions o;
        o.rotary_dim = R;
        o.position_offset = 2;
        auto fwd = [=](const std::vector<Tensor>& t) { return ops::rotary_qkv_forward(t[0], o); };
        auto bwd = [=](const std::vector<Tensor>& t) {
          Tensor d = t[0].clone();
          ops::rotary_qkv_backward_(d, o);
          return d;
        };
        // Parts apart in memory: the forward's contiguous copy, the backward's two launches.
        auto apart = [](const Tensor& t) {
          return t.permute({0, 1, 3, 2, 4}).contiguous().permute({0, 1, 3, 2, 4});
        };
        auto bwd_apart = [=](const std::vector<Tensor>& t) {
          Tensor d = apart(t[0]);
          ops::rotary_qkv_backward_(d, o);
          return d.contiguous();
        };
        testing::check_cuda_vs_cpu_float_types(fwd, {qkv}, "rotary_qkv_forward");
        testing::check_cuda_vs_cpu_float_types(bwd, {qkv}, "rotary_qkv_backward_");
        testing::check_cuda_vs_cpu_float_types(bwd_apart, {qkv}, "rotary_qkv_backward_ (apart)");
      }
    }
  }

  CUDA_TEST_CASE("cuda: rotary of whole 16-byte heads, aligned or not") {
    // The vector kernel's case (bf16, D = 8) on a packed view, and the same view 2 elements
    // into its buffer (no longer 16-byte aligned: the general kernel), forward and backward.
    const Tensor buffer = testing::random_uniform({2 * 29 * 3 * 4 * 8 + 2}, 62);
    for (const int64_t shift : {int64_t(0), int64_t(2)}) {
      CAPTURE(shift);
      ops::RotaryOptions o;
      o.position_offset = 3;
      auto view = [=](const Tensor& t) {
        return t.narrow(0, shift, 2 * 29 * 3 * 4 * 8).view({2, 29, 3, 4, 8});
      };
      auto fwd = [=](const std::vector<Tensor>& t) {
        return ops::rotary_qkv_forward(view(t[0]), o);
      };
      auto bwd = [=](const std::vector<Tensor>& t) {
        Tensor d = view(t[0].clone());
        ops::rotary_qkv_backward_(d, o);
        return d.contiguous();
      };
      testing::check_cuda_vs_cpu_float_types(fwd, {buffer}, "rotary_qkv_forward");
      testing::check_cuda_vs_cpu_float_types(bwd, {buffer}, "rotary_qkv_backward_");
    }
  }
}  // TEST_SUITE
