// fp16 bits in the framework's tensors, for the tests that drive the fp16 kernels through their
// raw launchers. fp16 has no framework dtype: the bits travel in a 2-byte (bf16-typed) tensor,
// converted on the host with the compiler's _Float16 (round to nearest even). Only where the
// compiler has _Float16 (__FLT16_MAX__).
#pragma once

#if defined(__FLT16_MAX__)
#include <cstring>
#include <vector>

#include "tensor/tensor.h"

namespace mt::testing {

// float64 (or any dtype) values -> their fp16 bits in a bf16-typed tensor of the same shape.
inline Tensor to_half_bits(const Tensor& x) {
  std::vector<double> v = x.to_vector<double>();
  Tensor bits = Tensor::empty(x.shape(), kBFloat16);
  for (size_t i = 0; i < v.size(); ++i) {
    _Float16 h = static_cast<_Float16>(v[i]);
    std::memcpy(&bits.data<bf16>()[i].bits, &h, 2);
  }
  return bits;
}

// The inverse, from any device: a float64 CPU tensor of the fp16 values.
inline Tensor from_half_bits(const Tensor& bits) {
  Tensor c = bits.cpu();
  std::vector<double> v(c.numel());
  for (size_t i = 0; i < v.size(); ++i) {
    _Float16 h;
    std::memcpy(&h, &c.data<bf16>()[i].bits, 2);
    v[i] = static_cast<double>(h);
  }
  return Tensor::from_doubles(v, bits.shape(), kFloat64);
}

}  // namespace mt::testing
#endif
