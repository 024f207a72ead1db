#include "tests/test_util.h"

#include <limits>

#include "cuda/debug.h"
#include "tensor/random.h"

namespace mt::testing {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  MT_CHECK(a.shape() == b.shape(), "max_abs_diff: shapes differ: {} vs {}", shape_str(a.shape()),
           shape_str(b.shape()));
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double d = std::fabs(x[i] - y[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    m = std::max(m, d);
  }
  return m;
}

double rel_error(const Tensor& a, const Tensor& b) {
  MT_CHECK(a.shape() == b.shape(), "rel_error: shapes differ: {} vs {}", shape_str(a.shape()),
           shape_str(b.shape()));
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  if (std::isnan(num)) return std::numeric_limits<double>::infinity();
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

bool all_written(const Tensor& t) {
  for (double v : t.to_vector<double>()) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

void poison(Tensor& t) { t.fill_(std::numeric_limits<double>::quiet_NaN()); }

Tensor random_uniform(const Shape& shape, uint64_t seed, double lo, double hi) {
  Generator gen(seed);
  return Tensor::uniform(shape, lo, hi, gen, kFloat64);
}

PoisonAllocations::PoisonAllocations() { cuda::set_poison_allocations(true); }
PoisonAllocations::~PoisonAllocations() { cuda::set_poison_allocations(false); }
GemmEpiloguesOff::GemmEpiloguesOff() { cuda::set_gemm_epilogues(false); }
GemmEpiloguesOff::~GemmEpiloguesOff() { cuda::set_gemm_epilogues(true); }

namespace {

std::vector<Tensor> cast_all(const std::vector<Tensor>& xs, DType dtype, Device device) {
  std::vector<Tensor> out;
  for (const Tensor& x : xs) out.push_back(x.to(dtype).to(device));
  return out;
}

}  // namespace

void check_cuda_vs_cpu(const TensorOp& op, const std::vector<Tensor>& inputs, DType dtype,
                       const char* what) {
  constexpr double kF32Tol = 1e-5;
  const std::string label = std::string(what) + " in " + dtype_name(dtype);
  INFO(label);
  PoisonAllocations poison;
  const std::vector<Tensor> rounded = cast_all(inputs, dtype, Device::cpu());
  const Tensor ref = op(cast_all(rounded, kFloat64, Device::cpu()));
  const Tensor gpu = op(cast_all(rounded, dtype, Device::cuda()));
  REQUIRE(gpu.is_cuda());
  REQUIRE(gpu.shape() == ref.shape());
  CHECK(gpu.dtype() == op(rounded).dtype());
  const Tensor got = gpu.cpu().to(kFloat64);
  CHECK(all_written(got));
  const double err = rel_error(got, ref);
  if (dtype == kBFloat16) {
    const double naive = rel_error(op(rounded).to(kFloat64), ref);
    const std::string note =
        "bf16 error " + std::to_string(err) + " vs naive " + std::to_string(naive);
    INFO(note);
    CHECK(err <= 2.0 * naive + 1e-7);
  } else {
    const std::string note = "error " + std::to_string(err);
    INFO(note);
    CHECK(err <= (dtype == kFloat64 ? 1e-12 : kF32Tol));
  }
}

void check_cuda_vs_cpu_float_types(const TensorOp& op, const std::vector<Tensor>& inputs,
                                   const char* what, bool bf16) {
  check_cuda_vs_cpu(op, inputs, kFloat32, what);
  check_cuda_vs_cpu(op, inputs, kFloat64, what);
  if (bf16) check_cuda_vs_cpu(op, inputs, kBFloat16, what);
}

}  // namespace mt::testing
