// RMSNorm: a literal, the saved rstd, leading dims and strides, mixed dtypes, gradcheck, errors;
// and the residual add fused with it (add_rmsnorm).
#include <cmath>
#include <vector>

#include "autograd/functions_basic.h"
#include "autograd/functions_nn.h"
#include "autograd/gradcheck.h"
#include "ops/elementwise.h"
#include "ops/rmsnorm.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

// Independent float64 formula over rows of C: y = x / sqrt(mean(x^2) + eps) * w.
std::vector<double> rmsnorm_ref(const Tensor& x, const Tensor& w, double eps) {
  std::vector<double> xv = x.contiguous().to_vector<double>(), wv = w.to_vector<double>();
  const size_t C = wv.size();
  std::vector<double> y(xv.size());
  for (size_t n = 0; n < xv.size() / C; ++n) {
    double ms = 0;
    for (size_t c = 0; c < C; ++c) ms += xv[n * C + c] * xv[n * C + c] / double(C);
    for (size_t c = 0; c < C; ++c) y[n * C + c] = xv[n * C + c] / std::sqrt(ms + eps) * wv[c];
  }
  return y;
}

}  // namespace

TEST_SUITE("rmsnorm") {
  TEST_CASE("rmsnorm: a literal") {
    // x = [1, 2, 3, 4]: mean(x^2) = 30 / 4 = 7.5, rstd = 1 / sqrt(7.5) = 0.3651483716701107.
    Tensor x = Tensor::from_doubles({1, 2, 3, 4}, {1, 4}, kFloat64);
    Tensor w = Tensor::from_doubles({1, 0.5, -2, 3}, {4}, kFloat64);
    Tensor rstd;
    std::vector<double> y = ops::rmsnorm_forward(x, w, 0.0f, &rstd).to_vector<double>();
    const double r = 0.3651483716701107;
    CHECK(rstd.shape() == Shape{1});
    CHECK(rstd.dtype() == kFloat64);
    CHECK(rstd.item() == doctest::Approx(r).epsilon(1e-15));
    const std::vector<double> want = {r, 2 * 0.5 * r, 3 * -2 * r, 4 * 3 * r};
    for (size_t i = 0; i < 4; ++i) CHECK(y[i] == doctest::Approx(want[i]).epsilon(1e-15));
    // eps enters under the root: mean(x^2) + eps = 7.5 + 0.5 = 8, rstd = 1 / sqrt(8).
    ops::rmsnorm_forward(x, w, 0.5f, &rstd);
    CHECK(rstd.item() == doctest::Approx(1 / std::sqrt(8.0)).epsilon(1e-15));
  }

  TEST_CASE("rmsnorm over leading dims, odd C and strided input matches a float64 formula") {
    Generator gen(9);
    Tensor x = Tensor::randn({2, 3, 7}, gen, kFloat64);
    Tensor w = Tensor::uniform({7}, 0.5, 1.5, gen, kFloat64);
    Tensor rstd;
    Tensor y = ops::rmsnorm_forward(x, w, 1e-5f, &rstd);
    CHECK(y.shape() == x.shape());
    CHECK(rstd.shape() == Shape{6});
    CHECK(testing::max_abs_diff(y, Tensor::from_doubles(rmsnorm_ref(x, w, double(1e-5f)), x.shape(),
                                                        kFloat64)) < 1e-14);
    // A permuted view [7, 3, 2] -> normalize over its last dim (size 2).
    Tensor xp = x.permute({2, 1, 0});
    Tensor w2 = Tensor::from_doubles({0.7, -1.1}, {2}, kFloat64);
    CHECK(testing::max_abs_diff(ops::rmsnorm_forward(xp, w2, 1e-5f, nullptr),
                                Tensor::from_doubles(rmsnorm_ref(xp, w2, double(1e-5f)), xp.shape(),
                                                     kFloat64)) < 1e-14);
  }

  TEST_CASE("rmsnorm dtypes: float32, and bfloat16 x with a float32 weight") {
    Generator gen(13);
    Tensor x = Tensor::randn({5, 64}, gen, kFloat32);
    Tensor w = Tensor::uniform({64}, 0.5, 1.5, gen, kFloat32);
    Tensor rstd;
    Tensor y = ops::rmsnorm_forward(x, w, 1e-5f, &rstd);
    CHECK(rstd.dtype() == kFloat32);
    Tensor ref = Tensor::from_doubles(rmsnorm_ref(x, w, double(1e-5f)), x.shape(), kFloat64);
    CHECK(testing::rel_error(y, ref) < 1e-6);
    Tensor xb = x.to(kBFloat16);
    Tensor yb = ops::rmsnorm_forward(xb, w, 1e-5f, &rstd);
    CHECK(yb.dtype() == kBFloat16);
    CHECK(rstd.dtype() == kFloat32);
    Tensor refb = Tensor::from_doubles(rmsnorm_ref(xb, w, double(1e-5f)), x.shape(), kFloat64);
    // One bf16 rounding per element: <= 2^-8 each; norm-wise the rms of such errors is ~2^-8 /
    // sqrt(3).
    CHECK(testing::rel_error(yb, refb) < 1.0 / 512);
    // bf16 backward: dx in bf16, dw in the weight's float32.
    Tensor dx, dw;
    ops::rmsnorm_backward(yb, xb, w, rstd, &dx, &dw);
    CHECK(dx.dtype() == kBFloat16);
    CHECK(dw.dtype() == kFloat32);
    CHECK(testing::all_written(dx));
  }

  TEST_CASE("rmsnorm backward: known value") {
    // One row x = [3, 4], w = [1, 1], eps = 0: rstd = 1 / sqrt(12.5); with dy = [1, 0]
    //   dx = rstd (dy w - x rstd^2 / C * sum(dy w x)) = rstd ([1, 0] - [3, 4] * 3 / 25)
    //   dw = dy x rstd = [3 rstd, 0]
    Tensor x = Tensor::from_doubles({3, 4}, {1, 2}, kFloat64);
    Tensor w = Tensor::from_doubles({1, 1}, {2}, kFloat64);
    Tensor dy = Tensor::from_doubles({1, 0}, {1, 2}, kFloat64);
    Tensor rstd, dx, dw;
    ops::rmsnorm_forward(x, w, 0.0f, &rstd);
    ops::rmsnorm_backward(dy, x, w, rstd, &dx, &dw);
    const double r = 1 / std::sqrt(12.5);
    std::vector<double> dxv = dx.to_vector<double>(), dwv = dw.to_vector<double>();
    CHECK(dxv[0] == doctest::Approx(r * (1 - 9.0 / 25)).epsilon(1e-14));
    CHECK(dxv[1] == doctest::Approx(r * (-12.0 / 25)).epsilon(1e-14));
    CHECK(dwv[0] == doctest::Approx(3 * r).epsilon(1e-14));
    CHECK(dwv[1] == 0.0);
  }

  TEST_CASE("rmsnorm gradcheck (float64): x and w, leading dims broadcast the weight") {
    Generator gen(17);
    Tensor x = Tensor::randn({2, 3, 5}, gen, kFloat64);
    Tensor w = Tensor::uniform({5}, 0.5, 1.5, gen, kFloat64);
    gradcheck([](const std::vector<Var>& v) { return rmsnorm(v[0], v[1], 1e-5f); }, {x, w});
    Tensor x1 = Tensor::randn({1, 1}, gen, kFloat64);
    Tensor w1 = Tensor::from_doubles({0.8}, {1}, kFloat64);
    gradcheck([](const std::vector<Var>& v) { return rmsnorm(v[0], v[1], 0.1f); }, {x1, w1});
  }

  TEST_CASE("rmsnorm errors name the shapes") {
    Tensor x = Tensor::ones({2, 4});
    CHECK_THROWS_WITH_TEXT(ops::rmsnorm_forward(x, Tensor::ones({3}), 1e-5f, nullptr),
                           "expected w of shape [4] for x float32[2, 4] cpu, got w float32[3] cpu");
    CHECK_THROWS_WITH_TEXT(ops::rmsnorm_forward(x, Tensor::ones({1, 4}), 1e-5f, nullptr),
                           "expected w of shape [4]");
    CHECK_THROWS_WITH_TEXT(ops::rmsnorm_forward(x, Tensor::ones({4}), -1.0f, nullptr),
                           "eps must be >= 0");
    CHECK_THROWS_WITH_TEXT(
        ops::rmsnorm_forward(Tensor::ones({2, 4}, kInt32), Tensor::ones({4}), 1e-5f, nullptr),
        "expected floating x and w");
    Tensor rstd, dx;
    ops::rmsnorm_forward(x, Tensor::ones({4}), 1e-5f, &rstd);
    CHECK_THROWS_WITH_TEXT(
        ops::rmsnorm_backward(x, x, Tensor::ones({4}), Tensor::ones({3}), &dx, nullptr),
        "expected rstd float32[2] for x float32[2, 4] cpu, got float32[3] cpu");
    CHECK_THROWS_WITH_TEXT(
        ops::rmsnorm_backward(Tensor::ones({2, 3}), x, Tensor::ones({4}), rstd, &dx, nullptr),
        "dy float32[2, 3] cpu and x float32[2, 4] cpu");
  }

  CUDA_TEST_CASE("cuda: RMSNorm forward and backward (dx, dw)") {
    // C = 1 is left out: there dx = rstd dy w eps / (x^2 + eps) cancels catastrophically, and
    // float32 cannot meet a 1e-5 bound against float64 on the CPU either.
    // {70001, 5}: dw's row chunks reach their cap, and stage 2 merges a thousand of them.
    for (const Shape& shape : std::vector<Shape>{{1, 3}, {3, 7, 129}, {4099, 64}, {70001, 5}}) {
      const int64_t C = shape.back();
      const Tensor x = testing::random_uniform(shape, 50),
                   w = testing::random_uniform({C}, 51, 0.5, 1.5),
                   dy = testing::random_uniform(shape, 52);
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
      testing::check_cuda_vs_cpu_float_types(fwd, {x, w}, "rmsnorm_forward");
      testing::check_cuda_vs_cpu_float_types(dx, {x, w, dy}, "rmsnorm dx");
      testing::check_cuda_vs_cpu_float_types(dw, {x, w, dy}, "rmsnorm dw");
    }
    // bf16-mixed: bf16 activations with a float32 weight.
    testing::PoisonAllocations poison;
    const Tensor x = testing::random_uniform({37, 96}, 53).to(kBFloat16),
                 w = testing::random_uniform({96}, 54, 0.5, 1.5).to(kFloat32);
    Tensor rstd_c, rstd_g;
    const Tensor yc = ops::rmsnorm_forward(x, w, 1e-5f, &rstd_c);
    const Tensor yg = ops::rmsnorm_forward(x.cuda(), w.cuda(), 1e-5f, &rstd_g);
    CHECK(testing::rel_error(yg.cpu(), yc) <= 1e-2);
    CHECK(testing::rel_error(rstd_g.cpu(), rstd_c) <= 1e-5);
  }
}  // TEST_SUITE

TEST_SUITE("add_rmsnorm") {
  TEST_CASE("add_rmsnorm: a literal") {
    // x + r = [3, 4]: mean square 12.5, rstd = 1 / sqrt(12.5) = 0.28284271; times w = [1, 2]:
    // y = [0.84852814, 2.26274170].
    Tensor h, rstd;
    const Tensor y = ops::add_rmsnorm_forward(Tensor::from_doubles({1, 2}, {1, 2}),
                                              Tensor::from_doubles({2, 2}, {1, 2}),
                                              Tensor::from_doubles({1, 2}, {2}), 0.0f, &h, &rstd);
    CHECK(h.to_vector<double>() == std::vector<double>{3, 4});
    CHECK(rstd.to_vector<double>()[0] == doctest::Approx(0.28284271247).epsilon(1e-7));
    CHECK(y.to_vector<double>()[0] == doctest::Approx(0.84852813742).epsilon(1e-7));
    CHECK(y.to_vector<double>()[1] == doctest::Approx(2.26274169980).epsilon(1e-7));
  }

  TEST_CASE("add_rmsnorm: the bits of add then rmsnorm, forward and backward") {
    // In float64, float32 and bf16 activations with a float32 weight (bf16-mixed), with a
    // second consumer of h as in the block (h also feeds the next residual add): outputs and
    // every gradient bit for bit equal to the two ops unfused.
    Generator gen(8);
    for (DType dt : {kFloat64, kFloat32, kBFloat16}) {
      INFO(dtype_name(dt));
      const DType wt = dt == kBFloat16 ? kFloat32 : dt;
      const Tensor x0 = Tensor::randn({3, 5, 24}, gen, kFloat64).to(dt);
      const Tensor r0 = Tensor::randn({3, 5, 24}, gen, kFloat64).to(dt);
      const Tensor w0 = Tensor::uniform({24}, 0.5, 1.5, gen, kFloat64).to(wt);
      const Tensor u = Tensor::randn({3, 5, 24}, gen, kFloat64).to(dt);
      auto run = [&](bool fused) {
        Var x(x0, true), r(r0, true), w(w0, true);
        Var h, n;
        if (fused) {
          std::tie(h, n) = add_rmsnorm(x, r, w, 1e-5f);
        } else {
          h = add(x, r);
          n = rmsnorm(h, w, 1e-5f);
        }
        sum(add(mul(n, Var(u)), mul(h, Var(u)))).backward();
        return std::vector<Tensor>{h.value(), n.value(), x.grad(), r.grad(), w.grad()};
      };
      const std::vector<Tensor> a = run(true), b = run(false);
      for (size_t i = 0; i < a.size(); ++i) {
        INFO("output " << i);
        CHECK(a[i].dtype() == b[i].dtype());
        CHECK(testing::max_abs_diff(a[i], b[i]) == 0.0);
      }
    }
  }

  TEST_CASE("add_rmsnorm float64 gradcheck (both outputs used)") {
    Generator gen(9);
    gradcheck(
        [](const std::vector<Var>& v) {
          auto [h, n] = add_rmsnorm(v[0], v[1], v[2], 0.1f);
          return add(mul_scalar(h, 0.5), n);
        },
        {Tensor::randn({2, 3, 5}, gen, kFloat64), Tensor::randn({2, 3, 5}, gen, kFloat64),
         Tensor::uniform({5}, 0.5, 1.5, gen, kFloat64)});
  }

  TEST_CASE("add_rmsnorm errors") {
    Tensor h, rstd;
    const Tensor x = Tensor::ones({2, 4});
    CHECK_THROWS_WITH_TEXT(
        ops::add_rmsnorm_forward(x, Tensor::ones({2, 3}), Tensor::ones({4}), 1e-5f, &h, &rstd),
        "expected r like x float32[2, 4] cpu, got r float32[2, 3] cpu");
    CHECK_THROWS_WITH_TEXT(
        ops::add_rmsnorm_forward(x, x.to(kFloat64), Tensor::ones({4}), 1e-5f, &h, &rstd),
        "expected r like x");
    CHECK_THROWS_WITH_TEXT(ops::add_rmsnorm_forward(x, x, Tensor::ones({3}), 1e-5f, &h, &rstd),
                           "expected w of shape [4]");
    CHECK_THROWS_WITH_TEXT(ops::add_rmsnorm_forward(x, x, Tensor::ones({4}), 1e-5f, &h, nullptr),
                           "h and rstd must be given");
  }

  CUDA_TEST_CASE("cuda: add_rmsnorm forward (y, h, rstd) against the CPU") {
    for (const Shape& shape :
         std::vector<Shape>{{1, 1}, {1, 3}, {3, 7, 129}, {4099, 64}, {5, 4099}}) {
      const int64_t C = shape.back();
      const Tensor x = testing::random_uniform(shape, 60), r = testing::random_uniform(shape, 61),
                   w = testing::random_uniform({C}, 62, 0.5, 1.5);
      auto fwd = [](const std::vector<Tensor>& t) {
        Tensor h, rstd;
        return ops::add_rmsnorm_forward(t[0], t[1], t[2], 1e-5f, &h, &rstd);
      };
      auto sum_h = [](const std::vector<Tensor>& t) {
        Tensor h, rstd;
        ops::add_rmsnorm_forward(t[0], t[1], t[2], 1e-5f, &h, &rstd);
        return h;
      };
      auto rstd_of = [](const std::vector<Tensor>& t) {
        Tensor h, rstd;
        ops::add_rmsnorm_forward(t[0], t[1], t[2], 1e-5f, &h, &rstd);
        return rstd;
      };
      testing::check_cuda_vs_cpu_float_types(fwd, {x, r, w}, "add_rmsnorm_forward y");
      testing::check_cuda_vs_cpu_float_types(sum_h, {x, r, w}, "add_rmsnorm_forward h");
      testing::check_cuda_vs_cpu_float_types(rstd_of, {x, r, w}, "add_rmsnorm_forward rstd",
                                             /*bf16=*/false);
    }
  }

  CUDA_TEST_CASE("cuda: add_rmsnorm bf16-mixed: the bits of add then rmsnorm on the GPU") {
    // bf16 x and r with a float32 weight, as the bf16-mixed model runs it: the fused kernel
    // against ops::add then rmsnorm_forward on the GPU (bit for bit), and h against the CPU's
    // (the add rounds once, the same way on both).
    testing::PoisonAllocations poison;
    for (const Shape& shape : std::vector<Shape>{{37, 96}, {2, 300, 64}, {3, 4099}}) {
      const Tensor x = testing::random_uniform(shape, 63).to(kBFloat16).cuda();
      const Tensor r = testing::random_uniform(shape, 64).to(kBFloat16).cuda();
      const Tensor w = testing::random_uniform({shape.back()}, 65, 0.5, 1.5).to(kFloat32).cuda();
      Tensor h, rstd, rstd_ref;
      const Tensor y = ops::add_rmsnorm_forward(x, r, w, 1e-5f, &h, &rstd);
      const Tensor h_ref = ops::add(x, r);
      const Tensor y_ref = ops::rmsnorm_forward(h_ref, w, 1e-5f, &rstd_ref);
      REQUIRE(testing::all_written(y.cpu()));
      CHECK(y.dtype() == kBFloat16);
      CHECK(rstd.dtype() == kFloat32);
      CHECK(testing::max_abs_diff(h.cpu(), h_ref.cpu()) == 0.0);
      CHECK(testing::max_abs_diff(y.cpu(), y_ref.cpu()) == 0.0);
      CHECK(testing::max_abs_diff(rstd.cpu(), rstd_ref.cpu()) == 0.0);
      CHECK(testing::max_abs_diff(h.cpu(), ops::add(x.cpu(), r.cpu())) == 0.0);
    }
  }
}  // TEST_SUITE
