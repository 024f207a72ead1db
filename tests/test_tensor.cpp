// Tensor: layouts, views, copies across dtypes and devices, factories, RNG, printing, errors.
#include <cmath>
#include <limits>

#include "base/philox.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace mt;

namespace {
Tensor iota(const Shape& shape, DType dtype = kFloat32) {
  return Tensor::arange(0, static_cast<double>(shape_numel(shape)), 1, dtype).view(shape);
}
}  // namespace

TEST_SUITE("tensor") {
  TEST_CASE("empty, strides, numel and describe") {
    Tensor t = Tensor::empty({2, 3, 4});
    CHECK(t.numel() == 24);
    CHECK(t.strides() == Shape{12, 4, 1});
    CHECK(t.is_contiguous());
    CHECK(t.describe() == "float32[2, 3, 4] cpu");
    CHECK(Tensor::scalar(2.5).dim() == 0);
    CHECK(Tensor::scalar(2.5).item() == 2.5);
    CHECK(Tensor::empty({0, 5}).numel() == 0);
  }

  TEST_CASE("factories give the expected values") {
    CHECK(Tensor::full({2, 2}, 3.5).to_vector<float>() ==
          std::vector<float>{3.5f, 3.5f, 3.5f, 3.5f});
    CHECK(Tensor::arange(1, 2, 0.25, kFloat64).to_vector<double>() ==
          std::vector<double>{1.0, 1.25, 1.5, 1.75});
    CHECK(Tensor::arange(5, 0, -2, kInt64).to_vector<int64_t>() == std::vector<int64_t>{5, 3, 1});
    CHECK(Tensor::zeros({3}, kInt32).to_vector<int32_t>() == std::vector<int32_t>{0, 0, 0});
  }

  TEST_CASE("views share storage: view, permute, transpose, narrow, slice, select, expand") {
    Tensor t = iota({2, 3, 4});
    Tensor p = t.permute({2, 0, 1});
    CHECK(p.shape() == Shape{4, 2, 3});
    CHECK(p.storage().get() == t.storage().get());
    CHECK_FALSE(p.is_contiguous());
    // p[i][j][k] = t[j][k][i] = 12 j + 4 k + i
    std::vector<float> pv = p.contiguous().to_vector<float>();
    CHECK(pv[1 * 6 + 1 * 3 + 2] == 12 * 1 + 4 * 2 + 1);

    Tensor tr = t.transpose(0, 2);  // [4, 3, 2]
    CHECK(tr.contiguous().to_vector<float>()[3 * 6 + 2 * 2 + 1] == 12 * 1 + 4 * 2 + 3);

    Tensor n = t.narrow(2, 1, 2);  // [2, 3, 2]: columns 1 and 2
    CHECK(n.contiguous().to_vector<float>() ==
          std::vector<float>{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22});

    Tensor s = iota({10}).slice(0, 1, -1, 3);  // 1, 4, 7
    CHECK(s.to_vector<float>() == std::vector<float>{1, 4, 7});

    Tensor sel = t.select(1, 2);  // [2, 4]
    CHECK(sel.to_vector<float>() == std::vector<float>{8, 9, 10, 11, 20, 21, 22, 23});

    Tensor e = iota({3, 1}).expand({2, 3, 4});
    CHECK(e.strides() == Shape{0, 1, 0});
    std::vector<float> ev = e.contiguous().to_vector<float>();
    CHECK(ev[1 * 12 + 2 * 4 + 3] == 2);

    Tensor u = t.unsqueeze(1);
    CHECK(u.shape() == Shape{2, 1, 3, 4});
    CHECK(u.squeeze(1).shape() == Shape{2, 3, 4});
    CHECK(t.reshape({6, -1}).shape() == Shape{6, 4});
  }

  TEST_CASE("writes through a view reach the base tensor") {
    Tensor t = Tensor::zeros({3, 4});
    t.narrow(1, 1, 2).fill_(7);
    t.select(0, 2).copy_(Tensor::from_vector<float>({1, 2, 3, 4}, {4}));
    CHECK(t.to_vector<float>() == std::vector<float>{0, 7, 7, 0, 0, 7, 7, 0, 1, 2, 3, 4});
  }

  TEST_CASE("reshape of a non-contiguous tensor copies; view refuses") {
    Tensor t = iota({3, 4}).transpose(0, 1);
    CHECK_THROWS_WITH_TEXT(t.view({12}), "not contiguous");
    Tensor r = t.reshape({12});
    CHECK(r.storage().get() != t.storage().get());
    CHECK(r.to_vector<float>() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  }

  TEST_CASE("copy_ broadcasts and converts dtypes") {
    Tensor dst = Tensor::empty({2, 3}, kFloat64);
    dst.copy_(Tensor::from_vector<int32_t>({1, 2, 3}, {3}));
    CHECK(dst.to_vector<double>() == std::vector<double>{1, 2, 3, 1, 2, 3});
    Tensor i = Tensor::from_vector<float>({1.75f, -2.5f}, {2}).to(kInt64);
    CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, -2});  // truncation, as C++ and torch
  }

  TEST_CASE("bf16 rounds to nearest even, and NaN and infinities survive") {
    // 1 + 2^-8 lies exactly between two bf16 values (1 and 1 + 2^-7): ties go to the even one, 1.
    CHECK(round_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 1.0f);
    // 1 + 3 * 2^-8 lies between 1 + 2^-7 and 1 + 2^-6 (odd mantissa 1): rounds up to 1 + 2^-6.
    CHECK(round_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 1.0f + std::ldexp(1.0f, -6));
    CHECK(round_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) ==
          1.0f + std::ldexp(1.0f, -7));
    CHECK(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
    CHECK(round_to_bf16(std::numeric_limits<float>::infinity()) ==
          std::numeric_limits<float>::infinity());
    Tensor t = Tensor::from_vector<float>({3.14159f, -1e-3f}, {2}).to(kBFloat16).to(kFloat32);
    CHECK(t.to_vector<float>()[0] == 3.140625f);
  }

  TEST_CASE("Philox matches the published known-answer vector") {
    // Random123's kat_vectors for philox4x32-10, counter = key = 0.
    Philox4 r = philox4x32(0, 0, 0);
    CHECK(r.v[0] == 0x6627e8d5u);
    CHECK(r.v[1] == 0xe169c58du);
    CHECK(r.v[2] == 0xbc57ac4cu);
    CHECK(r.v[3] == 0x9b00dbd8u);
    // The same file's counter {243f6a88, 85a308d3, 13198a2e, 03707344}, key {a4093822, 299f31d0}.
    Philox4 pi = philox4x32(0x299f31d0a4093822ull, 0x85a308d3243f6a88ull, 0x0370734413198a2eull);
    CHECK(pi.v[0] == 0xd16cfe09u);
    CHECK(pi.v[1] == 0x94fdccebu);
    CHECK(pi.v[2] == 0x5001e420u);
    CHECK(pi.v[3] == 0x24126ea1u);
  }

  TEST_CASE("random tensors depend only on the seed and offset") {
    Generator g1(42), g2(42), g3(43);
    Tensor a = Tensor::randn({1000}, g1), b = Tensor::randn({1000}, g2),
           c = Tensor::randn({1000}, g3);
    CHECK(a.to_vector<float>() == b.to_vector<float>());
    CHECK(a.to_vector<float>() != c.to_vector<float>());
    CHECK(g1.offset() == 1);
    Tensor a2 = Tensor::randn({1000}, g1);  // the next draw is a different stream
    CHECK(a2.to_vector<float>() != a.to_vector<float>());
    // Moments of 1000 standard normals: mean within 4 sigma (4/sqrt(1000) ~ 0.13), var near 1.
    std::vector<double> v = a.to_vector<double>();
    double mean = 0, var = 0;
    for (double x : v) mean += x / v.size();
    for (double x : v) var += (x - mean) * (x - mean) / (v.size() - 1);
    CHECK(std::fabs(mean) < 0.13);
    CHECK(var == doctest::Approx(1.0).epsilon(0.15));
    Generator g4(7);
    std::vector<float> u = Tensor::uniform({4000}, -2, 3, g4).to_vector<float>();
    for (float x : u) CHECK((x >= -2 && x < 3));
  }

  TEST_CASE("printing") {
    CHECK(Tensor::from_vector<float>({1, 2.5f, -3, 4}, {2, 2}).to_string() ==
          "tensor([[1.0000, 2.5000],\n [-3.0000, 4.0000]], dtype=float32, device=cpu)");
    CHECK(fmt::format("{}", Tensor::from_vector<int64_t>({7}, {1})) ==
          "tensor([7], dtype=int64, device=cpu)");
    std::string longer = Tensor::arange(0, 2000).to_string();
    CHECK(longer.find("0.0000, 1.0000, 2.0000, ..., 1997.0000") != std::string::npos);
  }

  TEST_CASE("errors name the shapes and dtypes") {
    Tensor t = Tensor::empty({2, 3});
    CHECK_THROWS_WITH_TEXT(t.view({4, 2}), "shape [4, 2] is invalid for a tensor of 6 elements");
    CHECK_THROWS_WITH_TEXT(t.narrow(1, 2, 2), "out of range for dim 1 of float32[2, 3] cpu");
    CHECK_THROWS_WITH_TEXT(t.permute({0, 0}), "repeated");
    CHECK_THROWS_WITH_TEXT(t.expand({4, 3}), "cannot expand float32[2, 3] cpu to [4, 3]");
    CHECK_THROWS_WITH_TEXT(t.item(), "expected a one-element tensor");
    CHECK_THROWS_WITH_TEXT(t.data<double>(), "data<float64>(): the tensor is float32[2, 3] cpu");
    CHECK_THROWS_WITH_TEXT(broadcast_shapes({2, 3}, {4, 3}, "add"),
                           "add: shapes [2, 3] and [4, 3] cannot be broadcast together");
    CHECK(broadcast_shapes({5, 1, 3}, {4, 1}, "add") == Shape{5, 4, 3});
    CHECK_THROWS_WITH_TEXT(Device::parse("gpu"), "expected 'cpu', 'cuda'");
    CHECK_THROWS_WITH_TEXT(Tensor::from_vector<float>({1, 2}, {3}), "2 values for shape [3]");
  }

}  // TEST_SUITE("tensor")

TEST_SUITE("cuda") {
  CUDA_TEST_CASE("cuda: tensors round-trip between devices, dtypes and layouts") {
    Generator gen(3);
    Tensor host = Tensor::randn({5, 7, 3}, gen);
    Tensor dev = host.cuda();
    CHECK(dev.is_cuda());
    CHECK(dev.cpu().to_vector<float>() == host.to_vector<float>());
    // Strided views on the device, made dense on the device.
    Tensor permuted = dev.permute({2, 0, 1}).contiguous();
    CHECK(permuted.cpu().to_vector<float>() ==
          host.permute({2, 0, 1}).contiguous().to_vector<float>());
    // bf16 casts on the GPU give the CPU's bits.
    CHECK(dev.to(kBFloat16).cpu().to_vector<float>() == host.to(kBFloat16).to_vector<float>());
    // Broadcast copies and fills through views.
    Tensor target = Tensor::empty({4, 5, 7, 3}, kFloat64, Device::cuda());
    testing::poison(target);
    target.copy_(dev);
    CHECK(testing::all_written(target));
    CHECK(target.select(0, 3).to(kFloat32).cpu().to_vector<float>() == host.to_vector<float>());
    target.narrow(1, 1, 2).fill_(-1.5);
    CHECK(target.select(1, 2).cpu().to_vector<double>() == std::vector<double>(4 * 7 * 3, -1.5));
    // Randoms are generated from the same stream whatever the device.
    Generator g1(11), g2(11);
    CHECK(Tensor::randn({257}, g1, kFloat32, Device::cuda()).cpu().to_vector<float>() ==
          Tensor::randn({257}, g2).to_vector<float>());
  }

}  // TEST_SUITE("cuda")
