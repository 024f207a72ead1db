// Element types and devices: the two tags every Tensor carries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/bf16.h"
#include "base/error.h"

namespace mt {

enum class DType : uint8_t { Float32, BFloat16, Float64, Int32, Int64 };

constexpr DType kFloat32 = DType::Float32;
constexpr DType kBFloat16 = DType::BFloat16;
constexpr DType kFloat64 = DType::Float64;
constexpr DType kInt32 = DType::Int32;
constexpr DType kInt64 = DType::Int64;

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "float32", "bfloat16", ...
bool is_floating(DType dtype);

// The C++ type stored for each DType, and the reverse mapping.
template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = kFloat32; };
template <> struct dtype_of<bf16> { static constexpr DType value = kBFloat16; };
template <> struct dtype_of<double> { static constexpr DType value = kFloat64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = kInt32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = kInt64; };

enum class DeviceKind : uint8_t { CPU, CUDA };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;

  static Device cpu() { return {DeviceKind::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceKind::CUDA, index}; }
  // "cpu", "cuda", "cuda:1", or "auto" (CUDA when a GPU is present, else the CPU).
  static Device parse(const std::string& name);

  bool is_cpu() const { return kind == DeviceKind::CPU; }
  bool is_cuda() const { return kind == DeviceKind::CUDA; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;  // "cpu" or "cuda:0"
};

// Calls `body` with `scalar_t` bound to the C++ type of a floating dtype (float, double, bf16).
// Integer dtypes are an Error naming the op: most math is only defined for floats.
#define MT_DISPATCH_FLOAT(dtype, op_name, ...)                                          \
  [&] {                                                                                  \
    switch (dtype) {                                                                     \
      case ::mt::kFloat32: { using scalar_t = float; return __VA_ARGS__(); }             \
      case ::mt::kFloat64: { using scalar_t = double; return __VA_ARGS__(); }            \
      case ::mt::kBFloat16: { using scalar_t = ::mt::bf16; return __VA_ARGS__(); }       \
      default: MT_FAIL("{}: expected a floating dtype, got {}", op_name, ::mt::dtype_name(dtype)); \
    }                                                                                    \
  }()

// The same over every dtype.
#define MT_DISPATCH_ALL(dtype, op_name, ...)                                             \
  [&] {                                                                                  \
    switch (dtype) {                                                                     \
      case ::mt::kFloat32: { using scalar_t = float; return __VA_ARGS__(); }             \
      case ::mt::kFloat64: { using scalar_t = double; return __VA_ARGS__(); }            \
      case ::mt::kBFloat16: { using scalar_t = ::mt::bf16; return __VA_ARGS__(); }       \
      case ::mt::kInt32: { using scalar_t = int32_t; return __VA_ARGS__(); }             \
      case ::mt::kInt64: { using scalar_t = int64_t; return __VA_ARGS__(); }             \
    }                                                                                    \
    MT_FAIL("{}: unknown dtype", op_name);                                                  \
  }()

}  // namespace mt
