// softmax / log_softmax: known values, stability, any dim and layout, bf16, gradcheck, errors.
#include <cmath>
#include <vector>

#include "autograd/functions_nn.h"
#include "autograd/gradcheck.h"
#include "ops/softmax.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

// Independent float64 reference: softmax along `dim` of a contiguous [outer, n, inner] view,
// written without the max shift (fine for the moderate inputs used here).
std::vector<double> softmax_ref(const Tensor& x, int dim, bool log) {
  std::vector<double> v = x.contiguous().to_vector<double>(), out(v.size());
  int64_t outer = 1, inner = 1, n = x.size(dim);
  for (int d = 0; d < dim; ++d) outer *= x.size(d);
  for (int d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += std::exp(v[(o * n + j) * inner + i]);
      for (int64_t j = 0; j < n; ++j) {
        const int64_t k = (o * n + j) * inner + i;
        out[k] = log ? v[k] - std::log(s) : std::exp(v[k]) / s;
      }
    }
  }
  return out;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST_SUITE("softmax") {
  TEST_CASE("softmax and log_softmax: known values") {
    // exp(x) = [1, 2, 5]: probabilities 1/8, 2/8, 5/8.
    Tensor x = Tensor::from_doubles({0.0, std::log(2.0), std::log(5.0)}, {3}, kFloat64);
    std::vector<double> y = ops::softmax(x, 0).to_vector<double>();
    CHECK(y[0] == doctest::Approx(0.125).epsilon(1e-14));
    CHECK(y[1] == doctest::Approx(0.25).epsilon(1e-14));
    CHECK(y[2] == doctest::Approx(0.625).epsilon(1e-14));
    std::vector<double> ly = ops::log_softmax(x, -1).to_vector<double>();
    CHECK(ly[0] == doctest::Approx(std::log(0.125)).epsilon(1e-14));
    CHECK(ly[2] == doctest::Approx(std::log(0.625)).epsilon(1e-14));
  }

  TEST_CASE("softmax is stable for large inputs (max subtraction)") {
    Tensor big = Tensor::from_doubles({1000, 1001, 1002, -1000}, {1, 4}, kFloat32);
    Tensor small = Tensor::from_doubles({0, 1, 2, -2000}, {1, 4}, kFloat32);
    Tensor y = ops::softmax(big, 1), ly = ops::log_softmax(big, 1);
    CHECK(testing::all_written(y));
    CHECK(testing::max_abs_diff(y, ops::softmax(small, 1)) < 1e-7);
    std::vector<float> lv = ly.to_vector<float>();
    CHECK(lv[2] == doctest::Approx(-std::log(1 + std::exp(-1.0) + std::exp(-2.0))).epsilon(1e-6));
    CHECK(std::isinf(lv[3]) == false);
    CHECK(lv[3] == doctest::Approx(-2002.0 - std::log(1 + std::exp(-1.0) + std::exp(-2.0))));
  }

  TEST_CASE("softmax over every dim of an odd-sized tensor matches a float64 formula") {
    Generator gen(7);
    Tensor x = Tensor::randn({3, 5, 7}, gen, kFloat64);
    for (int dim = 0; dim < 3; ++dim) {
      CAPTURE(dim);
      CHECK(max_diff(ops::softmax(x, dim).to_vector<double>(), softmax_ref(x, dim, false)) < 1e-15);
      CHECK(max_diff(ops::log_softmax(x, dim - 3).to_vector<double>(), softmax_ref(x, dim, true)) <
            1e-14);
    }
    Tensor xf = x.to(kFloat32);
    CHECK(max_diff(ops::softmax(xf, 1).to_vector<double>(), softmax_ref(x, 1, false)) < 1e-6);
  }

  TEST_CASE("softmax reads strided inputs") {
    Generator gen(3);
    Tensor x = Tensor::randn({4, 6}, gen, kFloat64);
    Tensor xt = x.transpose(0, 1);  // [6, 4], not contiguous
    REQUIRE_FALSE(xt.is_contiguous());
    CHECK(max_diff(ops::softmax(xt, 1).to_vector<double>(),
                   softmax_ref(xt.contiguous(), 1, false)) < 1e-15);
    // A row of one element is all ones (and log 0).
    CHECK(ops::softmax(x.narrow(1, 0, 1), 1).to_vector<double>() == std::vector<double>(4, 1.0));
  }

  TEST_CASE("softmax in bfloat16 computes in float32 and rounds once") {
    Generator gen(11);
    Tensor x = Tensor::randn({5, 33}, gen, kFloat32).to(kBFloat16);
    Tensor y = ops::softmax(x, -1);
    CHECK(y.dtype() == kBFloat16);
    // Each output is the float32 result rounded to bf16 once: relative error <= 2^-8 (bf16 keeps
    // 8 significant bits), plus float32's ~1e-6.
    std::vector<double> ref = softmax_ref(x.to(kFloat64), 1, false), got = y.to_vector<double>();
    for (size_t i = 0; i < ref.size(); ++i)
      CHECK(std::fabs(got[i] - ref[i]) <= ref[i] * (1.0 / 256 + 1e-6));
  }

  TEST_CASE("softmax and log_softmax gradcheck (float64)") {
    Generator gen(5);
    Tensor x = Tensor::randn({3, 5, 2}, gen, kFloat64);
    gradcheck([](const std::vector<Var>& v) { return softmax(v[0], 1); }, {x});
    gradcheck([](const std::vector<Var>& v) { return softmax(v[0], -1); }, {x});
    gradcheck([](const std::vector<Var>& v) { return log_softmax(v[0], 0); }, {x});
    Tensor row = Tensor::randn({1, 7}, gen, kFloat64);
    gradcheck([](const std::vector<Var>& v) { return log_softmax(v[0], 1); }, {row});
  }

  TEST_CASE("softmax backward: known value") {
    // y = [0.25, 0.75], dy = [1, 0]: dx = y * (dy - sum(dy y)) = [0.25 * 0.75, 0.75 * -0.25].
    Tensor y = Tensor::from_doubles({0.25, 0.75}, {2}, kFloat64);
    Tensor dy = Tensor::from_doubles({1.0, 0.0}, {2}, kFloat64);
    std::vector<double> dx = ops::softmax_backward(dy, y, 0).to_vector<double>();
    CHECK(dx[0] == doctest::Approx(0.1875));
    CHECK(dx[1] == doctest::Approx(-0.1875));
    // log-softmax: y = log([0.25, 0.75]), dy = [1, 1]: dx = dy - exp(y) * 2 = [0.5, -0.5].
    Tensor ly = Tensor::from_doubles({std::log(0.25), std::log(0.75)}, {2}, kFloat64);
    Tensor ones = Tensor::from_doubles({1.0, 1.0}, {2}, kFloat64);
    std::vector<double> ldx = ops::log_softmax_backward(ones, ly, 0).to_vector<double>();
    CHECK(ldx[0] == doctest::Approx(0.5));
    CHECK(ldx[1] == doctest::Approx(-0.5));
  }

  TEST_CASE("softmax errors name the op, dim and shapes") {
    Tensor x = Tensor::ones({2, 3});
    CHECK_THROWS_WITH_TEXT(ops::softmax(x, 2), "softmax: dim 2 out of range for float32[2, 3]");
    CHECK_THROWS_WITH_TEXT(ops::log_softmax(x, -3), "log_softmax: dim -3 out of range");
    CHECK_THROWS_WITH_TEXT(ops::softmax(Tensor::scalar(1.0), 0), "at least one dim");
    CHECK_THROWS_WITH_TEXT(ops::softmax(Tensor::ones({2}, kInt32), 0), "expected a floating dtype");
    CHECK_THROWS_WITH_TEXT(ops::softmax_backward(Tensor::ones({2, 2}), x, 1),
                           "dy float32[2, 2] cpu and y float32[2, 3] cpu");
    CHECK_THROWS_WITH_TEXT(ops::softmax_backward(x.to(kFloat64), x, 1), "same shape and dtype");
  }

  CUDA_TEST_CASE("cuda: softmax and log-softmax forward and backward") {
    for (const Shape& shape : std::vector<Shape>{{1, 1}, {7, 1000}, {3, 5, 131}}) {
      const Tensor x = testing::random_uniform(shape, 20, -4.0, 4.0),
                   dy = testing::random_uniform(shape, 21);
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
          testing::check_cuda_vs_cpu_float_types(fwd, {x}, log ? "log_softmax" : "softmax");
          testing::check_cuda_vs_cpu_float_types(bwd, {x, dy},
                                                 log ? "log_softmax_backward" : "softmax_backward");
        }
      }
    }
  }
}  // TEST_SUITE
