// LayerNorm: literals forward and backward, the saved mean and rstd, leading dims and strides,
// mixed dtypes, gradcheck, errors; on the GPU every output against the CPU over awkward shapes.
#include <cmath>
#include <vector>

#include "autograd/functions_nn.h"
#include "autograd/gradcheck.h"
#include "ops/layernorm.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

// Independent float64 formula over rows of C: y = (x - mean) / sqrt(var + eps) * w + b.
std::vector<double> layernorm_ref(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  std::vector<double> xv = x.contiguous().to_vector<double>(), wv = w.to_vector<double>(),
                      bv = b.to_vector<double>();
  const size_t C = wv.size();
  std::vector<double> y(xv.size());
  for (size_t n = 0; n < xv.size() / C; ++n) {
    double mean = 0, var = 0;
    for (size_t c = 0; c < C; ++c) mean += xv[n * C + c] / double(C);
    for (size_t c = 0; c < C; ++c) var += (xv[n * C + c] - mean) * (xv[n * C + c] - mean) / C;
    for (size_t c = 0; c < C; ++c) {
      y[n * C + c] = (xv[n * C + c] - mean) / std::sqrt(var + eps) * wv[c] + bv[c];
    }
  }
  return y;
}

// The op's six outputs, each as a function of (x, w, b, dy), for the CUDA-vs-CPU checks.
enum class Out { Y, Mean, Rstd, Dx, Dw, Db };

Tensor layernorm_output(const std::vector<Tensor>& t, Out out) {
  Tensor mean, rstd, g;
  const Tensor y = ops::layernorm_forward(t[0], t[1], t[2], 1e-5f, &mean, &rstd);
  if (out == Out::Y) return y;
  if (out == Out::Mean) return mean;
  if (out == Out::Rstd) return rstd;
  ops::layernorm_backward(t[3], t[0], t[1], mean, rstd, out == Out::Dx ? &g : nullptr,
                          out == Out::Dw ? &g : nullptr, out == Out::Db ? &g : nullptr);
  return g;
}

}  // namespace

TEST_SUITE("layernorm") {
  TEST_CASE("layernorm: a literal") {
    // x = [1, 2, 3, 4]: mean 2.5, var = (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25,
    // rstd = 1 / sqrt(1.25) = 0.8944271909999159, xhat = [-1.5, -0.5, 0.5, 1.5] rstd.
    Tensor x = Tensor::from_doubles({1, 2, 3, 4}, {1, 4}, kFloat64);
    Tensor w = Tensor::from_doubles({1, 0.5, -2, 3}, {4}, kFloat64);
    Tensor b = Tensor::from_doubles({0.1, 0.2, 0.3, 0.4}, {4}, kFloat64);
    Tensor mean, rstd;
    std::vector<double> y = ops::layernorm_forward(x, w, b, 0.0f, &mean, &rstd).to_vector<double>();
    const double r = 0.8944271909999159;
    CHECK(mean.shape() == Shape{1});
    CHECK(mean.dtype() == kFloat64);
    CHECK(mean.item() == 2.5);
    CHECK(rstd.dtype() == kFloat64);
    CHECK(rstd.item() == doctest::Approx(r).epsilon(1e-15));
    const std::vector<double> want = {-1.5 * r + 0.1, -0.5 * r * 0.5 + 0.2, 0.5 * r * -2 + 0.3,
                                      1.5 * r * 3 + 0.4};
    for (size_t i = 0; i < 4; ++i) CHECK(y[i] == doctest::Approx(want[i]).epsilon(1e-15));
    // eps enters under the root: var + eps = 1.25 + 0.75 = 2, rstd = 1 / sqrt(2).
    ops::layernorm_forward(x, w, b, 0.75f, nullptr, &rstd);
    CHECK(rstd.item() == doctest::Approx(1 / std::sqrt(2.0)).epsilon(1e-15));
  }

  TEST_CASE("layernorm backward: known value") {
    // One row x = [0, 1, 5], w = 1, b = 0, eps = 0, dy = [1, 0, 0]: mean 2, deviations
    // d = [-2, -1, 3], var = 14 / 3, rstd r = sqrt(3 / 14), xhat = d r, g = dy w = [1, 0, 0].
    //   dx = r (g - mean(g) - xhat mean(g xhat)) = r (g - 1/3 + d r^2 2/3) = r (g - 1/3 + d / 7)
    //      = r [8/21, -10/21, 2/21]
    //   dw = dy xhat = [-2 r, 0, 0],  db = dy = [1, 0, 0]
    Tensor x = Tensor::from_doubles({0, 1, 5}, {1, 3}, kFloat64);
    Tensor w = Tensor::ones({3}, kFloat64), b = Tensor::zeros({3}, kFloat64);
    Tensor dy = Tensor::from_doubles({1, 0, 0}, {1, 3}, kFloat64);
    Tensor mean, rstd, dx, dw, db;
    ops::layernorm_forward(x, w, b, 0.0f, &mean, &rstd);
    ops::layernorm_backward(dy, x, w, mean, rstd, &dx, &dw, &db);
    const double r = std::sqrt(3.0 / 14.0);
    const std::vector<double> dxv = dx.to_vector<double>(), dwv = dw.to_vector<double>();
    CHECK(dxv[0] == doctest::Approx(r * 8 / 21).epsilon(1e-14));
    CHECK(dxv[1] == doctest::Approx(r * -10 / 21).epsilon(1e-14));
    CHECK(dxv[2] == doctest::Approx(r * 2 / 21).epsilon(1e-14));
    CHECK(dwv[0] == doctest::Approx(-2 * r).epsilon(1e-14));
    CHECK(dwv[1] == 0.0);
    CHECK(dwv[2] == 0.0);
    CHECK(db.to_vector<double>() == std::vector<double>{1, 0, 0});
  }

  TEST_CASE("layernorm over leading dims, odd C and strided input matches a float64 formula") {
    Generator gen(9);
    Tensor x = Tensor::randn({2, 3, 7}, gen, kFloat64);
    Tensor w = Tensor::uniform({7}, 0.5, 1.5, gen, kFloat64);
    Tensor b = Tensor::uniform({7}, -1.0, 1.0, gen, kFloat64);
    Tensor mean, rstd;
    Tensor y = ops::layernorm_forward(x, w, b, 1e-5f, &mean, &rstd);
    CHECK(y.shape() == x.shape());
    CHECK(mean.shape() == Shape{6});
    CHECK(rstd.shape() == Shape{6});
    CHECK(testing::max_abs_diff(y, Tensor::from_doubles(layernorm_ref(x, w, b, double(1e-5f)),
                                                        x.shape(), kFloat64)) < 1e-14);
    // A permuted view [7, 3, 2] -> normalize over its last dim (size 2).
    Tensor xp = x.permute({2, 1, 0});
    Tensor w2 = Tensor::from_doubles({0.7, -1.1}, {2}, kFloat64);
    Tensor b2 = Tensor::from_doubles({0.3, 0.0}, {2}, kFloat64);
    CHECK(testing::max_abs_diff(ops::layernorm_forward(xp, w2, b2, 1e-5f, nullptr, nullptr),
                                Tensor::from_doubles(layernorm_ref(xp, w2, b2, double(1e-5f)),
                                                     xp.shape(), kFloat64)) < 1e-14);
  }

  TEST_CASE("layernorm dtypes: float32, and bfloat16 x with a float32 weight and bias") {
    Generator gen(13);
    Tensor x = Tensor::randn({5, 64}, gen, kFloat32);
    Tensor w = Tensor::uniform({64}, 0.5, 1.5, gen, kFloat32);
    Tensor b = Tensor::uniform({64}, -1.0, 1.0, gen, kFloat32);
    Tensor mean, rstd;
    Tensor y = ops::layernorm_forward(x, w, b, 1e-5f, &mean, &rstd);
    CHECK(mean.dtype() == kFloat32);
    CHECK(rstd.dtype() == kFloat32);
    Tensor ref = Tensor::from_doubles(layernorm_ref(x, w, b, double(1e-5f)), x.shape(), kFloat64);
    CHECK(testing::rel_error(y, ref) < 1e-6);
    Tensor xb = x.to(kBFloat16);
    Tensor yb = ops::layernorm_forward(xb, w, b, 1e-5f, &mean, &rstd);
    CHECK(yb.dtype() == kBFloat16);
    CHECK(rstd.dtype() == kFloat32);
    Tensor refb = Tensor::from_doubles(layernorm_ref(xb, w, b, double(1e-5f)), x.shape(), kFloat64);
    // One bf16 rounding per element: <= 2^-8 each; norm-wise the rms of such errors is ~2^-8 /
    // sqrt(3).
    CHECK(testing::rel_error(yb, refb) < 1.0 / 512);
    // bf16 backward: dx in bf16, dw and db in the weight's float32.
    Tensor dx, dw, db;
    ops::layernorm_backward(yb, xb, w, mean, rstd, &dx, &dw, &db);
    CHECK(dx.dtype() == kBFloat16);
    CHECK(dw.dtype() == kFloat32);
    CHECK(db.dtype() == kFloat32);
    CHECK(testing::all_written(dx));
  }

  TEST_CASE("layernorm gradcheck (float64): x, w and b, leading dims broadcast the weight") {
    Generator gen(17);
    Tensor x = Tensor::randn({2, 3, 5}, gen, kFloat64);
    Tensor w = Tensor::uniform({5}, 0.5, 1.5, gen, kFloat64);
    Tensor b = Tensor::uniform({5}, -1.0, 1.0, gen, kFloat64);
    gradcheck([](const std::vector<Var>& v) { return layernorm(v[0], v[1], v[2], 1e-5f); },
              {x, w, b});
    // C = 3 with a large eps: the eps term of d rstd / dx matters.
    Tensor x3 = Tensor::randn({4, 3}, gen, kFloat64);
    Tensor w3 = Tensor::from_doubles({0.8, -1.2, 0.5}, {3}, kFloat64);
    Tensor b3 = Tensor::from_doubles({0.1, 0.0, -0.3}, {3}, kFloat64);
    gradcheck([](const std::vector<Var>& v) { return layernorm(v[0], v[1], v[2], 0.5f); },
              {x3, w3, b3});
  }

  TEST_CASE("layernorm errors name the shapes") {
    Tensor x = Tensor::ones({2, 4}), w = Tensor::ones({4}), b = Tensor::zeros({4});
    CHECK_THROWS_WITH_TEXT(ops::layernorm_forward(x, Tensor::ones({3}), b, 1e-5f, nullptr, nullptr),
                           "expected w of shape [4] for x float32[2, 4] cpu, got w float32[3] cpu");
    CHECK_THROWS_WITH_TEXT(
        ops::layernorm_forward(x, w, Tensor::zeros({5}), 1e-5f, nullptr, nullptr),
        "expected b like w float32[4] cpu, got b float32[5] cpu");
    CHECK_THROWS_WITH_TEXT(
        ops::layernorm_forward(x, w, Tensor::zeros({4}, kFloat64), 1e-5f, nullptr, nullptr),
        "got b float64[4] cpu");
    CHECK_THROWS_WITH_TEXT(ops::layernorm_forward(x, w, b, -1.0f, nullptr, nullptr),
                           "eps must be >= 0");
    CHECK_THROWS_WITH_TEXT(
        ops::layernorm_forward(Tensor::ones({2, 4}, kInt32), w, b, 1e-5f, nullptr, nullptr),
        "expected floating x and w");
    Tensor mean, rstd, dx;
    ops::layernorm_forward(x, w, b, 1e-5f, &mean, &rstd);
    CHECK_THROWS_WITH_TEXT(
        ops::layernorm_backward(x, x, w, mean, Tensor::ones({3}), &dx, nullptr, nullptr),
        "expected rstd float32[2] for x float32[2, 4] cpu, got float32[3] cpu");
    CHECK_THROWS_WITH_TEXT(
        ops::layernorm_backward(x, x, w, rstd.to(kFloat64), rstd, &dx, nullptr, nullptr),
        "expected mean float32[2]");
    CHECK_THROWS_WITH_TEXT(
        ops::layernorm_backward(Tensor::ones({2, 3}), x, w, mean, rstd, &dx, nullptr, nullptr),
        "dy float32[2, 3] cpu and x float32[2, 4] cpu");
  }

  CUDA_TEST_CASE("cuda: LayerNorm forward and backward (y, mean, rstd, dx, dw, db)") {
    // N = 1, primes, C below a warp, C not a multiple of 32 or of the 128 threads a row, C large
    // (4099), N large (4099 rows: 65 dw/db chunks). C = 1 leaves dx out: its exact value is 0
    // (xhat = 0 and g - mean(g) = 0) and what float32 computes is rounding noise (an FMA of
    // dy w against its own rounded value), which no relative bound can judge. C = 2 is left out
    // for the same reason: there xhat = +-1 and dx cancels to O(eps).
    const std::vector<Shape> shapes = {{1, 1},     {1, 3},     {7, 13},   {3, 5, 31},
                                       {1000, 33}, {37, 4099}, {4099, 64}};
    const std::vector<std::pair<Out, const char*>> outputs = {
        {Out::Y, "layernorm y"},   {Out::Mean, "layernorm mean"}, {Out::Rstd, "layernorm rstd"},
        {Out::Dx, "layernorm dx"}, {Out::Dw, "layernorm dw"},     {Out::Db, "layernorm db"}};
    for (const Shape& shape : shapes) {
      const int64_t C = shape.back();
      INFO("shape " << shape_str(shape));
      const Tensor x = testing::random_uniform(shape, 90),
                   w = testing::random_uniform({C}, 91, 0.5, 1.5),
                   b = testing::random_uniform({C}, 92), dy = testing::random_uniform(shape, 93);
      for (const auto& [out, what] : outputs) {
        if (out == Out::Dx && C == 1) continue;
        const Out o = out;
        testing::check_cuda_vs_cpu_float_types(
            [o](const std::vector<Tensor>& t) { return layernorm_output(t, o); }, {x, w, b, dy},
            what);
      }
    }
  }

  CUDA_TEST_CASE("cuda: LayerNorm bf16-mixed, strided input, and deterministic dw and db") {
    testing::PoisonAllocations poison;
    // bf16 activations with a float32 weight and bias, as the bf16-mixed model runs them.
    const Tensor x = testing::random_uniform({37, 96}, 94).to(kBFloat16);
    const Tensor w = testing::random_uniform({96}, 95, 0.5, 1.5).to(kFloat32);
    const Tensor b = testing::random_uniform({96}, 96).to(kFloat32);
    const Tensor dy = testing::random_uniform({37, 96}, 97).to(kBFloat16);
    Tensor mean_c, rstd_c, mean_g, rstd_g, dx_c, dw_c, db_c, dx_g, dw_g, db_g;
    const Tensor yc = ops::layernorm_forward(x, w, b, 1e-5f, &mean_c, &rstd_c);
    const Tensor yg = ops::layernorm_forward(x.cuda(), w.cuda(), b.cuda(), 1e-5f, &mean_g, &rstd_g);
    ops::layernorm_backward(dy, x, w, mean_c, rstd_c, &dx_c, &dw_c, &db_c);
    ops::layernorm_backward(dy.cuda(), x.cuda(), w.cuda(), mean_g, rstd_g, &dx_g, &dw_g, &db_g);
    // The same float32 arithmetic on both sides, up to float32 rounding (FMA contraction, the
    // order of the float64 sums): a bf16 output element may land one bf16 step (2^-7 of its
    // value at most) away where its float32 value sits next to a rounding boundary, a float32
    // output differs in its last bits.
    for (const Tensor& t : {yg, mean_g, rstd_g, dx_g, dw_g, db_g}) {
      CHECK(testing::all_written(t.cpu().to(kFloat64)));
    }
    CHECK(yg.dtype() == kBFloat16);
    CHECK(dw_g.dtype() == kFloat32);
    CHECK(testing::rel_error(yg.cpu(), yc) <= 1.0 / 128);
    CHECK(testing::rel_error(dx_g.cpu(), dx_c) <= 1.0 / 128);
    CHECK(testing::rel_error(mean_g.cpu(), mean_c) <= 1e-5);
    CHECK(testing::rel_error(rstd_g.cpu(), rstd_c) <= 1e-5);
    CHECK(testing::rel_error(dw_g.cpu(), dw_c) <= 1e-5);
    CHECK(testing::rel_error(db_g.cpu(), db_c) <= 1e-5);
    // A transposed (non-contiguous) x: the op copies it to rows first.
    const Tensor xt = testing::random_uniform({33, 5}, 98).to(kFloat32);
    const Tensor w5 = testing::random_uniform({33}, 99, 0.5, 1.5).to(kFloat32);
    const Tensor b5 = testing::random_uniform({33}, 100).to(kFloat32);
    const Tensor ys = ops::layernorm_forward(xt.cuda().transpose(0, 1), w5.cuda(), b5.cuda(), 1e-5f,
                                             nullptr, nullptr);
    CHECK(testing::rel_error(ys.cpu(), ops::layernorm_forward(xt.transpose(0, 1), w5, b5, 1e-5f,
                                                              nullptr, nullptr)) <= 1e-5);
    // dw and db of 4099 rows (65 chunks) twice: the same bits.
    const Tensor xl = testing::random_uniform({4099, 70}, 101).to(kFloat32).cuda();
    const Tensor dyl = testing::random_uniform({4099, 70}, 102).to(kFloat32).cuda();
    const Tensor wl = Tensor::ones({70}, kFloat32).cuda(),
                 bl = Tensor::zeros({70}, kFloat32).cuda();
    Tensor ml, rl, dw1, db1, dw2, db2;
    ops::layernorm_forward(xl, wl, bl, 1e-5f, &ml, &rl);
    ops::layernorm_backward(dyl, xl, wl, ml, rl, nullptr, &dw1, &db1);
    ops::layernorm_backward(dyl, xl, wl, ml, rl, nullptr, &dw2, &db2);
    CHECK(dw1.cpu().to_vector<float>() == dw2.cpu().to_vector<float>());
    CHECK(db1.cpu().to_vector<float>() == db2.cpu().to_vector<float>());
  }

}  // TEST_SUITE
