// Losses: weighted smooth L1 (Huber) at beta boundaries and with weights, MSE, gradcheck, errors.
#include <cmath>
#include <vector>

#include "autograd/functions_nn.h"
#include "autograd/gradcheck.h"
#include "ops/loss.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& shape) {
  return Tensor::from_doubles(v, shape, kFloat64);
}

// The seed's (F.smooth_l1_loss(p, t, reduction="none", beta=beta) * W).sum(-1).mean(), written
// out in float64.
double seed_loss(const Tensor& p, const Tensor& t, double beta, const std::vector<double>& w) {
  std::vector<double> pv = p.to_vector<double>(), tv = t.to_vector<double>();
  const size_t F = w.size();
  double total = 0;
  for (size_t i = 0; i < pv.size(); ++i) {
    const double d = std::fabs(pv[i] - tv[i]);
    total += w[i % F] * (d < beta ? 0.5 * d * d / beta : d - 0.5 * beta);
  }
  return total / double(pv.size() / F);
}

}  // namespace

TEST_SUITE("loss") {
  TEST_CASE("smooth L1: known value with weights, mean over positions of the weighted sum") {
    // beta = 1, d = [[0.5, -2], [0.1, 3]]: l = [[0.125, 1.5], [0.005, 2.5]];
    // w = [1, 0.25]: rows sum to 0.125 + 0.375 = 0.5 and 0.005 + 0.625 = 0.63; mean 0.565.
    Tensor p = f64({0.5, -2, 0.1, 3}, {2, 2});
    Tensor t = f64({0, 0, 0, 0}, {2, 2});
    Tensor w = f64({1, 0.25}, {2});
    Tensor loss = ops::smooth_l1_loss(p, t, 1.0f, w);
    CHECK(loss.dim() == 0);
    CHECK(loss.dtype() == kFloat64);
    CHECK(loss.item() == doctest::Approx(0.565).epsilon(1e-15));
    // No weight: all ones, (0.125 + 1.5 + 0.005 + 2.5) / 2.
    CHECK(ops::smooth_l1_loss(p, t, 1.0f).item() == doctest::Approx(2.065).epsilon(1e-15));
    // Gradient: dloss * w l'(d) / N, l'(d) = d / beta inside, sign(d) outside.
    std::vector<double> g =
        ops::smooth_l1_loss_backward(Tensor::scalar(2.0, kFloat64), p, t, 1.0f, w)
            .to_vector<double>();
    CHECK(g == std::vector<double>{2 * 0.5 / 2, 2 * 0.25 * -1 / 2, 2 * 0.1 / 2, 2 * 0.25 * 1 / 2});
  }

  TEST_CASE("smooth L1 at the beta boundary is continuous in value and slope") {
    const float beta = 0.5f;  // exact in float and double
    Tensor t = f64({0}, {1});
    auto value = [&](double d) { return ops::smooth_l1_loss(f64({d}, {1}), t, beta).item(); };
    auto slope = [&](double d) {
      return ops::smooth_l1_loss_backward(Tensor::scalar(1.0, kFloat64), f64({d}, {1}), t, beta)
          .item();
    };
    // At |d| = beta both branches give beta / 2 and slope +-1.
    CHECK(value(0.5) == 0.25);
    CHECK(value(-0.5) == 0.25);
    CHECK(slope(0.5) == 1.0);
    CHECK(slope(-0.5) == -1.0);
    CHECK(value(0.5 - 1e-9) == doctest::Approx(0.25).epsilon(1e-8));
    CHECK(value(0.25) == 0.0625);  // 0.5 * 0.25^2 / 0.5
    CHECK(slope(0.25) == 0.5);     // 0.25 / 0.5
    CHECK(value(2.0) == 1.75);     // 2 - 0.25
  }

  TEST_CASE("smooth L1 with beta = 0 is L1, and a tiny beta approaches it") {
    Generator gen(6);
    Tensor p = Tensor::randn({4, 3}, gen, kFloat64), t = Tensor::randn({4, 3}, gen, kFloat64);
    std::vector<double> pv = p.to_vector<double>(), tv = t.to_vector<double>();
    double l1 = 0;
    for (size_t i = 0; i < pv.size(); ++i) l1 += std::fabs(pv[i] - tv[i]);
    CHECK(ops::smooth_l1_loss(p, t, 0.0f).item() == doctest::Approx(l1 / 4).epsilon(1e-15));
    CHECK(ops::smooth_l1_loss(p, t, 1e-6f).item() == doctest::Approx(l1 / 4).epsilon(1e-5));
    std::vector<double> g =
        ops::smooth_l1_loss_backward(Tensor::scalar(1.0, kFloat64), p, t, 0.0f).to_vector<double>();
    for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == (pv[i] > tv[i] ? 0.25 : -0.25));
    // d = 0 with beta = 0: the subgradient 0, as torch's sign().
    CHECK(ops::smooth_l1_loss_backward(Tensor::scalar(1.0, kFloat64), f64({1}, {1}), f64({1}, {1}),
                                       0.0f)
              .item() == 0.0);
  }

  TEST_CASE("smooth L1 matches the seed's formula: beta 0.01, weights [1, 1, 1, 1, 0.25]") {
    Generator gen(10);
    Tensor p = Tensor::randn({3, 7, 5}, gen, kFloat32), t = Tensor::randn({3, 7, 5}, gen, kFloat32);
    // A few differences inside the quadratic zone too.
    t.narrow(1, 0, 2).copy_(p.narrow(1, 0, 2));
    Tensor w = Tensor::from_doubles({1, 1, 1, 1, 0.25}, {5}, kFloat32);
    Tensor loss = ops::smooth_l1_loss(p, t, 0.01f, w);
    CHECK(loss.dtype() == kFloat32);
    CHECK(loss.item() ==
          doctest::Approx(seed_loss(p, t, double(0.01f), {1, 1, 1, 1, 0.25})).epsilon(1e-6));
    // bf16 inputs: the loss is float32.
    CHECK(ops::smooth_l1_loss(p.to(kBFloat16), t.to(kBFloat16), 0.01f, w).dtype() == kFloat32);
    // A transposed (strided) pair gives the loss of the contiguous copies.
    Tensor pt = p.transpose(0, 1), tt = t.transpose(0, 1);
    CHECK(ops::smooth_l1_loss(pt, tt, 0.01f, w).item() ==
          ops::smooth_l1_loss(pt.contiguous(), tt.contiguous(), 0.01f, w).item());
  }

  TEST_CASE("MSE: known value and gradient") {
    // d = [1, 2, 2]: mean(d^2) = 9 / 3 = 3; dpred = 2 d / 3 times dloss.
    Tensor p = f64({1, 2, 3}, {3}), t = f64({0, 0, 1}, {3});
    Tensor loss = ops::mse_loss(p, t);
    CHECK(loss.dim() == 0);
    CHECK(loss.item() == 3.0);
    std::vector<double> g =
        ops::mse_loss_backward(Tensor::scalar(1.5, kFloat64), p, t).to_vector<double>();
    CHECK(g[0] == doctest::Approx(1.5 * 2.0 / 3).epsilon(1e-15));
    CHECK(g[1] == doctest::Approx(1.5 * 4.0 / 3).epsilon(1e-15));
    CHECK(g[2] == doctest::Approx(1.5 * 4.0 / 3).epsilon(1e-15));
    CHECK(ops::mse_loss(p.to(kFloat32), t.to(kFloat32)).dtype() == kFloat32);
  }

  TEST_CASE("loss gradcheck (float64): pred and target, weights broadcast over positions") {
    Generator gen(23);
    // Differences of order 1 with beta 0.5: both the quadratic and the linear zone are hit; l is
    // C1 across |d| = beta, so central differences stay accurate there.
    Tensor p = Tensor::randn({3, 5}, gen, kFloat64), t = Tensor::randn({3, 5}, gen, kFloat64);
    Tensor w = Tensor::from_doubles({1, 0.5, 2, 1, 0.25}, {5}, kFloat64);
    gradcheck([w](const std::vector<Var>& v) { return smooth_l1_loss(v[0], v[1], 0.5f, w); },
              {p, t});
    gradcheck([](const std::vector<Var>& v) { return smooth_l1_loss(v[0], v[1], 0.0f); }, {p, t});
    gradcheck([](const std::vector<Var>& v) { return mse_loss(v[0], v[1]); }, {p, t});
    Tensor p3 = Tensor::randn({2, 3, 1}, gen, kFloat64),
           t3 = Tensor::randn({2, 3, 1}, gen, kFloat64);
    gradcheck([](const std::vector<Var>& v) { return smooth_l1_loss(v[0], v[1], 0.01f); },
              {p3, t3});
  }

  TEST_CASE("loss autograd: a target without grad gets none") {
    Generator gen(5);
    Var p(Tensor::randn({4, 5}, gen, kFloat32), true);
    Var t(Tensor::randn({4, 5}, gen, kFloat32), false);
    Var loss = smooth_l1_loss(p, t, 0.01f, Tensor::from_doubles({1, 1, 1, 1, 0.25}, {5}));
    loss.backward();
    CHECK(p.grad().shape() == p.shape());
    CHECK_FALSE(t.grad().defined());
  }

  TEST_CASE("loss errors name the shapes") {
    Tensor p = Tensor::ones({4, 5});
    CHECK_THROWS_WITH_TEXT(ops::smooth_l1_loss(p, Tensor::ones({4, 4}), 0.01f),
                           "pred float32[4, 5] cpu and target float32[4, 4] cpu");
    CHECK_THROWS_WITH_TEXT(ops::smooth_l1_loss(p, Tensor::ones({4, 5}, kFloat64), 0.01f),
                           "same shape and dtype");
    CHECK_THROWS_WITH_TEXT(ops::smooth_l1_loss(p, p, 0.01f, Tensor::ones({4})),
                           "expected a floating weight of shape [5] for pred float32[4, 5] cpu");
    CHECK_THROWS_WITH_TEXT(ops::smooth_l1_loss(p, p, -1.0f), "beta must be >= 0");
    CHECK_THROWS_WITH_TEXT(ops::smooth_l1_loss(Tensor::ones({0, 5}), Tensor::ones({0, 5}), 0.1f),
                           "empty input");
    CHECK_THROWS_WITH_TEXT(ops::mse_loss(p, Tensor::ones({5, 4})), "mse_loss: pred and target");
    CHECK_THROWS_WITH_TEXT(ops::mse_loss_backward(Tensor::ones({2}), p, p),
                           "expected a one-element dloss, got float32[2] cpu");
  }

  CUDA_TEST_CASE("cuda: smooth-L1 (weighted) and MSE losses forward and backward") {
    for (const Shape& shape : std::vector<Shape>{{1, 1}, {13, 5}, {64, 31, 7}}) {
      const Tensor p = testing::random_uniform(shape, 70), t = testing::random_uniform(shape, 71),
                   w = testing::random_uniform({shape.back()}, 72, 0.1, 2.0);
      const Tensor dl = Tensor::scalar(0.75, kFloat64);
      for (float beta : {0.0f, 0.5f}) {
        testing::check_cuda_vs_cpu_float_types(
            [=](auto& x) { return ops::smooth_l1_loss(x[0], x[1], beta, x[2]); }, {p, t, w},
            "smooth_l1_loss");
        testing::check_cuda_vs_cpu_float_types(
            [=](auto& x) { return ops::smooth_l1_loss_backward(x[3], x[0], x[1], beta, x[2]); },
            {p, t, w, dl}, "smooth_l1_loss_backward");
      }
      testing::check_cuda_vs_cpu_float_types([](auto& x) { return ops::mse_loss(x[0], x[1]); },
                                             {p, t}, "mse_loss");
      testing::check_cuda_vs_cpu_float_types(
          [](auto& x) { return ops::mse_loss_backward(x[2], x[0], x[1]); }, {p, t, dl},
          "mse_loss_backward");
    }
  }
}  // TEST_SUITE
