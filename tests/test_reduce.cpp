// Reductions: known values over dims with keepdim, the leading-dims fast path against the general
// path, strided inputs, sum_to, global norm, error paths, and float64 gradchecks.
#include <cmath>
#include <limits>

#include "autograd/functions_basic.h"
#include "autograd/gradcheck.h"
#include "ops/reduce.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& s) {
  return Tensor::from_doubles(v, s, kFloat64);
}

Tensor rnd(const Shape& shape, uint64_t seed, DType dtype = kFloat64) {
  Generator gen(seed);
  return Tensor::uniform(shape, -1.0, 2.0, gen, dtype);
}

// Sum over dim 0 of a [R, C] tensor by a plain host loop: the independent reference.
std::vector<double> column_sums_ref(const Tensor& x) {
  const int64_t R = x.size(0), C = x.size(1);
  const std::vector<double> v = x.to_vector<double>();
  std::vector<double> out(C, 0.0);
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t c = 0; c < C; ++c) out[c] += v[r * C + c];
  }
  return out;
}

}  // namespace

TEST_SUITE("reduce") {
  TEST_CASE("sum, mean, max, var over dims with and without keepdim") {
    // x[i][j][k] = 12 i + 4 j + k + 1 over [2, 3, 4]
    const Tensor x = Tensor::arange(1, 25, 1, kFloat64).view({2, 3, 4});
    CHECK(ops::sum(x).item() == 300);
    CHECK(ops::sum(x).dim() == 0);
    CHECK(ops::sum(x, {1}).shape() == Shape{2, 4});
    CHECK(ops::sum(x, {1}).to_vector<double>() ==
          std::vector<double>{15, 18, 21, 24, 51, 54, 57, 60});
    CHECK(ops::sum(x, {0, 2}, true).shape() == Shape{1, 3, 1});
    CHECK(ops::sum(x, {0, 2}, true).to_vector<double>() == std::vector<double>{68, 100, 132});
    CHECK(ops::sum(x, {-1}).to_vector<double>() == std::vector<double>{10, 26, 42, 58, 74, 90});
    CHECK(ops::mean(x, {2}).to_vector<double>() ==
          std::vector<double>{2.5, 6.5, 10.5, 14.5, 18.5, 22.5});
    CHECK(ops::mean(x).item() == 12.5);
    CHECK(ops::max(x, {1, 2}).to_vector<double>() == std::vector<double>{12, 24});
    CHECK(ops::max(x, {0}, true).shape() == Shape{1, 3, 4});
    // var of {1, 2, 3, 4}: mean 2.5, squared deviations 5; unbiased 5/3, biased 5/4.
    CHECK(ops::var(x, {2}).to_vector<double>()[0] == doctest::Approx(5.0 / 3.0).epsilon(1e-15));
    CHECK(ops::var(x, {2}, false).to_vector<double>()[3] == doctest::Approx(1.25).epsilon(1e-15));
    // var over dims {0, 1} of column k: values k+1 + {0,4,8,12,16,20}: variance of 4*{0..5}
    CHECK(ops::var(x, {0, 1}).to_vector<double>()[2] == doctest::Approx(16 * 3.5).epsilon(1e-14));
    CHECK(std::isnan(ops::var(f64({3}, {1})).item()));  // n - 1 = 0, as torch
  }

  TEST_CASE("argmax returns the first maximum as int64") {
    const Tensor x = f64({1, 5, 5, 0, 9, 2, 9, 3}, {2, 4});
    const Tensor a = ops::argmax(x, 1);
    CHECK(a.dtype() == kInt64);
    CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{1, 0});
    CHECK(ops::argmax(x, 0, true).shape() == Shape{1, 4});
    CHECK(ops::argmax(x, 0).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 1, 1});
    CHECK(ops::argmax(x).item() == 4);  // flattened: the first 9
  }

  TEST_CASE("leading-dims fast path equals the general path and a host loop") {
    const Tensor x = rnd({1000, 37}, 1, kFloat32);  // 37 columns: not a multiple of anything
    const std::vector<double> ref = column_sums_ref(x);
    const Tensor fast = ops::sum(x, {0});                     // contiguous, leading dim
    const Tensor general = ops::sum(x.transpose(0, 1), {1});  // the same sums, strided input
    const std::vector<double> fv = fast.to_vector<double>(), gv = general.to_vector<double>();
    for (int c = 0; c < 37; ++c) {
      CHECK(fv[c] == doctest::Approx(ref[c]).epsilon(1e-6));
      CHECK(gv[c] == doctest::Approx(ref[c]).epsilon(1e-6));
    }
    // Mean over the two leading dims of [10, 100, 3], keepdim.
    const Tensor y = rnd({10, 100, 3}, 2);
    const Tensor m = ops::mean(y, {0, 1}, true);
    CHECK(m.shape() == Shape{1, 1, 3});
    const std::vector<double> mr = column_sums_ref(y.reshape({1000, 3}));
    CHECK(m.to_vector<double>()[1] == doctest::Approx(mr[1] / 1000).epsilon(1e-13));
    // A float32 sum of 10^6 elements accumulates in float64: exact for small integers.
    CHECK(ops::sum(Tensor::ones({1000, 1000})).item() == 1e6);
  }

  TEST_CASE("sum_to undoes broadcasting") {
    const Tensor g = Tensor::arange(0, 24, 1, kFloat64).view({2, 3, 4});
    CHECK(ops::sum_to(g, {4}).to_vector<double>() == std::vector<double>{60, 66, 72, 78});
    CHECK(ops::sum_to(g, {3, 1}).to_vector<double>() == std::vector<double>{60, 92, 124});
    CHECK(ops::sum_to(g, {2, 1, 4}).shape() == Shape{2, 1, 4});
    CHECK(ops::sum_to(g, {}).item() == 276);
    CHECK(ops::sum_to(g, {2, 3, 4}).to_vector<double>() == g.to_vector<double>());
    CHECK_THROWS_WITH_TEXT(ops::sum_to(g, {5}), "cannot sum [2, 3, 4] down to [5]");
    CHECK_THROWS_WITH_TEXT(ops::sum_to(f64({1, 2}, {2}), {3, 2}), "not a broadcast");
  }

  TEST_CASE("reduction errors name the dim and the shape") {
    const Tensor x = rnd({2, 3}, 4);
    CHECK_THROWS_WITH_TEXT(ops::sum(x, {2}), "dim 2 out of range for shape [2, 3]");
    CHECK_THROWS_WITH_TEXT(ops::mean(x, {-3}), "out of range");
    CHECK_THROWS_WITH_TEXT(ops::sum(x, {1, -1}), "repeat a dim");
    CHECK_THROWS_WITH_TEXT(ops::max(Tensor::empty({0, 3}, kFloat64)), "empty");
    CHECK_THROWS_WITH_TEXT(ops::sum(Tensor::zeros({2}, kInt32)), "expected a floating dtype");
  }

  TEST_CASE("gradcheck: sum, mean, var, max over dims") {
    const Tensor x = rnd({2, 3, 4}, 5);
    gradcheck([](const std::vector<Var>& v) { return sum(v[0], {1}); }, {x});
    gradcheck([](const std::vector<Var>& v) { return sum(v[0]); }, {x});
    gradcheck([](const std::vector<Var>& v) { return mean(v[0], {0, 2}, true); }, {x});
    gradcheck([](const std::vector<Var>& v) { return var(v[0], {2}); }, {x});
    gradcheck([](const std::vector<Var>& v) { return var(v[0], {0, 1}, false, true); }, {x});
    gradcheck([](const std::vector<Var>& v) { return max(v[0], {1}); }, {x});
    gradcheck([](const std::vector<Var>& v) { return max(v[0]); }, {x});
    // Mean of a broadcast product: reductions compose with broadcasting backward.
    gradcheck([](const std::vector<Var>& v) { return mean(mul(v[0], v[1]), {-1}); },
              {x, rnd({4}, 6)});
  }

  TEST_CASE("max shares the gradient among tied maxima") {
    Var x(f64({1, 7, 7, 2}, {4}), true);
    max(x).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0.5, 0.5, 0});
  }

  CUDA_TEST_CASE("cuda: sum, mean, max, var and argmax over dims") {
    const Tensor x = testing::random_uniform({6, 1, 33, 129}, 10, -3.0, 5.0);
    const std::vector<std::vector<int>> dim_sets = {{}, {3}, {0}, {2}, {0, 2}, {1, 3}, {0, 1, 2}};
    for (const auto& dims : dim_sets) {
      for (bool keep : {false, true}) {
        testing::check_cuda_vs_cpu_float_types([&](auto& t) { return ops::sum(t[0], dims, keep); },
                                               {x}, "sum");
        testing::check_cuda_vs_cpu_float_types([&](auto& t) { return ops::mean(t[0], dims, keep); },
                                               {x}, "mean");
        testing::check_cuda_vs_cpu_float_types([&](auto& t) { return ops::max(t[0], dims, keep); },
                                               {x}, "max");
        testing::check_cuda_vs_cpu_float_types(
            [&](auto& t) { return ops::var(t[0], dims, true, keep); }, {x}, "var");
      }
    }
    // Long reductions, split over K chunks and merged: a flat 2^21 + 3 (rows path), a bias
    // gradient's [4099, 70] -> [70] (columns path), and [70001, 3] -> [3], whose thousand-odd
    // chunks outnumber the merge's slices.
    for (const auto& [shape, dims] : std::vector<std::pair<Shape, std::vector<int>>>{
             {{(1 << 21) + 3}, {}}, {{4099, 70}, {0}}, {{3, 40000}, {1}}, {{70001, 3}, {0}}}) {
      const Tensor big = testing::random_uniform(shape, 11, -1.0, 3.0);
      const std::vector<int> d = dims;
      testing::check_cuda_vs_cpu_float_types([&](auto& t) { return ops::sum(t[0], d); }, {big},
                                             "long sum");
      testing::check_cuda_vs_cpu_float_types([&](auto& t) { return ops::max(t[0], d); }, {big},
                                             "long max");
      testing::check_cuda_vs_cpu_float_types([&](auto& t) { return ops::var(t[0], d); }, {big},
                                             "long var");
    }
    testing::PoisonAllocations poison;
    for (int dim : {0, 2, 3}) {
      const Tensor cpu = ops::argmax(x.to(kFloat32), dim);
      const Tensor gpu = ops::argmax(x.to(kFloat32).cuda(), dim);
      CHECK(gpu.cpu().to_vector<int64_t>() == cpu.to_vector<int64_t>());
    }
  }
}  // TEST_SUITE
