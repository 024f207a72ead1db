// Dropout: the Philox mask contract, determinism, keep fraction, scale, backward, gradcheck.
#include <cmath>
#include <vector>

#include "autograd/functions_nn.h"
#include "autograd/gradcheck.h"
#include "base/philox.h"
#include "ops/dropout.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

TEST_SUITE("dropout") {
  TEST_CASE("dropout keeps element i iff philox_uniform_at(seed, stream, i) >= p, scaled 1/(1-p)") {
    Generator gen(1);
    Tensor x = Tensor::uniform({5, 37}, 1.0, 2.0, gen, kFloat64);  // never zero
    const float p = 0.3f;
    const uint64_t seed = 1234, stream = 5;
    std::vector<double> xv = x.to_vector<double>();
    std::vector<double> y = ops::dropout_forward(x, p, seed, stream).to_vector<double>();
    const double scale = 1.0 / (1.0 - double(p));
    int dropped = 0;
    for (size_t i = 0; i < xv.size(); ++i) {
      const bool keep = philox_uniform_at(seed, stream, i) >= p;
      CHECK(y[i] == (keep ? xv[i] * scale : 0.0));
      dropped += keep ? 0 : 1;
    }
    CHECK(dropped > 0);
    CHECK(dropped < int(xv.size()));
    // The mask helper says the same.
    std::vector<float> m = ops::dropout_mask(x.shape(), p, seed, stream).to_vector<float>();
    for (size_t i = 0; i < xv.size(); ++i) CHECK((m[i] == 1.0f) == (y[i] != 0.0));
  }

  TEST_CASE("dropout: same (seed, stream) same mask; another stream or seed another mask") {
    Tensor x = Tensor::ones({1000});
    std::vector<float> a = ops::dropout_forward(x, 0.5f, 42, 0).to_vector<float>();
    CHECK(ops::dropout_forward(x, 0.5f, 42, 0).to_vector<float>() == a);
    std::vector<float> b = ops::dropout_forward(x, 0.5f, 42, 1).to_vector<float>();
    std::vector<float> c = ops::dropout_forward(x, 0.5f, 43, 0).to_vector<float>();
    int differ_b = 0, differ_c = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      differ_b += a[i] != b[i];
      differ_c += a[i] != c[i];
    }
    // Independent masks at p = 0.5 disagree on half the elements: 500 +- 16 (one sigma).
    CHECK(differ_b > 400);
    CHECK(differ_c > 400);
    // The float32 and float64 paths draw the same mask.
    std::vector<double> d = ops::dropout_forward(x.to(kFloat64), 0.5f, 42, 0).to_vector<double>();
    for (size_t i = 0; i < a.size(); ++i) CHECK((d[i] != 0) == (a[i] != 0));
  }

  TEST_CASE("dropout keep fraction is 1 - p within 5 sigma") {
    const int64_t n = 200000;
    for (float p : {0.05f, 0.3f, 0.9f}) {
      CAPTURE(p);
      std::vector<float> m = ops::dropout_mask({n}, p, 7, 3).to_vector<float>();
      double kept = 0;
      for (float v : m) kept += v;
      const double sigma = std::sqrt(double(p) * (1 - p) / double(n));
      CHECK(std::fabs(kept / double(n) - (1 - double(p))) < 5 * sigma);
    }
  }

  TEST_CASE("dropout p = 0 is the identity, p = 1 gives zeros") {
    Generator gen(3);
    Tensor x = Tensor::randn({4, 9}, gen, kFloat32);
    CHECK(testing::max_abs_diff(ops::dropout_forward(x, 0.0f, 1, 2), x) == 0);
    Tensor z = ops::dropout_forward(x, 1.0f, 1, 2);
    CHECK(testing::all_written(z));
    for (float v : z.to_vector<float>()) CHECK(v == 0.0f);
  }

  TEST_CASE("dropout backward regenerates the forward's mask") {
    Generator gen(4);
    Tensor x = Tensor::uniform({3, 50}, 1.0, 2.0, gen, kFloat32);
    Tensor dy = Tensor::uniform({3, 50}, 1.0, 2.0, gen, kFloat32);
    std::vector<float> y = ops::dropout_forward(x, 0.25f, 9, 11).to_vector<float>();
    std::vector<float> dx = ops::dropout_backward(dy, 0.25f, 9, 11).to_vector<float>();
    std::vector<float> dyv = dy.to_vector<float>();
    for (size_t i = 0; i < y.size(); ++i) {
      CHECK((y[i] == 0.0f) == (dx[i] == 0.0f));
      if (dx[i] != 0.0f) CHECK(dx[i] == dyv[i] * (1.0f / 0.75f));
    }
    // Strided dy: the mask follows the logical (row-major) index, not the memory order.
    Tensor dyt = Tensor::uniform({50, 3}, 1.0, 2.0, gen, kFloat32).transpose(0, 1);
    CHECK(testing::max_abs_diff(ops::dropout_backward(dyt, 0.25f, 9, 11),
                                ops::dropout_backward(dyt.contiguous(), 0.25f, 9, 11)) == 0);
  }

  TEST_CASE("dropout autograd: gradcheck and the generator's streams") {
    Generator g(0);
    Tensor x = Tensor::uniform({3, 7}, -1.0, 1.0, g, kFloat64);
    gradcheck([](const std::vector<Var>& v) { return dropout(v[0], 0.4f, 77, 2); }, {x});

    Generator gen(99);
    Var xv(Tensor::ones({64}), true);
    Var eval = dropout(xv, 0.5f, false, gen);
    CHECK(eval.same_as(xv));
    CHECK(gen.offset() == 0);  // eval mode consumes no stream
    Var a = dropout(xv, 0.5f, true, gen);
    Var b = dropout(xv, 0.5f, true, gen);
    CHECK(gen.offset() == 2);
    CHECK(a.value().to_vector<float>() ==
          ops::dropout_forward(xv.value(), 0.5f, 99, 0).to_vector<float>());
    CHECK(b.value().to_vector<float>() ==
          ops::dropout_forward(xv.value(), 0.5f, 99, 1).to_vector<float>());
  }

  TEST_CASE("generator: device streams number a captured step's draws from 0") {
    // What a CUDA graph's capture sees (training/step_graph.h): relative stream ids and the
    // device base, then the offset of before, which each replay advances by the draws.
    Generator gen(5);
    gen.set_state(5, 40);
    const uint64_t base = 0;  // stands for device memory: the generator only hands it out
    gen.begin_device_streams(&base);
    CHECK(gen.device_base() == &base);
    CHECK(gen.next_stream() == 0);
    CHECK(gen.next_stream() == 1);
    CHECK_THROWS_WITH_TEXT(gen.begin_device_streams(&base), "already recording device streams");
    CHECK(gen.end_device_streams() == 2);
    CHECK(gen.device_base() == nullptr);
    CHECK(gen.offset() == 40);
    gen.advance(2);
    CHECK(gen.next_stream() == 42);
    CHECK_THROWS_WITH_TEXT(gen.begin_device_streams(nullptr), "the base is null");
  }

  TEST_CASE("dropout errors") {
    CHECK_THROWS_WITH_TEXT(ops::dropout_forward(Tensor::ones({2}), -0.1f, 0, 0),
                           "dropout_forward: p must be in [0, 1], got -0.1");
    CHECK_THROWS_WITH_TEXT(ops::dropout_backward(Tensor::ones({2}), 1.5f, 0, 0),
                           "dropout_backward: p must be in [0, 1]");
    CHECK_THROWS_WITH_TEXT(ops::dropout_forward(Tensor::ones({2}, kInt32), 0.1f, 0, 0),
                           "expected a floating tensor, got int32[2] cpu");
  }

  CUDA_TEST_CASE("cuda: dropout draws exactly the CPU's mask") {
    testing::PoisonAllocations poison;
    for (int64_t n : {1, 3, 4, 1001, 65537}) {
      for (float p : {0.0f, 0.1f, 0.5f, 1.0f}) {
        const Tensor x = testing::random_uniform({n}, 40).to(kFloat32);
        const Tensor cpu = ops::dropout_forward(x, p, 1234, 5);
        const Tensor gpu = ops::dropout_forward(x.cuda(), p, 1234, 5);
        CHECK(gpu.cpu().to_vector<float>() == cpu.to_vector<float>());
        const Tensor gb = ops::dropout_backward(x.cuda(), p, 1234, 5);
        CHECK(gb.cpu().to_vector<float>() ==
              ops::dropout_backward(x, p, 1234, 5).to_vector<float>());
      }
    }
    const Tensor xb = testing::random_uniform({3, 333}, 41).to(kBFloat16);
    CHECK(ops::dropout_forward(xb.cuda(), 0.3f, 9, 2).cpu().to_vector<double>() ==
          ops::dropout_forward(xb, 0.3f, 9, 2).to_vector<double>());
  }
}  // TEST_SUITE
