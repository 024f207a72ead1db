// Factories: empty/zeros/ones/full/arange, host vectors, and random tensors.
//
// Random tensors are generated on the CPU from the Philox stream and then moved to the target
// device, so a seed gives bit-identical values on every device (they are used for weight init
// and tests, never on a hot path; dropout masks are generated in-kernel from the same Philox).
#include <cmath>
#include <cstring>

#include "base/philox.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace mt {

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) CHECK(s >= 0, "empty: negative size in {}", shape_str(shape));
  const size_t nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  auto storage = std::make_shared<Storage>(nbytes, device);
  return make_view(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype, Device device) {
  return full({}, value, dtype, device);
}

Tensor Tensor::arange(double start, double end, double step, DType dtype, Device device) {
  CHECK(step != 0, "arange: step must be non-zero");
  const double span = (end - start) / step;
  const int64_t n = span > 0 ? static_cast<int64_t>(std::ceil(span)) : 0;
  std::vector<double> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[i] = start + static_cast<double>(i) * step;
  return from_doubles(values, {n}, dtype).to(device);
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
        "from_vector: {} values for shape {} ({} elements)", values.size(), shape_str(shape),
        shape_numel(shape));
  Tensor t = empty(shape, dtype_of<T>::value);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector<bf16>(const std::vector<bf16>&, const Shape&);
template Tensor Tensor::from_vector<int32_t>(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);

Tensor Tensor::from_doubles(const std::vector<double>& values, const Shape& shape, DType dtype) {
  return from_vector(values, shape).to(dtype);
}

// ---- random --------------------------------------------------------------------------------

Tensor Tensor::uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype,
                       Device device) {
  CHECK(low < high, "uniform: expected low < high, got [{}, {})", low, high);
  const uint64_t stream = gen.next_stream();
  const int64_t n = shape_numel(shape);
  std::vector<double> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    values[i] = low + (high - low) * philox_uniform_at(gen.seed(), stream, static_cast<uint64_t>(i));
  }
  return from_doubles(values, shape, dtype).to(device);
}

Tensor Tensor::rand(const Shape& shape, Generator& gen, DType dtype, Device device) {
  return uniform(shape, 0.0, 1.0, gen, dtype, device);
}

// Box–Muller: each Philox block of four 32-bit outputs gives two normals from (v0, v1); element
// 2j takes the cosine branch and 2j+1 the sine branch of block j.
Tensor Tensor::randn(const Shape& shape, Generator& gen, DType dtype, Device device) {
  const uint64_t stream = gen.next_stream();
  const int64_t n = shape_numel(shape);
  std::vector<double> values(static_cast<size_t>(n));
  constexpr double kTwoPi = 6.283185307179586;
  for (int64_t j = 0; 2 * j < n; ++j) {
    Philox4 r = philox4x32(gen.seed(), static_cast<uint64_t>(j), stream);
    // u1 in (0, 1]: never 0, so the log is finite.
    const double u1 = (static_cast<double>(r.v[0] >> 8) + 1.0) / 16777216.0;
    const double u2 = static_cast<double>(r.v[1] >> 8) / 16777216.0;
    const double radius = std::sqrt(-2.0 * std::log(u1));
    values[2 * j] = radius * std::cos(kTwoPi * u2);
    if (2 * j + 1 < n) values[2 * j + 1] = radius * std::sin(kTwoPi * u2);
  }
  return from_doubles(values, shape, dtype).to(device);
}

}  // namespace mt
