// convert_many_: known bf16 roundings, agreement with Tensor::to pair by pair, errors, and the
// GPU's multi-tensor kernel against the CPU (bit for bit: a conversion has one right answer).
#include <vector>

#include "ops/convert_many.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

// float32 values whose bf16 rounding is known: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 and
// goes to the even 1; 1 + 3 * 2^-8 is a tie that goes up to 1 + 2^-6 (even); 1 + 2^-8 + 2^-20
// is past the tie and goes up; -2.5 is exact.
const std::vector<float> kValues = {1.00390625f, 1.01171875f, 1.0039072036743164f, -2.5f};
const std::vector<double> kRounded = {1.0, 1.015625, 1.0078125, -2.5};

std::vector<Tensor> random_list(const std::vector<int64_t>& sizes, DType dtype, uint64_t seed) {
  Generator gen(seed);
  std::vector<Tensor> out;
  for (int64_t n : sizes) out.push_back(Tensor::randn({n}, gen, kFloat32).to(dtype));
  return out;
}

std::vector<Tensor> empty_like(const std::vector<Tensor>& xs, DType dtype, Device device) {
  std::vector<Tensor> out;
  for (const Tensor& x : xs) out.push_back(Tensor::empty(x.shape(), dtype, device));
  return out;
}

}  // namespace

TEST_SUITE("convert_many") {
  TEST_CASE("convert_many_: bf16 rounds to nearest even, like Tensor::to") {
    const Tensor src = Tensor::from_vector(kValues, {4});
    const Tensor dst = Tensor::empty({4}, kBFloat16);
    ops::convert_many_({dst}, {src});
    CHECK(dst.to_vector<double>() == kRounded);
    // bf16 back to float32 is exact.
    const Tensor back = Tensor::empty({4}, kFloat32);
    ops::convert_many_({back}, {dst});
    CHECK(back.to_vector<double>() == kRounded);
  }

  TEST_CASE("convert_many_: each pair equals Tensor::to, bit for bit") {
    const std::vector<Tensor> src = random_list({1, 64, 257, 4099}, kFloat32, 3);
    for (DType to : {kBFloat16, kFloat64, kFloat32}) {
      INFO(dtype_name(to));
      const std::vector<Tensor> dst = empty_like(src, to, Device::cpu());
      ops::convert_many_(dst, src);
      for (size_t i = 0; i < src.size(); ++i) {
        CHECK(testing::max_abs_diff(dst[i], src[i].to(to)) == 0.0);
      }
    }
  }

  TEST_CASE("convert_many_ errors name the pair and what was expected") {
    const Tensor a = Tensor::ones({4}), b = Tensor::ones({2, 2});
    CHECK_THROWS_WITH_TEXT(ops::convert_many_({a}, {a, a}), "1 destinations for 2 sources");
    CHECK_THROWS_WITH_TEXT(ops::convert_many_({a}, {b}),
                           "pair 0: expected contiguous tensors of one shape");
    const Tensor t = Tensor::ones({3, 2}).transpose(0, 1);
    CHECK_THROWS_WITH_TEXT(ops::convert_many_({Tensor::empty({2, 3})}, {t}),
                           "expected contiguous tensors");
    CHECK_THROWS_WITH_TEXT(
        ops::convert_many_({Tensor::empty({4}, kBFloat16), Tensor::empty({4}, kFloat64)}, {a, a}),
        "pair 1: every dst must be bfloat16");
    CHECK_THROWS_WITH_TEXT(ops::convert_many_({Tensor::empty({4}, kInt32)}, {a}),
                           "expected floating tensors");
    CHECK_THROWS_WITH_TEXT(ops::convert_many_({Tensor()}, {a}), "pair 0 has an undefined tensor");
  }

  CUDA_TEST_CASE("cuda: convert_many_ over 70 pairs (two launches) equals the CPU, bit for bit") {
    // Sizes from 1 to 100003, beside many small ones: the wide grid of the largest pair, and a
    // second launch for the pairs past 64.
    std::vector<int64_t> sizes = {1, 3, 257, 4099, 100003};
    while (sizes.size() < 70) sizes.push_back(int64_t(sizes.size()) * 37 % 300 + 1);
    for (DType from : {kFloat32, kFloat64}) {
      for (DType to : {kBFloat16, kFloat32}) {
        INFO(dtype_name(from) << " -> " << dtype_name(to));
        const std::vector<Tensor> src = random_list(sizes, from, 11);
        std::vector<Tensor> src_gpu;
        for (const Tensor& s : src) src_gpu.push_back(s.cuda());
        testing::PoisonAllocations poison;
        const std::vector<Tensor> dst_gpu = empty_like(src, to, Device::cuda());
        const std::vector<Tensor> dst_cpu = empty_like(src, to, Device::cpu());
        ops::convert_many_(dst_gpu, src_gpu);
        ops::convert_many_(dst_cpu, src);
        for (size_t i = 0; i < src.size(); ++i) {
          INFO("pair " << i);
          const Tensor got = dst_gpu[i].cpu();
          CHECK(testing::all_written(got));
          CHECK(testing::max_abs_diff(got, dst_cpu[i]) == 0.0);
        }
      }
    }
    const Tensor k = Tensor::from_vector(kValues, {4}).cuda();
    Tensor k16 = Tensor::empty({4}, kBFloat16, Device::cuda());
    ops::convert_many_({k16}, {k});
    CHECK(k16.cpu().to_vector<double>() == kRounded);
  }
}  // TEST_SUITE
