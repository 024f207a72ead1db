// Attention on the CPU: the naive reference, the tiled (FlashAttention) algorithm, the autograd
// function and the shared dropout mask.
#include <cmath>
#include <vector>

#include "autograd/functions_attention.h"
#include "autograd/gradcheck.h"
#include "cuda/attention_dropout.h"
#include "ops/attention.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;
using mt::ops::AttentionOptions;

namespace {

Tensor rnd(const Shape& shape, uint64_t seed, DType dtype = kFloat64) {
  Generator gen(seed);
  return Tensor::randn(shape, gen, dtype);
}

// An independent float64 formula, element by element with std::exp and no tiling: the
// definition the other two implementations are checked against.
std::vector<double> formula(const Tensor& q, const Tensor& k, const Tensor& v,
                            const AttentionOptions& o) {
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), D = q.size(3);
  std::vector<double> Q = q.to_vector<double>(), K = k.to_vector<double>(),
                      V = v.to_vector<double>(), out(Q.size());
  const double scale = ops::attention_scale(o, D);  // the float scale the options define
  const DropoutMask drop(
      AttentionDropout{o.seed, o.offset, AttentionDropout::threshold_for(o.dropout_p)});
  auto idx = [&](int64_t b, int64_t t, int64_t h) { return ((b * T + t) * H + h) * D; };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> w(T, 0.0);
        double den = 0;
        for (int64_t j = 0; j < T && (!o.causal || j <= i); ++j) {
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += Q[idx(b, i, h) + d] * K[idx(b, j, h) + d];
          den += (w[j] = std::exp(scale * s));
        }
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < T; ++j) {
            double keep = drop.threshold == 0 ? 1.0
                          : drop.keep(uint32_t(b * H + h), uint32_t(i), uint32_t(j))
                              ? double(drop.keep_scale())  // 256/243 as a float
                              : 0.0;
            acc += w[j] / den * keep * V[idx(b, j, h) + d];
          }
          out[idx(b, i, h) + d] = acc;
        }
      }
  return out;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST_CASE("attention: known values of a two-token example") {
  // T = 2, D = 1, q = k = [1, 2], v = [10, 20], scale 1, causal:
  // row 0 sees only key 0 -> 10; row 1: softmax(2, 4) = (1, e^2) / (1 + e^2) -> weighted v.
  Tensor q = Tensor::from_doubles({1, 2}, {1, 2, 1, 1}, kFloat64);
  Tensor v = Tensor::from_doubles({10, 20}, {1, 2, 1, 1}, kFloat64);
  AttentionOptions o;
  o.causal = true;
  o.scale = 1.0f;
  Tensor lse;
  std::vector<double> y = ops::attention_forward(q, q, v, o, &lse).to_vector<double>();
  const double e2 = std::exp(2.0);
  CHECK(y[0] == doctest::Approx(10.0).epsilon(1e-12));
  CHECK(y[1] == doctest::Approx((10.0 + 20.0 * e2) / (1.0 + e2)).epsilon(1e-12));
  std::vector<double> l = lse.to_vector<double>();
  CHECK(l[0] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(l[1] == doctest::Approx(std::log(std::exp(2.0) + std::exp(4.0))).epsilon(1e-12));
}

TEST_CASE("attention: naive, tiled and the float64 formula agree") {
  struct Case {
    int64_t B, T, H, D;
    bool causal;
    float p;
  };
  // T = 67 and 130 cross the 64-row tiles; T = 1 is a single key; dropout 0.2 drops a lot.
  for (Case c : {Case{1, 1, 1, 8, true, 0.0f}, Case{2, 67, 3, 8, true, 0.0f},
                 Case{1, 67, 2, 16, false, 0.0f}, Case{2, 130, 1, 4, true, 0.2f},
                 Case{1, 33, 2, 8, false, 0.1f}}) {
    CAPTURE(c.T);
    CAPTURE(c.causal);
    CAPTURE(c.p);
    Tensor q = rnd({c.B, c.T, c.H, c.D}, 1), k = rnd({c.B, c.T, c.H, c.D}, 2);
    Tensor v = rnd({c.B, c.T, c.H, c.D}, 3);
    AttentionOptions o;
    o.causal = c.causal;
    o.dropout_p = c.p;
    o.seed = 77;
    o.offset = 5;
    std::vector<double> ref = formula(q, k, v, o);
    Tensor lse;
    std::vector<double> tiled = ops::attention_forward(q, k, v, o, &lse).to_vector<double>();
    std::vector<double> naive = ops::attention_naive_forward(q, k, v, o).to_vector<double>();
    CHECK(max_diff(tiled, ref) < 1e-12);
    CHECK(max_diff(naive, ref) < 1e-12);
    // float32 runs the same algorithm at float32 precision
    std::vector<double> f32 =
        ops::attention_forward(q.to(kFloat32), k.to(kFloat32), v.to(kFloat32), o, nullptr)
            .to_vector<double>();
    CHECK(max_diff(f32, ref) < 1e-4);
    CHECK(max_diff(f32, ref) > 0.0);  // it really ran in float32
  }
}

TEST_CASE("attention: tiled backward matches the naive backward") {
  for (bool causal : {true, false}) {
    for (float p : {0.0f, 0.15f}) {
      CAPTURE(causal);
      CAPTURE(p);
      Tensor q = rnd({2, 70, 2, 8}, 11), k = rnd({2, 70, 2, 8}, 12), v = rnd({2, 70, 2, 8}, 13);
      Tensor dout = rnd({2, 70, 2, 8}, 14);
      AttentionOptions o{causal, p, 99, 3, 0.0f};
      Tensor lse;
      Tensor out = ops::attention_forward(q, k, v, o, &lse);
      ops::AttentionGrads tiled = ops::attention_backward(q, k, v, out, lse, dout, o);
      ops::AttentionGrads naive = ops::attention_naive_backward(q, k, v, dout, o);
      CHECK(testing::max_abs_diff(tiled.dq, naive.dq) < 1e-12);
      CHECK(testing::max_abs_diff(tiled.dk, naive.dk) < 1e-12);
      CHECK(testing::max_abs_diff(tiled.dv, naive.dv) < 1e-12);
      CHECK(testing::rel_error(tiled.dq, naive.dq) < 1e-12);
    }
  }
}

TEST_CASE("attention: float64 gradcheck through scaled_dot_product_attention") {
  struct Case {
    int64_t T;
    bool causal;
    float p;
  };
  for (Case c : {Case{5, true, 0.0f}, Case{5, false, 0.0f}, Case{7, true, 0.3f},
                 Case{1, true, 0.0f}, Case{3, false, 0.25f}}) {
    CAPTURE(c.T);
    CAPTURE(c.causal);
    CAPTURE(c.p);
    AttentionOptions o{c.causal, c.p, 5, 1, 0.0f};
    auto f = [o](const std::vector<Var>& x) {
      return scaled_dot_product_attention(x[0], x[1], x[2], o);
    };
    GradcheckResult r =
        gradcheck(f, {rnd({1, c.T, 2, 4}, 21), rnd({1, c.T, 2, 4}, 22), rnd({1, c.T, 2, 4}, 23)});
    CHECK(r.passed);
  }
}

TEST_CASE("attention: strided q, k, v views of a fused [B, T, 3, H, D] projection") {
  Tensor qkv = rnd({2, 19, 3, 2, 8}, 31);
  Tensor q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);
  REQUIRE_FALSE(q.is_contiguous());
  AttentionOptions o;
  o.causal = true;
  Tensor y = ops::attention_forward(q, k, v, o, nullptr);
  Tensor y_ref = ops::attention_forward(q.contiguous(), k.contiguous(), v.contiguous(), o, nullptr);
  CHECK(testing::max_abs_diff(y, y_ref) == 0.0);
  // gradients come back in the input's [B, T, H, D] shape
  Var qv(q, true), kv(k, true), vv(v, true);
  Var out = scaled_dot_product_attention(qv, kv, vv, o);
  out.backward(rnd({2, 19, 2, 8}, 32));
  CHECK(qv.grad().shape() == q.shape());
  CHECK(kv.grad().shape() == k.shape());
  CHECK(vv.grad().shape() == v.shape());
}

TEST_CASE("attention: the backward writes dq, dk, dv into views of one packed gradient") {
  // attention_backward_into with the q, k, v views of a [B, T, 4, H, D] buffer (part 3 a
  // sentinel that must survive): the same bits as attention_backward's contiguous gradients, in
  // float64, float32 and bfloat16 (computed in float32, rounded once either way).
  for (DType dt : {kFloat64, kFloat32, kBFloat16}) {
    INFO(dtype_name(dt));
    Tensor qkv = rnd({2, 19, 3, 2, 8}, 41).to(dt);
    Tensor q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);
    AttentionOptions o{true, 0.1f, 5, 3, 0.0f};
    Tensor lse;
    Tensor out = ops::attention_forward(q, k, v, o, &lse);
    Tensor dout = rnd({2, 19, 2, 8}, 42).to(dt);
    ops::AttentionGrads want = ops::attention_backward(q, k, v, out, lse, dout, o);
    Tensor packed = Tensor::full({2, 19, 4, 2, 8}, 7.0, dt);
    ops::attention_backward_into(q, k, v, out, lse, dout, o,
                                 {packed.select(2, 0), packed.select(2, 1), packed.select(2, 2)});
    CHECK(testing::max_abs_diff(packed.select(2, 0), want.dq) == 0.0);
    CHECK(testing::max_abs_diff(packed.select(2, 1), want.dk) == 0.0);
    CHECK(testing::max_abs_diff(packed.select(2, 2), want.dv) == 0.0);
    CHECK(testing::max_abs_diff(packed.select(2, 3), Tensor::full({2, 19, 2, 8}, 7.0, dt)) == 0.0);
    CHECK_THROWS_WITH_TEXT(
        ops::attention_backward_into(q, k, v, out, lse, dout, o,
                                     {packed.select(2, 0), packed.select(2, 1), Tensor()}),
        "expected dq, dk, dv like q");
  }
}

TEST_CASE("attention: the dropout mask drops p of the elements, reproducibly") {
  // tests/test_attention_dropout.cpp has the mask's statistics; here, what the op relies on.
  const DropoutMask d(AttentionDropout{123, 4, AttentionDropout::threshold_for(0.05f)});
  CHECK(d.threshold == 13);  // 0.05 * 256 = 12.8 -> 13: p is quantized to 1/256
  CHECK(AttentionDropout{0, 0, AttentionDropout::threshold_for(0.9999f)}.keep_scale() == 256.0f);
  CHECK(d.keep_scale() == doctest::Approx(256.0 / 243.0));
  int64_t dropped = 0, n = 0;
  for (uint32_t row = 0; row < 64; ++row)
    for (uint32_t col = 0; col < 512; ++col, ++n) dropped += !d.keep(3, row, col);
  CHECK(double(dropped) / n == doctest::Approx(13.0 / 256.0).epsilon(0.1));
  // the same call gives the same mask; it depends on every key field
  CHECK(DropoutMask(d).keep(3, 7, 9) == d.keep(3, 7, 9));
  for (int field = 0; field < 5; ++field) {
    AttentionDropout other = d;
    other.seed += field == 0, other.offset += field == 1;
    const DropoutMask o(other);
    int64_t differ = 0;
    for (uint32_t col = 0; col < 512; ++col) {
      differ +=
          d.keep(3, 7, col) != o.keep(3 + (field == 2), 7 + (field == 3), col + 16 * (field == 4));
    }
    CHECK(differ > 5);
  }
}

TEST_CASE("attention: KeepFlags4 compares four mask bytes with the threshold at once") {
  // Every threshold the kernels see (1 .. 256), every byte value in every position of the word,
  // beside neighbours that would expose a carry or borrow between bytes.
  for (uint32_t threshold = 1; threshold <= 256; ++threshold) {
    const KeepFlags4 keep(threshold);
    for (uint32_t byte = 0; byte < 256; ++byte) {
      for (uint32_t fill : {0x00u, 0xFFu, 0x7Fu, 0x80u}) {
        for (int pos = 0; pos < 4; ++pos) {
          uint32_t x = fill * 0x01010101u;
          x = (x & ~(0xFFu << (8 * pos))) | (byte << (8 * pos));
          const uint32_t flags = keep(x);
          for (int b = 0; b < 4; ++b) {
            const uint32_t value = (x >> (8 * b)) & 0xFFu;
            REQUIRE(((flags >> (8 * b + 7)) & 1u) == (value >= threshold ? 1u : 0u));
          }
        }
      }
    }
  }
}

TEST_CASE("attention: errors name the shapes and dtypes") {
  Tensor q = rnd({1, 4, 2, 8}, 1);
  AttentionOptions o;
  CHECK_THROWS_WITH_TEXT(ops::attention_forward(q, rnd({1, 5, 2, 8}, 2), q, o, nullptr),
                         "same shape [B, T, H, D]");
  CHECK_THROWS_WITH_TEXT(
      ops::attention_forward(q.view({4, 2, 8}), q.view({4, 2, 8}), q.view({4, 2, 8}), o, nullptr),
      "[B, T, H, D]");
  CHECK_THROWS_WITH_TEXT(ops::attention_forward(q, q.to(kFloat32), q, o, nullptr), "same dtype");
  Tensor qi = Tensor::zeros({1, 4, 2, 8}, kInt32);
  CHECK_THROWS_WITH_TEXT(ops::attention_forward(qi, qi, qi, o, nullptr), "floating");
  AttentionOptions bad;
  bad.dropout_p = 1.0f;
  CHECK_THROWS_WITH_TEXT(ops::attention_forward(q, q, q, bad, nullptr), "dropout_p");
  Tensor lse;
  Tensor out = ops::attention_forward(q, q, q, o, &lse);
  CHECK_THROWS_WITH_TEXT(ops::attention_backward(q, q, q, out, lse.view({1, 4, 2}), out, o),
                         "lse of shape");
}
