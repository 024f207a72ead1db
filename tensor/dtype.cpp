#include "tensor/dtype.h"

#include "cuda/runtime.h"

namespace mt {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case kFloat32: return 4;
    case kBFloat16: return 2;
    case kFloat64: return 8;
    case kInt32: return 4;
    case kInt64: return 8;
  }
  FAIL("dtype_size: unknown dtype {}", static_cast<int>(dtype));
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case kFloat32: return "float32";
    case kBFloat16: return "bfloat16";
    case kFloat64: return "float64";
    case kInt32: return "int32";
    case kInt64: return "int64";
  }
  return "unknown";
}

bool is_floating(DType dtype) {
  return dtype == kFloat32 || dtype == kBFloat16 || dtype == kFloat64;
}

Device Device::parse(const std::string& name) {
  if (name == "cpu") return cpu();
  if (name == "auto") return cuda::available() ? cuda(0) : cpu();
  if (name == "cuda") return cuda(0);
  if (name.rfind("cuda:", 0) == 0) {
    const std::string digits = name.substr(5);
    CHECK(!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos,
          "device: expected cuda:<index>, got '{}'", name);
    return cuda(std::stoi(digits));
  }
  FAIL("device: expected 'cpu', 'cuda', 'cuda:<index>' or 'auto', got '{}'", name);
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : fmt::format("cuda:{}", index);
}

}  // namespace mt
