// A real learning test: a 1 -> 16 -> 1 tanh MLP fits y = sin(x) on [-3, 3] with plain full-batch
// SGD built from the basic autograd functions only (linear, tanh, sub, mul, mean). If any
// forward or backward in the chain is wrong, the loss does not fall this far.
#include <cmath>

#include "autograd/functions_basic.h"
#include "ops/elementwise.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

TEST_SUITE("autograd") {
  TEST_CASE("a tiny tanh MLP learns sin(x) with SGD") {
    constexpr int64_t kN = 64, kHidden = 16;
    constexpr int kSteps = 600;
    constexpr double kLr = 0.2;
    const Tensor x = Tensor::arange(0, kN, 1, kFloat32).view({kN, 1});
    const Tensor xs = ops::add_scalar(ops::mul_scalar(x, 6.0 / (kN - 1)), -3.0);  // [-3, 3]
    const Var inputs(xs);
    std::vector<float> t = xs.to_vector<float>();
    for (float& v : t) v = std::sin(v);
    const Var y(Tensor::from_vector(t, {kN, 1}));

    // Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) as torch.nn.Linear, from a fixed seed.
    Generator gen(42);
    Var w1(Tensor::uniform({kHidden, 1}, -1.0, 1.0, gen), true);
    Var b1(Tensor::uniform({kHidden}, -1.0, 1.0, gen), true);
    Var w2(Tensor::uniform({1, kHidden}, -0.25, 0.25, gen), true);
    Var b2(Tensor::uniform({1}, -0.25, 0.25, gen), true);
    std::vector<Var> params = {w1, b1, w2, b2};

    double first_loss = 0, loss_value = 0;
    for (int step = 0; step < kSteps; ++step) {
      const Var h = tanh(linear(inputs, w1, b1));
      const Var err = linear(h, w2, b2) - y;
      const Var loss = mean(err * err);
      loss_value = loss.item();
      if (step == 0) first_loss = loss_value;
      for (Var& p : params) p.zero_grad();
      loss.backward();
      NoGradGuard no_grad;
      for (Var& p : params) {
        p.mutable_value().copy_(ops::sub(p.value(), ops::mul_scalar(p.grad(), kLr)));
      }
    }
    INFO("loss " << first_loss << " -> " << loss_value);
    CHECK(first_loss > 0.2);   // sin has variance ~0.5 on [-3, 3]: an unfit net starts high
    CHECK(loss_value < 0.01);  // a fitted 16-unit net gets well below this
    CHECK(loss_value < first_loss / 30);
  }

}  // TEST_SUITE
