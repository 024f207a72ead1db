// What the autograd graph keeps alive (autograd/var.h, autograd/recompute.h): only the tensors a
// backward names. A value no backward saves is freed when the forward drops it, a saved one when
// its backward has run; recomputable values are kept as recipes. The Transformer cases state the
// bytes a forward of a small model must keep, term by term, and bound the peak of a forward and
// backward with them, on the CPU (host storage counters) and on the GPU (the caching
// allocator's requested bytes).
#include <memory>

#include "autograd/functions_basic.h"
#include "autograd/functions_nn.h"
#include "autograd/recompute.h"
#include "models/transformer.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

Tensor rnd(const Shape& shape, uint64_t seed, DType dtype = kFloat32) {
  Generator gen(seed);
  return Tensor::uniform(shape, -1.0, 1.0, gen, dtype);
}

// A handle that says whether a value's memory is still held by anyone.
std::weak_ptr<Storage> watch(const Var& v) { return v.value().storage(); }

}  // namespace

TEST_SUITE("autograd") {
  TEST_CASE("memory: a value no backward saves is freed when the forward drops it") {
    Var a(rnd({64}, 1), true), b(rnd({64}, 2), true), c(rnd({64}, 3), true);
    std::weak_ptr<Storage> t_mem;
    Var y;
    {
      Var t = add(a, b);  // add's backward needs no value: the graph keeps none of t
      t_mem = watch(t);
      y = sum(add(t, c));
    }
    CHECK(t_mem.expired());
    y.backward();
    CHECK(a.grad().to_vector<float>() == std::vector<float>(64, 1.0f));
    CHECK(c.grad().to_vector<float>() == std::vector<float>(64, 1.0f));
  }

  TEST_CASE("memory: a saved value lives until its backward has run, or with retain_graph") {
    Var a(rnd({64}, 1), true), c(rnd({64}, 3), true);
    std::weak_ptr<Storage> t_mem;
    Var y;
    {
      Var t = exp(a);
      t_mem = watch(t);
      y = sum(mul(t, c));  // dc = dy * t: mul keeps t (and exp keeps it as its output)
    }
    CHECK_FALSE(t_mem.expired());
    y.backward(Tensor(), /*retain_graph=*/true);
    CHECK_FALSE(t_mem.expired());
    y.backward();
    CHECK(t_mem.expired());  // both backwards have run and dropped what they kept
    // dc = 2 exp(a) after two passes.
    const std::vector<float> ea = exp(Var(a.value())).value().to_vector<float>();
    const std::vector<float> dc = c.grad().to_vector<float>();
    for (size_t i = 0; i < dc.size(); ++i) CHECK(dc[i] == 2 * ea[i]);
  }

  TEST_CASE("memory: each function saves only what its wanted gradients need") {
    Var x(rnd({8, 16}, 1), true), w(rnd({4, 16}, 2), false);
    std::weak_ptr<Storage> s_mem, h_mem;
    Var y;
    {
      Var s = add(x, x);  // requires grad
      Var h = add(x, x);
      s_mem = watch(s);
      h_mem = watch(h);
      // mul(s, const): ds needs the constant, not s. linear(h, const w): dh needs w, not h.
      y = add(sum(mul(s, Var(rnd({8, 16}, 3)))), sum(linear(h, w)));
    }
    CHECK(s_mem.expired());
    CHECK(h_mem.expired());
    y.backward();
    CHECK(x.grad().defined());
  }

  TEST_CASE("memory: a leaf is not kept alive by the graph; hooks run once per backward") {
    Var p(rnd({32}, 1), true);
    int calls = 0;
    p.impl()->post_accumulate_hook = [&calls](VarImpl&) { ++calls; };
    std::weak_ptr<Storage> leaf_mem;
    Var y;
    {
      Var temp(rnd({32}, 2), true);
      leaf_mem = watch(temp);
      y = sum(add(add(p, temp), p));  // p used twice: one accumulator, one hook call
    }
    CHECK(leaf_mem.expired());
    y.backward();
    CHECK(calls == 1);
    CHECK(p.grad().to_vector<float>() == std::vector<float>(32, 2.0f));
  }

  TEST_CASE("recomputable: the consumer keeps the recipe, and the gradients are unchanged") {
    const Tensor xv = rnd({16, 24}, 1), wv = rnd({8, 24}, 2);
    int calls = 0;
    auto f = [&calls](const Var& v) {
      ++calls;
      return gelu_tanh(v);
    };
    // The same graph twice: g kept by linear (plain), or recomputed for linear's dw.
    std::vector<float> dx[2], dw[2];
    for (int recompute = 0; recompute < 2; ++recompute) {
      CAPTURE(recompute);
      Var x(xv, true), w(wv, true);
      std::weak_ptr<Storage> g_mem;
      Var y;
      calls = 0;
      {
        Var g = recompute ? recomputable(f, x) : f(x);
        g_mem = watch(g);
        y = sum(linear(g, w));  // dw needs g
      }
      // Recomputed: linear keeps (gelu, x), and gelu keeps x anyway.
      CHECK(g_mem.expired() == bool(recompute));
      y.backward();
      CHECK(calls == 1 + recompute);  // linear's backward ran gelu again for dw
      dx[recompute] = x.grad().to_vector<float>();
      dw[recompute] = w.grad().to_vector<float>();
    }
    CHECK(dx[1] == dx[0]);
    CHECK(dw[1] == dw[0]);
  }

  TEST_CASE("recomputable: a widening cast keeps its narrower input") {
    Var xb(rnd({64, 32}, 1, kBFloat16), true);
    Var w(rnd({16, 32}, 2), true);
    std::weak_ptr<Storage> wide_mem, narrow_mem;
    Var y;
    {
      Var narrow = mul_scalar(xb, 2.0);  // a bf16 value that no backward keeps as itself
      Var wide = cast(narrow, kFloat32);
      narrow_mem = watch(narrow);
      wide_mem = watch(wide);
      y = sum(linear(wide, w));  // dw needs the float32 input
    }
    CHECK(wide_mem.expired());          // the float32 copy (4 bytes an element) is not kept ...
    CHECK_FALSE(narrow_mem.expired());  // ... its bf16 source (2 bytes) is, and is cast again
    y.backward();
    CHECK(narrow_mem.expired());
    // dw = sum over rows of 2 xb, exactly (bf16 values doubled are exact in float32).
    const Tensor expect = ops::sum(ops::mul_scalar(xb.value().to(kFloat32), 2.0), {0});
    const std::vector<float> dw = w.grad().to_vector<float>(), e = expect.to_vector<float>();
    for (int64_t o = 0; o < 16; ++o) {
      for (int64_t i = 0; i < 32; ++i) CHECK(dw[o * 32 + i] == e[i]);
    }
  }

  TEST_CASE("recomputable: nothing is marked under no-grad") {
    NoGradGuard no_grad;
    Var x(rnd({8}, 1), true);
    Var y = recomputable([](const Var& v) { return gelu_tanh(v); }, x);
    CHECK(y.recipe() == nullptr);
    CHECK(cast(Var(rnd({8}, 2, kBFloat16)), kFloat32).recipe() == nullptr);
  }
}
