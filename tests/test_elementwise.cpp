// Elementwise ops: known values (broadcast, strided, scalar, bf16), error paths, and float64
// gradchecks of their autograd functions (broadcasting and an input used twice included).
#include <cmath>
#include <functional>
#include <limits>

#include "autograd/functions_basic.h"
#include "autograd/gradcheck.h"
#include "ops/elementwise.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& s) {
  return Tensor::from_doubles(v, s, kFloat64);
}

// Uniform in [lo, hi): never zero-centered by accident, so no test runs on zeros.
Tensor rnd(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0,
           DType dtype = kFloat64) {
  Generator gen(seed);
  return Tensor::uniform(shape, lo, hi, gen, dtype);
}

// Applies `f` elementwise in float64 on the host: the independent reference.
Tensor map_ref(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> v = x.to_vector<double>();
  for (double& e : v) e = f(e);
  return Tensor::from_doubles(v, x.shape(), kFloat64);
}

using VarFn = std::function<Var(const std::vector<Var>&)>;

}  // namespace

TEST_SUITE("elementwise") {
  TEST_CASE("binary ops broadcast [2, 3] with [3] and [2, 1]") {
    const Tensor a = f64({1, 2, 3, 4, 5, 6}, {2, 3});
    const Tensor row = f64({10, 20, 30}, {3});
    const Tensor col = f64({-1, 2}, {2, 1});
    CHECK(ops::add(a, row).to_vector<double>() == std::vector<double>{11, 22, 33, 14, 25, 36});
    CHECK(ops::sub(a, col).to_vector<double>() == std::vector<double>{2, 3, 4, 2, 3, 4});
    CHECK(ops::mul(col, row).shape() == Shape{2, 3});
    CHECK(ops::mul(col, row).to_vector<double>() == std::vector<double>{-10, -20, -30, 20, 40, 60});
    CHECK(ops::div(a, col).to_vector<double>() == std::vector<double>{-1, -2, -3, 2, 2.5, 3});
    CHECK(ops::pow(col, row.narrow(0, 0, 2).unsqueeze(0)).to_vector<double>() ==
          std::vector<double>{1, 1, 1024, 1048576});
    CHECK(ops::maximum(a, f64({3.5}, {})).to_vector<double>() ==
          std::vector<double>{3.5, 3.5, 3.5, 4, 5, 6});
    CHECK(ops::minimum(a, col).to_vector<double>() == std::vector<double>{-1, -1, -1, 2, 2, 2});
    CHECK(ops::gt(a, f64({3}, {1})).to_vector<double>() == std::vector<double>{0, 0, 0, 1, 1, 1});
    CHECK(ops::ge(a, f64({3}, {1})).to_vector<double>() == std::vector<double>{0, 0, 1, 1, 1, 1});
    CHECK(ops::eq(a, f64({2, 9, 3}, {3})).to_vector<double>() ==
          std::vector<double>{0, 0, 1, 0, 0, 0});
  }

  TEST_CASE("binary ops read strided and expanded inputs") {
    // x^T (a transposed view) + a [4, 3] contiguous tensor, and a stride-0 expand.
    const Tensor x = rnd({3, 4}, 1);
    const Tensor y = rnd({4, 3}, 2);
    const Tensor sum = ops::add(x.transpose(0, 1), y);
    const std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();
    const std::vector<double> sv = sum.to_vector<double>();
    for (int i = 0; i < 4; ++i) {
      for (int j = 0; j < 3; ++j) CHECK(sv[i * 3 + j] == xv[j * 4 + i] + yv[i * 3 + j]);
    }
    const Tensor e = ops::mul(x.narrow(1, 1, 1).expand({3, 5}), f64({2}, {}));
    CHECK(e.shape() == Shape{3, 5});
    CHECK(e.to_vector<double>()[7] == 2 * xv[1 * 4 + 1]);
    // A long contiguous operand takes the parallel, chunked path: still elementwise exact.
    const Tensor big = rnd({100003}, 3, 0.5, 2.0, kFloat32);
    const Tensor twice = ops::add(big, big);
    CHECK(testing::max_abs_diff(twice, ops::mul_scalar(big, 2.0)) == 0.0);
  }

  TEST_CASE("unary and scalar ops match float64 formulas") {
    const Tensor x = rnd({5, 7}, 4, 0.1, 3.0);
    CHECK(testing::max_abs_diff(ops::exp(x), map_ref(x, [](double v) { return std::exp(v); })) <
          1e-12);
    CHECK(testing::max_abs_diff(ops::log(x), map_ref(x, [](double v) { return std::log(v); })) <
          1e-15);
    CHECK(testing::max_abs_diff(ops::log1p(x), map_ref(x, [](double v) { return std::log1p(v); })) <
          1e-15);
    CHECK(testing::max_abs_diff(ops::sqrt(x), map_ref(x, [](double v) { return std::sqrt(v); })) <
          1e-15);
    CHECK(testing::max_abs_diff(ops::rsqrt(x),
                                map_ref(x, [](double v) { return 1 / std::sqrt(v); })) < 1e-14);
    CHECK(testing::max_abs_diff(ops::tanh(x), map_ref(x, [](double v) { return std::tanh(v); })) <
          1e-15);
    const Tensor s = ops::sub_scalar(x, 1.5);  // both signs
    CHECK(testing::max_abs_diff(ops::abs(s), map_ref(s, [](double v) { return std::fabs(v); })) ==
          0);
    CHECK(ops::sign(f64({-2, 0, 3}, {3})).to_vector<double>() == std::vector<double>{-1, 0, 1});
    CHECK(ops::neg(f64({1, -2}, {2})).to_vector<double>() == std::vector<double>{-1, 2});
    CHECK(ops::add_scalar(f64({1, -2}, {2}), 0.5).to_vector<double>() ==
          std::vector<double>{1.5, -1.5});
    CHECK(ops::rsub_scalar(f64({1, -2}, {2}), 3).to_vector<double>() == std::vector<double>{2, 5});
    CHECK(ops::mul_scalar(f64({1, -2}, {2}), 3).to_vector<double>() == std::vector<double>{3, -6});
    CHECK(ops::div_scalar(f64({1, -2}, {2}), 4).to_vector<double>() ==
          std::vector<double>{0.25, -0.5});
    CHECK(ops::rdiv_scalar(f64({4, -2}, {2}), 2).to_vector<double>() ==
          std::vector<double>{0.5, -1});
    CHECK(ops::pow_scalar(f64({3, -2}, {2}), 3).to_vector<double>() == std::vector<double>{27, -8});
    CHECK(ops::clamp(f64({-3, 0.5, 9}, {3}), -1, 2).to_vector<double>() ==
          std::vector<double>{-1, 0.5, 2});
    CHECK(ops::in_range(f64({-3, -1, 0.5, 2, 9}, {5}), -1, 2).to_vector<double>() ==
          std::vector<double>{0, 1, 1, 1, 0});
    // Unary ops on a strided view read the right elements.
    const Tensor t = x.transpose(0, 1);
    CHECK(testing::max_abs_diff(ops::exp(t).transpose(0, 1), ops::exp(x)) == 0);
  }

  TEST_CASE("float32 and bfloat16 compute in float and round once") {
    const Tensor a = rnd({6, 5}, 5, -2, 2, kFloat32);
    const Tensor b = rnd({5}, 6, -2, 2, kFloat32);
    const Tensor ref = ops::mul(a.to(kFloat64), b.to(kFloat64));
    CHECK(testing::max_abs_diff(ops::mul(a, b), ref) < 1e-6);
    const Tensor ab = a.to(kBFloat16), bb = b.to(kBFloat16);
    const Tensor prod = ops::mul(ab, bb);
    CHECK(prod.dtype() == kBFloat16);
    // Exactly the float product of the bf16 inputs, rounded to bf16 once.
    const std::vector<float> av = ab.to_vector<float>(), bv = bb.to_vector<float>();
    const std::vector<float> pv = prod.to_vector<float>();
    for (size_t i = 0; i < pv.size(); ++i) CHECK(pv[i] == round_to_bf16(av[i] * bv[i % 5]));
    CHECK(ops::exp(ab).dtype() == kBFloat16);
  }

  TEST_CASE("where picks with broadcasting; NaN propagates through maximum and clamp") {
    const Tensor cond = Tensor::from_doubles({1, 0, 1}, {3}, kFloat64);
    const Tensor a = f64({1, 2, 3, 4, 5, 6}, {2, 3});
    const Tensor b = f64({-1}, {});
    CHECK(ops::where(cond, a, b).to_vector<double>() == std::vector<double>{1, -1, 3, 4, -1, 6});
    const Tensor icond = Tensor::from_doubles({0, 7}, {2, 1}, kInt64);
    CHECK(ops::where(icond, a, b).to_vector<double>() == std::vector<double>{-1, -1, -1, 4, 5, 6});
    const double nan = std::numeric_limits<double>::quiet_NaN();
    CHECK(std::isnan(ops::maximum(f64({nan}, {1}), f64({1}, {1})).item()));
    CHECK(std::isnan(ops::maximum(f64({1}, {1}), f64({nan}, {1})).item()));
    CHECK(std::isnan(ops::clamp(f64({nan}, {1}), 0, 1).item()));
  }

  TEST_CASE("elementwise errors name the shapes and dtypes") {
    const Tensor a = rnd({2, 3}, 7);
    CHECK_THROWS_WITH_TEXT(ops::add(a, rnd({4}, 8)), "[2, 3]");
    CHECK_THROWS_WITH_TEXT(ops::add(a, rnd({4}, 8)), "[4]");
    CHECK_THROWS_WITH_TEXT(ops::mul(a, rnd({2, 3}, 9, -1, 1, kFloat32)), "dtype mismatch");
    CHECK_THROWS_WITH_TEXT(ops::mul(a, rnd({2, 3}, 9, -1, 1, kFloat32)), "float32[2, 3]");
    CHECK_THROWS_WITH_TEXT(ops::exp(Tensor::zeros({2}, kInt64)), "expected a floating dtype");
    CHECK_THROWS_WITH_TEXT(ops::where(Tensor::ones({5}), a.to(kFloat32), a.to(kFloat32)), "[5]");
    CHECK_THROWS_WITH_TEXT(ops::add(a, Tensor()), "undefined");
  }

  TEST_CASE("gradcheck: binary ops with broadcasting") {
    const Tensor a = rnd({2, 3}, 10), row = rnd({3}, 11), col = rnd({2, 1}, 12);
    const Tensor pos = rnd({2, 3}, 13, 0.5, 2.0), pos_row = rnd({3}, 14, 0.5, 2.0);
    gradcheck([](const std::vector<Var>& v) { return add(v[0], v[1]); }, {a, row});
    gradcheck([](const std::vector<Var>& v) { return sub(v[0], v[1]); }, {col, a});
    gradcheck([](const std::vector<Var>& v) { return mul(v[0], v[1]); }, {col, row});
    gradcheck([](const std::vector<Var>& v) { return div(v[0], v[1]); }, {a, pos_row});
    gradcheck([](const std::vector<Var>& v) { return pow(v[0], v[1]); }, {pos, row});
    gradcheck([](const std::vector<Var>& v) { return v[0] * v[1] - v[1] / v[0] + v[0]; },
              {pos, pos_row});
  }

  TEST_CASE("gradcheck: an input used twice accumulates both paths") {
    const Tensor x = rnd({4}, 15, 0.5, 1.5);
    // y = x * x + x  =>  dy/dx = 2x + 1; each use adds its own gradient.
    gradcheck([](const std::vector<Var>& v) { return add(mul(v[0], v[0]), v[0]); }, {x});
    Var xv(x, true);
    Var y = sum(add(mul(xv, xv), xv));
    y.backward();
    CHECK(testing::max_abs_diff(xv.grad(), map_ref(x, [](double e) { return 2 * e + 1; })) < 1e-15);
  }

  TEST_CASE("gradcheck: unary and scalar ops") {
    const Tensor x = rnd({2, 3}, 16, -1.5, 1.5);
    const Tensor pos = rnd({2, 3}, 17, 0.2, 2.0);
    const std::vector<std::pair<const char*, VarFn>> on_any = {
        {"neg", [](const std::vector<Var>& v) { return -v[0]; }},
        {"exp", [](const std::vector<Var>& v) { return exp(v[0]); }},
        {"tanh", [](const std::vector<Var>& v) { return tanh(v[0]); }},
        {"abs", [](const std::vector<Var>& v) { return abs(v[0]); }},
        {"clamp", [](const std::vector<Var>& v) { return clamp(v[0], -0.7, 0.4); }},
        {"pow3", [](const std::vector<Var>& v) { return pow(v[0], 3.0); }},
        {"scalars", [](const std::vector<Var>& v) { return (2.0 - v[0] * 3.0 + 1.5) / 4.0; }},
    };
    for (const auto& [name, f] : on_any) {
      INFO(name);
      CHECK(gradcheck(f, {x}).passed);
    }
    const std::vector<std::pair<const char*, VarFn>> on_positive = {
        {"log", [](const std::vector<Var>& v) { return log(v[0]); }},
        {"log1p", [](const std::vector<Var>& v) { return log1p(v[0]); }},
        {"sqrt", [](const std::vector<Var>& v) { return sqrt(v[0]); }},
        {"rsqrt", [](const std::vector<Var>& v) { return rsqrt(v[0]); }},
        {"pow1.7", [](const std::vector<Var>& v) { return pow(v[0], 1.7); }},
        {"rdiv", [](const std::vector<Var>& v) { return 3.0 / v[0]; }},
    };
    for (const auto& [name, f] : on_positive) {
      INFO(name);
      CHECK(gradcheck(f, {pos}).passed);
    }
  }

  TEST_CASE("gradcheck: where with a broadcast condition") {
    const Tensor cond = Tensor::from_doubles({1, 0, 1}, {3}, kFloat64);
    const Tensor a = rnd({2, 3}, 18), b = rnd({2, 1}, 19);
    gradcheck([cond](const std::vector<Var>& v) { return where(cond, v[0], v[1]); }, {a, b});
    // Known values: the gradient goes to a where cond is 1 and to b (summed over its row) else.
    Var av(a, true), bv(b, true);
    where(cond, av, bv).backward(Tensor::ones({2, 3}, kFloat64));
    CHECK(av.grad().to_vector<double>() == std::vector<double>{1, 0, 1, 1, 0, 1});
    CHECK(bv.grad().to_vector<double>() == std::vector<double>{1, 1});
  }

  CUDA_TEST_CASE("cuda: binary ops with broadcasting and strided inputs") {
    const std::vector<std::pair<Shape, Shape>> shapes = {
        {{1}, {1}}, {{7, 1, 13}, {5, 13}}, {{3, 1}, {1, 257}}, {{1000003}, {1}}};
    for (const auto& [sa, sb] : shapes) {
      const Tensor a = testing::random_uniform(sa, 1),
                   b = testing::random_uniform(sb, 2, 0.5, 2.0);  // b > 0 for div and pow
      for (int k = 0; k <= int(ops::BinaryOp::Ge); ++k) {
        const auto op = ops::BinaryOp(k);
        const testing::TensorOp f = [op](const std::vector<Tensor>& t) {
          return ops::binary(op == ops::BinaryOp::Pow ? ops::abs(t[0]) : t[0], t[1], op);
        };
        // Comparisons of values that are rounded differently on the two sides are not errors;
        // they are exact when run on the same dtype, checked in float32 and float64 here.
        const bool compare = k >= int(ops::BinaryOp::Eq);
        testing::check_cuda_vs_cpu(f, {a, b}, kFloat32, ops::binary_op_name(op));
        testing::check_cuda_vs_cpu(f, {a, b}, kFloat64, ops::binary_op_name(op));
        if (!compare) testing::check_cuda_vs_cpu(f, {a, b}, kBFloat16, ops::binary_op_name(op));
      }
    }
    // A transposed (non-contiguous) operand.
    const testing::TensorOp ft = [](const std::vector<Tensor>& t) {
      return ops::mul(t[0].transpose(0, 1), t[1]);
    };
    testing::check_cuda_vs_cpu_float_types(
        ft, {testing::random_uniform({37, 11}, 3), testing::random_uniform({11, 37}, 4)},
        "mul of a transposed view");
  }

  CUDA_TEST_CASE("cuda: unary and scalar ops, clamp and where") {
    const Tensor x = testing::random_uniform({3, 997}, 5, 0.1, 3.0),
                 y = testing::random_uniform({3, 997}, 6);
    for (int k = 0; k <= int(ops::UnaryOp::Sign); ++k) {
      const auto op = ops::UnaryOp(k);
      const Tensor& in =
          (op == ops::UnaryOp::Clamp || op == ops::UnaryOp::InRange || op == ops::UnaryOp::Affine ||
           op == ops::UnaryOp::Abs || op == ops::UnaryOp::Sign || op == ops::UnaryOp::Tanh)
              ? y
              : x;
      const testing::TensorOp f = [op](const std::vector<Tensor>& t) {
        return ops::unary(t[0], op, -0.5, 1.25);
      };
      testing::check_cuda_vs_cpu(f, {in}, kFloat32, ops::unary_op_name(op));
      testing::check_cuda_vs_cpu(f, {in}, kFloat64, ops::unary_op_name(op));
      if (op != ops::UnaryOp::InRange && op != ops::UnaryOp::Sign) {
        testing::check_cuda_vs_cpu(f, {in}, kBFloat16, ops::unary_op_name(op));
      }
    }
    const testing::TensorOp fw = [](const std::vector<Tensor>& t) {
      return ops::where(ops::gt(t[0], t[1]), t[1], t[2].transpose(0, 1));
    };
    testing::check_cuda_vs_cpu_float_types(
        fw,
        {testing::random_uniform({31, 17}, 7), testing::random_uniform({17}, 8),
         testing::random_uniform({17, 31}, 9)},
        "where");
  }
}  // TEST_SUITE
