// safetensors: the tensor file format of PyTorch and Hugging Face.
//
// Layout: an 8-byte little-endian header length N, then N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// then the raw little-endian tensor bytes, each tensor's [begin, end) relative to the end of the
// header. Files written here load in Python's `safetensors`, and the reverse; a truncated file, a
// header that is not JSON, an unknown dtype or offsets that don't add up are clear Errors.
#pragma once

#include <map>
#include <string>

#include "tensor/tensor.h"

namespace mt {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;  // CPU tensors, contiguous
  std::map<std::string, std::string> metadata;
};

// Writes atomically: to `path + ".tmp"`, then renames over `path`. Tensors may live on any
// device and have any layout; they are copied to the CPU contiguously.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

SafetensorsFile load_safetensors(const std::string& path);

}  // namespace mt
