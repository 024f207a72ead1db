// matmul / bmm / linear against a float64 triple loop over awkward shapes (1, primes, sizes that
// cross the GEMM's MR/NR/MC/KC/NC block edges), transposed operands, broadcast batches, bf16,
// error paths, and float64 gradchecks.
#include <cmath>

#include "autograd/functions_basic.h"
#include "autograd/gradcheck.h"
#include "cuda/debug.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

Tensor rnd(const Shape& shape, uint64_t seed, DType dtype = kFloat64) {
  Generator gen(seed);
  return Tensor::uniform(shape, -1.0, 1.0, gen, dtype);
}

// C = A . B for 2-D tensors by the textbook triple loop in float64.
Tensor matmul_ref(const Tensor& a, const Tensor& b) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  const std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  std::vector<double> c(M * N, 0.0);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t j = 0; j < N; ++j) c[i * N + j] += av[i * K + k] * bv[k * N + j];
    }
  }
  return Tensor::from_doubles(c, {M, N}, kFloat64);
}

}  // namespace

TEST_SUITE("matmul") {
  TEST_CASE("matmul known values") {
    const Tensor a = Tensor::from_doubles({1, 2, 3, 4, 5, 6}, {2, 3}, kFloat64);
    const Tensor b = Tensor::from_doubles({7, 8, 9, 10, 11, 12}, {3, 2}, kFloat64);
    CHECK(ops::matmul(a, b).to_vector<double>() == std::vector<double>{58, 64, 139, 154});
    // 1-D operands: a row vector on the left, a column on the right, their dim dropped.
    const Tensor v = Tensor::from_doubles({1, -1}, {2}, kFloat64);
    CHECK(ops::matmul(v, a).to_vector<double>() == std::vector<double>{-3, -3, -3});
    CHECK(ops::matmul(b, v).to_vector<double>() == std::vector<double>{-1, -1, -1});
    CHECK(ops::matmul(v, v).dim() == 0);
    CHECK(ops::matmul(v, v).item() == 2);
  }

  TEST_CASE("matmul float32 and float64 over awkward shapes match a float64 loop") {
    struct Case {
      int64_t M, K, N;
    };
    // 1; primes; 7 and 13 around MR = 6; 130 > MC = 120; K = 300 > KC = 256; N = 2100 > NC.
    const Case cases[] = {{1, 1, 1},      {1, 17, 5},   {7, 1, 13},  {13, 31, 37},
                          {130, 300, 70}, {7, 3, 2100}, {6, 256, 32}};
    uint64_t seed = 10;
    for (const Case& c : cases) {
      INFO("M=" << c.M << " K=" << c.K << " N=" << c.N);
      const Tensor a = rnd({c.M, c.K}, seed++), b = rnd({c.K, c.N}, seed++);
      const Tensor ref = matmul_ref(a, b);
      CHECK(testing::max_abs_diff(ops::matmul(a, b), ref) < 1e-12 * c.K);
      // float32: error of K products of magnitude <= 1 is about sqrt(K) * 6e-8.
      const Tensor c32 = ops::matmul(a.to(kFloat32), b.to(kFloat32));
      CHECK(c32.dtype() == kFloat32);
      CHECK(testing::max_abs_diff(c32, ref) < 1e-6 * std::sqrt(double(c.K)) + 1e-6);
    }
  }

  TEST_CASE("matmul reads transposed and sliced operands through their strides") {
    const Tensor at = rnd({40, 29}, 30);  // a = at^T is [29, 40]
    const Tensor bt = rnd({23, 40}, 31);  // b = bt^T is [40, 23]
    const Tensor ref = matmul_ref(at.transpose(0, 1).contiguous(), bt.transpose(0, 1).contiguous());
    CHECK(testing::max_abs_diff(ops::matmul(at.transpose(0, 1), bt.transpose(0, 1)), ref) < 1e-12);
    // Every other column of a wider matrix: column stride 2.
    const Tensor wide = rnd({5, 18}, 32);
    const Tensor a = wide.slice(1, 0, 18, 2);
    const Tensor b = rnd({9, 4}, 33);
    CHECK(testing::max_abs_diff(ops::matmul(a, b), matmul_ref(a.contiguous(), b)) < 1e-13);
  }

  TEST_CASE("batched matmul broadcasts batch dims; bmm checks them") {
    const Tensor a = rnd({2, 1, 5, 7}, 40);
    const Tensor b = rnd({3, 7, 4}, 41);
    const Tensor c = ops::matmul(a, b);
    CHECK(c.shape() == Shape{2, 3, 5, 4});
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 3; ++j) {
        const Tensor ref =
            matmul_ref(a.select(0, i).select(0, 0).contiguous(), b.select(0, j).contiguous());
        CHECK(testing::max_abs_diff(c.select(0, i).select(0, j), ref) < 1e-13);
      }
    }
    // Many small products take the one-product-per-thread path: same answers.
    const Tensor x = rnd({64, 9, 8}, 42), y = rnd({64, 8, 3}, 43);
    const Tensor z = ops::bmm(x, y);
    CHECK(testing::max_abs_diff(z.select(0, 37), matmul_ref(x.select(0, 37).contiguous(),
                                                            y.select(0, 37).contiguous())) < 1e-13);
    CHECK_THROWS_WITH_TEXT(ops::bmm(x, rnd({63, 8, 3}, 44)), "[63, 8, 3]");
    CHECK_THROWS_WITH_TEXT(ops::bmm(x.select(0, 0), y.select(0, 0)), "expected [B, M, K]");
  }

  TEST_CASE("linear = x . w^T + b over [B, T, in]; bf16 accumulates in float") {
    const Tensor x = rnd({2, 3, 5}, 50), w = rnd({4, 5}, 51), b = rnd({4}, 52);
    const Tensor y = ops::linear(x, w, b);
    CHECK(y.shape() == Shape{2, 3, 4});
    const Tensor ref = matmul_ref(x.reshape({6, 5}), w.transpose(0, 1).contiguous());
    const std::vector<double> yv = y.to_vector<double>(), rv = ref.to_vector<double>();
    const std::vector<double> bv = b.to_vector<double>();
    for (int i = 0; i < 24; ++i) CHECK(yv[i] == doctest::Approx(rv[i] + bv[i % 4]).epsilon(1e-14));
    CHECK(testing::max_abs_diff(ops::linear(x, w), ref.reshape({2, 3, 4})) < 1e-14);
    // bf16 inputs: the float32 product of the rounded inputs, rounded once.
    const Tensor xb = rnd({33, 64}, 53, kBFloat16), wb = rnd({17, 64}, 54, kBFloat16);
    const Tensor yb = ops::linear(xb, wb);
    CHECK(yb.dtype() == kBFloat16);
    const Tensor y32 = ops::linear(xb.to(kFloat32), wb.to(kFloat32));
    CHECK(testing::max_abs_diff(yb, y32.to(kBFloat16)) == 0);
  }

  TEST_CASE("matmul and linear errors name the shapes") {
    const Tensor a = rnd({2, 3}, 60);
    CHECK_THROWS_WITH_TEXT(ops::matmul(a, rnd({4, 2}, 61)), "inner dims differ: [2, 3] . [4, 2]");
    CHECK_THROWS_WITH_TEXT(ops::matmul(a, rnd({3, 2}, 62, kFloat32)), "dtype mismatch");
    CHECK_THROWS_WITH_TEXT(ops::matmul(rnd({2, 2, 3}, 63), rnd({3, 3, 2}, 64)), "[2]");
    CHECK_THROWS_WITH_TEXT(ops::linear(a, rnd({4, 5}, 65)),
                           "w [out, in], got x [2, 3] and w [4, 5]");
    CHECK_THROWS_WITH_TEXT(ops::linear(a, rnd({4, 3}, 66), rnd({5}, 67)), "bias [5]");
    CHECK_THROWS_WITH_TEXT(ops::matmul(Tensor::ones({2, 2}, kInt64), Tensor::ones({2, 2}, kInt64)),
                           "floating");
  }

  TEST_CASE("gradcheck: matmul (2-D, 1-D, broadcast batch), bmm, linear") {
    gradcheck([](const std::vector<Var>& v) { return matmul(v[0], v[1]); },
              {rnd({3, 4}, 70), rnd({4, 2}, 71)});
    gradcheck([](const std::vector<Var>& v) { return matmul(v[0], v[1]); },
              {rnd({4}, 72), rnd({4, 3}, 73)});
    gradcheck([](const std::vector<Var>& v) { return matmul(v[0], v[1]); },
              {rnd({2, 3, 4}, 74), rnd({4}, 75)});
    gradcheck([](const std::vector<Var>& v) { return matmul(v[0], v[1]); },
              {rnd({2, 1, 3, 2}, 76), rnd({3, 2, 2}, 77)});
    gradcheck([](const std::vector<Var>& v) { return bmm(v[0], v[1]); },
              {rnd({2, 2, 3}, 78), rnd({2, 3, 2}, 79)});
    gradcheck([](const std::vector<Var>& v) { return linear(v[0], v[1], v[2]); },
              {rnd({2, 3, 4}, 80), rnd({5, 4}, 81), rnd({5}, 82)});
    gradcheck([](const std::vector<Var>& v) { return linear(v[0], v[1]); },
              {rnd({3, 4}, 83), rnd({2, 4}, 84)});
    // x . x^T: the same input on both sides of the product.
    gradcheck([](const std::vector<Var>& v) { return matmul(v[0], transpose(v[0], 0, 1)); },
              {rnd({3, 2}, 85)});
  }

  TEST_CASE("linear_weight_grad: dw = dy^T . x and db = column sums of dy, as matmul and sum") {
    // dy [2, 3] = [[1, 2, 3], [4, 5, 6]], x [2, 2] = [[1, -1], [2, 0.5]]:
    // dw = dy^T . x = [[1 + 8, -1 + 2], [2 + 10, -2 + 2.5], [3 + 12, -3 + 3]]; db = [5, 7, 9].
    const Tensor dy = Tensor::from_doubles({1, 2, 3, 4, 5, 6}, {2, 3}, kFloat64);
    const Tensor x = Tensor::from_doubles({1, -1, 2, 0.5}, {2, 2}, kFloat64);
    Tensor db;
    const Tensor dw = ops::linear_weight_grad(dy, x, &db);
    CHECK(dw.to_vector<double>() == std::vector<double>{9, 1, 12, 0.5, 15, 0});
    CHECK(db.to_vector<double>() == std::vector<double>{5, 7, 9});
    CHECK(ops::linear_weight_grad(dy, x).shape() == Shape{3, 2});
    // Leading dims [2, 3] flatten to 6 rows; float32 and bf16 are exactly the two ops (the CPU
    // backward of linear computes what it did before this function existed).
    for (DType dtype : {kFloat32, kBFloat16}) {
      const Tensor g = rnd({2, 3, 7}, 90, dtype), a = rnd({2, 3, 5}, 91, dtype);
      Tensor db2;
      const Tensor dw2 = ops::linear_weight_grad(g, a, &db2);
      CHECK(testing::max_abs_diff(
                dw2, ops::matmul(g.reshape({6, 7}).transpose(0, 1), a.reshape({6, 5}))) == 0);
      CHECK(testing::max_abs_diff(db2, ops::sum(g.reshape({6, 7}), {0})) == 0);
    }
    CHECK_THROWS_WITH_TEXT(ops::linear_weight_grad(rnd({2, 3}, 92), rnd({3, 3}, 93)),
                           "got dy [2, 3] and x [3, 3]");
  }

  CUDA_TEST_CASE(
      "cuda: linear_weight_grad, dw from a GEMM and db from a column sum, against the CPU") {
    // rows = 1, primes, a large prime; out and in not multiples of 8 or 16.
    const std::vector<std::array<int64_t, 3>> cases = {
        {1, 1, 1}, {1, 13, 5}, {17, 8, 3}, {101, 96, 64}, {1031, 37, 7}, {4099, 256, 64}};
    auto dw_op = [](auto& t) { return ops::linear_weight_grad(t[0], t[1]); };
    auto db_op = [](auto& t) {
      Tensor db;
      ops::linear_weight_grad(t[0], t[1], &db);
      return db;
    };
    auto dw_with_db_op = [](auto& t) {
      Tensor db;
      return ops::linear_weight_grad(t[0], t[1], &db);
    };
    uint64_t seed = 700;
    for (const auto& [rows, out, in] : cases) {
      INFO("rows=" << rows << " out=" << out << " in=" << in);
      const std::vector<Tensor> t = {testing::random_uniform({rows, out}, seed++),
                                     testing::random_uniform({rows, in}, seed++)};
      testing::check_cuda_vs_cpu_float_types(dw_op, t, "dw alone");
      testing::check_cuda_vs_cpu_float_types(dw_with_db_op, t, "dw with db");
      testing::check_cuda_vs_cpu_float_types(db_op, t, "db");
    }
  }

  CUDA_TEST_CASE("cuda: a GEMM asks cuBLASLt's heuristic once, then reuses its plan") {
    // Sizes no other test uses, so the first call is the first of its problem.
    const Tensor x = testing::random_uniform({211, 89}, 810).to(kBFloat16).cuda();
    const Tensor w = testing::random_uniform({97, 89}, 811).to(kBFloat16).cuda();
    const Tensor b = testing::random_uniform({97}, 812).to(kBFloat16).cuda();
    const int64_t before = cuda::gemm_heuristic_queries();
    const Tensor first = ops::linear(x, w, b);
    CHECK(cuda::gemm_heuristic_queries() == before + 1);
    Tensor db_first;
    const Tensor dw_first = ops::linear_weight_grad(first, x, &db_first);
    const int64_t after_first = cuda::gemm_heuristic_queries();
    for (int i = 0; i < 5; ++i) {
      // The same problems again, in freshly allocated tensors: plans, not pointers, are kept.
      const Tensor y = ops::linear(x.contiguous().clone(), w, b);
      Tensor db;
      const Tensor dw = ops::linear_weight_grad(y, x, &db);
      CHECK(testing::max_abs_diff(y.cpu(), first.cpu()) == 0);  // the same algorithm
      CHECK(testing::max_abs_diff(dw.cpu(), dw_first.cpu()) == 0);
      CHECK(testing::max_abs_diff(db.cpu(), db_first.cpu()) == 0);
    }
    CHECK(cuda::gemm_heuristic_queries() == after_first);
    // Another problem (one more row): its own plan, asked for once. (A strided view would not
    // do: ops::linear makes a non-contiguous input contiguous before the GEMM sees it.)
    const Tensor x_more = testing::random_uniform({212, 89}, 813).to(kBFloat16).cuda();
    ops::linear(x_more, w, b);
    CHECK(cuda::gemm_heuristic_queries() == after_first + 1);
    ops::linear(x_more, w, b);
    CHECK(cuda::gemm_heuristic_queries() == after_first + 1);
  }

  CUDA_TEST_CASE("cuda: matmul, bmm and linear through cuBLASLt") {
    const std::vector<std::array<int64_t, 3>> mnk = {{1, 1, 1}, {37, 53, 29}, {128, 64, 256}};
    for (const auto& [M, N, K] : mnk) {
      const Tensor a = testing::random_uniform({M, K}, 80), b = testing::random_uniform({K, N}, 81),
                   bt = testing::random_uniform({N, K}, 82);
      testing::check_cuda_vs_cpu_float_types([](auto& t) { return ops::matmul(t[0], t[1]); },
                                             {a, b}, "matmul");
      testing::check_cuda_vs_cpu_float_types(
          [](auto& t) { return ops::matmul(t[0], t[1].transpose(0, 1)); }, {a, bt},
          "matmul by a transposed view");
      const Tensor bias = testing::random_uniform({N}, 83);
      testing::check_cuda_vs_cpu_float_types([](auto& t) { return ops::linear(t[0], t[1], t[2]); },
                                             {a, bt, bias}, "linear with bias");
    }
    // Batched with broadcasting: [3, 1, 17, 19] . [4, 19, 23] -> [3, 4, 17, 23].
    testing::check_cuda_vs_cpu_float_types(
        [](auto& t) { return ops::matmul(t[0], t[1]); },
        {testing::random_uniform({3, 1, 17, 19}, 84), testing::random_uniform({4, 19, 23}, 85)},
        "broadcast matmul");
    testing::check_cuda_vs_cpu_float_types(
        [](auto& t) { return ops::bmm(t[0], t[1].transpose(1, 2)); },
        {testing::random_uniform({5, 33, 40}, 86), testing::random_uniform({5, 24, 40}, 87)},
        "bmm, transposed b");
    testing::check_cuda_vs_cpu_float_types(
        [](auto& t) { return ops::linear(t[0], t[1]); },
        {testing::random_uniform({2, 9, 48}, 88), testing::random_uniform({96, 48}, 89)},
        "linear, 3-d x, no bias");
  }
}  // TEST_SUITE
