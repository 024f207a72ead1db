// The autograd engine (accumulation, upstream gradients, no-grad, detach, zero_grad, graph
// freeing), gradcheck itself (it must catch a wrong backward), and gradchecks of the view and
// shape functions.
#include "autograd/functions_basic.h"
#include "autograd/gradcheck.h"
#include "ops/elementwise.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& s) {
  return Tensor::from_doubles(v, s, kFloat64);
}

Tensor rnd(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return Tensor::uniform(shape, -1.0, 1.0, gen, kFloat64);
}

// y = 2 x with a deliberately wrong backward (dx = 3 dy at element 1): gradcheck must see it.
Var broken_double(const Var& x) {
  return make_result(ops::mul_scalar(x.value(), 2.0), {x}, "broken_double", [](const Tensor& dy) {
    const Tensor wrong = Tensor::from_doubles({2, 3, 2}, {3}, kFloat64);
    return std::vector<Tensor>{ops::mul(dy, wrong)};
  });
}

}  // namespace

TEST_SUITE("autograd") {
  TEST_CASE("a Var used several times accumulates every path") {
    Var x(f64({1, 2, 3}, {3}), true);
    // y = sum(x * x + 3 x)  =>  dy/dx = 2x + 3
    Var y = sum(x * x + x * 3.0);
    CHECK(y.item() == 1 + 4 + 9 + 18);
    y.backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{5, 7, 9});
    // A second graph adds onto the leaf's gradient (as PyTorch's .grad).
    sum(x).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{6, 8, 10});
  }

  TEST_CASE("backward with a given upstream gradient") {
    Var x(f64({1, -2, 3}, {3}), true);
    Var y = x * x;  // dy/dx = 2x, times the upstream g
    y.backward(f64({1, 10, 100}, {3}));
    CHECK(x.grad().to_vector<double>() == std::vector<double>{2, -40, 600});
    Var z = x * 2.0;
    CHECK_THROWS_WITH_TEXT(z.backward(), "non-scalar");
    CHECK_THROWS_WITH_TEXT(z.backward(f64({1, 2}, {2})), "does not match");
  }

  TEST_CASE("no-grad guard records nothing; detach cuts the graph") {
    Var x(f64({2, 3}, {2}), true);
    {
      NoGradGuard guard;
      CHECK_FALSE(grad_enabled());
      Var y = x * x;
      CHECK_FALSE(y.requires_grad());
      CHECK(y.is_leaf());
    }
    CHECK(grad_enabled());
    // y = x * detach(x): only the first factor is differentiated, so dy/dx = x (not 2x).
    Var d = x.detach();
    CHECK_FALSE(d.requires_grad());
    sum(x * d).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 3});
  }

  TEST_CASE("zero_grad forgets the gradient") {
    Var x(f64({1, 2}, {2}), true);
    sum(x * 5.0).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{5, 5});
    x.zero_grad();
    CHECK_FALSE(x.grad().defined());
    sum(x * 2.0).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 2});
  }

  TEST_CASE("the graph is freed after backward unless retain_graph") {
    Var x(f64({1, 2}, {2}), true);
    Var y = sum(exp(x));
    y.backward(Tensor(), true);
    y.backward();  // allowed: the first call kept the graph
    const double e1 = std::exp(1.0), e2 = std::exp(2.0);
    CHECK(x.grad().to_vector<double>()[0] == doctest::Approx(2 * e1).epsilon(1e-15));
    CHECK(x.grad().to_vector<double>()[1] == doctest::Approx(2 * e2).epsilon(1e-15));
    CHECK_THROWS_WITH_TEXT(y.backward(), "already freed");
  }

  TEST_CASE("gradcheck catches a wrong backward and names the element") {
    const Tensor x = rnd({3}, 1);
    CHECK_THROWS_WITH_TEXT(
        gradcheck([](const std::vector<Var>& v) { return broken_double(v[0]); }, {x}), "input 0");
    CHECK_THROWS_WITH_TEXT(
        gradcheck([](const std::vector<Var>& v) { return broken_double(v[0]); }, {x}),
        "element [1]");
    GradcheckOptions quiet;
    quiet.throw_on_failure = false;
    const GradcheckResult r =
        gradcheck([](const std::vector<Var>& v) { return broken_double(v[0]); }, {x}, quiet);
    CHECK_FALSE(r.passed);
    CHECK(r.max_abs_error > 0.4);  // |3 - 2| times an upstream weight in [0.5, 1.5)
    // A correct function passes with central-difference error far below the tolerance.
    const GradcheckResult ok = gradcheck([](const std::vector<Var>& v) { return v[0] * 2.0; }, {x});
    CHECK(ok.passed);
    CHECK(ok.max_abs_error < 1e-8);
    CHECK_THROWS_WITH_TEXT(
        gradcheck([](const std::vector<Var>& v) { return v[0]; }, {x.to(kFloat32)}),
        "must be a float64 CPU tensor");
  }

  TEST_CASE("gradcheck: views and shape functions") {
    const Tensor x = rnd({2, 3, 4}, 2);
    gradcheck([](const std::vector<Var>& v) { return reshape(v[0], {4, 6}); }, {x});
    gradcheck([](const std::vector<Var>& v) { return view(v[0], {6, -1}); }, {x});
    gradcheck([](const std::vector<Var>& v) { return permute(v[0], {2, 0, 1}); }, {x});
    gradcheck([](const std::vector<Var>& v) { return transpose(v[0], 0, 2); }, {x});
    gradcheck([](const std::vector<Var>& v) { return narrow(v[0], 2, 1, 2); }, {x});
    gradcheck([](const std::vector<Var>& v) { return slice(v[0], 2, 0, 4, 2); }, {x});
    gradcheck([](const std::vector<Var>& v) { return select(v[0], 1, 2); }, {x});
    gradcheck([](const std::vector<Var>& v) { return squeeze(unsqueeze(v[0], 1), 1); }, {x});
    gradcheck([](const std::vector<Var>& v) { return expand(v[0], {2, 3, 4}); }, {rnd({3, 1}, 3)});
    // A view of a view, then math on it: strides flow through backward too.
    gradcheck([](const std::vector<Var>& v) { return exp(transpose(narrow(v[0], 1, 1, 2), 0, 1)); },
              {x});
  }

  TEST_CASE("gradcheck: concat, split and chunk") {
    const Tensor a = rnd({2, 3}, 4), b = rnd({2, 1}, 5), c = rnd({2, 2}, 6);
    gradcheck([](const std::vector<Var>& v) { return concat({v[0], v[1], v[2]}, 1); }, {a, b, c});
    gradcheck([](const std::vector<Var>& v) { return concat({v[0], v[0]}, 0); }, {a});
    // Only some pieces used: the unused ones contribute nothing.
    gradcheck(
        [](const std::vector<Var>& v) {
          const std::vector<Var> p = split(v[0], {1, 3, 1}, -1);
          return mul(p[0], p[2]);
        },
        {rnd({3, 5}, 7)});
    gradcheck(
        [](const std::vector<Var>& v) {
          const std::vector<Var> q = chunk(v[0], 3, 0);  // sizes 3, 3, 1
          CHECK(q.size() == 3);
          return add(sum(q[1]), mul(q[2], q[2]));
        },
        {rnd({7, 2}, 8)});
    // Known values: split pieces scatter their gradient into the right columns.
    Var x(f64({1, 2, 3, 4}, {1, 4}), true);
    std::vector<Var> p = split(x, {2, 2}, 1);
    sum(p[1] * 10.0).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0, 10, 10});
  }

  TEST_CASE("cast sends the gradient back in the input's dtype") {
    Var x(Tensor::from_doubles({1.5, -2}, {2}, kFloat32), true);
    Var y = cast(x, kFloat64);
    CHECK(y.dtype() == kFloat64);
    (y * y).backward(f64({1, 1}, {2}));
    CHECK(x.grad().dtype() == kFloat32);
    CHECK(x.grad().to_vector<float>() == std::vector<float>{3.0f, -4.0f});
    const Var h = cast(x, kBFloat16);
    CHECK(h.dtype() == kBFloat16);
    CHECK(h.value().to_vector<float>() == std::vector<float>{1.5f, -2.0f});
  }

}  // TEST_SUITE
