// GELU (tanh approximation and exact erf): known values, dtypes, layouts, gradcheck, errors.
#include <cmath>
#include <vector>

#include "autograd/functions_nn.h"
#include "autograd/gradcheck.h"
#include "ops/activation.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

TEST_SUITE("activation") {
  TEST_CASE("gelu: known values for both forms") {
    // x * Phi(x) with Phi(1) = 0.841344746..., and the tanh form at the same points.
    Tensor x = Tensor::from_doubles({1.0, -1.0, 2.0, -3.0, 0.5}, {5}, kFloat64);
    const std::vector<double> exact = {0.8413447460685429, -0.15865525393145707, 1.9544997361036416,
                                       -0.00404969409489031, 0.34573123063700656};
    const std::vector<double> tanh_form = {0.8411919906082768, -0.15880800939172324,
                                           1.954597694087775, -0.0036373920817729943,
                                           0.34571400982514394};
    std::vector<double> ye = ops::gelu(x, ops::GeluApprox::kNone).to_vector<double>();
    std::vector<double> yt = ops::gelu(x, ops::GeluApprox::kTanh).to_vector<double>();
    for (size_t i = 0; i < exact.size(); ++i) {
      CAPTURE(i);
      CHECK(ye[i] == doctest::Approx(exact[i]).epsilon(1e-13));
      CHECK(yt[i] == doctest::Approx(tanh_form[i]).epsilon(1e-13));
    }
    CHECK(ops::gelu(x).to_vector<double>() == yt);  // the default is the tanh form
  }

  TEST_CASE("gelu derivative: known values") {
    // d/dx x Phi(x) at 0 is 1/2; at 1 it is Phi(1) + phi(1) = 0.841344746 + 0.241970725.
    Tensor x = Tensor::from_doubles({0.0, 1.0}, {2}, kFloat64);
    Tensor dy = Tensor::from_doubles({1.0, 2.0}, {2}, kFloat64);
    std::vector<double> de = ops::gelu_backward(dy, x, ops::GeluApprox::kNone).to_vector<double>();
    CHECK(de[0] == doctest::Approx(0.5).epsilon(1e-15));
    CHECK(de[1] == doctest::Approx(2 * (0.8413447460685429 + 0.24197072451914337)).epsilon(1e-13));
    // tanh form at 0: 0.5 (1 + tanh 0) + 0 = 0.5.
    CHECK(ops::gelu_backward(dy, x, ops::GeluApprox::kTanh).to_vector<double>()[0] == 0.5);
  }

  TEST_CASE("gelu in float32, bfloat16 and over strided inputs") {
    Generator gen(21);
    Tensor x = Tensor::uniform({7, 13}, -4.0, 4.0, gen, kFloat64);
    for (auto approx : {ops::GeluApprox::kTanh, ops::GeluApprox::kNone}) {
      Tensor ref = ops::gelu(x, approx);
      Tensor y32 = ops::gelu(x.to(kFloat32), approx);
      CHECK(y32.dtype() == kFloat32);
      CHECK(testing::max_abs_diff(y32, ref) < 4e-6);  // float32: ~1e-7 relative on |y| <= 4
      Tensor xb = x.to(kBFloat16);
      Tensor yb = ops::gelu(xb, approx);
      CHECK(yb.dtype() == kBFloat16);
      // Computed in float32 from the bf16 input, rounded once: within half a bf16 ulp, i.e. 2^-8
      // relative (8 significant bits), plus float32's own error.
      std::vector<double> got = yb.to_vector<double>();
      std::vector<double> want = ops::gelu(xb.to(kFloat64), approx).to_vector<double>();
      for (size_t i = 0; i < got.size(); ++i) {
        CHECK(std::fabs(got[i] - want[i]) <= std::fabs(want[i]) * (1.0 / 256 + 1e-6) + 1e-7);
      }
      // A transposed view gives the transposed result.
      Tensor xt = x.transpose(0, 1);
      CHECK(testing::max_abs_diff(ops::gelu(xt, approx), ref.transpose(0, 1).contiguous()) == 0);
      Tensor dy = Tensor::uniform({13, 7}, 0.5, 1.5, gen, kFloat64);
      CHECK(testing::max_abs_diff(
                ops::gelu_backward(dy.transpose(0, 1), x, approx),
                ops::gelu_backward(dy.contiguous().transpose(0, 1).contiguous(), x, approx)) == 0);
    }
  }

  TEST_CASE("gelu gradcheck (float64, both forms, odd sizes)") {
    Generator gen(4);
    Tensor x = Tensor::uniform({3, 7}, -3.0, 3.0, gen, kFloat64);
    gradcheck([](const std::vector<Var>& v) { return gelu_tanh(v[0]); }, {x});
    gradcheck([](const std::vector<Var>& v) { return gelu(v[0], ops::GeluApprox::kNone); }, {x});
    Tensor one = Tensor::from_doubles({0.3}, {1}, kFloat64);
    gradcheck([](const std::vector<Var>& v) { return gelu(v[0], ops::GeluApprox::kNone); }, {one});
  }

  TEST_CASE("gelu_backward_ in place gives gelu_backward's bits") {
    const Tensor x = testing::random_uniform({7, 131}, 40, -5.0, 5.0);
    const Tensor dy = testing::random_uniform({7, 131}, 41);
    for (DType t : {kFloat32, kBFloat16, kFloat64}) {
      for (auto approx : {ops::GeluApprox::kNone, ops::GeluApprox::kTanh}) {
        CAPTURE(std::string(dtype_name(t)));
        Tensor inplace = dy.to(t).clone();  // to() returns dy itself for its own dtype
        const void* before = inplace.raw_data();
        ops::gelu_backward_(inplace, x.to(t).transpose(0, 1).contiguous().transpose(0, 1), approx);
        CHECK(inplace.raw_data() == before);
        CHECK(testing::max_abs_diff(inplace, ops::gelu_backward(dy.to(t), x.to(t), approx)) == 0);
      }
    }
    Tensor strided = Tensor::ones({4, 3}).transpose(0, 1);
    CHECK_THROWS_WITH_TEXT(ops::gelu_backward_(strided, Tensor::ones({3, 4})),
                           "gelu_backward_: dy must be contiguous");
    Tensor short_dy = Tensor::ones({3});
    CHECK_THROWS_WITH_TEXT(ops::gelu_backward_(short_dy, Tensor::ones({4})), "same shape");
  }

  TEST_CASE("gelu errors") {
    CHECK_THROWS_WITH_TEXT(ops::gelu(Tensor::ones({3}, kInt64)), "gelu: expected a floating");
    CHECK_THROWS_WITH_TEXT(ops::gelu_backward(Tensor::ones({3}), Tensor::ones({4})),
                           "dy float32[3] cpu and x float32[4] cpu");
    CHECK_THROWS_WITH_TEXT(ops::gelu_backward(Tensor::ones({3}, kFloat64), Tensor::ones({3})),
                           "same shape and dtype");
  }

  CUDA_TEST_CASE("cuda: GELU forward and backward, both forms") {
    const Tensor x = testing::random_uniform({5, 1237}, 30, -5.0, 5.0),
                 dy = testing::random_uniform({5, 1237}, 31);
    for (auto approx : {ops::GeluApprox::kNone, ops::GeluApprox::kTanh}) {
      testing::check_cuda_vs_cpu_float_types([=](auto& t) { return ops::gelu(t[0], approx); }, {x},
                                             "gelu");
      testing::check_cuda_vs_cpu_float_types(
          [=](auto& t) { return ops::gelu_backward(t[1], t[0], approx); }, {x, dy},
          "gelu_backward");
      testing::check_cuda_vs_cpu_float_types(
          [=](auto& t) {
            Tensor d = t[1].clone();
            ops::gelu_backward_(d, t[0], approx);
            return d;
          },
          {x, dy}, "gelu_backward_");
    }
  }
}  // TEST_SUITE
