// The optimizer ops (ops/optim_ops.h): AdamW on the CPU against hand-computed values, the
// counters, finite_mask, the gradient global norm and the clip coefficient; then on the GPU the
// fused multi-tensor AdamW against the CPU over several steps, the device-side step count and
// non-finite guard (AdamW, Adam and SGD of optim/ on the GPU against the CPU, with skipped
// steps), and the device-side global norm and clip coefficient.
#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "cuda/debug.h"
#include "cuda/optim_ops.cuh"
#include "ops/elementwise.h"
#include "ops/optim_ops.h"
#include "optim/clip.h"
#include "optim/factory.h"
#include "optim/optimizer.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

// The updates taken so far, as adamw_step_ reads them: update t reads t - 1.
Tensor count_before(int64_t t, Device device = Device::cpu()) {
  return Tensor::full({1}, double(t - 1), kInt64, device);
}

}  // namespace

TEST_CASE("adamw_step_ on the CPU matches a hand-computed first step") {
  std::vector<Tensor> p = {Tensor::from_doubles({1.0, -2.0}, {2})};
  std::vector<Tensor> g = {Tensor::from_doubles({0.5, 0.25}, {2})};
  std::vector<Tensor> m = {Tensor::zeros({2})}, v = {Tensor::zeros({2})};
  ops::AdamWHyper h;  // b1 0.9, b2 0.999, eps 1e-8, wd 0.01
  const Tensor count = count_before(1);
  ops::adamw_step_(p, g, m, v, Tensor::scalar(0.1), count, h);
  // Step 1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps) = 0.1 * sign(g).
  const std::vector<float> got = p[0].to_vector<float>();
  CHECK(got[0] == doctest::Approx(1.0 * (1 - 0.1 * 0.01) - 0.1).epsilon(1e-6));
  CHECK(got[1] == doctest::Approx(-2.0 * (1 - 0.1 * 0.01) - 0.1).epsilon(1e-6));
  CHECK(m[0].to_vector<float>()[0] == doctest::Approx(0.05));
  CHECK(v[0].to_vector<float>()[1] == doctest::Approx(0.001 * 0.0625));
  CHECK(count.item() == 0);  // the op reads the count; the optimizer advances it
  CHECK_THROWS_WITH_TEXT(ops::adamw_step_(p, g, m, v, Tensor::scalar(0.1), Tensor::scalar(0.0), h),
                         "step_count must be a one-element int64");
  CHECK_THROWS_WITH_TEXT(ops::adamw_step_(p, g, m, v, Tensor::scalar(0.1), count_before(0), h),
                         "must be >= 0");
  // A NaN guard: nothing is written.
  const std::vector<float> before = p[0].to_vector<float>();
  ops::adamw_step_(p, g, m, v, Tensor::scalar(0.1), count_before(2), h, Tensor(),
                   Tensor::scalar(NAN));
  CHECK(p[0].to_vector<float>() == before);
  CHECK(m[0].to_vector<float>()[0] == doctest::Approx(0.05));
}

TEST_CASE("adam_bias_correction is 1 - beta^t") {
  for (float beta : {0.9f, 0.999f, 0.95f}) {
    for (int64_t t : {1, 2, 3, 10, 1000, 123457}) {
      INFO("beta " << beta << " t " << t);
      CHECK(cuda::adam_bias_correction(beta, t) == float(1.0 - std::pow(double(beta), double(t))));
    }
  }
  CHECK(cuda::adam_bias_correction(0.999f, int64_t(1) << 40) == 1.0f);
}

TEST_CASE("clip_coefficient on the CPU") {
  CHECK(ops::clip_coefficient(Tensor::scalar(4.0), 1.0f).item() ==
        doctest::Approx(1.0 / (4.0 + 1e-6)));
  CHECK(ops::clip_coefficient(Tensor::scalar(0.5), 1.0f).item() == 1.0);
}

TEST_CASE("grad_global_norm over a list of tensors") {
  const Tensor a = Tensor::from_doubles({3, 4}, {2}, kFloat64);
  const Tensor b = Tensor::from_doubles({12}, {1, 1}, kFloat32);
  const Tensor n = ops::grad_global_norm({a, b});
  CHECK(n.dtype() == kFloat32);
  CHECK(n.item() == 13.0);
  const Tensor big = testing::random_uniform({300, 301}, 3).to(kFloat32);
  double ss = 0;
  for (double v : big.to_vector<double>()) ss += v * v;
  CHECK(ops::grad_global_norm({big.transpose(0, 1)}).item() ==
        doctest::Approx(std::sqrt(ss)).epsilon(1e-6));
  CHECK_THROWS_WITH_TEXT(ops::grad_global_norm({a, Tensor()}), "tensor 1 is undefined");
}

TEST_CASE("finite_mask and the counters op") {
  const float inf = std::numeric_limits<float>::infinity();
  const float big = std::numeric_limits<float>::max();
  const Tensor x = Tensor::from_vector<float>({1.0f, NAN, inf, -inf, -3.0f, big, -big}, {7});
  CHECK(ops::finite_mask(x).to_vector<float>() == std::vector<float>{1, 0, 0, 0, 1, 1, 1});
  CHECK(ops::finite_mask(x.to(kFloat64)).to_vector<double>() ==
        std::vector<double>{1, 0, 0, 0, 1, 1, 1});
  Tensor c = Tensor::zeros({ops::kNumOptimCounters}, kInt64);
  ops::optimizer_counters_advance_(c);
  ops::optimizer_counters_advance_(c, Tensor::scalar(NAN));
  ops::optimizer_counters_advance_(c, Tensor::scalar(inf));
  CHECK(c.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 2});
  ops::optimizer_counters_advance_(c, Tensor::scalar(2.5));
  CHECK(c.to_vector<int64_t>() == std::vector<int64_t>{2, 2, 0});
  Tensor wrong = Tensor::zeros({2}, kInt64);
  CHECK_THROWS_WITH_TEXT(ops::optimizer_counters_advance_(wrong), "int64 [3]");
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
      ops::adamw_step_(pc, gc, mc, vc, lr_c, count_before(step), h, coef_c);
      ops::adamw_step_(pg, gg, mg, vg, lr_g, count_before(step, Device::cuda()), h, coef_g);
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
    ops::adamw_step_(pc, gc, mc, vc, Tensor::scalar(3e-3), count_before(7), h);
    ops::adamw_step_(pg, gg, mg, vg, Tensor::scalar(3e-3).cuda(), count_before(7, Device::cuda()),
                     h);
    for (size_t k = 0; k < pc.size(); ++k) {
      CHECK(testing::max_abs_diff(pg[k].cpu(), pc[k]) <= 1e-6);
      CHECK(testing::max_abs_diff(mg[k].cpu(), mc[k]) <= 1e-6);
    }
    cuda::set_poison_allocations(false);
  }

  CUDA_TEST_CASE("cuda: the step count is read on the device: a late step and the counters") {
    // Update t = 100000 (bias corrections ~1 and a float64 power by 17 squarings) on both.
    Generator gen(7);
    std::vector<Tensor> pc = {Tensor::randn({4099}, gen)}, gc = {Tensor::randn({4099}, gen)};
    // v >= 0.1 keeps every update small, so a 1e-6 bound is a tight one.
    std::vector<Tensor> mc = {Tensor::randn({4099}, gen)},
                        vc = {ops::add_scalar(Tensor::rand({4099}, gen), 0.1)};
    std::vector<Tensor> pg = {pc[0].cuda()}, gg = {gc[0].cuda()}, mg = {mc[0].cuda()},
                        vg = {vc[0].cuda()};
    ops::AdamWHyper h;
    const Tensor count_g = count_before(100000, Device::cuda());
    ops::adamw_step_(pc, gc, mc, vc, Tensor::scalar(1e-2), count_before(100000), h);
    ops::adamw_step_(pg, gg, mg, vg, Tensor::scalar(1e-2).cuda(), count_g, h);
    CHECK(testing::max_abs_diff(pg[0].cpu(), pc[0]) <= 1e-6);
    CHECK(testing::max_abs_diff(vg[0].cpu(), vc[0]) <= 1e-6);
    CHECK(count_g.item() == 99999);  // read, not advanced

    // The counters kernel: the same sequence as the CPU test in test_optim.cpp.
    Tensor c = Tensor::zeros({ops::kNumOptimCounters}, kInt64, Device::cuda());
    ops::optimizer_counters_advance_(c);
    ops::optimizer_counters_advance_(c, Tensor::scalar(NAN).cuda());
    ops::optimizer_counters_advance_(c, Tensor::scalar(INFINITY).cuda());
    CHECK(c.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 2});
    ops::optimizer_counters_advance_(c, Tensor::scalar(2.5).cuda());
    CHECK(c.to_vector<int64_t>() == std::vector<int64_t>{2, 2, 0});
    const Tensor x = Tensor::from_vector<float>({1.0f, NAN, INFINITY, -INFINITY, -3.0f}, {5});
    CHECK(ops::finite_mask(x.cuda()).to_vector<float>() == std::vector<float>{1, 0, 0, 0, 1});
  }

  CUDA_TEST_CASE("cuda: AdamW, Adam and SGD match the CPU; NaN and Inf guards skip on the device") {
    cuda::set_poison_allocations(true);
    const std::vector<Shape> shapes = {{1}, {129, 65}, {70001}, {3, 5, 7}};
    const std::vector<nlohmann::json> configs = {
        {{"name", "adamw"}, {"lr", 1e-2}, {"weight_decay", 0.1}},
        {{"name", "adam"}, {"lr", 1e-2}, {"weight_decay", 0.1}},
        {{"name", "sgd"},
         {"lr", 1e-2},
         {"weight_decay", 0.1},
         {"momentum", 0.9},
         {"dampening", 0.1}},
        {{"name", "sgd"}, {"lr", 1e-2}, {"momentum", 0.9}, {"nesterov", true}},
    };
    // 'n': a NaN in the gradients, 'i': an Inf, 'g': a good step. The first step is a skip, so
    // that the first applied update (AdamW's t = 1, SGD's undamped buffer) follows one.
    const std::string pattern = "nggigg";
    for (const auto& cfg : configs) {
      INFO("optimizer " << cfg.dump());
      Generator gen(11);
      std::vector<std::pair<std::string, Var>> named_c, named_g;
      std::vector<Var> vc, vg;
      for (size_t k = 0; k < shapes.size(); ++k) {
        const Tensor w = Tensor::randn(shapes[k], gen);
        vc.emplace_back(w.clone(), true);
        vg.emplace_back(w.cuda(), true);
        named_c.emplace_back("w" + std::to_string(k), vc.back());
        named_g.emplace_back("w" + std::to_string(k), vg.back());
      }
      auto oc = make_optimizer(cfg, named_c);
      auto og = make_optimizer(cfg, named_g);
      CHECK(og->counters().is_cuda());
      int64_t applied = 0, skipped = 0, in_a_row = 0;
      for (size_t s = 0; s < pattern.size(); ++s) {
        INFO("step " << s << " (" << pattern[s] << ")");
        for (size_t k = 0; k < shapes.size(); ++k) {
          Tensor g = Tensor::randn(shapes[k], gen);
          if (k == 2 && pattern[s] != 'g') {
            g.narrow(0, 12345, 1).fill_(pattern[s] == 'n' ? NAN : -INFINITY);
          }
          vc[k].set_grad(g);
          vg[k].set_grad(g.cuda());
        }
        const ClipResult clip_c = clip_grad_norm(vc, 10.0), clip_g = clip_grad_norm(vg, 10.0);
        // The GPU's parameters and slots, bit for bit.
        auto gpu_state = [&] {
          std::map<std::string, std::vector<float>> state;
          for (size_t k = 0; k < vg.size(); ++k) {
            state[named_g[k].first] = vg[k].value().to_vector<float>();
          }
          for (const auto& [key, t] : og->state_dict().tensors) state[key] = t.to_vector<float>();
          return state;
        };
        const auto before = gpu_state();
        oc->step(clip_c.coef, clip_c.norm);
        og->step(clip_g.coef, clip_g.norm);
        if (pattern[s] == 'g') {
          ++applied;
          in_a_row = 0;
          CHECK(clip_g.coef.item() < 1.0);  // ~80k unit normals: norm ~280, clipping is active
        } else {
          ++skipped;
          ++in_a_row;
          CHECK_FALSE(std::isfinite(clip_g.norm.item()));
          auto bits_equal = [](const std::vector<float>& a, const std::vector<float>& b) {
            return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
          };
          for (const auto& [key, values] : gpu_state()) {
            INFO("slot " << key);
            // A slot the skipped step created is still all zeros.
            CHECK(bits_equal(values, before.count(key) ? before.at(key)
                                                       : std::vector<float>(values.size(), 0.0f)));
          }
        }
        CHECK(og->step_count() == applied);
        CHECK(og->skip_counts().total == skipped);
        CHECK(og->skip_counts().in_a_row == in_a_row);
        CHECK(oc->step_count() == applied);
        for (size_t k = 0; k < vg.size(); ++k) {
          INFO("parameter " << k);
          CHECK(testing::all_written(vg[k].value().cpu()));
          CHECK(testing::max_abs_diff(vg[k].value().cpu(), vc[k].value()) <= 1e-6);
        }
        const StateDict sc = oc->state_dict(), sg = og->state_dict();
        CHECK(sg.tensors.size() == sc.tensors.size());
        for (const auto& [key, t] : sc.tensors) {
          INFO("slot " << key);
          REQUIRE(sg.tensors.count(key) == 1);
          CHECK(testing::max_abs_diff(sg.tensors.at(key).cpu(), t) <= 1e-6);
        }
        CHECK(sg.meta == sc.meta);
      }
    }
    cuda::set_poison_allocations(false);
  }

  CUDA_TEST_CASE("cuda: optimizer state moves between the GPU and the CPU with its counters") {
    Generator gen(13);
    const Tensor w0 = Tensor::randn({257}, gen);
    Var g_param(w0.cuda(), true), c_param(w0.clone(), true);
    AdamW og(make_param_groups({{"w", g_param}}, 1e-2, 0.01));
    for (int s = 0; s < 4; ++s) {
      Tensor g = Tensor::randn({257}, gen);
      if (s == 2) g.narrow(0, 7, 1).fill_(NAN);
      g_param.set_grad(g.cuda());
      og.step(Tensor(), clip_grad_norm({g_param}, 1.0).norm);
    }
    CHECK(og.step_count() == 3);
    CHECK(og.skip_counts().total == 1);
    CHECK(og.skip_counts().in_a_row == 0);
    const StateDict st = og.state_dict();
    CHECK(st.meta["step"] == 3);
    CHECK(st.meta["skipped_total"] == 1);
    c_param.mutable_value().copy_(g_param.value().cpu());
    AdamW oc(make_param_groups({{"w", c_param}}, 1e-2, 0.01));
    oc.load_state_dict(st);
    CHECK(oc.step_count() == 3);
    CHECK(oc.skip_counts().total == 1);
    // Back onto the GPU: into a second optimizer over the same parameter, whose counters
    // storage keeps its address (a captured graph would still read it).
    AdamW og2(make_param_groups({{"w", g_param}}, 1e-2, 0.01));
    const void* address = og2.counters().raw_data();
    og2.load_state_dict(oc.state_dict());
    CHECK(og2.counters().raw_data() == address);
    CHECK(og2.step_count() == 3);
    // The next step (t = 4) agrees on both devices.
    const Tensor g = Tensor::randn({257}, gen);
    c_param.set_grad(g);
    g_param.set_grad(g.cuda());
    oc.step();
    og2.step();
    CHECK(testing::max_abs_diff(g_param.value().cpu(), c_param.value()) <= 1e-6);
    CHECK(og2.step_count() == 4);
  }

  CUDA_TEST_CASE("cuda: grad_global_norm of float32 tensors matches the CPU") {
    testing::PoisonAllocations poison;
    const std::vector<Tensor> list = {testing::random_uniform({1}, 12),
                                      testing::random_uniform({129, 65}, 13),
                                      testing::random_uniform({70001}, 14)};
    std::vector<Tensor> gpu_list, cpu_list;
    for (const Tensor& t : list) gpu_list.push_back(t.to(kFloat32).cuda());
    for (const Tensor& t : list) cpu_list.push_back(t.to(kFloat32));
    const double ref = ops::grad_global_norm(cpu_list).item();
    const Tensor norm = ops::grad_global_norm(gpu_list);
    CHECK(norm.is_cuda());
    CHECK(norm.item() == doctest::Approx(ref).epsilon(1e-6));
  }

}  // TEST_SUITE
