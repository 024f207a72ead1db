// Every CUDA op against the CPU op: random inputs over awkward shapes (1, primes, sizes that are
// no multiple of any tile, large), forward and backward. The reference is the CPU op in float64
// on the same (rounded) inputs; float32 must agree to 1e-5 relative, bf16 may be at most twice
// as far from it as the CPU's own bf16 op (a naive bf16 implementation). Every device
// allocation is poisoned with NaN (cuda::set_poison_allocations), so an element a kernel
// forgets to write fails all_written.
#include <array>
#include <functional>
#include <string>

#include "cuda/debug.h"
#include "ops/activation.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/rmsnorm.h"
#include "ops/rotary.h"
#include "ops/softmax.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

using Op = std::function<Tensor(const std::vector<Tensor>&)>;

constexpr double kF32Tol = 1e-5;

struct Poisoned {
  Poisoned() { cuda::set_poison_allocations(true); }
  ~Poisoned() { cuda::set_poison_allocations(false); }
};

Tensor rnd(const Shape& shape, uint64_t seed, double lo = -2.0, double hi = 2.0) {
  Generator gen(seed);
  return Tensor::uniform(shape, lo, hi, gen, kFloat64);
}

std::vector<Tensor> cast_all(const std::vector<Tensor>& xs, DType dtype, Device device) {
  std::vector<Tensor> out;
  for (const Tensor& x : xs) out.push_back(x.to(dtype).to(device));
  return out;
}

// Runs op on the GPU in `dtype` and checks it against the float64 CPU reference.
void check_gpu(const Op& op, const std::vector<Tensor>& inputs, DType dtype, const char* what) {
  const std::string label = std::string(what) + " in " + dtype_name(dtype);
  INFO(label);
  Poisoned poison;
  // The reference sees the inputs rounded to dtype, so only the op's own error is measured.
  const std::vector<Tensor> rounded = cast_all(inputs, dtype, Device::cpu());
  const Tensor ref = op(cast_all(rounded, kFloat64, Device::cpu()));
  const Tensor gpu = op(cast_all(rounded, dtype, Device::cuda()));
  REQUIRE(gpu.is_cuda());
  REQUIRE(gpu.shape() == ref.shape());
  CHECK(gpu.dtype() == op(rounded).dtype());
  const Tensor got = gpu.cpu().to(kFloat64);
  CHECK(testing::all_written(got));
  const double err = testing::rel_error(got, ref);
  if (dtype == kBFloat16) {
    const double naive = testing::rel_error(op(rounded).to(kFloat64), ref);
    const std::string note =
        "bf16 error " + std::to_string(err) + " vs naive " + std::to_string(naive);
    INFO(note);
    CHECK(err <= 2.0 * naive + 1e-7);
  } else {
    const std::string note = "error " + std::to_string(err);
    INFO(note);
    CHECK(err <= (dtype == kFloat64 ? 1e-12 : kF32Tol));
  }
}

void check_float_types(const Op& op, const std::vector<Tensor>& inputs, const char* what,
                       bool bf16 = true) {
  check_gpu(op, inputs, kFloat32, what);
  check_gpu(op, inputs, kFloat64, what);
  if (bf16) check_gpu(op, inputs, kBFloat16, what);
}

}  // namespace

TEST_SUITE("cuda") {
  CUDA_TEST_CASE("cuda: binary ops with broadcasting and strided inputs") {
    const std::vector<std::pair<Shape, Shape>> shapes = {
        {{1}, {1}}, {{7, 1, 13}, {5, 13}}, {{3, 1}, {1, 257}}, {{1000003}, {1}}};
    for (const auto& [sa, sb] : shapes) {
      const Tensor a = rnd(sa, 1), b = rnd(sb, 2, 0.5, 2.0);  // b > 0 for div and pow
      for (int k = 0; k <= int(ops::BinaryOp::Ge); ++k) {
        const auto op = ops::BinaryOp(k);
        const Op f = [op](const std::vector<Tensor>& t) {
          return ops::binary(op == ops::BinaryOp::Pow ? ops::abs(t[0]) : t[0], t[1], op);
        };
        // Comparisons of values that are rounded differently on the two sides are not errors;
        // they are exact when run on the same dtype, checked in float32 and float64 here.
        const bool compare = k >= int(ops::BinaryOp::Eq);
        check_gpu(f, {a, b}, kFloat32, ops::binary_op_name(op));
        check_gpu(f, {a, b}, kFloat64, ops::binary_op_name(op));
        if (!compare) check_gpu(f, {a, b}, kBFloat16, ops::binary_op_name(op));
      }
    }
    // A transposed (non-contiguous) operand.
    const Op ft = [](const std::vector<Tensor>& t) { return ops::mul(t[0].transpose(0, 1), t[1]); };
    check_float_types(ft, {rnd({37, 11}, 3), rnd({11, 37}, 4)}, "mul of a transposed view");
  }

  CUDA_TEST_CASE("cuda: unary and scalar ops, clamp and where") {
    const Tensor x = rnd({3, 997}, 5, 0.1, 3.0), y = rnd({3, 997}, 6);
    for (int k = 0; k <= int(ops::UnaryOp::Sign); ++k) {
      const auto op = ops::UnaryOp(k);
      const Tensor& in =
          (op == ops::UnaryOp::Clamp || op == ops::UnaryOp::InRange || op == ops::UnaryOp::Affine ||
           op == ops::UnaryOp::Abs || op == ops::UnaryOp::Sign || op == ops::UnaryOp::Tanh)
              ? y
              : x;
      const Op f = [op](const std::vector<Tensor>& t) { return ops::unary(t[0], op, -0.5, 1.25); };
      check_gpu(f, {in}, kFloat32, ops::unary_op_name(op));
      check_gpu(f, {in}, kFloat64, ops::unary_op_name(op));
      if (op != ops::UnaryOp::InRange && op != ops::UnaryOp::Sign) {
        check_gpu(f, {in}, kBFloat16, ops::unary_op_name(op));
      }
    }
    const Op fw = [](const std::vector<Tensor>& t) {
      return ops::where(ops::gt(t[0], t[1]), t[1], t[2].transpose(0, 1));
    };
    check_float_types(fw, {rnd({31, 17}, 7), rnd({17}, 8), rnd({17, 31}, 9)}, "where");
  }

  CUDA_TEST_CASE("cuda: sum, mean, max, var and argmax over dims") {
    const Tensor x = rnd({6, 1, 33, 129}, 10, -3.0, 5.0);
    const std::vector<std::vector<int>> dim_sets = {{}, {3}, {0}, {2}, {0, 2}, {1, 3}, {0, 1, 2}};
    for (const auto& dims : dim_sets) {
      for (bool keep : {false, true}) {
        check_float_types([&](auto& t) { return ops::sum(t[0], dims, keep); }, {x}, "sum");
        check_float_types([&](auto& t) { return ops::mean(t[0], dims, keep); }, {x}, "mean");
        check_float_types([&](auto& t) { return ops::max(t[0], dims, keep); }, {x}, "max");
        check_float_types([&](auto& t) { return ops::var(t[0], dims, true, keep); }, {x}, "var");
      }
    }
    // Long reductions, split over K chunks and merged: a flat 2^21 + 3 (rows path) and a bias
    // gradient's [4099, 70] -> [70] (columns path).
    for (const auto& [shape, dims] : std::vector<std::pair<Shape, std::vector<int>>>{
             {{(1 << 21) + 3}, {}}, {{4099, 70}, {0}}, {{3, 40000}, {1}}}) {
      const Tensor big = rnd(shape, 11, -1.0, 3.0);
      const std::vector<int> d = dims;
      check_float_types([&](auto& t) { return ops::sum(t[0], d); }, {big}, "long sum");
      check_float_types([&](auto& t) { return ops::max(t[0], d); }, {big}, "long max");
      check_float_types([&](auto& t) { return ops::var(t[0], d); }, {big}, "long var");
    }
    Poisoned poison;
    for (int dim : {0, 2, 3}) {
      const Tensor cpu = ops::argmax(x.to(kFloat32), dim);
      const Tensor gpu = ops::argmax(x.to(kFloat32).cuda(), dim);
      CHECK(gpu.cpu().to_vector<int64_t>() == cpu.to_vector<int64_t>());
    }
    const std::vector<Tensor> list = {rnd({1}, 12), rnd({129, 65}, 13), rnd({70001}, 14)};
    std::vector<Tensor> gpu_list;
    for (const Tensor& t : list) gpu_list.push_back(t.to(kFloat32).cuda());
    std::vector<Tensor> cpu_list;
    for (const Tensor& t : list) cpu_list.push_back(t.to(kFloat32));
    const double ref = ops::global_l2_norm(cpu_list).item();
    CHECK(ops::global_l2_norm(gpu_list).item() == doctest::Approx(ref).epsilon(1e-6));
  }

  CUDA_TEST_CASE("cuda: softmax and log-softmax forward and backward") {
    for (const Shape& shape : std::vector<Shape>{{1, 1}, {7, 1000}, {3, 5, 131}}) {
      const Tensor x = rnd(shape, 20, -4.0, 4.0), dy = rnd(shape, 21);
      for (int dim : {-1, 0}) {
        for (bool log : {false, true}) {
          auto fwd = [=](const std::vector<Tensor>& t) {
            return log ? ops::log_softmax(t[0], dim) : ops::softmax(t[0], dim);
          };
          auto bwd = [=](const std::vector<Tensor>& t) {
            const Tensor y = log ? ops::log_softmax(t[0], dim) : ops::softmax(t[0], dim);
            return log ? ops::log_softmax_backward(t[1], y, dim)
                       : ops::softmax_backward(t[1], y, dim);
          };
          check_float_types(fwd, {x}, log ? "log_softmax" : "softmax");
          check_float_types(bwd, {x, dy}, log ? "log_softmax_backward" : "softmax_backward");
        }
      }
    }
  }

  CUDA_TEST_CASE("cuda: GELU forward and backward, both forms") {
    const Tensor x = rnd({5, 1237}, 30, -5.0, 5.0), dy = rnd({5, 1237}, 31);
    for (auto approx : {ops::GeluApprox::kNone, ops::GeluApprox::kTanh}) {
      check_float_types([=](auto& t) { return ops::gelu(t[0], approx); }, {x}, "gelu");
      check_float_types([=](auto& t) { return ops::gelu_backward(t[1], t[0], approx); }, {x, dy},
                        "gelu_backward");
    }
  }

  CUDA_TEST_CASE("cuda: dropout draws exactly the CPU's mask") {
    Poisoned poison;
    for (int64_t n : {1, 3, 4, 1001, 65537}) {
      for (float p : {0.0f, 0.1f, 0.5f, 1.0f}) {
        const Tensor x = rnd({n}, 40).to(kFloat32);
        const Tensor cpu = ops::dropout_forward(x, p, 1234, 5);
        const Tensor gpu = ops::dropout_forward(x.cuda(), p, 1234, 5);
        CHECK(gpu.cpu().to_vector<float>() == cpu.to_vector<float>());
        const Tensor gb = ops::dropout_backward(x.cuda(), p, 1234, 5);
        CHECK(gb.cpu().to_vector<float>() ==
              ops::dropout_backward(x, p, 1234, 5).to_vector<float>());
      }
    }
    const Tensor xb = rnd({3, 333}, 41).to(kBFloat16);
    CHECK(ops::dropout_forward(xb.cuda(), 0.3f, 9, 2).cpu().to_vector<double>() ==
          ops::dropout_forward(xb, 0.3f, 9, 2).to_vector<double>());
  }

  CUDA_TEST_CASE("cuda: RMSNorm forward and backward (dx, dw)") {
    // C = 1 is left out: there dx = rstd dy w eps / (x^2 + eps) cancels catastrophically, and
    // float32 cannot meet a 1e-5 bound against float64 on the CPU either.
    for (const Shape& shape : std::vector<Shape>{{1, 3}, {3, 7, 129}, {4099, 64}}) {
      const int64_t C = shape.back();
      const Tensor x = rnd(shape, 50), w = rnd({C}, 51, 0.5, 1.5), dy = rnd(shape, 52);
      auto fwd = [](const std::vector<Tensor>& t) {
        return ops::rmsnorm_forward(t[0], t[1], 1e-5f, nullptr);
      };
      auto dx = [](const std::vector<Tensor>& t) {
        Tensor rstd, g;
        ops::rmsnorm_forward(t[0], t[1], 1e-5f, &rstd);
        ops::rmsnorm_backward(t[2], t[0], t[1], rstd, &g, nullptr);
        return g;
      };
      auto dw = [](const std::vector<Tensor>& t) {
        Tensor rstd, g;
        ops::rmsnorm_forward(t[0], t[1], 1e-5f, &rstd);
        ops::rmsnorm_backward(t[2], t[0], t[1], rstd, nullptr, &g);
        return g;
      };
      check_float_types(fwd, {x, w}, "rmsnorm_forward");
      check_float_types(dx, {x, w, dy}, "rmsnorm dx");
      check_float_types(dw, {x, w, dy}, "rmsnorm dw");
    }
    // bf16-mixed: bf16 activations with a float32 weight.
    Poisoned poison;
    const Tensor x = rnd({37, 96}, 53).to(kBFloat16), w = rnd({96}, 54, 0.5, 1.5).to(kFloat32);
    Tensor rstd_c, rstd_g;
    const Tensor yc = ops::rmsnorm_forward(x, w, 1e-5f, &rstd_c);
    const Tensor yg = ops::rmsnorm_forward(x.cuda(), w.cuda(), 1e-5f, &rstd_g);
    CHECK(testing::rel_error(yg.cpu(), yc) <= 1e-2);
    CHECK(testing::rel_error(rstd_g.cpu(), rstd_c) <= kF32Tol);
  }

  CUDA_TEST_CASE("cuda: rotary forward and backward on a strided view, partial rotary_dim") {
    // q out of a fused [B, T, 3, H, D] projection: strided, as the model passes it.
    const Tensor qkv = rnd({2, 37, 3, 3, 16}, 60);
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
      check_float_types(fwd, {qkv}, "rotary_forward");
      check_float_types(bwd, {qkv}, "rotary_backward");
    }
  }

  CUDA_TEST_CASE("cuda: smooth-L1 (weighted) and MSE losses forward and backward") {
    for (const Shape& shape : std::vector<Shape>{{1, 1}, {13, 5}, {64, 31, 7}}) {
      const Tensor p = rnd(shape, 70), t = rnd(shape, 71), w = rnd({shape.back()}, 72, 0.1, 2.0);
      const Tensor dl = Tensor::scalar(0.75, kFloat64);
      for (float beta : {0.0f, 0.5f}) {
        check_float_types([=](auto& x) { return ops::smooth_l1_loss(x[0], x[1], beta, x[2]); },
                          {p, t, w}, "smooth_l1_loss");
        check_float_types(
            [=](auto& x) { return ops::smooth_l1_loss_backward(x[3], x[0], x[1], beta, x[2]); },
            {p, t, w, dl}, "smooth_l1_loss_backward");
      }
      check_float_types([](auto& x) { return ops::mse_loss(x[0], x[1]); }, {p, t}, "mse_loss");
      check_float_types([](auto& x) { return ops::mse_loss_backward(x[2], x[0], x[1]); },
                        {p, t, dl}, "mse_loss_backward");
    }
  }

  CUDA_TEST_CASE("cuda: matmul, bmm and linear through cuBLASLt") {
    const std::vector<std::array<int64_t, 3>> mnk = {{1, 1, 1}, {37, 53, 29}, {128, 64, 256}};
    for (const auto& [M, N, K] : mnk) {
      const Tensor a = rnd({M, K}, 80), b = rnd({K, N}, 81), bt = rnd({N, K}, 82);
      check_float_types([](auto& t) { return ops::matmul(t[0], t[1]); }, {a, b}, "matmul");
      check_float_types([](auto& t) { return ops::matmul(t[0], t[1].transpose(0, 1)); }, {a, bt},
                        "matmul by a transposed view");
      const Tensor bias = rnd({N}, 83);
      check_float_types([](auto& t) { return ops::linear(t[0], t[1], t[2]); }, {a, bt, bias},
                        "linear with bias");
    }
    // Batched with broadcasting: [3, 1, 17, 19] . [4, 19, 23] -> [3, 4, 17, 23].
    check_float_types([](auto& t) { return ops::matmul(t[0], t[1]); },
                      {rnd({3, 1, 17, 19}, 84), rnd({4, 19, 23}, 85)}, "broadcast matmul");
    check_float_types([](auto& t) { return ops::bmm(t[0], t[1].transpose(1, 2)); },
                      {rnd({5, 33, 40}, 86), rnd({5, 24, 40}, 87)}, "bmm, transposed b");
    check_float_types([](auto& t) { return ops::linear(t[0], t[1]); },
                      {rnd({2, 9, 48}, 88), rnd({96, 48}, 89)}, "linear, 3-d x, no bias");
  }

}  // TEST_SUITE
