// The optimizer ops: AdamW on the CPU against hand-computed values, the fused multi-tensor CUDA
// kernel against the CPU over several steps, and the device-side gradient norm and clip
// coefficient.
#include <cmath>

#include "cuda/debug.h"
#include "ops/optim_ops.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

TEST_CASE("adamw_step_ on the CPU matches a hand-computed first step") {
  std::vector<Tensor> p = {Tensor::from_doubles({1.0, -2.0}, {2})};
  std::vector<Tensor> g = {Tensor::from_doubles({0.5, 0.25}, {2})};
  std::vector<Tensor> m = {Tensor::zeros({2})}, v = {Tensor::zeros({2})};
  ops::AdamWHyper h;  // b1 0.9, b2 0.999, eps 1e-8, wd 0.01
  ops::adamw_step_(p, g, m, v, Tensor::scalar(0.1), 1, h);
  // Step 1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps) = 0.1 * sign(g).
  const std::vector<float> got = p[0].to_vector<float>();
  CHECK(got[0] == doctest::Approx(1.0 * (1 - 0.1 * 0.01) - 0.1).epsilon(1e-6));
  CHECK(got[1] == doctest::Approx(-2.0 * (1 - 0.1 * 0.01) - 0.1).epsilon(1e-6));
  CHECK(m[0].to_vector<float>()[0] == doctest::Approx(0.05));
  CHECK(v[0].to_vector<float>()[1] == doctest::Approx(0.001 * 0.0625));
  CHECK_THROWS_WITH_TEXT(ops::adamw_step_(p, g, m, v, Tensor::scalar(0.1), 0, h), "step");
}

TEST_CASE("clip_coefficient on the CPU") {
  CHECK(ops::clip_coefficient(Tensor::scalar(4.0), 1.0f).item() ==
        doctest::Approx(1.0 / (4.0 + 1e-6)));
  CHECK(ops::clip_coefficient(Tensor::scalar(0.5), 1.0f).item() == 1.0);
}

TEST_SUITE("cuda") {
  CUDA_TEST_CASE("cuda: fused AdamW matches the CPU over 3 steps, with a device grad scale") {
    cuda::set_poison_allocations(true);
    Generator gen(3);
    const std::vector<Shape> shapes = {{1}, {129, 65}, {70001}, {3, 5, 7}};
    std::vector<Tensor> pc, gc, mc, vc, pg, gg, mg, vg;
    for (const Shape& s : shapes) {
      pc.push_back(Tensor::randn(s, gen));
      gc.push_back(Tensor::randn(s, gen));
      mc.push_back(Tensor::zeros(s));
      vc.push_back(Tensor::zeros(s));
      pg.push_back(pc.back().cuda());
      gg.push_back(gc.back().cuda());
      mg.push_back(mc.back().cuda());
      vg.push_back(vc.back().cuda());
    }
    ops::AdamWHyper h;
    h.weight_decay = 0.1f;
    const Tensor lr_c = Tensor::scalar(1e-2), lr_g = lr_c.cuda();
    const Tensor norm_g = ops::grad_global_norm(gg);
    const Tensor coef_g = ops::clip_coefficient(norm_g, 10.0f);
    const Tensor coef_c = ops::clip_coefficient(ops::grad_global_norm(gc), 10.0f);
    CHECK(coef_g.item() == doctest::Approx(coef_c.item()).epsilon(1e-6));
    CHECK(coef_g.item() < 1.0);  // the norm of ~70k unit normals is ~270: clipping is active
    for (int64_t step = 1; step <= 3; ++step) {
      ops::adamw_step_(pc, gc, mc, vc, lr_c, step, h, coef_c);
      ops::adamw_step_(pg, gg, mg, vg, lr_g, step, h, coef_g);
    }
    for (size_t k = 0; k < shapes.size(); ++k) {
      CHECK(testing::all_written(pg[k].cpu()));
      CHECK(testing::max_abs_diff(pg[k].cpu(), pc[k]) <= 1e-6);
      CHECK(testing::max_abs_diff(vg[k].cpu(), vc[k]) <= 1e-6);
    }
    cuda::set_poison_allocations(false);
  }

  CUDA_TEST_CASE("cuda: more than 48 tensors: AdamW and the norm take several launches") {
    cuda::set_poison_allocations(true);
    Generator gen(5);
    std::vector<Tensor> pc, gc, mc, vc, pg, gg, mg, vg;
    for (int k = 0; k < 101; ++k) {  // 101 = 48 + 48 + 5: three batches, the last one partial
      const Shape s = {int64_t(k) * 37 % 1000 + 1};
      pc.push_back(Tensor::randn(s, gen));
      gc.push_back(Tensor::randn(s, gen));
      mc.push_back(Tensor::randn(s, gen));
      vc.push_back(Tensor::rand(s, gen));  // the second moment is never negative
      pg.push_back(pc.back().cuda());
      gg.push_back(gc.back().cuda());
      mg.push_back(mc.back().cuda());
      vg.push_back(vc.back().cuda());
    }
    const double norm_c = ops::grad_global_norm(gc).item();
    CHECK(ops::grad_global_norm(gg).item() == doctest::Approx(norm_c).epsilon(1e-6));
    ops::AdamWHyper h;
    ops::adamw_step_(pc, gc, mc, vc, Tensor::scalar(3e-3), 7, h);
    ops::adamw_step_(pg, gg, mg, vg, Tensor::scalar(3e-3).cuda(), 7, h);
    for (size_t k = 0; k < pc.size(); ++k) {
      CHECK(testing::max_abs_diff(pg[k].cpu(), pc[k]) <= 1e-6);
      CHECK(testing::max_abs_diff(mg[k].cpu(), mc[k]) <= 1e-6);
    }
    cuda::set_poison_allocations(false);
  }

}  // TEST_SUITE
