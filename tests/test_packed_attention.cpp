// packed_attention: the fused projection's attention (rotary on q and k of a packed
// [B, T, 3, H, D], then scaled-dot-product attention) against the unfused composition it
// replaces (select, rotary, scaled_dot_product_attention), a float64 gradcheck, and on the GPU
// the same comparison.
//
// The two compute the same arithmetic in the same order (the rotated values, the attention, its
// gradients, the inverse rotation); only the memory layout differs (one packed buffer against
// three strided views, one packed gradient against three zero-filled ones summed), and adding
// zeros is exact. So they agree bit for bit, except the GPU's single-pass dQ, whose float32
// atomic adds may land in any order from run to run (compared as tests/test_cuda_attention.cpp
// compares two runs).
#include <vector>

#include "autograd/functions_attention.h"
#include "autograd/functions_basic.h"
#include "autograd/functions_nn.h"
#include "autograd/gradcheck.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;
using mt::ops::AttentionOptions;

namespace {

struct Result {
  Tensor out, dqkv;  // float64 CPU copies
};

// The composition the model used before packed_attention.
Var unfused(const Var& qkv, const ops::RotaryOptions& rope, const AttentionOptions& o) {
  return scaled_dot_product_attention(rotary(select(qkv, 2, 0), rope),
                                      rotary(select(qkv, 2, 1), rope), select(qkv, 2, 2), o);
}

Result run(bool packed, const Tensor& qkv, const Tensor& dout, const ops::RotaryOptions& rope,
           const AttentionOptions& o) {
  Var x(qkv, true);
  Var y = packed ? packed_attention(x, rope, o) : unfused(x, rope, o);
  y.backward(dout);
  REQUIRE(x.grad().shape() == qkv.shape());
  REQUIRE(x.grad().dtype() == qkv.dtype());
  return {y.value().cpu().to(kFloat64), x.grad().cpu().to(kFloat64)};
}

ops::RotaryOptions rope_of(int64_t rotary_dim) {
  ops::RotaryOptions r;
  r.rotary_dim = rotary_dim;
  r.position_offset = 1;
  return r;
}

}  // namespace

TEST_SUITE("packed_attention") {
  TEST_CASE("packed_attention equals select + rotary + attention, bit for bit (CPU)") {
    Generator gen(3);
    for (DType dt : {kFloat64, kFloat32, kBFloat16}) {
      for (int64_t R : {int64_t(-1), int64_t(4)}) {
        INFO(dtype_name(dt) << " R=" << R);
        const Tensor qkv = Tensor::randn({2, 23, 3, 2, 8}, gen, kFloat64).to(dt);
        const Tensor dout = Tensor::randn({2, 23, 2, 8}, gen, kFloat64).to(dt);
        AttentionOptions o{true, 0.1f, 9, 4, 0.0f};
        const Result a = run(true, qkv, dout, rope_of(R), o);
        const Result b = run(false, qkv, dout, rope_of(R), o);
        CHECK(testing::max_abs_diff(a.out, b.out) == 0.0);
        CHECK(testing::max_abs_diff(a.dqkv, b.dqkv) == 0.0);
        CHECK(testing::max_abs_diff(a.dqkv, Tensor::zeros(qkv.shape(), kFloat64)) > 0.1);
      }
    }
  }

  TEST_CASE("packed_attention: a strided packed input (the projection's [B, T, 3C] viewed)") {
    // The model's input is a view of Wqkv's output [B, T, 3 C] as [B, T, 3, H, D]; a transposed
    // layout (parts apart in memory) goes through rotary_qkv_forward's contiguous copy.
    Generator gen(4);
    const Tensor flat = Tensor::randn({2, 9, 3 * 2 * 4}, gen, kFloat64);
    const Tensor packed = flat.view({2, 9, 3, 2, 4});
    const Tensor apart = packed.permute({0, 1, 3, 2, 4}).contiguous().permute({0, 1, 3, 2, 4});
    const Tensor dout = Tensor::randn({2, 9, 2, 4}, gen, kFloat64);
    AttentionOptions o;
    o.causal = true;
    const Result a = run(true, packed, dout, rope_of(-1), o);
    const Result b = run(true, apart, dout, rope_of(-1), o);
    CHECK(testing::max_abs_diff(a.out, b.out) == 0.0);
    CHECK(testing::max_abs_diff(a.dqkv, b.dqkv) == 0.0);
  }

  TEST_CASE("packed_attention float64 gradcheck (causal, dropout, partial rotary dim)") {
    Generator gen(5);
    for (int64_t R : {int64_t(-1), int64_t(2)}) {
      AttentionOptions o{true, 0.2f, 17, 2, 0.0f};
      gradcheck([&](const std::vector<Var>& v) { return packed_attention(v[0], rope_of(R), o); },
                {Tensor::randn({1, 5, 3, 2, 4}, gen, kFloat64)});
    }
    AttentionOptions plain;
    gradcheck([&](const std::vector<Var>& v) { return packed_attention(v[0], rope_of(-1), plain); },
              {Tensor::randn({2, 3, 3, 1, 2}, gen, kFloat64)});
  }

  TEST_CASE("packed_attention errors name the expected layout") {
    CHECK_THROWS_WITH_TEXT(packed_attention(Var(Tensor::ones({1, 4, 2, 1, 8})), rope_of(-1)),
                           "expected a packed q, k, v tensor of shape [B, T, 3, H, D]");
  }

  CUDA_TEST_CASE("cuda: packed_attention equals select + rotary + attention on the GPU") {
    // bf16 (FlashAttention: the model's case, D = 8 and 64, single pass and deterministic) and
    // float32 (the exact kernels).
    Generator gen(6);
    struct Case {
      int64_t B, T, H, D;
      DType dt;
      float p;
      bool deterministic;
    };
    for (const Case& c :
         {Case{2, 300, 8, 8, kBFloat16, 0.05f, false}, Case{2, 300, 8, 8, kBFloat16, 0.05f, true},
          Case{1, 130, 2, 64, kBFloat16, 0.0f, false}, Case{1, 130, 2, 64, kBFloat16, 0.0f, true},
          Case{2, 70, 3, 8, kFloat32, 0.05f, true}}) {
      INFO("B=" << c.B << " T=" << c.T << " H=" << c.H << " D=" << c.D << " " << dtype_name(c.dt)
                << " deterministic=" << c.deterministic);
      const Tensor qkv = Tensor::randn({c.B, c.T, 3, c.H, c.D}, gen, kFloat64).to(c.dt).cuda();
      const Tensor dout = Tensor::randn({c.B, c.T, c.H, c.D}, gen, kFloat64).to(c.dt).cuda();
      AttentionOptions o{true, c.p, 21, 8, 0.0f};
      o.deterministic = c.deterministic;
      testing::PoisonAllocations poison;
      const Result a = run(true, qkv, dout, rope_of(-1), o);
      const Result b = run(false, qkv, dout, rope_of(-1), o);
      REQUIRE(testing::all_written(a.dqkv));
      CHECK(testing::max_abs_diff(a.out, b.out) == 0.0);
      const bool dq_exact = c.deterministic || c.dt != kBFloat16;
      for (int64_t part : {0, 1, 2}) {
        INFO("part " << part);
        const Tensor ga = a.dqkv.select(2, part), gb = b.dqkv.select(2, part);
        if (part == 0 && !dq_exact) {
          CHECK(testing::rel_error(ga, gb) < 1e-2);
        } else {
          CHECK(testing::max_abs_diff(ga, gb) == 0.0);
        }
      }
    }
  }
}  // TEST_SUITE
