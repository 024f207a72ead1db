// Learning-rate schedulers against sequences derived by hand from PyTorch's documented semantics.
#include <cmath>
#include <vector>

#include "optim/factory.h"
#include "optim/scheduler.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

struct Fixture {
  Var p{Tensor::from_doubles({1.0, 2.0}, {2}), true};
  AdamW opt{make_param_groups({{"p", p}}, 1.0, 0.0)};
};

}  // namespace

TEST_CASE("schedulers: ReduceLROnPlateau follows PyTorch (threshold, cooldown, min_lr)") {
  Fixture f;
  PlateauConfig c;
  c.factor = 0.5;
  c.patience = 2;
  c.threshold = 0.1;  // better means < best * 0.9
  c.cooldown = 1;
  c.min_lr = 0.1;
  ReduceLROnPlateau sched(f.opt, c);
  // epoch: loss -> (best, bad epochs, cooldown) -> lr
  //  1: 1.00  best 1.0                       1
  //  2: 0.95  not < 0.9: bad 1               1
  //  3: 0.92  bad 2                          1
  //  4: 0.91  bad 3 > 2: reduce, cooldown 1  0.5
  //  5: 0.50  best 0.5; cooldown 1 -> 0      0.5
  //  6-8: 0.6 bad 1, 2, 3: reduce            0.25 at epoch 8
  //  9: 0.6   bad 1, but cooldown -> bad 0   0.25
  // 10-12: 0.6 bad 1, 2, 3: reduce           0.125 at epoch 12
  // 13: cooldown; 14-16 bad 1, 2, 3: max(0.0625, min_lr 0.1)  0.1 at epoch 16
  const std::vector<double> losses = {1.0, 0.95, 0.92, 0.91, 0.5, 0.6, 0.6, 0.6,
                                      0.6, 0.6,  0.6,  0.6,  0.6, 0.6, 0.6, 0.6};
  const std::vector<double> expected = {1.0,  1.0,  1.0,  0.5,   0.5,   0.5,   0.5,   0.25,
                                        0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.125, 0.1};
  for (size_t e = 0; e < losses.size(); ++e) {
    sched.on_epoch_end(losses[e]);
    INFO("epoch " << e + 1);
    CHECK(f.opt.lr() == doctest::Approx(expected[e]));
    CHECK(f.opt.group(0).lr_tensor.item() == doctest::Approx(expected[e]));
  }
  sched.on_epoch_end(0.6);  // at min_lr nothing changes
  CHECK(f.opt.lr() == doctest::Approx(0.1));
}

TEST_CASE("schedulers: ReduceLROnPlateau with the seed's settings") {
  Fixture f;
  f.opt.set_lr(5e-5);
  PlateauConfig c;
  c.factor = 0.5;
  c.patience = 2;  // threshold 1e-4, cooldown 0
  ReduceLROnPlateau sched(f.opt, c);
  // 0.99995 is not < 1.0 * (1 - 1e-4) = 0.9999: a tiny improvement is still a bad epoch.
  for (double loss : {1.0, 0.99995, 0.99992, 0.9998}) sched.on_epoch_end(loss);
  CHECK(f.opt.lr() == doctest::Approx(5e-5));  // bad 1, 2; then 0.9998 < 0.9999: best
  for (double loss : {0.9998, 0.9998}) sched.on_epoch_end(loss);
  CHECK(f.opt.lr() == doctest::Approx(5e-5));
  sched.on_epoch_end(0.9998);  // bad 3 > patience 2
  CHECK(f.opt.lr() == doctest::Approx(2.5e-5));
  CHECK(sched.num_bad_epochs() == 0);
  CHECK(sched.best() == 0.9998);
}

TEST_CASE("schedulers: ReduceLROnPlateau state round trip, including an unset best") {
  Fixture f, g;
  PlateauConfig c;
  c.factor = 0.5;
  c.patience = 1;
  c.cooldown = 2;
  ReduceLROnPlateau a(f.opt, c), b(g.opt, c);
  b.load_state_dict(a.state_dict());  // best = +inf round-trips through JSON null
  CHECK(std::isinf(b.best()));
  for (double loss : {1.0, 1.0, 1.0}) a.on_epoch_end(loss);
  g.opt.set_lr(f.opt.lr());
  b.load_state_dict(nlohmann::json::parse(a.state_dict().dump()));
  CHECK(b.cooldown_counter() == a.cooldown_counter());
  for (double loss : {1.0, 1.0, 1.0, 1.0, 0.5, 0.7, 0.7}) {
    a.on_epoch_end(loss);
    b.on_epoch_end(loss);
    CHECK(f.opt.lr() == g.opt.lr());
  }
  WarmupCosine other(g.opt, {0, 10, 0.0});
  CHECK_THROWS_WITH_TEXT(other.load_state_dict(a.state_dict()), "saved by 'plateau'");
}

TEST_CASE("schedulers: linear warmup then cosine") {
  Fixture f;
  WarmupCosine sched(f.opt, {2, 6, 0.1});  // warmup 2, total 6, min_lr 0.1, base 1
  // s0, s1: warmup 1/2, 2/2; s2..s6: 0.1 + 0.9 * (1 + cos(pi * (s - 2) / 4)) / 2; then min_lr.
  const std::vector<double> expected = {0.5, 1.0, 1.0, 0.86819805, 0.55, 0.23180195, 0.1, 0.1};
  for (size_t s = 0; s < expected.size(); ++s) {
    INFO("step " << s);
    CHECK(f.opt.lr() == doctest::Approx(expected[s]).epsilon(1e-7));
    sched.on_step();
  }
  sched.on_epoch_end(0.5);  // no effect on a per-step schedule
  CHECK(f.opt.lr() == doctest::Approx(0.1));
  Fixture g;
  WarmupCosine resumed(g.opt, {2, 6, 0.1});
  resumed.load_state_dict(sched.state_dict());
  CHECK(g.opt.lr() == doctest::Approx(0.1));
  CHECK_THROWS_WITH_TEXT(WarmupCosine(f.opt, {5, 3, 0.0}), "total_steps");
}

TEST_CASE("schedulers: step decay") {
  Fixture f;
  StepDecay sched(f.opt, {2, 0.5});
  const std::vector<double> expected = {1.0, 0.5, 0.5, 0.25, 0.25, 0.125};  // after epochs 1..6
  for (size_t e = 0; e < expected.size(); ++e) {
    sched.on_epoch_end(0.0);
    sched.on_step();  // no effect on a per-epoch schedule
    CHECK(f.opt.lr() == doctest::Approx(expected[e]));
  }
  Fixture g;
  StepDecay resumed(g.opt, {2, 0.5});
  resumed.load_state_dict(sched.state_dict());
  CHECK(g.opt.lr() == doctest::Approx(0.125));
}

TEST_CASE("schedulers: factory") {
  Fixture f;
  auto plateau = make_scheduler({{"name", "plateau"}, {"factor", 0.5}, {"patience", 2}}, f.opt);
  CHECK(std::string(plateau->name()) == "plateau");
  auto cosine = make_scheduler({{"name", "cosine"}, {"warmup_steps", 1}}, f.opt, 4);
  CHECK(std::string(cosine->name()) == "cosine");
  CHECK(f.opt.lr() == doctest::Approx(1.0));  // warmup 1 step: step 0 at the full lr
  CHECK(std::string(make_scheduler({{"name", "none"}, {"factor", nullptr}}, f.opt)->name()) ==
        "none");
  auto nulls = make_scheduler({{"name", "plateau"}, {"factor", nullptr}, {"patience", 0}}, f.opt);
  f.opt.set_lr(1.0);
  nulls->on_epoch_end(1.0);
  nulls->on_epoch_end(1.0);  // bad 1 > patience 0: lr * default factor 0.1
  CHECK(f.opt.lr() == doctest::Approx(0.1));
  CHECK_THROWS_WITH_TEXT(make_scheduler({{"name", "cosine"}}, f.opt), "total_steps");
  CHECK_THROWS_WITH_TEXT(make_scheduler({{"name", "onecycle"}}, f.opt), "scheduler.name");
  CHECK_THROWS_WITH_TEXT(make_scheduler({{"name", "plateau"}, {"factr", 0.5}}, f.opt),
                         "scheduler.factr: unknown key");
  CHECK_THROWS_WITH_TEXT(make_scheduler({{"name", "plateau"}, {"factor", 2.0}}, f.opt),
                         "factor must be in (0, 1)");
}
