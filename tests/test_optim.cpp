// Optimizers, clipping, accumulation and early stopping against hand-computed sequences.
//
// The expected parameters were computed with PyTorch's documented update rules in float64
// (torch.optim.AdamW / Adam / SGD docs) for p0 = [1, -2, 0.5], lr 0.1, weight_decay 0.01,
// betas (0.9, 0.999), eps 1e-8 and the gradients below; e.g. AdamW's first step:
//   p = 1 * (1 - 0.1 * 0.01) = 0.999;  m = 0.01, v = 1e-5;  m_hat = 0.1, v_hat = 0.01
//   p -= 0.1 * 0.1 / (0.1 + 1e-8)  ->  0.899000010
#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "autograd/var.h"
#include "optim/clip.h"
#include "optim/factory.h"
#include "optim/optimizer.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

const std::vector<std::vector<double>> kGrads = {
    {0.1, -0.2, 0.0}, {0.3, 0.1, -0.05}, {-0.2, 0.4, 0.02}};

Var make_param(std::vector<double> values = {1.0, -2.0, 0.5}) {
  return Var(Tensor::from_doubles(values, {static_cast<int64_t>(values.size())}), true);
}

std::vector<ParamGroup> one_group(const Var& p, double lr, double wd) {
  return make_param_groups({{"p", p}}, lr, wd);
}

// Runs three steps with kGrads and checks the parameter after each against `expected`.
void check_three_steps(Optimizer& opt, Var p, const std::vector<std::vector<double>>& expected) {
  for (size_t s = 0; s < kGrads.size(); ++s) {
    p.set_grad(Tensor::from_doubles(kGrads[s], {3}));
    opt.step();
    auto got = p.value().to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i) {
      INFO("step " << s + 1 << " element " << i);
      CHECK(got[i] == doctest::Approx(expected[s][i]).epsilon(2e-6));
    }
  }
  CHECK(opt.step_count() == 3);
}

// The bits of every value an update may change: the parameter and the optimizer's slots.
std::map<std::string, std::vector<uint32_t>> snapshot(const Optimizer& opt, const Var& p) {
  auto bits = [](const Tensor& t) {
    const std::vector<float> v = t.to_vector<float>();
    std::vector<uint32_t> b(v.size());
    std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
    return b;
  };
  std::map<std::string, std::vector<uint32_t>> s;
  s["param"] = bits(p.value());
  for (const auto& [key, t] : opt.state_dict().tensors) s[key] = bits(t);
  return s;
}

// One step whose gradient holds `bad` (NaN or Inf): clip_grad_norm's norm is the guard.
void bad_step(Optimizer& opt, Var p, double bad) {
  p.set_grad(Tensor::from_doubles({0.1, bad, 0.3}, {3}));
  const ClipResult clip = clip_grad_norm({p}, 1.0);
  REQUIRE_FALSE(std::isfinite(clip.norm.item()));
  opt.step(clip.coef, clip.norm);
}

// The configs the golden tests below check, as the factory reads them.
const std::vector<std::pair<nlohmann::json, std::vector<std::vector<double>>>> kGolden = {
    {{{"name", "adamw"}, {"lr", 0.1}, {"weight_decay", 0.01}},
     {{0.899000010, -1.898000005, 0.499500000},
      {0.806322902, -1.869468303, 0.573414161},
      {0.779726200, -1.913332012, 0.602509706}}},
    {{{"name", "adam"}, {"lr", 0.1}, {"weight_decay", 0.01}},
     {{0.900000009, -1.900000005, 0.400000200},
      {0.807430156, -1.862846257, 0.466741546},
      {0.777954463, -1.902251426, 0.482198626}}},
    {{{"name", "sgd"}, {"lr", 0.1}, {"weight_decay", 0.01}, {"momentum", 0.9}, {"dampening", 0.1}},
     {{0.989000000, -1.978000000, 0.499500000},
      {0.951209900, -1.965419800, 0.503100450},
      {0.934342721, -1.988328742, 0.504088065}}},
    {{{"name", "sgd"}, {"lr", 0.1}, {"weight_decay", 0.01}, {"momentum", 0.9}, {"nesterov", true}},
     {{0.979100000, -1.958200000, 0.499050000},
      {0.911329710, -1.955659420, 0.507196805},
      {0.914486113, -2.018419525, 0.505714401}}},
};

}  // namespace

TEST_CASE("optim: AdamW three steps match PyTorch's update rule") {
  Var p = make_param();
  AdamW opt(one_group(p, 0.1, 0.01));
  check_three_steps(opt, p,
                    {{0.899000010, -1.898000005, 0.499500000},
                     {0.806322902, -1.869468303, 0.573414161},
                     {0.779726200, -1.913332012, 0.602509706}});
}

TEST_CASE("optim: Adam folds L2 decay into the gradient") {
  Var p = make_param();
  Adam opt(one_group(p, 0.1, 0.01));
  check_three_steps(opt, p,
                    {{0.900000009, -1.900000005, 0.400000200},
                     {0.807430156, -1.862846257, 0.466741546},
                     {0.777954463, -1.902251426, 0.482198626}});
}

TEST_CASE("optim: SGD with momentum and dampening") {
  Var p = make_param();
  SGDConfig c;
  c.momentum = 0.9;
  c.dampening = 0.1;
  SGD opt(one_group(p, 0.1, 0.01), c);
  // Step 1 copies the gradient into the buffer undamped: p = 1 - 0.1 * (0.1 + 0.01) = 0.989.
  check_three_steps(opt, p,
                    {{0.989000000, -1.978000000, 0.499500000},
                     {0.951209900, -1.965419800, 0.503100450},
                     {0.934342721, -1.988328742, 0.504088065}});
}

TEST_CASE("optim: SGD with Nesterov momentum") {
  Var p = make_param();
  SGDConfig c;
  c.momentum = 0.9;
  c.nesterov = true;
  SGD opt(one_group(p, 0.1, 0.01), c);
  // Step 1: d = 0.11, buf = 0.11, d + 0.9 * buf = 0.209: p = 1 - 0.0209 = 0.9791.
  check_three_steps(opt, p,
                    {{0.979100000, -1.958200000, 0.499050000},
                     {0.911329710, -1.955659420, 0.507196805},
                     {0.914486113, -2.018419525, 0.505714401}});
}

TEST_CASE("optim: plain SGD and grad_scale") {
  Var p = make_param({2.0});
  SGD opt(one_group(p, 0.5, 0.0));
  p.set_grad(Tensor::from_doubles({4.0}, {1}));
  opt.step(Tensor::from_doubles({0.25}, {1}));  // g * 0.25 = 1: p = 2 - 0.5 * 1
  CHECK(p.value().item() == doctest::Approx(1.5));
}

TEST_CASE("optim: AdamW grad_scale equals pre-scaled gradients") {
  Var a = make_param(), b = make_param();
  AdamW oa(one_group(a, 0.1, 0.01)), ob(one_group(b, 0.1, 0.01));
  for (const auto& g : kGrads) {
    a.set_grad(Tensor::from_doubles(g, {3}));
    std::vector<double> half;
    for (double x : g) half.push_back(0.5 * x);
    b.set_grad(Tensor::from_doubles(half, {3}));
    oa.step(Tensor::from_doubles({0.5}, {1}));
    ob.step();
  }
  CHECK(testing::max_abs_diff(a.value(), b.value()) < 1e-6);
}

TEST_CASE("optim: parameters without a gradient are skipped") {
  Var p = make_param(), q = make_param({3.0});
  AdamW opt(make_param_groups({{"p", p}, {"q", q}}, 0.1, 0.01));
  p.set_grad(Tensor::from_doubles(kGrads[0], {3}));
  opt.step();
  CHECK(q.value().item() == 3.0);
  CHECK(p.value().to_vector<double>()[0] == doctest::Approx(0.899000010).epsilon(2e-6));
}

TEST_CASE("optim: parameter groups without decay on norms and biases") {
  Var w(Tensor::ones({2, 3}), true), b(Tensor::ones({2}), true), n(Tensor::ones({3}), true);
  auto groups = make_param_groups({{"fc.weight", w}, {"fc.bias", b}, {"norm.weight", n}}, 0.1, 0.05,
                                  /*no_decay_norm_bias=*/true);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].names == std::vector<std::string>{"fc.weight"});
  CHECK(groups[0].weight_decay == 0.05);
  CHECK(groups[1].names == std::vector<std::string>{"fc.bias", "norm.weight"});
  CHECK(groups[1].weight_decay == 0.0);
  // Zero gradients: only the decayed group moves, by lr * wd * p.
  for (Var v : {w, b, n}) v.set_grad(Tensor::zeros(v.shape()));
  AdamW opt(std::move(groups));
  opt.step();
  CHECK(w.value().to_vector<double>()[0] == doctest::Approx(1.0 - 0.1 * 0.05));
  CHECK(b.value().to_vector<double>()[0] == 1.0);
  CHECK(n.value().to_vector<double>()[0] == 1.0);
  CHECK(make_param_groups({{"fc.weight", w}, {"fc.bias", b}}, 0.1, 0.05).size() == 1);
}

TEST_CASE("optim: set_lr writes the device scalar") {
  Var p = make_param();
  AdamW opt(one_group(p, 0.1, 0.0));
  opt.set_lr(0.025);
  CHECK(opt.lr() == 0.025);
  CHECK(opt.group(0).lr_tensor.item() == doctest::Approx(0.025));
  CHECK_THROWS_WITH_TEXT(opt.set_lr(3, 0.1), "group 3 out of range");
}

TEST_CASE("optim: AdamW state_dict round trip continues identically") {
  Var a = make_param(), b = make_param();
  AdamW oa(one_group(a, 0.1, 0.01));
  for (int s = 0; s < 2; ++s) {
    a.set_grad(Tensor::from_doubles(kGrads[s], {3}));
    oa.step();
  }
  StateDict st = oa.state_dict();
  CHECK(st.meta["step"] == 2);
  CHECK(st.tensors.count("p.exp_avg") == 1);
  CHECK(st.tensors.count("p.exp_avg_sq") == 1);
  b.mutable_value().copy_(a.value());
  AdamW ob(one_group(b, 0.5, 0.01));
  ob.load_state_dict(st);
  CHECK(ob.lr() == 0.1);
  a.set_grad(Tensor::from_doubles(kGrads[2], {3}));
  b.set_grad(Tensor::from_doubles(kGrads[2], {3}));
  oa.step();
  ob.step();
  CHECK(testing::max_abs_diff(a.value(), b.value()) == 0.0);

  SGD sgd(one_group(b, 0.1, 0.0));
  CHECK_THROWS_WITH_TEXT(sgd.load_state_dict(st), "saved by 'adamw'");
  st.tensors["other.exp_avg"] = Tensor::zeros({3});
  CHECK_THROWS_WITH_TEXT(ob.load_state_dict(st), "names no parameter");
}

TEST_CASE("optim: SGD momentum state round trip") {
  Var a = make_param(), b = make_param();
  SGDConfig c;
  c.momentum = 0.9;
  SGD oa(one_group(a, 0.1, 0.0), c);
  a.set_grad(Tensor::from_doubles(kGrads[0], {3}));
  oa.step();
  b.mutable_value().copy_(a.value());
  SGD ob(one_group(b, 0.1, 0.0), c);
  ob.load_state_dict(oa.state_dict());
  a.set_grad(Tensor::from_doubles(kGrads[1], {3}));
  b.set_grad(Tensor::from_doubles(kGrads[1], {3}));
  oa.step();
  ob.step();
  CHECK(testing::max_abs_diff(a.value(), b.value()) == 0.0);
}

TEST_CASE("optim: a non-finite guard skips the whole update and counts it") {
  for (const auto& [cfg, expected] : kGolden) {
    INFO("optimizer " << cfg.dump());
    Var p = make_param();
    auto opt = make_optimizer(cfg, {{"p", p}});
    CHECK(opt->step_count() == 0);
    CHECK(opt->counters().dtype() == kInt64);
    // A NaN guard at the very first step: the parameter keeps its bits, and any slot the step
    // created is still the zeros it started as.
    const auto fresh = snapshot(*opt, p);
    bad_step(*opt, p, std::nan(""));
    for (const auto& [key, bits] : snapshot(*opt, p)) {
      INFO("slot " << key);
      CHECK(bits == (key == "param" ? fresh.at("param") : std::vector<uint32_t>(3, 0u)));
    }
    CHECK(opt->step_count() == 0);
    CHECK(opt->skip_counts().total == 1);
    CHECK(opt->skip_counts().in_a_row == 1);
    // Then the golden sequence with a NaN and an Inf step between its steps: bit-exact
    // no-ops, after which the next good step is the one the golden values expect (AdamW's
    // bias correction uses t = 2, SGD's buffer had its undamped first update).
    for (size_t s = 0; s < kGrads.size(); ++s) {
      p.set_grad(Tensor::from_doubles(kGrads[s], {3}));
      const ClipResult clip = clip_grad_norm({p}, 100.0);  // coef 1: the golden gradients
      opt->step(clip.coef, clip.norm);
      CHECK(opt->step_count() == int64_t(s) + 1);
      CHECK(opt->skip_counts().in_a_row == 0);  // an applied update resets it
      const auto got = p.value().to_vector<double>();
      for (size_t i = 0; i < got.size(); ++i) {
        INFO("step " << s + 1 << " element " << i);
        CHECK(got[i] == doctest::Approx(expected[s][i]).epsilon(2e-6));
      }
      const auto before = snapshot(*opt, p);
      bad_step(*opt, p, std::nan(""));
      bad_step(*opt, p, -INFINITY);
      CHECK(snapshot(*opt, p) == before);
      CHECK(opt->step_count() == int64_t(s) + 1);
      CHECK(opt->skip_counts().total == 3 + 2 * int64_t(s));
      CHECK(opt->skip_counts().in_a_row == 2);
    }
  }
}

TEST_CASE("optim: steps after skipped ones equal a run that never had them, bit for bit") {
  for (const auto& [cfg, expected] : kGolden) {
    INFO("optimizer " << cfg.dump());
    Var a = make_param(), b = make_param();
    auto with_skips = make_optimizer(cfg, {{"p", a}});
    auto plain = make_optimizer(cfg, {{"p", b}});
    for (size_t s = 0; s < kGrads.size(); ++s) {
      if (s != 1) bad_step(*with_skips, a, INFINITY);
      a.set_grad(Tensor::from_doubles(kGrads[s], {3}));
      b.set_grad(Tensor::from_doubles(kGrads[s], {3}));
      with_skips->step(Tensor(), clip_grad_norm({a}, 1.0).norm);
      plain->step();
    }
    CHECK(snapshot(*with_skips, a) == snapshot(*plain, b));
    CHECK(with_skips->step_count() == 3);
    CHECK(plain->skip_counts().total == 0);
    CHECK(with_skips->skip_counts().total == 2);
  }
}

TEST_CASE("optim: step counters in the state dict, and states saved without them") {
  Var a = make_param(), b = make_param();
  AdamW oa(one_group(a, 0.1, 0.01));
  a.set_grad(Tensor::from_doubles(kGrads[0], {3}));
  oa.step();
  bad_step(oa, a, std::nan(""));
  a.set_grad(Tensor::from_doubles(kGrads[1], {3}));
  oa.step();
  bad_step(oa, a, INFINITY);
  StateDict st = oa.state_dict();
  CHECK(st.meta["step"] == 2);
  CHECK(st.meta["skipped_total"] == 2);
  CHECK(st.meta["skipped_in_a_row"] == 1);

  b.mutable_value().copy_(a.value());
  AdamW ob(one_group(b, 0.1, 0.01));
  ob.load_state_dict(st);
  CHECK(ob.step_count() == 2);
  CHECK(ob.skip_counts().total == 2);
  CHECK(ob.skip_counts().in_a_row == 1);
  // Both continue with t = 3.
  a.set_grad(Tensor::from_doubles(kGrads[2], {3}));
  b.set_grad(Tensor::from_doubles(kGrads[2], {3}));
  oa.step();
  ob.step();
  CHECK(testing::max_abs_diff(a.value(), b.value()) == 0.0);
  CHECK(ob.skip_counts().in_a_row == 0);
  CHECK(ob.skip_counts().total == 2);

  // A state saved before the skip counters existed: they load as 0, the step count as saved.
  StateDict old = st;
  old.meta.erase("skipped_total");
  old.meta.erase("skipped_in_a_row");
  Var c = make_param();
  AdamW oc(one_group(c, 0.1, 0.01));
  bad_step(oc, c, std::nan(""));  // counters that the load must overwrite
  oc.load_state_dict(old);
  CHECK(oc.step_count() == 2);
  CHECK(oc.skip_counts().total == 0);
  CHECK(oc.skip_counts().in_a_row == 0);
}

TEST_CASE("optim: SGD saves a momentum buffer only after its first applied update") {
  Var a = make_param(), b = make_param();
  SGDConfig c;
  c.momentum = 0.9;
  c.dampening = 0.1;
  SGD oa(one_group(a, 0.1, 0.0), c);
  bad_step(oa, a, std::nan(""));
  StateDict st = oa.state_dict();
  CHECK(st.tensors.count("p.momentum_buffer") == 0);
  // Loaded, the buffer still starts with PyTorch's undamped first update.
  SGD ob(one_group(b, 0.1, 0.0), c);
  ob.load_state_dict(st);
  CHECK(ob.skip_counts().total == 1);
  for (Var v : {a, b}) v.set_grad(Tensor::from_doubles(kGrads[0], {3}));
  oa.step();
  ob.step();
  CHECK(a.value().to_vector<double>()[0] == doctest::Approx(1.0 - 0.1 * 0.1));
  CHECK(testing::max_abs_diff(a.value(), b.value()) == 0.0);
  CHECK(oa.state_dict().tensors.count("p.momentum_buffer") == 1);
}

TEST_CASE("optim: step arguments are checked") {
  Var p = make_param();
  AdamW opt(one_group(p, 0.1, 0.01));
  p.set_grad(Tensor::from_doubles(kGrads[0], {3}));
  CHECK_THROWS_WITH_TEXT(opt.step(Tensor(), Tensor::from_doubles({1.0, 2.0}, {2})),
                         "nonfinite_guard must be a one-element float32");
  CHECK_THROWS_WITH_TEXT(opt.step(Tensor::scalar(1.0, kFloat64)), "grad_scale must be");
  CHECK(opt.step_count() == 0);  // a rejected call changes nothing
}

TEST_CASE("optim: invalid settings are errors") {
  Var p = make_param();
  SGDConfig c;
  c.nesterov = true;
  CHECK_THROWS_WITH_TEXT(SGD(one_group(p, 0.1, 0.0), c), "nesterov needs momentum");
  AdamConfig a;
  a.beta1 = 1.0;
  CHECK_THROWS_WITH_TEXT(AdamW(one_group(p, 0.1, 0.0), a), "beta1");
  CHECK_THROWS_WITH_TEXT(AdamW(std::vector<ParamGroup>{}), "no parameter groups");
}

TEST_CASE("optim: factory reads the config section") {
  Var p = make_param();
  std::vector<std::pair<std::string, Var>> named{{"p", p}};
  auto opt = make_optimizer({{"name", "sgd"}, {"lr", 0.2}, {"momentum", 0.9}}, named);
  CHECK(std::string(opt->name()) == "sgd");
  CHECK(opt->lr() == 0.2);
  auto adamw = make_optimizer({{"name", "adamw"}, {"lr", 5e-5}, {"weight_decay", 1e-3}}, named);
  CHECK(std::string(adamw->name()) == "adamw");
  CHECK(adamw->group(0).weight_decay == 1e-3);
  // null means "the default" (the trainer's schema writes it for optimizer-dependent keys).
  auto with_nulls = make_optimizer(
      {{"name", "adam"}, {"lr", 0.1}, {"weight_decay", nullptr}, {"momentum", nullptr}}, named);
  CHECK(with_nulls->group(0).weight_decay == 0.0);  // Adam's default
  CHECK_THROWS_WITH_TEXT(make_optimizer({{"name", "adamw"}, {"lr_max", 1}}, named),
                         "optimizer.lr_max: unknown key");
  CHECK_THROWS_WITH_TEXT(make_optimizer({{"name", "lamb"}}, named), "optimizer.name");
  CHECK_THROWS_WITH_TEXT(make_optimizer({{"lr", "fast"}}, named), "optimizer.lr");
}

TEST_CASE("optim: global-norm clipping coefficient") {
  Var a(Tensor::from_doubles({3.0, 4.0}, {2}), true), b(Tensor::from_doubles({12.0}, {1}), true);
  a.set_grad(Tensor::from_doubles({3.0, 4.0}, {2}));
  b.set_grad(Tensor::from_doubles({12.0}, {1}));
  ClipResult r = clip_grad_norm({a, b}, 6.5);  // norm sqrt(9 + 16 + 144) = 13
  CHECK(r.norm.item() == doctest::Approx(13.0));
  CHECK(r.coef.item() == doctest::Approx(6.5 / (13.0 + 1e-6)));
  scale_grads_({a, b}, r.coef);
  CHECK(a.grad().to_vector<double>()[1] == doctest::Approx(2.0).epsilon(1e-6));
  CHECK(b.grad().item() == doctest::Approx(6.0).epsilon(1e-6));
  CHECK(clip_grad_norm({a, b}, 100.0).coef.item() == 1.0);  // below the limit: unchanged
  Var none = make_param();
  CHECK_THROWS_WITH_TEXT(clip_grad_norm({none}, 1.0), "has a gradient");
}

TEST_CASE("optim: gradient accumulation steps every n micro-batches") {
  GradAccumulation acc(3);
  CHECK(acc.loss_scale() == doctest::Approx(1.0 / 3.0));
  std::vector<bool> got;
  for (int i = 0; i < 6; ++i) got.push_back(acc.micro_step());
  CHECK(got == std::vector<bool>{false, false, true, false, false, true});
  acc.micro_step();
  GradAccumulation resumed(3);
  resumed.load_state_dict(acc.state_dict());
  CHECK(resumed.position() == 1);
  CHECK_THROWS_WITH_TEXT(GradAccumulation(4).load_state_dict(acc.state_dict()), "saved with 3");
  CHECK_THROWS_WITH_TEXT(GradAccumulation(0), "steps must be >= 1");
}

TEST_CASE("optim: accumulated scaled grads equal one big batch") {
  // L = mean over 4 samples of w * x_i: two micro-batches of 2, each scaled by 1/2.
  Var w(Tensor::from_doubles({1.5}, {1}), true);
  const std::vector<double> xs = {1.0, 2.0, 3.0, 6.0};
  GradAccumulation acc(2);
  bool stepped = false;
  for (int m = 0; m < 2; ++m) {
    double g = (xs[2 * m] + xs[2 * m + 1]) / 2.0 * acc.loss_scale();
    Tensor prev = w.grad().defined() ? w.grad() : Tensor::zeros({1});
    w.set_grad(Tensor::from_doubles({prev.item() + g}, {1}));
    stepped = acc.micro_step();
  }
  CHECK(stepped);
  CHECK(w.grad().item() == doctest::Approx(3.0));  // mean of xs
}

TEST_CASE("optim: early stopping with patience and min_delta") {
  EarlyStopping es(2, 0.01);
  CHECK_FALSE(es.update(1.0));  // first: improved
  CHECK(es.improved());
  CHECK_FALSE(es.update(0.995));  // not below 1.0 - 0.01: bad 1
  CHECK_FALSE(es.improved());
  CHECK_FALSE(es.update(0.98));  // 0.98 < 0.99: improved, bad 0
  CHECK(es.best() == 0.98);
  CHECK_FALSE(es.update(0.975));  // bad 1
  EarlyStopping resumed(2, 0.01);
  resumed.load_state_dict(es.state_dict());
  CHECK(resumed.bad_epochs() == 1);
  CHECK(es.update(0.972));              // bad 2: stop
  CHECK(resumed.update(std::nan("")));  // a NaN epoch is a bad epoch
  CHECK_THROWS_WITH_TEXT(EarlyStopping(0), "patience");
}
